//! The scheduler: takes due runs from the journal, per plugin up to its
//! concurrency and in total up to the host's, attempts each in its own task,
//! and records the verdict (success, retry at a backoff, or dead letter).
//!
//! The journal is the queue: a run is in memory only while it is being
//! attempted, so a backlog costs disk, not memory, and a restart finds every
//! unfinished run where it was.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use triggerfish_data::event::TriggerKind;
use triggerfish_data::journal::{now_ms, DueRun, Journal, Verdict};
use triggerfish_runtime::routing;
use triggerfish_runtime::{Host, Outcome};

use super::metrics::Metrics;

/// Longest sleep between looks at the journal (retries falling due).
const IDLE_POLL: Duration = Duration::from_millis(500);

struct State {
    /// Runs taken and not yet recorded (they still read as due until then).
    busy: HashSet<i64>,
    /// Runs being attempted, by plugin: an attempt frees its slot when the
    /// plugin returns, before its record is committed.
    per_plugin: HashMap<String, u32>,
    attempting: u32,
    /// Runs handed over in memory at intake, by plugin (also in `busy`, so
    /// the journal query skips them). The journal stays the source of truth.
    ready: HashMap<String, VecDeque<DueRun>>,
}

impl State {
    /// Runs taken whose attempt is running or not yet recorded (not those
    /// merely handed over and waiting in `ready`).
    fn active(&self) -> usize {
        self.busy
            .len()
            .saturating_sub(self.ready.values().map(VecDeque::len).sum::<usize>())
    }
}

/// Runs kept in memory per plugin at most; past it, they wait in the
/// journal and are found by query.
pub const MAX_READY_PER_PLUGIN: usize = 1024;

/// Shared by the scheduler loop and its attempt tasks.
pub struct Scheduler {
    journal: Arc<Journal>,
    host: watch::Receiver<Arc<Host>>,
    metrics: Arc<Metrics>,
    total: u32,
    state: Mutex<State>,
    wake: Notify,
    idle: Notify,
}

impl Scheduler {
    /// A scheduler over `journal`, attempting runs with the current host.
    pub fn new(
        journal: Arc<Journal>,
        host: watch::Receiver<Arc<Host>>,
        metrics: Arc<Metrics>,
        total: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            journal,
            host,
            metrics,
            total,
            state: Mutex::new(State {
                busy: HashSet::new(),
                per_plugin: HashMap::new(),
                attempting: 0,
                ready: HashMap::new(),
            }),
            wake: Notify::new(),
            idle: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Look at the journal now (new runs were appended or replayed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs just journaled, handed over without reading them back. Call it
    /// from the append's reply (on the journal's writer, before any later
    /// commit), so a run cannot be finished and then offered again.
    pub fn offer(&self, runs: Vec<DueRun>) {
        let mut st = self.state();
        for run in runs {
            let full = st
                .ready
                .get(&run.plugin)
                .is_some_and(|q| q.len() >= MAX_READY_PER_PLUGIN);
            // A journal query may have taken it already: never twice.
            if !full && st.busy.insert(run.run) {
                st.ready
                    .entry(run.plugin.clone())
                    .or_default()
                    .push_back(run);
            }
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Runs being attempted now (or whose record is being committed).
    pub fn in_flight(&self) -> usize {
        self.state().active()
    }

    /// Take and start due runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            if let Err(e) = self.take_due() {
                tracing::error!("scheduler: {e}");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Wait until no run is in flight, or `grace` has passed. True when idle.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }

    fn take_due(self: &Arc<Self>) -> Result<(), triggerfish_data::journal::JournalError> {
        let host = self.host.borrow().clone();
        let now = now_ms();
        self.forget_removed_plugins(&host);
        for plugin in host.plugins() {
            let name = &plugin.config.name;
            let (free, running) = {
                let st = self.state();
                let running = st.per_plugin.get(name).copied().unwrap_or(0);
                let total_free = self.total.saturating_sub(st.attempting);
                let free = plugin
                    .config
                    .concurrency
                    .saturating_sub(running)
                    .min(total_free);
                (free as usize, running as usize)
            };
            if free == 0 {
                continue;
            }
            // First the runs handed over in memory.
            let (handed, busy) = {
                let mut st = self.state();
                let queue = st.ready.entry(name.clone()).or_default();
                let n = free.min(queue.len());
                let handed: Vec<DueRun> = queue.drain(..n).collect();
                let empty = queue.is_empty();
                (handed, (empty && n < free).then(|| st.busy.clone()))
            };
            let free = free - handed.len();
            self.start(&host, handed);
            // Then the journal, when memory has no more: retries, replays,
            // overflow, runs from before a restart. Under load it is asked a
            // batch at a time (a quarter of the plugin's slots).
            let Some(busy) = busy else { continue };
            let batch = (plugin.config.concurrency as usize / 4).max(1);
            if free == 0 || (free < batch && running > 0) {
                continue;
            }
            let mut due = self.journal.due(name, now, free, &busy)?;
            {
                // Claim each; one handed over meanwhile is already claimed.
                let mut st = self.state();
                due.retain(|d| st.busy.insert(d.run));
            }
            self.start(&host, due);
        }
        Ok(())
    }

    /// Start attempts of runs already marked busy.
    fn start(self: &Arc<Self>, host: &Arc<Host>, runs: Vec<DueRun>) {
        for due in runs {
            {
                let mut st = self.state();
                st.attempting += 1;
                *st.per_plugin.entry(due.plugin.clone()).or_default() += 1;
            }
            let me = self.clone();
            let host = host.clone();
            tokio::spawn(async move { me.attempt(host, due).await });
        }
    }

    /// Runs handed over for a plugin that a reload removed go back to the
    /// journal (they are no longer busy), where they wait for it to return.
    fn forget_removed_plugins(&self, host: &Host) {
        let mut st = self.state();
        let gone: Vec<String> = st
            .ready
            .keys()
            .filter(|p| host.plugin(p).is_none())
            .cloned()
            .collect();
        for p in gone {
            if let Some(queue) = st.ready.remove(&p) {
                for run in queue {
                    st.busy.remove(&run.run);
                }
            }
        }
    }

    async fn attempt(self: Arc<Self>, host: Arc<Host>, due: DueRun) {
        let started_ms = now_ms();
        let started = Instant::now();
        let kind = TriggerKind::of(&due.event.trigger);
        // Latency counts first attempts only: retries wait on purpose.
        if due.attempts == 0 {
            self.metrics
                .dispatch_latency((started_ms - due.accepted_ms).max(0) as f64 / 1000.0);
        }
        let outcome = match host
            .deliver_run(&due.plugin, &due.event, Some(due.run))
            .await
        {
            Ok(o) => o,
            Err(e) => Outcome {
                plugin: due.plugin.clone(),
                event_id: due.event.id.clone(),
                result: Err(triggerfish_runtime::Failure::Host(e.to_string())),
                duration: started.elapsed(),
                record: Default::default(),
            },
        };
        {
            // The instance is gone: free the slot now; the run stays busy
            // until its record is committed.
            let mut st = self.state();
            st.attempting = st.attempting.saturating_sub(1);
            if let Some(n) = st.per_plugin.get_mut(&due.plugin) {
                *n = n.saturating_sub(1);
            }
        }
        self.wake.notify_one();
        let plugin_cfg = host.plugin(&due.plugin).map(|p| p.config.retry);
        let made = due.attempts.saturating_sub(due.budget_from) + 1;
        let verdict = routing::verdict(plugin_cfg, made, outcome.result.is_ok());
        self.metrics.finished(&due.plugin, kind, &verdict);
        if let Some(text) = outcome.error_text() {
            match verdict {
                Verdict::Retry { at_ms } => tracing::warn!(
                    run = due.run,
                    "{text}; retry {made} in {} ms",
                    at_ms - now_ms()
                ),
                _ => tracing::warn!(
                    run = due.run,
                    "{text}; dead-lettered after {made} attempt(s)"
                ),
            }
        }
        let attempt = outcome.attempt(due.run, started_ms, verdict);
        let me = self.clone();
        let run = due.run;
        self.journal.finish(
            vec![attempt],
            Box::new(move |r| {
                if let Err(e) = r {
                    tracing::error!(
                        run,
                        "cannot record the attempt (it will be made again): {e}"
                    );
                }
                // Only now may the run be taken again: before the commit it
                // still reads as due.
                let mut st = me.state();
                st.busy.remove(&run);
                let empty = st.active() == 0;
                drop(st);
                me.wake.notify_one();
                if empty {
                    me.idle.notify_waiters();
                }
            }),
        );
    }
}
