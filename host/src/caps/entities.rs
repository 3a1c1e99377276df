//! `entities`: read the customer-data store, only the entities granted.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::entities::{self as wit, Page, Query};
use crate::bindings::Error;
use crate::context::CallContext;
use crate::grants::Granter;
use crate::state::InstanceState;

/// What stands behind the `entities` import.
pub trait EntityStore: Send + Sync + 'static {
    /// Every entity name.
    fn list(&self) -> Result<Vec<String>, Error>;
    /// One item by primary key, as a JSON object.
    fn get_item(&self, entity: &str, id: &str) -> Result<String, Error>;
    /// One page of items. `caller` identifies the paging client (plugin name).
    fn get_items(&self, caller: &str, entity: &str, query: &Query) -> Result<Page, Error>;
}

/// Per-instance state of the `entities` capability.
pub struct EntitiesInstance {
    store: Option<Arc<dyn EntityStore>>,
    granter: Arc<Granter>,
    cx: CallContext,
}

impl EntitiesInstance {
    /// State for one delivery.
    pub fn new(
        store: Option<Arc<dyn EntityStore>>,
        granter: Arc<Granter>,
        cx: CallContext,
    ) -> Self {
        Self { store, granter, cx }
    }

    fn store(&self) -> Result<Arc<dyn EntityStore>, Error> {
        self.store
            .clone()
            .ok_or_else(|| Error::Unavailable("no entity store is open on this host".into()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn EntityStore) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.store()?;
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| Error::Unavailable(format!("entity store task failed: {e}")))?
    }
}

impl wit::Host for EntitiesInstance {
    async fn list_entities(&mut self) -> Result<Vec<String>, Error> {
        if !self.granter.any_entity() {
            return Err(Error::Denied("no entity is granted to this plugin".into()));
        }
        let granter = self.granter.clone();
        let mut names = self.blocking(|s| s.list()).await?;
        names.retain(|n| granter.entity_allowed(n));
        Ok(names)
    }

    async fn get_item(&mut self, entity: String, id: String) -> Result<String, Error> {
        self.granter.entity(&entity).map_err(crate::caps::denied)?;
        self.blocking(move |s| s.get_item(&entity, &id)).await
    }

    async fn get_items(&mut self, entity: String, query: Query) -> Result<Page, Error> {
        self.granter.entity(&entity).map_err(crate::caps::denied)?;
        let caller = self.cx.plugin.to_string();
        self.blocking(move |s| s.get_items(&caller, &entity, &query))
            .await
    }
}

/// Add `entities` to the linker.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, HasSelf<EntitiesInstance>>(linker, |s| &mut s.entities)
}
