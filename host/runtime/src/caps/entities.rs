//! `entities`: read the customer-data store (only the entities granted),
//! its partitions, and write the entities declared writable for the plugin.
//! Every call, read or write, counts against the same budgets.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::entities::{self as wit, Page, Partition, Query};
use crate::bindings::{Error, QueryError};
use crate::caps::{HostFault, HostResult};
use crate::context::CallContext;
use crate::context::WriteNote;
use crate::grants::Granter;
use crate::ratelimit::Limiter;
use crate::settings::Settings;
use triggerfish_data::store::{
    EntityDb, PageError, PageRequest, StoreError, WritableEntity, WriteBy, WriteError, Written,
    MAX_ITEM_BYTES,
};

/// What stands behind the `entities` import.
pub trait EntityStore: Send + Sync + 'static {
    /// Every entity name.
    fn list(&self) -> Result<Vec<String>, Error>;
    /// One item by primary key, as a JSON object.
    fn get_item(&self, entity: &str, id: &str) -> Result<String, Error>;
    /// One page of items (of one partition, when given). `caller`
    /// identifies the paging client (plugin name).
    fn get_items(
        &self,
        caller: &str,
        entity: &str,
        partition: Option<&str>,
        query: &Query,
    ) -> Result<Page, Error>;
    /// The partitions of an entity.
    fn partitions(&self, entity: &str) -> Result<Vec<Partition>, Error>;
    /// Create an item of a writable entity.
    fn create_item(
        &self,
        spec: &WritableEntity,
        item: &str,
        by: WriteBy<'_>,
    ) -> Result<Written, Error>;
    /// Change fields of an item of a writable entity.
    fn update_item(
        &self,
        spec: &WritableEntity,
        id: &str,
        changes: &str,
        by: WriteBy<'_>,
    ) -> Result<Written, Error>;
}

/// What a plugin is told of a refused write.
fn write_error(e: WriteError) -> Error {
    match e {
        WriteError::Invalid(m) => Error::InvalidArgument(m),
        e @ WriteError::NotFound { .. } => Error::NotFound(e.to_string()),
        e @ WriteError::Exists { .. } => Error::InvalidArgument(e.to_string()),
        e @ WriteError::Full { .. } => Error::Unavailable(e.to_string()),
        e @ WriteError::NotWritable(_) => Error::Denied(e.to_string()),
        WriteError::Store(e) => store_error(e),
    }
}

/// What a plugin is told of a store failure: the entity, never the store's
/// path or SQL (those go to the host's log).
fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::UnknownEntity(name) => {
            Error::NotFound(format!("entity '{name}' does not exist"))
        }
        e @ StoreError::UnknownPartition { .. } => Error::NotFound(e.to_string()),
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

    fn get_items(
        &self,
        caller: &str,
        entity: &str,
        partition: Option<&str>,
        query: &Query,
    ) -> Result<Page, Error> {
        let req = PageRequest {
            filter: query.filter.clone(),
            select: query.select.clone(),
            orderby: query.orderby.clone(),
            top: query.top,
            skip: query.skip,
            partition: partition.map(str::to_owned),
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

    fn partitions(&self, entity: &str) -> Result<Vec<Partition>, Error> {
        Ok(EntityDb::partitions(self, entity)
            .map_err(store_error)?
            .into_iter()
            .map(|p| Partition {
                id: p.id,
                origin: p.origin,
                rows: p.rows,
                refreshed_at: p.refreshed_at,
            })
            .collect())
    }

    fn create_item(
        &self,
        spec: &WritableEntity,
        item: &str,
        by: WriteBy<'_>,
    ) -> Result<Written, Error> {
        EntityDb::create_item(self, spec, item, by).map_err(write_error)
    }

    fn update_item(
        &self,
        spec: &WritableEntity,
        id: &str,
        changes: &str,
        by: WriteBy<'_>,
    ) -> Result<Written, Error> {
        EntityDb::update_item(self, spec, id, changes, by).map_err(write_error)
    }
}

/// The writable entities of a host, and why writes are refused here, if
/// they are.
#[derive(Debug, Default)]
pub struct Writable {
    entities: BTreeMap<String, Arc<WritableEntity>>,
    unavailable: Option<String>,
}

impl Writable {
    /// From the settings' `[[entities]]`.
    pub fn new(settings: &Settings) -> Self {
        Self {
            entities: settings
                .writable
                .iter()
                .map(|e| (e.name.clone(), Arc::new(e.clone())))
                .collect(),
            unavailable: settings.writes_unavailable.clone(),
        }
    }
}

/// A write's kind.
#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Update,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
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
    writable: Arc<Writable>,
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
            writable: Arc::default(),
        }
    }

    /// With these writable entities (none by default).
    pub fn with_writable(mut self, writable: Arc<Writable>) -> Self {
        self.writable = writable;
        self
    }

    /// The checks before a write to `entity`, cheapest first: that it is
    /// writable, by this plugin, granted, a bounded size, then the budgets.
    async fn admit_write(
        &self,
        entity: &str,
        size: usize,
        what: &str,
    ) -> Result<Arc<WritableEntity>, Error> {
        let Some(spec) = self.writable.entities.get(entity).cloned() else {
            let store = self.store()?;
            let name = entity.to_owned();
            let exists = tokio::task::spawn_blocking(move || {
                store.list().map(|names| names.contains(&name))
            })
            .await
            .unwrap_or(Ok(false))?;
            return Err(if exists {
                Error::Denied(format!(
                    "entity '{entity}' is owned by the insights engine (a source, profile, segment or measure entity); plugins cannot write it"
                ))
            } else {
                Error::NotFound(format!(
                    "entity '{entity}' does not exist (writable entities are declared under [[entities]])"
                ))
            });
        };
        if !spec.writable_by.iter().any(|p| **p == *self.cx.plugin) {
            return Err(Error::Denied(format!(
                "entity '{entity}' is not writable by this plugin (its writable_by does not list it)"
            )));
        }
        self.granter
            .entity_write(entity)
            .map_err(crate::caps::denied)?;
        if size > MAX_ITEM_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the item is {size} bytes; at most {MAX_ITEM_BYTES} are accepted"
            )));
        }
        self.spend(what).await?;
        if let Some(why) = &self.writable.unavailable {
            return Err(Error::Unavailable(why.clone()));
        }
        Ok(spec)
    }

    /// One write: admitted, made on a blocking thread, noted in the record.
    async fn write(
        &mut self,
        op: Op,
        entity: String,
        id: Option<String>,
        body: String,
    ) -> HostResult<String> {
        let what = match op {
            Op::Create => "create-item",
            Op::Update => "update-item",
        };
        let size = body.len() + id.as_ref().map_or(0, String::len);
        let spec = match self.admit_write(&entity, size, what).await {
            Ok(spec) => spec,
            Err(e) => return Ok(Err(e)),
        };
        let (plugin, event_id, attempt, run) = (
            self.cx.plugin.clone(),
            self.cx.event_id.clone(),
            self.cx.attempt.clone(),
            self.cx.run,
        );
        let written = self
            .blocking(move |s| {
                let by = WriteBy {
                    plugin: &plugin,
                    event_id: &event_id,
                    attempt: &attempt,
                    run,
                };
                match &id {
                    None => s.create_item(&spec, &body, by),
                    Some(id) => s.update_item(&spec, id, &body, by),
                }
            })
            .await?;
        Ok(written.map(|w| {
            self.cx.wrote(WriteNote {
                entity,
                op: op.name(),
                key: w.key,
                repeated: w.repeated,
            });
            w.item.to_string()
        }))
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
        self.blocking(move |s| s.get_items(&caller, &entity, None, &query))
            .await
    }

    async fn list_partitions(&mut self, entity: String) -> HostResult<Vec<Partition>> {
        if let Err(e) = self.admit(&entity, "list-partitions").await {
            return Ok(Err(e));
        }
        self.blocking(move |s| s.partitions(&entity)).await
    }

    async fn get_partition_items(
        &mut self,
        entity: String,
        partition: String,
        query: Query,
    ) -> HostResult<Page> {
        if let Err(e) = self.admit(&entity, "get-partition-items").await {
            return Ok(Err(e));
        }
        let caller = self.cx.plugin.to_string();
        self.blocking(move |s| s.get_items(&caller, &entity, Some(&partition), &query))
            .await
    }

    async fn create_item(&mut self, entity: String, item: String) -> HostResult<String> {
        self.write(Op::Create, entity, None, item).await
    }

    async fn update_item(
        &mut self,
        entity: String,
        id: String,
        changes: String,
    ) -> HostResult<String> {
        self.write(Op::Update, entity, Some(id), changes).await
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
