//! The scheduler: takes due runs from the journal, per plugin up to its
//! concurrency and in total up to the host's, attempts each in its own task,
//! and records the verdict (success, retry at a backoff, or dead letter).
//!
//! The journal is the queue: a run is in memory only while it is being
//! attempted, so a backlog costs disk, not memory, and a restart finds every
//! unfinished run where it was.

use std::collections::{HashMap, HashSet};
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
}

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

    /// Runs being attempted now.
    pub fn in_flight(&self) -> usize {
        self.state().busy.len()
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
        for plugin in host.plugins() {
            let name = &plugin.config.name;
            let (free, running, busy) = {
                let st = self.state();
                let running = st.per_plugin.get(name).copied().unwrap_or(0);
                let total_free = self.total.saturating_sub(st.attempting);
                let free = plugin
                    .config
                    .concurrency
                    .saturating_sub(running)
                    .min(total_free);
                (free as usize, running as usize, st.busy.clone())
            };
            // Under load, take runs a batch at a time (a quarter of the
            // plugin's slots) rather than one query per finished run.
            let batch = (plugin.config.concurrency as usize / 4).max(1);
            if free == 0 || (free < batch && running > 0) {
                continue;
            }
            for due in self.journal.due(name, now, free, &busy)? {
                {
                    let mut st = self.state();
                    st.busy.insert(due.run);
                    st.attempting += 1;
                    *st.per_plugin.entry(due.plugin.clone()).or_default() += 1;
                }
                let me = self.clone();
                let host = host.clone();
                tokio::spawn(async move { me.attempt(host, due).await });
            }
        }
        Ok(())
    }

    async fn attempt(self: Arc<Self>, host: Arc<Host>, due: DueRun) {
        let started_ms = now_ms();
        let started = Instant::now();
        let kind = TriggerKind::of(&due.event.trigger);
        if let Some(accepted) = self.journal_accepted_ms(&due) {
            self.metrics
                .dispatch_latency((started_ms - accepted).max(0) as f64 / 1000.0);
        }
        let outcome = match host.deliver(&due.plugin, &due.event).await {
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
                let empty = st.busy.is_empty();
                drop(st);
                me.wake.notify_one();
                if empty {
                    me.idle.notify_waiters();
                }
            }),
        );
    }

    fn journal_accepted_ms(&self, due: &DueRun) -> Option<i64> {
        (due.attempts == 0).then_some(due.accepted_ms)
    }
}
