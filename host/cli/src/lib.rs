//! The `triggerfish` command's library: the configuration file and the
//! composition of the data layer and the plugin runtime.
//!
//! Layering rule: this crate sits on top. It turns `triggerfish.toml` into
//! the typed settings of `triggerfish-runtime` and the insights workspace of
//! `triggerfish-data`; neither of those knows the file format or each other's
//! engine.

pub mod cli;
pub mod cluster;
pub mod config_file;
pub mod console;
pub mod daemon;

pub use config_file::{Config, ConfigError};
