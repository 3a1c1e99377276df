//! The dispatcher: loaded plugins, the host-wide capability services, and
//! delivery of one event to one plugin in a fresh, limited instance.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{Store, Trap, UpdateDeadline};

use triggerfish_data::event::{Event, TriggerKind};
use triggerfish_data::store::StoreError;

use crate::bindings;
use crate::caps::email::{EmailInstance, EmailService, EmailSetupError};
use crate::caps::entities::{Budgets, EntitiesInstance, EntityStore, Writable};
use crate::caps::http::HttpHooks;
use crate::caps::log::LogInstance;
use crate::caps::plugin_config::ConfigInstance;
use crate::caps::status::StatusInstance;
use crate::caps::teams::{TeamsInstance, TeamsService, TeamsSetupError};
use crate::caps::HostFault;
use crate::context::{one_line, truncate, CallContext, HostLogBudget, Level, LogSource, Record};
use crate::engine::{EngineError, LoadedComponent, Runtime, RuntimeOptions, POOL_INSTANCES};
use crate::grants::{Granter, Origin};
use crate::ratelimit::Limiter;
use crate::settings::{PluginConfig, Settings, DEFAULT_MEMORY_MIB};
use crate::state::{http_ctx, resource_table, sandboxed_wasi, InstanceState, MemoryLimiter};
use crate::stdio::Stdio;

const MIB: u64 = 1024 * 1024;

/// Errors setting up the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Teams(#[from] TeamsSetupError),
    #[error(transparent)]
    Email(#[from] EmailSetupError),
    #[error("plugin '{plugin}': {source}")]
    Plugin { plugin: String, source: EngineError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no plugin named '{0}' in the configuration (plugins: {1})")]
    UnknownPlugin(String, String),
}

/// One plugin, compiled and ready.
pub struct Plugin {
    /// Its configuration.
    pub config: PluginConfig,
    /// Its compiled component.
    pub component: LoadedComponent,
    granter: Arc<Granter>,
    values: Arc<BTreeMap<String, String>>,
    origins: Vec<Origin>,
    entity_budget: Arc<Limiter>,
    host_log: Arc<HostLogBudget>,
}

/// Host-wide services shared by every instance.
#[derive(Clone)]
pub struct Services {
    pub teams: Arc<TeamsService>,
    pub email: Option<Arc<EmailService>>,
    pub entities: Option<Arc<dyn EntityStore>>,
    /// Host-wide entity-call cap.
    pub entity_budget: Option<Arc<Limiter>>,
    /// The sent ledger Teams and email sends consult.
    pub ledger: Option<Arc<dyn crate::ledger::SentStore>>,
    /// The writable entities, and whether writes are possible here.
    pub writable: Arc<Writable>,
}

impl Services {
    /// Build every service from the configuration, opening the entity store.
    pub fn new(settings: &Settings) -> Result<Self, HostError> {
        let store = settings.open_store()?;
        store.declare_writable(&settings.writable)?;
        Ok(Self {
            teams: Arc::new(TeamsService::new(settings)?),
            email: EmailService::new(settings)?.map(Arc::new),
            entities: Some(Arc::new(store)),
            entity_budget: settings
                .host_entity_budget
                .map(|b| Arc::new(Limiter::new(b))),
            ledger: None,
            writable: Arc::new(Writable::new(settings)),
        })
    }
}

/// The plugin host: runtime, services, plugins.
pub struct Host {
    runtime: Runtime,
    services: Services,
    plugins: BTreeMap<String, Arc<Plugin>>,
    /// One permit per instance the pool has room for: deliveries queue for
    /// a slot instead of failing when every slot is taken.
    slots: Arc<Semaphore>,
}

/// Which plugins [`Host::new`] loads.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Every configured plugin.
    All,
    /// Only this one.
    Only(&'a str),
}

impl Host {
    /// Compile and link the selected plugins and build the services.
    pub fn new(config: &Settings, select: Select<'_>) -> Result<Self, HostError> {
        let chosen: Vec<&PluginConfig> = match select {
            Select::All => config.plugins.iter().collect(),
            Select::Only(name) => vec![config.plugin(name).ok_or_else(|| {
                let names: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
                HostError::UnknownPlugin(name.to_owned(), names.join(", "))
            })?],
        };
        let runtime = Self::runtime_for(config)?;
        let services = Services::new(config)?;
        let mut plugins = BTreeMap::new();
        for p in chosen {
            let component = runtime
                .load_trusted(&p.component, p.sha256.as_deref(), &config.trust)
                .map_err(|source| HostError::Plugin {
                    plugin: p.name.clone(),
                    source,
                })?;
            plugins.insert(p.name.clone(), Arc::new(Plugin::new(p.clone(), component)));
        }
        Ok(Self {
            runtime,
            services,
            plugins,
            slots: Arc::new(Semaphore::new(POOL_INSTANCES as usize)),
        })
    }

    /// The runtime sized for these plugins.
    pub fn runtime_for(config: &Settings) -> Result<Runtime, EngineError> {
        let max_mib = config
            .plugins
            .iter()
            .map(|p| p.limits.memory_mib)
            .max()
            .unwrap_or(DEFAULT_MEMORY_MIB);
        Runtime::new(&RuntimeOptions {
            max_memory_bytes: usize::try_from(max_mib * MIB).unwrap_or(usize::MAX),
            cache_dir: config.cache_dir.clone(),
        })
    }

    /// Consult and fill this journal's sent ledger on every Teams and email
    /// send, so a retried run does not send twice what it already sent.
    pub fn set_journal(&mut self, journal: Arc<triggerfish_data::journal::Journal>) {
        self.services.ledger = Some(journal);
    }

    /// Consult and fill `ledger` instead (a cluster's shared bucket).
    pub fn set_ledger(&mut self, ledger: Arc<dyn crate::ledger::SentStore>) {
        self.services.ledger = Some(ledger);
    }

    /// Replace the entity store behind the `entities` capability.
    pub fn set_entity_store(&mut self, store: Arc<dyn EntityStore>) {
        self.services.entities = Some(store);
    }

    /// The loaded plugins, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values().map(|p| p.as_ref())
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&Plugin> {
        self.plugins.get(name).map(|p| p.as_ref())
    }

    /// Entity calls of `plugin` that waited for, or were refused, budget.
    pub fn entity_throttled(&self, plugin: &str) -> Option<u64> {
        self.plugins
            .get(plugin)
            .map(|p| p.entity_budget.throttled())
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Deliver `event` to every plugin subscribed to its trigger. Each
    /// delivery runs as its own task, so a guest that never returns cannot
    /// hold up its neighbours, and outcomes come back in plugin order.
    pub async fn dispatch(&self, event: &Event) -> Vec<Outcome> {
        let kind = TriggerKind::of(&event.trigger);
        let event = Arc::new(event.clone());
        let tasks: Vec<_> = self
            .plugins
            .values()
            .filter(|p| p.config.triggers.contains(&kind))
            .map(|p| {
                let name = p.config.name.clone();
                (
                    name,
                    tokio::spawn(self.delivery(p.clone(), event.clone(), None)),
                )
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for (plugin, task) in tasks {
            outcomes.push(match task.await {
                Ok(outcome) => outcome,
                Err(e) => Outcome {
                    plugin,
                    event_id: event.id.clone(),
                    result: Err(Failure::Host(format!(
                        "host fault: delivery task failed: {e}"
                    ))),
                    duration: Duration::ZERO,
                    record: Record::default(),
                },
            });
        }
        outcomes
    }

    /// Deliver `event` to the named plugin, whatever its subscriptions.
    pub async fn deliver(&self, plugin: &str, event: &Event) -> Result<Outcome, HostError> {
        self.deliver_run(plugin, event, None).await
    }

    /// [`Host::deliver`] as an attempt of the journal's `run`, which the
    /// record of each write then names.
    pub async fn deliver_run(
        &self,
        plugin: &str,
        event: &Event,
        run: Option<i64>,
    ) -> Result<Outcome, HostError> {
        let p = self.plugins.get(plugin).ok_or_else(|| {
            HostError::UnknownPlugin(
                plugin.to_owned(),
                self.plugins.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })?;
        Ok(self.delivery(p.clone(), Arc::new(event.clone()), run).await)
    }

    /// A delivery of `event` to `plugin` that owns what it needs, so it can
    /// run as a task of its own.
    fn delivery(
        &self,
        plugin: Arc<Plugin>,
        event: Arc<Event>,
        run: Option<i64>,
    ) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        let engine = self.runtime.engine().clone();
        let services = self.services.clone();
        let slots = self.slots.clone();
        async move {
            // Wait for an instance slot; the deadline starts once one is held.
            let _slot = slots.acquire_owned().await.ok();
            deliver_in_fresh_instance(&engine, &services, &plugin, &event, run).await
        }
    }
}

/// Run one event through one plugin in a fresh, limited instance. The guest
/// yields to the executor at every epoch tick and is interrupted at its
/// deadline, so it shares the worker threads fairly.
async fn deliver_in_fresh_instance(
    engine: &wasmtime::Engine,
    services: &Services,
    plugin: &Plugin,
    event: &Event,
    run: Option<i64>,
) -> Outcome {
    let started = Instant::now();
    let limits = plugin.config.limits;
    let timeout = Duration::from_millis(limits.timeout_ms);
    let deadline = started + timeout;
    let mut cx = CallContext::new(&plugin.config.name, &event.id, deadline);
    cx.host_log = Some(plugin.host_log.clone());
    cx.run = run;
    cx.ledger = services.ledger.clone().map(crate::ledger::Ledger::new);
    let stdio = Stdio::new();
    let memory_bytes = usize::try_from(limits.memory_mib * MIB).unwrap_or(usize::MAX);
    let state = plugin.instance_state(services, &cx, &stdio, memory_bytes);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });

    let wit_event = bindings::Event::from(event);
    let call = async {
        let instance = plugin
            .component
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| (Stage::Instantiate, e))?;
        instance
            .triggerfish_plugin_handler()
            .call_on_event(&mut store, &wit_event)
            .await
            .map_err(|e| (Stage::Call, e))
    };
    let result = match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(Failure::Deadline {
            ms: limits.timeout_ms,
        }),
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(message))) => Err(Failure::Plugin(guest_text(&message))),
        Ok(Err((stage, e))) => Err(classify_trap(
            stage,
            &e,
            store.data().limiter.breached,
            limits.memory_mib,
            limits.timeout_ms,
        )),
    };
    drop(store);
    capture_stdio(&cx, &stdio);
    Outcome {
        plugin: plugin.config.name.clone(),
        event_id: event.id.clone(),
        result,
        duration: started.elapsed(),
        record: cx.take_record(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Instantiate,
    Call,
}

fn classify_trap(
    stage: Stage,
    e: &wasmtime::Error,
    breached: Option<usize>,
    memory_mib: u64,
    timeout_ms: u64,
) -> Failure {
    if breached.is_some() {
        return Failure::Memory { mib: memory_mib };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return Failure::Deadline { ms: timeout_ms };
    }
    if let Some(fault) = e.downcast_ref::<HostFault>() {
        return Failure::Host(fault.to_string());
    }
    // The cause first, then the context (the guest's backtrace, whose names
    // come from the guest): cut to a bound, on one line.
    let root = e.root_cause().to_string();
    let full = format!("{e:#}");
    let text = if full.ends_with(&root) && full.len() > root.len() {
        guest_text(&format!(
            "{root}; at {}",
            &full[..full.len() - root.len()].trim_end_matches([':', ' '])
        ))
    } else {
        guest_text(&full)
    };
    match stage {
        Stage::Instantiate => Failure::Instantiate(text),
        Stage::Call => Failure::Trap(text),
    }
}

/// Longest error text kept from a guest (its `err(…)` or a trap's message).
pub const MAX_GUEST_ERROR_BYTES: usize = 4 * 1024;

/// Text from a guest for an outcome: one line, at most
/// [`MAX_GUEST_ERROR_BYTES`], marked when cut.
fn guest_text(s: &str) -> String {
    let cut = truncate(s, MAX_GUEST_ERROR_BYTES);
    let mut text = one_line(cut);
    if cut.len() < s.len() {
        text.push_str(&format!(" … [{} more bytes]", s.len() - cut.len()));
    }
    text
}

fn capture_stdio(cx: &CallContext, stdio: &Stdio) {
    for (pipe, source, level) in [
        (&stdio.stdout, LogSource::Stdout, Level::Info),
        (&stdio.stderr, LogSource::Stderr, Level::Warn),
    ] {
        let (bytes, dropped) = pipe.contents();
        for line in String::from_utf8_lossy(&bytes).lines() {
            if !line.trim().is_empty() {
                cx.log(level, source, line);
            }
        }
        if dropped > 0 {
            cx.log(
                Level::Warn,
                source,
                &format!(
                    "[output truncated: {dropped} more bytes past the {} KiB cap were dropped]",
                    crate::stdio::MAX_STDIO_BYTES / 1024
                ),
            );
        }
    }
}

impl Plugin {
    fn new(config: PluginConfig, component: LoadedComponent) -> Self {
        let origins = config.grants.outbound_hosts.clone();
        Self {
            entity_budget: Arc::new(Limiter::new(config.limits.entity_budget)),
            host_log: Arc::default(),
            granter: Arc::new(Granter::new(config.grants.clone())),
            values: Arc::new(config.config.clone()),
            origins,
            config,
            component,
        }
    }

    fn instance_state(
        &self,
        services: &Services,
        cx: &CallContext,
        stdio: &Stdio,
        memory_bytes: usize,
    ) -> InstanceState {
        InstanceState {
            wasi: sandboxed_wasi(stdio),
            table: resource_table(),
            http: http_ctx(),
            http_hooks: HttpHooks::new(self.origins.clone(), cx.clone()),
            limiter: MemoryLimiter::new(memory_bytes),
            teams: TeamsInstance::new(services.teams.clone(), self.granter.clone(), cx.clone()),
            email: EmailInstance::new(services.email.clone(), self.granter.clone(), cx.clone()),
            entities: EntitiesInstance::new(
                services.entities.clone(),
                self.granter.clone(),
                Budgets {
                    plugin: Some(self.entity_budget.clone()),
                    host: services.entity_budget.clone(),
                },
                cx.clone(),
            )
            .with_writable(services.writable.clone()),
            log: LogInstance::new(cx.clone()),
            config: ConfigInstance::new(self.values.clone()),
            status: StatusInstance::new(cx.clone()),
        }
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin returned `err(text)`.
    Plugin(String),
    /// The deadline passed (guest code or host calls).
    Deadline { ms: u64 },
    /// The guest grew memory past its cap.
    Memory { mib: u64 },
    /// The guest trapped.
    Trap(String),
    /// The component could not be instantiated.
    Instantiate(String),
    /// The host itself failed while serving a call; the instance was trapped.
    Host(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Plugin(m) => write!(f, "plugin returned an error: {m}"),
            Failure::Deadline { ms } => write!(f, "deadline {ms} ms exceeded"),
            Failure::Memory { mib } => write!(f, "memory limit {mib} MiB exceeded"),
            Failure::Trap(m) => write!(f, "trap: {m}"),
            Failure::Instantiate(m) => write!(f, "instantiation failed: {m}"),
            Failure::Host(m) => write!(f, "{m}"),
        }
    }
}

/// The result of delivering one event to one plugin.
#[derive(Debug)]
pub struct Outcome {
    pub plugin: String,
    pub event_id: String,
    pub result: Result<(), Failure>,
    pub duration: Duration,
    pub record: Record,
}

impl Outcome {
    /// This outcome as the journal's record of an attempt of `run`.
    pub fn attempt(
        &self,
        run: i64,
        started_ms: i64,
        verdict: triggerfish_data::journal::Verdict,
    ) -> triggerfish_data::journal::Attempt {
        triggerfish_data::journal::Attempt {
            run,
            started_ms,
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            verdict,
            error: self.result.as_ref().err().map(|f| f.to_string()),
            logs: self
                .record
                .logs
                .iter()
                .map(|l| triggerfish_data::journal::LogLine {
                    level: <&str>::from(l.level).to_owned(),
                    source: <&str>::from(l.source).to_owned(),
                    text: l.message.clone(),
                })
                .collect(),
            reports: self.reports(),
        }
    }

    /// The status reports, as the journal keeps them.
    pub fn reports(&self) -> Vec<triggerfish_data::journal::Report> {
        self.record
            .reports
            .iter()
            .map(|r| triggerfish_data::journal::Report {
                level: r.level.to_owned(),
                message: r.message.clone(),
                details: r.details.clone(),
                at_ms: r.at_ms,
            })
            .collect()
    }

    /// `plugin 'x' failed on event e: cause`, or `None` when it succeeded.
    pub fn error_text(&self) -> Option<String> {
        self.result.as_ref().err().map(|f| {
            format!(
                "plugin '{}' failed on event {}: {f}",
                self.plugin, self.event_id
            )
        })
    }
}
