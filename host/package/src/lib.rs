//! Plugin authoring and distribution, outside the sandbox: the `plugin.toml`
//! manifest, builds for each guest language, the manifest packed into the
//! component, and OCI registries. No wasmtime here.

pub mod auth;
pub mod build;
pub mod manifest;
pub mod oci;
pub mod scaffold;
pub mod section;
