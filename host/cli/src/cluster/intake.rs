//! Publishing: an event to the events stream and one run message per
//! subscribed plugin to the runs stream, each with a `Nats-Msg-Id`, so
//! publishing again (a retried request, a refresher taking over) within the
//! duplicate window stores nothing twice.

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};
use triggerfish_data::event::{Event, TriggerKind};

use super::{id_hash, Cluster, ClusterError, EVENTS_STREAM, RUNS_STREAM};

/// A run, as a message of the runs stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMessage {
    pub plugin: String,
    /// 0 for the first run; n for the n-th replay.
    pub replay: u32,
    /// The store generation the event came from: the run reads entities of
    /// this generation or a newer one (0: any).
    #[serde(default)]
    pub generation: u64,
    pub event: Event,
}

impl RunMessage {
    /// The message's deduplication id.
    pub fn msg_id(&self) -> String {
        format!(
            "run-{}-{}-{}",
            id_hash(&self.event.id),
            self.plugin,
            self.replay
        )
    }
}

/// What publishing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// Its position in the events stream.
    pub seq: u64,
    /// The id was in the stream already (within the duplicate window).
    pub duplicate: bool,
    /// Run messages published (or found published) for it.
    pub runs: usize,
}

fn dedupe(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", id);
    h
}

impl Cluster {
    /// Publish `event` and a run for each of `plugins`, whose runs read
    /// store `generation` or newer; resolves once JetStream has stored them all.
    pub async fn ingest(
        &self,
        event: &Event,
        plugins: &[String],
        generation: u64,
    ) -> Result<Ingested, ClusterError> {
        let kind = TriggerKind::of(&event.trigger);
        let body = serde_json::to_vec(event).map_err(|e| ClusterError::Other(e.to_string()))?;
        let what = || format!("stream {EVENTS_STREAM}, event {}", event.id);
        let ack = self
            .js
            .publish_with_headers(
                format!("tf.events.{}", kind.as_str()),
                dedupe(&format!("evt-{}", id_hash(&event.id))),
                body.into(),
            )
            .await
            .map_err(|e| ClusterError::nats(what(), e))?
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        // Runs are published even for a duplicate: the first publisher may
        // have stopped between the event and its runs.
        let mut pending = Vec::with_capacity(plugins.len());
        for plugin in plugins {
            let run = RunMessage {
                plugin: plugin.clone(),
                replay: 0,
                generation,
                event: event.clone(),
            };
            pending.push(self.publish_run(&run).await?);
        }
        for (ack, plugin) in pending.into_iter().zip(plugins) {
            ack.await.map_err(|e| {
                ClusterError::nats(
                    format!(
                        "stream {RUNS_STREAM}, run of plugin '{plugin}' for event {}",
                        event.id
                    ),
                    e,
                )
            })?;
        }
        Ok(Ingested {
            seq: ack.sequence,
            duplicate: ack.duplicate,
            runs: plugins.len(),
        })
    }

    /// Publish one run; the returned future resolves on JetStream's ack.
    pub async fn publish_run(
        &self,
        run: &RunMessage,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, ClusterError> {
        let body = serde_json::to_vec(run).map_err(|e| ClusterError::Other(e.to_string()))?;
        self.js
            .publish_with_headers(
                format!("tf.runs.{}", run.plugin),
                dedupe(&run.msg_id()),
                body.into(),
            )
            .await
            .map_err(|e| {
                ClusterError::nats(
                    format!(
                        "stream {RUNS_STREAM}, run of plugin '{}' for event {}",
                        run.plugin, run.event.id
                    ),
                    e,
                )
            })
    }
}
