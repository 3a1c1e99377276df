//! `entities`: read the customer-data store, only the entities granted.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::entities::{self as wit, Page, Query};
use crate::bindings::{Error, QueryError};
use crate::caps::{HostFault, HostResult};
use crate::context::CallContext;
use crate::grants::Granter;
use crate::ratelimit::Limiter;
use triggerfish_data::store::{EntityDb, PageError, PageRequest, StoreError};

/// What stands behind the `entities` import.
pub trait EntityStore: Send + Sync + 'static {
    /// Every entity name.
    fn list(&self) -> Result<Vec<String>, Error>;
    /// One item by primary key, as a JSON object.
    fn get_item(&self, entity: &str, id: &str) -> Result<String, Error>;
    /// One page of items. `caller` identifies the paging client (plugin name).
    fn get_items(&self, caller: &str, entity: &str, query: &Query) -> Result<Page, Error>;
}

/// What a plugin is told of a store failure: the entity, never the store's
/// path or SQL (those go to the host's log).
fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::UnknownEntity(name) => {
            Error::NotFound(format!("entity '{name}' does not exist"))
        }
        other => {
            tracing::error!("entity store failure served to a plugin as 'unavailable': {other}");
            Error::Unavailable(
                "the entity store failed to answer; the host's log has the cause".into(),
            )
        }
    }
}

impl EntityStore for EntityDb {
    fn list(&self) -> Result<Vec<String>, Error> {
        self.entity_names().map_err(store_error)
    }

    fn get_item(&self, entity: &str, id: &str) -> Result<String, Error> {
        match EntityDb::get_item(self, entity, id).map_err(store_error)? {
            Some(item) => Ok(item.to_string()),
            None => Err(Error::NotFound(format!(
                "no item with key '{id}' in entity '{entity}'"
            ))),
        }
    }

    fn get_items(&self, caller: &str, entity: &str, query: &Query) -> Result<Page, Error> {
        let req = PageRequest {
            filter: query.filter.clone(),
            select: query.select.clone(),
            orderby: query.orderby.clone(),
            top: query.top,
            skip: query.skip,
        };
        match self.get_page(caller, entity, &req) {
            Ok(page) => Ok(Page {
                items: page
                    .items
                    .into_iter()
                    .map(|m| serde_json::Value::Object(m).to_string())
                    .collect(),
                next_skip: page.next_skip,
            }),
            Err(PageError::EntityDb(e)) => Err(store_error(e)),
            Err(PageError::Query(q)) => Err(Error::InvalidQuery(QueryError {
                position: q.position,
                message: format!("{}: {}", q.option, q.message),
            })),
        }
    }
}

/// The call budgets an instance draws on: its plugin's, and the host's.
#[derive(Clone, Default)]
pub struct Budgets {
    /// Per plugin, shared by all its instances.
    pub plugin: Option<Arc<Limiter>>,
    /// Host-wide cap across plugins.
    pub host: Option<Arc<Limiter>>,
}

/// Per-instance state of the `entities` capability.
pub struct EntitiesInstance {
    store: Option<Arc<dyn EntityStore>>,
    granter: Arc<Granter>,
    budgets: Budgets,
    cx: CallContext,
}

impl EntitiesInstance {
    /// State for one delivery.
    pub fn new(
        store: Option<Arc<dyn EntityStore>>,
        granter: Arc<Granter>,
        budgets: Budgets,
        cx: CallContext,
    ) -> Self {
        Self {
            store,
            granter,
            budgets,
            cx,
        }
    }

    /// Count one call against the budgets, waiting within the deadline.
    async fn spend(&self, what: &str) -> Result<(), Error> {
        for (scope, limiter) in [
            ("plugin", &self.budgets.plugin),
            ("host", &self.budgets.host),
        ] {
            let Some(limiter) = limiter else { continue };
            match limiter.take_before(self.cx.deadline).await {
                Ok(waited) if !waited.is_zero() => {
                    tracing::info!(plugin = %self.cx.plugin, event = %self.cx.event_id, scope, waited_ms = waited.as_millis() as u64, "entities.{what}: waited for the call budget");
                }
                Ok(_) => {}
                Err(refused) => {
                    let ms = u64::try_from(refused.retry_after.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    tracing::warn!(plugin = %self.cx.plugin, event = %self.cx.event_id, scope, retry_after_ms = ms, throttled = limiter.throttled(), "entities.{what}: call budget spent; refused");
                    return Err(Error::RateLimited(ms));
                }
            }
        }
        Ok(())
    }

    fn store(&self) -> Result<Arc<dyn EntityStore>, Error> {
        self.store
            .clone()
            .ok_or_else(|| Error::Unavailable("no entity store is open on this host".into()))
    }

    /// Run `f` on a blocking thread. A failure of that thread (a panic in
    /// the store) is a host fault: it traps the instance instead of reaching
    /// the guest as an error it might retry.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn EntityStore) -> Result<T, Error> + Send + 'static,
    ) -> HostResult<T> {
        let store = match self.store() {
            Ok(store) => store,
            Err(e) => return Ok(Err(e)),
        };
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| {
                HostFault {
                    capability: "entities",
                    message: format!("entity store task failed: {e}"),
                }
                .into()
            })
    }

    async fn list(&mut self) -> HostResult<Vec<String>> {
        if !self.granter.any_entity() {
            return Ok(Err(Error::Denied(
                "no entity is granted to this plugin".into(),
            )));
        }
        if let Err(e) = self.spend("list-entities").await {
            return Ok(Err(e));
        }
        let granter = self.granter.clone();
        Ok(self.blocking(|s| s.list()).await?.map(|mut names| {
            names.retain(|n| granter.entity_allowed(n));
            names
        }))
    }

    /// The checks before a read of `entity`: its grant, then the budgets.
    async fn admit(&self, entity: &str, what: &str) -> Result<(), Error> {
        self.granter.entity(entity).map_err(crate::caps::denied)?;
        self.spend(what).await
    }
}

impl wit::Host for EntitiesInstance {
    async fn list_entities(&mut self) -> HostResult<Vec<String>> {
        self.list().await
    }

    async fn get_item(&mut self, entity: String, id: String) -> HostResult<String> {
        if let Err(e) = self.admit(&entity, "get-item").await {
            return Ok(Err(e));
        }
        self.blocking(move |s| s.get_item(&entity, &id)).await
    }

    async fn get_items(&mut self, entity: String, query: Query) -> HostResult<Page> {
        if let Err(e) = self.admit(&entity, "get-items").await {
            return Ok(Err(e));
        }
        let caller = self.cx.plugin.to_string();
        self.blocking(move |s| s.get_items(&caller, &entity, &query))
            .await
    }
}

/// Add `entities` to the linker; `get` finds this capability's state in
/// the store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut EntitiesInstance,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<EntitiesInstance>>(linker, get)
}
