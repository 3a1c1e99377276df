//! The embedded insights engine: data sources → unification (map, match,
//! merge) → segments and measures, on the entity store, raising the six
//! triggers as they happen.

pub mod config;
pub mod generate;
pub mod normalize;
