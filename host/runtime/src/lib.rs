//! Triggerfish's plugin runtime: a WebAssembly component host for
//! customer-data triggers.
//!
//! Layering rule: this crate depends on `triggerfish-data` for the plain
//! event types and the entity store, and on nothing above it. It does not
//! know the insights engine or the configuration file: it receives
//! [`Settings`] and events, and reads entities through
//! [`caps::entities::EntityStore`].
//!
//! Inside, each layer depends only on the ones above it:
//! - [`settings`], [`grants`], [`ratelimit`], [`secret`], [`outbox`]: plain values and policy;
//! - [`bindings`], [`convert`]: the WIT world and the plain-event conversion;
//! - [`context`], [`stdio`], [`state`]: what one delivery shares, the guest's captured output, and its per-instance store data;
//! - [`caps`]: one module per capability, each linked through an accessor;
//! - [`engine`]: wasmtime, the linker, the compiled-code cache, epoch ticking;
//! - [`dispatch`]: plugins, fresh instances per event, deadlines and limits.

pub mod bindings;
pub mod caps;
pub mod compile_cache;
pub mod context;
pub mod convert;
pub mod dispatch;
pub mod engine;
pub mod grants;
pub mod ledger;
pub mod outbox;
pub mod ratelimit;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod state;
pub mod stdio;
pub mod trust;

pub use dispatch::{Failure, Host, Outcome, Select};
pub use settings::Settings;
