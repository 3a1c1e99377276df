//! Triggerfish's data layer: the entity store on SQLite, the OData query
//! language, the insights engine (sources → unification → segments and
//! measures) and the six triggers as plain event types.
//!
//! Layering rule: this crate never depends on wasmtime or on the plugin
//! runtime. It knows nothing of plugins; events leave the insights engine
//! through [`insights::Observer`] as plain [`event::Event`] values.

pub mod event;
pub mod insights;
pub mod journal;
pub mod odata;
pub mod store;
pub mod text;
