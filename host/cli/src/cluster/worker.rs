//! Taking runs: per plugin, one durable pull consumer on the runs stream,
//! shared by every member. A member asks for as many messages as it has free
//! slots (the plugin's concurrency and the host's), attempts each, and then:
//! on success records the status and acks; on a failure with attempts left
//! naks with the plugin's backoff (JetStream redelivers it, to any member);
//! on the last failure publishes a dead letter and acks.
//!
//! A member that dies mid-attempt never acks: the message is redelivered
//! once the consumer's ack wait has passed, the plugin's deadline plus
//! [`ACK_MARGIN`] (a live attempt also reports progress every
//! [`PROGRESS_EVERY`], so a plugin whose deadline was raised after its
//! consumer was made keeps its message). The delivery count is the attempt
//! count, so such a loss counts as an attempt.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use triggerfish_data::event::TriggerKind;
use triggerfish_data::journal::{now_ms, Verdict, MAX_STORED_TEXT_BYTES};
use triggerfish_runtime::{routing, Host};

use super::intake::RunMessage;
use super::{id_hash, Cluster, ClusterError, Member, DEAD_STREAM, RUNS_STREAM};

/// The consumer's ack wait past the plugin's deadline: a message not acked
/// within both is given to another member.
pub const ACK_MARGIN: Duration = Duration::from_secs(30);
/// How often a running attempt tells JetStream it is still at work.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Longest wait of one fetch for messages.
pub const FETCH_WAIT: Duration = Duration::from_secs(2);
/// Messages one member may hold unacked per plugin, across all members.
pub const MAX_ACK_PENDING: i64 = 10_000;
/// Delay before a run of a plugin this member does not have is offered again.
pub const ABSENT_PLUGIN_DELAY: Duration = Duration::from_secs(2);
/// Pause after NATS failed a fetch or a write.
pub const FETCH_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Tries to record a run's status before leaving the message unacked.
pub const STATE_TRIES: u32 = 3;

/// Where a run stands, in the bucket [`RUNS_BUCKET`](super::RUNS_BUCKET).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub event_id: String,
    pub plugin: String,
    pub trigger: String,
    /// `succeeded`, `retrying` or `dead` (`queued` after a replay).
    pub status: String,
    /// Deliveries of the current message, the last included.
    pub attempts: u32,
    pub replay: u32,
    /// The member that made the last attempt.
    pub member: String,
    pub error: Option<String>,
    pub updated_ms: i64,
    /// The last attempt's status reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<triggerfish_data::journal::Report>,
}

/// A run that used up its attempts, as stored in [`DEAD_STREAM`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub run: RunMessage,
    pub error: String,
    pub attempts: u32,
    pub member: String,
    pub at_ms: i64,
}

/// The key of a run's status.
pub fn run_key(plugin: &str, event_id: &str) -> String {
    format!("{plugin}.{}", id_hash(event_id))
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_STORED_TEXT_BYTES {
        let mut end = MAX_STORED_TEXT_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Cluster {
    /// The shared consumer of `plugin`'s runs, made (by the first member
    /// to ask) with an ack wait of `deadline` plus `ACK_MARGIN`.
    pub async fn consumer(
        &self,
        plugin: &str,
        deadline: Duration,
    ) -> Result<consumer::PullConsumer, ClusterError> {
        let name = format!("run-{plugin}");
        let what = || format!("stream {RUNS_STREAM}, consumer {name}");
        let stream = self
            .js
            .get_stream(RUNS_STREAM)
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("tf.runs.{plugin}"),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: deadline + ACK_MARGIN,
                    max_deliver: -1,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ClusterError::nats(what(), e))
    }

    /// Store a dead letter.
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), ClusterError> {
        let run = &letter.run;
        let what = || {
            format!(
                "stream {DEAD_STREAM}, run of plugin '{}' for event {}",
                run.plugin, run.event.id
            )
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!(
                "dead-{}-{}-{}",
                id_hash(&run.event.id),
                run.plugin,
                run.replay
            )
            .as_str(),
        );
        let body = serde_json::to_vec(letter).map_err(|e| ClusterError::Other(e.to_string()))?;
        self.js
            .publish_with_headers(format!("tf.dead.{}", run.plugin), headers, body.into())
            .await
            .map_err(|e| ClusterError::nats(what(), e))?
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        Ok(())
    }

    /// A run's status, if recorded.
    pub async fn run_state(&self, plugin: &str, event_id: &str) -> Option<RunState> {
        let v = self.runs.get(run_key(plugin, event_id)).await.ok()??;
        serde_json::from_slice(&v).ok()
    }

    /// Record a run's status, trying [`STATE_TRIES`] times; false when it
    /// could not be recorded.
    pub(super) async fn put_state(&self, state: &RunState) -> bool {
        let key = run_key(&state.plugin, &state.event_id);
        let Ok(body) = serde_json::to_vec(state) else {
            return false;
        };
        for tried in 1..=STATE_TRIES {
            match self.runs.put(&key, body.clone().into()).await {
                Ok(_) => return true,
                Err(e) if tried == STATE_TRIES => {
                    tracing::warn!(plugin = %state.plugin, event = %state.event_id, "cannot record the run's status in bucket {}: {e}", super::RUNS_BUCKET);
                }
                Err(_) => tokio::time::sleep(FETCH_ERROR_PAUSE).await,
            }
        }
        false
    }
}

/// Slots held by one attempt: the plugin's and the host's.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Member {
    /// Take runs of every plugin the current host has, until `stop`; a
    /// plugin added or resized by a reload gets its loop (re)started.
    pub async fn work(
        self: Arc<Self>,
        mut host: watch::Receiver<Arc<Host>>,
        total: u32,
        mut stop: watch::Receiver<bool>,
    ) {
        let total = Arc::new(Semaphore::new(total as usize));
        let mut loops: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let current = host.borrow().clone();
            loops.retain(|_, h| !h.is_finished());
            for p in current.plugins() {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    loops.entry(p.config.name.clone())
                {
                    let task = self.clone().plugin_loop(
                        p.config.name.clone(),
                        p.config.concurrency,
                        host.clone(),
                        total.clone(),
                        stop.clone(),
                    );
                    slot.insert(tokio::spawn(task));
                }
            }
            tokio::select! {
                r = host.changed() => if r.is_err() { break },
                _ = stop.wait_for(|s| *s) => break,
                // A loop that ended on an error is started again.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
        for (_, h) in loops {
            let _ = h.await;
        }
    }

    async fn plugin_loop(
        self: Arc<Self>,
        plugin: String,
        concurrency: u32,
        host: watch::Receiver<Arc<Host>>,
        total: Arc<Semaphore>,
        mut stop: watch::Receiver<bool>,
    ) {
        let deadline = host
            .borrow()
            .plugin(&plugin)
            .map(|p| Duration::from_millis(p.config.limits.timeout_ms))
            .unwrap_or_default();
        let consumer = match self.cluster.consumer(&plugin, deadline).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(plugin = %plugin, "{e}; trying again");
                tokio::time::sleep(FETCH_ERROR_PAUSE).await;
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(concurrency as usize));
        loop {
            let current = host.borrow().clone();
            match current.plugin(&plugin) {
                Some(p) if p.config.concurrency == concurrency => {}
                // Removed or resized by a reload: the caller restarts it.
                _ => return,
            }
            if self.stopping() || *stop.borrow() {
                return;
            }
            // The plugin's free slots size the fetch; the host-wide slot is
            // taken per message that arrives, so an idle plugin waiting on
            // its fetch holds none of them.
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Ok(first) = first else { return };
            let mut permits = vec![first];
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            let batch = consumer
                .batch()
                .max_messages(permits.len())
                .expires(FETCH_WAIT)
                .messages()
                .await;
            let mut messages = match batch {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(plugin = %plugin, "fetching runs from stream {RUNS_STREAM}: {e}");
                    tokio::time::sleep(FETCH_ERROR_PAUSE).await;
                    continue;
                }
            };
            while let Some(next) = messages.next().await {
                match next {
                    Ok(msg) => {
                        let Some(slot) = permits.pop() else { break };
                        let Ok(host_slot) = total.clone().acquire_owned().await else {
                            return;
                        };
                        let p = (slot, host_slot);
                        let me = self.clone();
                        let host = current.clone();
                        tokio::spawn(async move { me.attempt(host, msg, p).await });
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %plugin, "fetching runs from stream {RUNS_STREAM}: {e}");
                        tokio::time::sleep(FETCH_ERROR_PAUSE).await;
                        break;
                    }
                }
            }
        }
    }

    /// Whether this member's store is at `generation` or newer, switching
    /// to the newest first when it is behind; when it still is not, the
    /// run is offered again shortly (to any member).
    async fn reads_generation(&self, generation: u64, msg: &jetstream::Message) -> bool {
        if self.generation.load(Ordering::Relaxed) >= generation {
            return true;
        }
        {
            let _store = self.store_lock.lock().await;
            if let Err(e) = self.apply_latest(&self.store).await {
                tracing::warn!(member = %self.id, "{e}");
            }
        }
        if self.generation.load(Ordering::Relaxed) >= generation {
            return true;
        }
        let _ = msg.ack_with(AckKind::Nak(Some(FETCH_ERROR_PAUSE))).await;
        false
    }

    async fn attempt(self: Arc<Self>, host: Arc<Host>, msg: jetstream::Message, _slots: Permits) {
        let c = &self.counters;
        c.in_flight.fetch_add(1, Ordering::Relaxed);
        self.attempt_inner(&host, &msg).await;
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    async fn attempt_inner(&self, host: &Host, msg: &jetstream::Message) {
        let cluster = &self.cluster;
        let delivered = msg
            .info()
            .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
            .unwrap_or(1)
            .max(1);
        if delivered > 1 {
            self.counters.redelivered.fetch_add(1, Ordering::Relaxed);
        } else if let Ok(i) = msg.info() {
            let published = i.published.unix_timestamp_nanos() / 1_000_000;
            let waited = (i128::from(now_ms()) - published).max(0) as f64 / 1000.0;
            self.metrics.dispatch_latency(waited);
        }
        let run: RunMessage = match serde_json::from_slice(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                // Not ours to read (written by hand?): kept aside, not retried.
                tracing::error!(subject = %msg.subject, "a message of stream {RUNS_STREAM} is not a run: {e}; terminated");
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        // A member that stopped between recording success and acking.
        if let Some(s) = cluster.run_state(&run.plugin, &run.event.id).await {
            if s.status == "succeeded" && s.replay >= run.replay {
                self.counters.skipped_done.fetch_add(1, Ordering::Relaxed);
                let _ = msg.double_ack().await;
                return;
            }
        }
        if !self.reads_generation(run.generation, msg).await {
            return;
        }
        let Some(plugin) = host.plugin(&run.plugin) else {
            // This member runs another version of the configuration (a
            // rolling upgrade): another member may have the plugin.
            let _ = msg.ack_with(AckKind::Nak(Some(ABSENT_PLUGIN_DELAY))).await;
            return;
        };
        let retry = plugin.config.retry;
        let started = Instant::now();
        let progress = async {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        };
        let result = tokio::select! {
            r = host.deliver(&run.plugin, &run.event) => r,
            _ = progress => return,
        };
        let error = match &result {
            Ok(o) => o.error_text(),
            Err(e) => Some(format!(
                "plugin '{}' failed on event {}: {e}",
                run.plugin, run.event.id
            )),
        };
        let verdict = routing::verdict(Some(retry), delivered, error.is_none());
        let kind = TriggerKind::of(&run.event.trigger);
        self.metrics.finished(&run.plugin, kind, &verdict);
        let mut state = RunState {
            event_id: run.event.id.clone(),
            plugin: run.plugin.clone(),
            trigger: kind.as_str().to_owned(),
            status: String::new(),
            attempts: delivered,
            replay: run.replay,
            member: self.id.clone(),
            error: error.clone().map(clip),
            updated_ms: now_ms(),
            reports: result.as_ref().map(|o| o.reports()).unwrap_or_default(),
        };
        let c = &self.counters;
        match verdict {
            Verdict::Succeeded => {
                c.attempts_ok.fetch_add(1, Ordering::Relaxed);
                state.status = "succeeded".into();
                if !cluster.put_state(&state).await {
                    // Unrecorded: offered again, when the ledger keeps its
                    // sends from being made twice.
                    let _ = msg.ack_with(AckKind::Nak(Some(FETCH_ERROR_PAUSE))).await;
                    return;
                }
                if let Err(e) = msg.double_ack().await {
                    tracing::warn!(plugin = %run.plugin, event = %run.event.id, "cannot ack a finished run (it will be found finished when redelivered): {e}");
                }
            }
            Verdict::Retry { at_ms } => {
                c.attempts_failed.fetch_add(1, Ordering::Relaxed);
                let wait = Duration::from_millis(u64::try_from(at_ms - now_ms()).unwrap_or(0));
                tracing::warn!(plugin = %run.plugin, event = %run.event.id, "{}; retry {delivered} in {} ms", error.as_deref().unwrap_or(""), wait.as_millis());
                state.status = "retrying".into();
                let _ = cluster.put_state(&state).await;
                let _ = msg.ack_with(AckKind::Nak(Some(wait))).await;
            }
            Verdict::Dead => {
                c.attempts_failed.fetch_add(1, Ordering::Relaxed);
                let text = error.unwrap_or_default();
                tracing::warn!(plugin = %run.plugin, event = %run.event.id, "{text}; dead-lettered after {delivered} attempt(s) ({:.1} s)", started.elapsed().as_secs_f64());
                let letter = DeadLetter {
                    run: run.clone(),
                    error: clip(text),
                    attempts: delivered,
                    member: self.id.clone(),
                    at_ms: now_ms(),
                };
                if let Err(e) = cluster.dead_letter(&letter).await {
                    // Not acked: it comes back and fails into the dead letter again.
                    tracing::error!("{e}");
                    return;
                }
                c.dead_lettered.fetch_add(1, Ordering::Relaxed);
                state.status = "dead".into();
                let _ = cluster.put_state(&state).await;
                let _ = msg.double_ack().await;
            }
        }
    }
}
