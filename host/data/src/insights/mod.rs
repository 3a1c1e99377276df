//! The embedded insights engine: data sources → unification (map, match,
//! merge) → segments and measures, on the entity store, raising the six
//! triggers as they happen.
//!
//! Layers: [`workspace`] (the configuration) → [`source`] and [`postgres`],
//! [`unify`], [`compute`], [`thresholds`] (one job each) → [`pipeline`] (the
//! order of a refresh and the events). Events leave through [`pipeline::Observer`]; delivery to
//! plugins is the dispatcher's business, not this module's.

mod ahead;
pub mod compute;
pub mod fingerprint;
mod incremental;
pub mod keymap;
mod links;
pub mod normalize;
pub mod pg_tls;
pub mod pipeline;
pub mod postgres;
pub mod similarity;
pub mod sorter;
pub mod source;
pub mod spill;
pub mod template;
pub mod thresholds;
pub mod unify;
pub mod workspace;

pub use pipeline::{InsightsEngine, Observer, RefreshReport, Scope};
