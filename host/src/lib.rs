//! Triggerfish: a WebAssembly component plugin host for customer-data triggers.
//!
//! Layers, each depending only on the ones above it:
//! - [`config`], [`event`]: the configuration file and the six triggers;
//! - [`engine`]: wasmtime, the linker, compiled-component cache;
//! - [`caps`], [`grants`]: host capabilities and the policy that gates them;
//! - [`dispatch`]: plugins, fresh instances per event, deadlines and limits.

pub mod bindings;
pub mod caps;
pub mod config;
pub mod context;
pub mod dispatch;
pub mod engine;
pub mod event;
pub mod grants;
pub mod insights;
pub mod odata;
pub mod outbox;
pub mod ratelimit;
pub mod secret;
pub mod state;
pub mod store;

pub use dispatch::{Failure, Host, Outcome, Select};
