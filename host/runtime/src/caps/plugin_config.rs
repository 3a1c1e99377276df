//! `config`: the plugin's own `[plugins.config]` key/values.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::config as wit;

/// Per-instance state of the `config` capability.
pub struct ConfigInstance {
    values: Arc<BTreeMap<String, String>>,
}

impl ConfigInstance {
    /// State for one delivery of a plugin with these values.
    pub fn new(values: Arc<BTreeMap<String, String>>) -> Self {
        Self { values }
    }
}

impl wit::Host for ConfigInstance {
    async fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }
}

/// Add `config` to the linker; `get` finds this capability's state in
/// the store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigInstance,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ConfigInstance>>(linker, get)
}
