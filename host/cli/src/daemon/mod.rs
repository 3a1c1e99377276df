//! `triggerfish run`: the long-running daemon. Events (from the insights
//! engine, the API) are journaled before any plugin sees them; the
//! scheduler attempts each run with retries; the admin API serves the
//! journal; SIGTERM or Ctrl-C stops intake and lets runs in flight finish.

pub mod api;
pub mod cluster;
pub mod metrics;
pub mod reload;
pub mod scheduler;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::sync::{mpsc, oneshot, watch};
use triggerfish_data::event::{Event, TriggerKind};
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_data::journal::{
    now_ms, Appended, DueRun, Journal, JournalError, NewEvent, Replayed, Router,
};
use triggerfish_runtime::routing::Routes;
use triggerfish_runtime::secret::Secret;
use triggerfish_runtime::{Host, Select};

use crate::cli::term::outln;
use crate::config_file::Config;
use metrics::Metrics;
use scheduler::Scheduler;

/// How often finished history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Refresh requests waiting at most (further requests wait to be queued).
const REFRESH_QUEUE: usize = 16;
/// Events being appended at once through the API; more wait their turn
/// (backpressure), so a flood of requests cannot grow memory without bound.
pub const MAX_INTAKE_IN_FLIGHT: usize = 1024;
/// Test hook: abort the process right after an event of this trigger is
/// journaled, before any plugin sees it (the crash tests use it).
pub const ABORT_AFTER_JOURNAL_ENV: &str = "TRIGGERFISH_TEST_ABORT_AFTER_JOURNAL";

/// What the API handlers and the refresh task share.
pub struct Shared {
    pub journal: Arc<Journal>,
    pub host: watch::Receiver<Arc<Host>>,
    pub routes: watch::Receiver<Arc<Routes>>,
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    pub token: Option<Secret<String>>,
    pub stopping: AtomicBool,
    pub refresh: Option<mpsc::Sender<Scope>>,
    pub sources: Vec<String>,
    /// Permits for [`MAX_INTAKE_IN_FLIGHT`].
    pub intake: tokio::sync::Semaphore,
    /// What the web console keeps.
    pub console: crate::console::ConsoleState,
    /// This daemon as a cluster member, when `[cluster]` is set.
    pub cluster: Option<Arc<crate::cluster::Member>>,
}

impl Shared {
    /// Journal one event with a run per subscribed plugin; resolves once it
    /// is durable.
    pub async fn ingest(&self, event: Event, origin: &str) -> Result<Appended, JournalError> {
        let _permit = self
            .intake
            .acquire()
            .await
            .map_err(|_| JournalError::Stopped(self.journal.path().to_owned()))?;
        let kind = TriggerKind::of(&event.trigger);
        let plugins = self.routes.borrow().plugins_for(&event);
        let accepted_ms = now_ms();
        let (tx, rx) = oneshot::channel();
        let scheduler = self.scheduler.clone();
        let handed = event.clone();
        let names = plugins.clone();
        self.journal.append(
            vec![NewEvent {
                event,
                origin: origin.to_owned(),
                plugins,
                hold_ms: 0,
            }],
            Box::new(move |r| {
                // Hand the runs over in memory, on the writer, right after
                // the commit: the scheduler need not read them back.
                if let Ok([first]) = r.as_deref() {
                    if !first.duplicate {
                        // The last run takes the event itself: one plugin, no copy.
                        let mut event = Some(handed);
                        let last = first.runs.len().saturating_sub(1);
                        let runs = first.runs.iter().zip(names).enumerate().filter_map(
                            |(i, (&run, plugin))| {
                                let event = if i == last {
                                    event.take()?
                                } else {
                                    event.clone()?
                                };
                                Some(DueRun {
                                    run,
                                    plugin,
                                    attempts: 0,
                                    budget_from: 0,
                                    accepted_ms,
                                    event,
                                })
                            },
                        );
                        scheduler.offer(runs.collect());
                    }
                }
                let _ = tx.send(r);
            }),
        );
        let appended = rx
            .await
            .unwrap_or_else(|_| Err(JournalError::Stopped(self.journal.path().to_owned())))?;
        let first = appended
            .into_iter()
            .next()
            .ok_or_else(|| JournalError::Stopped(self.journal.path().to_owned()))?;
        if !first.duplicate {
            self.metrics.accepted(kind);
        }
        Ok(first)
    }

    /// Queue a refresh of `scope`, here or (in a cluster) on the member
    /// holding the lease. The answer to show, or a status and why not.
    pub async fn request_refresh(
        &self,
        scope: Scope,
    ) -> Result<serde_json::Value, (axum::http::StatusCode, String)> {
        use axum::http::StatusCode;
        let Some(tx) = &self.refresh else {
            return Err((
                StatusCode::CONFLICT,
                "no [insights] section in the configuration: nothing to refresh".into(),
            ));
        };
        if let Scope::Source(name) = &scope {
            if !self.sources.contains(name) {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!(
                        "field 'source': no data source named '{name}' (sources: {})",
                        self.sources.join(", ")
                    ),
                ));
            }
        }
        if let Some(m) = &self.cluster {
            return cluster::ask_refresher(m, &scope).await;
        }
        tx.send(scope.clone())
            .await
            .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "stopping".into()))?;
        Ok(serde_json::json!({ "queued": scope_name(&scope) }))
    }

    /// Replay finished runs, each as a new run; resolves with the pairs.
    pub async fn replay(&self, runs: Vec<i64>) -> Result<Vec<Replayed>, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.journal.replay(
            runs,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let done = rx
            .await
            .unwrap_or_else(|_| Err(JournalError::Stopped(self.journal.path().to_owned())))?;
        self.scheduler.wake();
        Ok(done)
    }
}

/// Name of a refresh scope, as printed.
pub fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Full => "full refresh".into(),
        Scope::Source(s) => format!("refresh of source '{s}'"),
        Scope::Unification => "unification refresh".into(),
    }
}

/// The routes of the version serving now (they change on reload).
struct LiveRoutes(watch::Receiver<Arc<Routes>>);

impl Router for LiveRoutes {
    fn plugins_for(&self, event: &Event) -> Vec<String> {
        self.0.borrow().plugins_for(event)
    }
}

/// Wakes the scheduler for each journaled event of a refresh.
struct Wake {
    scheduler: Arc<Scheduler>,
    metrics: Arc<Metrics>,
    abort_after: Option<String>,
}

impl Observer for Wake {
    fn event(&mut self, event: Event) {
        let kind = TriggerKind::of(&event.trigger);
        if self.abort_after.as_deref() == Some(kind.as_str()) {
            eprintln!("test hook: aborting after journaling event {}", event.id);
            std::process::abort();
        }
        tracing::info!(event = %event.id, "{kind} journaled");
        self.metrics.accepted(kind);
        self.scheduler.wake();
    }
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// `triggerfish run`.
pub async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load_with_components(path)?;
    let d = config.daemon.clone();
    let token = std::env::var(&d.token_env)
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    if !is_loopback(&d.listen) && token.is_none() {
        bail!(
            "{}: [api] listen = \"{}\" is beyond loopback, so a bearer token is required: set the environment variable {}",
            path.display(),
            d.listen,
            d.token_env
        );
    }
    let listener = tokio::net::TcpListener::bind(d.listen)
        .await
        .with_context(|| format!("cannot listen on {} ([api] listen)", d.listen))?;
    let addr = listener.local_addr()?;
    let journal = Arc::new(config.open_journal()?);
    let metrics = Arc::new(Metrics::new());
    let member = match &config.cluster {
        None => None,
        Some(c) => {
            let id = c
                .member
                .clone()
                .unwrap_or_else(|| crate::cluster::default_member_name(addr.port()));
            let history = Duration::from_secs(u64::from(d.history_days) * 86_400);
            let cluster = crate::cluster::Cluster::connect(c, &id, history)
                .await
                .with_context(|| format!("{}: [cluster]", path.display()))?;
            cluster
                .check_name_free(&id, &format!("http://{addr}"))
                .await
                .with_context(|| format!("{}: [cluster] member", path.display()))?;
            outln!("cluster member {id} on NATS at {}", cluster.url());
            Some(crate::cluster::Member::new(
                id,
                cluster,
                format!("http://{addr}"),
                metrics.clone(),
                config.store_path(),
            ))
        }
    };
    let ledger: Arc<dyn triggerfish_runtime::ledger::SentStore> = match &member {
        Some(m) => Arc::new(crate::cluster::KvLedger(m.cluster.ledger.clone())),
        None => journal.clone(),
    };
    let mut host = Host::new(&config.settings, Select::All)?;
    host.set_ledger(ledger.clone());
    let host = Arc::new(host);
    let routes = Arc::new(Routes::new(&config.settings.plugins));
    let (host_tx, host_rx) = watch::channel(host.clone());
    let (routes_tx, routes_rx) = watch::channel(routes.clone());
    let scheduler = Scheduler::new(
        journal.clone(),
        host_rx.clone(),
        metrics.clone(),
        d.concurrency,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    // In a cluster, runs come from the shared consumers instead.
    let scheduler_task = member
        .is_none()
        .then(|| tokio::spawn(scheduler.clone().run(stop_rx.clone())));

    let (refresh_tx, refresh_task, sources) = match config.insights.clone() {
        None => (None, None, Vec::new()),
        Some(ws) => {
            let sources = ws.sources.iter().map(|s| s.name.clone()).collect();
            let store = config.open_store()?;
            let router: Arc<dyn Router> = match &member {
                Some(_) => Arc::new(cluster::NoRuns),
                None => Arc::new(LiveRoutes(routes_rx.clone())),
            };
            let engine = Arc::new(InsightsEngine::new(ws, store).with_journal(router));
            let (tx, rx) = mpsc::channel(REFRESH_QUEUE);
            let task = tokio::spawn(refreshes(
                engine.clone(),
                rx,
                scheduler.clone(),
                metrics.clone(),
                stop_rx.clone(),
                member.clone().map(|m| Publisher {
                    member: m,
                    store: config.store_path(),
                    journal: journal.clone(),
                    routes: LiveRoutes(routes_rx.clone()),
                }),
            ));
            schedule(&engine, tx.clone(), stop_rx.clone(), member.clone());
            (Some(tx), Some(task), sources)
        }
    };

    let shared = Arc::new(Shared {
        journal: journal.clone(),
        host: host_rx,
        routes: routes_rx,
        scheduler: scheduler.clone(),
        metrics,
        token,
        stopping: AtomicBool::new(false),
        refresh: refresh_tx.clone(),
        sources,
        intake: tokio::sync::Semaphore::new(MAX_INTAKE_IN_FLIGHT),
        console: crate::console::ConsoleState::start(&config, journal.clone(), stop_rx.clone())?,
        cluster: member.clone(),
    });
    let shutdown = shutdown_signal();
    outln!("api listening on http://{addr}");
    for p in host.plugins() {
        outln!(
            "plugin {}: {} (concurrency {}, {} retries)",
            p.config.name,
            p.config
                .triggers
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.config.concurrency,
            p.config.retry.retries
        );
    }
    let waiting = journal
        .counts()
        .map(|c| {
            c.runs_by_status
                .iter()
                .filter(|(s, _)| s == "queued" || s == "retrying")
                .map(|(_, n)| n)
                .sum::<u64>()
        })
        .unwrap_or(0);
    if waiting > 0 && member.is_none() {
        outln!("resuming {waiting} unfinished run(s) from the journal");
    }
    let member_tasks = match &member {
        None => {
            if let Some(tx) = &refresh_tx {
                let _ = tx.send(Scope::Full).await;
            }
            Vec::new()
        }
        Some(m) => cluster::Roles {
            member: m.clone(),
            store: config.store_path(),
            journal: journal.clone(),
            router: Arc::new(LiveRoutes(shared.routes.clone())),
            refresh: refresh_tx.clone(),
            sources: shared.sources.clone(),
        }
        .spawn(shared.host.clone(), d.concurrency, stop_rx.clone()),
    };
    tokio::spawn(prune(journal.clone(), d.history_days, stop_rx.clone()));
    let reloader = reload::Reloader {
        path: path.to_owned(),
        ledger,
        host: host_tx,
        routes: routes_tx,
        daemon: d.clone(),
    };
    tokio::spawn(reloader.watch(stop_rx.clone()));

    let app = api::router(shared.clone());
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await
    });

    shutdown.await;
    outln!(
        "stopping: intake closed, letting runs in flight finish (up to {})",
        humantime::format_duration(d.shutdown_grace)
    );
    shared.stopping.store(true, Ordering::Relaxed);
    if let Some(m) = &member {
        m.stop();
    }
    let _ = stop_tx.send(true);
    if let Some(t) = scheduler_task {
        let _ = t.await;
    }
    if let Some(t) = refresh_task {
        let _ = t.await;
    }
    let idle = match &member {
        None => scheduler.drain(d.shutdown_grace).await,
        Some(m) => m.drain(d.shutdown_grace).await,
    };
    for t in member_tasks {
        let _ = t.await;
    }
    let _ = server.await;
    if idle {
        outln!("stopped");
    } else {
        outln!(
            "stopped with {} run(s) in flight; they will be attempted again{}",
            match &member {
                None => scheduler.in_flight() as u64,
                Some(m) => m.counters.in_flight.load(Ordering::Relaxed),
            },
            if member.is_some() {
                " (by any member, once their ack wait has passed)"
            } else {
                " at the next start"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run refreshes one at a time as they are asked for.
async fn refreshes(
    engine: Arc<InsightsEngine>,
    mut rx: mpsc::Receiver<Scope>,
    scheduler: Arc<Scheduler>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    publisher: Option<Publisher>,
) {
    loop {
        let scope = tokio::select! {
            s = rx.recv() => match s { Some(s) => s, None => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        let e = engine.clone();
        let mut obs = Wake {
            scheduler: scheduler.clone(),
            metrics: metrics.clone(),
            abort_after: std::env::var(ABORT_AFTER_JOURNAL_ENV).ok(),
        };
        let job_scope = scope.clone();
        let started = std::time::Instant::now();
        // In a cluster: only the refresher refreshes, holding the store.
        let _store = match &publisher {
            None => None,
            Some(p) => {
                let guard = p.member.store_lock.lock().await;
                if !p.member.is_refresher() {
                    tracing::info!(
                        "{} skipped: this member is not the refresher",
                        scope_name(&scope)
                    );
                    continue;
                }
                Some(guard)
            }
        };
        let result = tokio::task::spawn_blocking(move || e.refresh(&job_scope, &mut obs)).await;
        let label = match &scope {
            Scope::Full => "full",
            Scope::Source(_) => "source",
            Scope::Unification => "unification",
        };
        metrics.refresh(label, started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(report)) => outln!(
                "{} {} in {:.2} s; {} event(s) journaled",
                scope_name(&scope),
                if report.succeeded() {
                    "succeeded"
                } else {
                    "had failures"
                },
                report.duration.as_secs_f64(),
                report.events.len()
            ),
            Ok(Err(e)) => tracing::error!("{}: {e}", scope_name(&scope)),
            Err(e) => tracing::error!("{}: the refresh thread failed: {e}", scope_name(&scope)),
        }
        if let Some(p) = &publisher {
            match p
                .member
                .publish_generation(&p.store, &p.journal, &p.routes)
                .await
            {
                Ok(n) => tracing::info!("published store generation {n}"),
                Err(e) => tracing::error!("{}: {e}", scope_name(&scope)),
            }
        }
    }
}

/// What the refresher needs to publish a refresh to the cluster.
struct Publisher {
    member: Arc<crate::cluster::Member>,
    store: std::path::PathBuf,
    journal: Arc<Journal>,
    routes: LiveRoutes,
}

/// Ask for each scheduled refresh as it falls due (missed ticks are skipped).
/// In a cluster, only the member holding the lease asks.
fn schedule(
    engine: &InsightsEngine,
    tx: mpsc::Sender<Scope>,
    stop: watch::Receiver<bool>,
    member: Option<Arc<crate::cluster::Member>>,
) {
    let ws = engine.workspace();
    let mut plans: Vec<(Duration, Scope)> = Vec::new();
    if let Some(every) = ws.schedule {
        plans.push((every, Scope::Full));
    }
    for s in &ws.sources {
        if let Some(every) = s.schedule {
            plans.push((every, Scope::Source(s.name.clone())));
        }
    }
    for (every, scope) in plans {
        outln!(
            "scheduled: {} every {}",
            scope_name(&scope),
            humantime::format_duration(every)
        );
        let tx = tx.clone();
        let mut stop = stop.clone();
        let member = member.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if member.as_ref().is_some_and(|m| !m.is_refresher()) {
                    continue;
                }
                if tx.send(scope.clone()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Delete finished history older than `days`, now and every hour.
async fn prune(journal: Arc<Journal>, days: u32, mut stop: watch::Receiver<bool>) {
    loop {
        let before = now_ms() - i64::from(days) * 86_400_000;
        let (tx, rx) = oneshot::channel();
        journal.prune(
            before,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        match rx.await {
            Ok(Ok((events, runs))) if events + runs > 0 => {
                tracing::info!("pruned {events} event(s) and {runs} run(s) older than {days} days")
            }
            Ok(Err(e)) => tracing::error!("pruning history: {e}"),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, so call it before announcing the daemon (a SIGTERM sent right
/// after `api listening` must stop it cleanly, not kill it).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        let Ok(mut term) = term else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
}
