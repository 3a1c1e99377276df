//! Replaying dead letters: each becomes a new run message (its replay
//! number one higher, so it is not taken for a duplicate), its status goes
//! back to `queued`, and the dead letter is deleted.

use serde::Serialize;
use triggerfish_data::journal::now_ms;

use super::intake::RunMessage;
use super::worker::{DeadLetter, RunState};
use super::{Cluster, ClusterError, DEAD_STREAM};

/// Most dead letters replayed by one call.
pub const MAX_REPLAY: usize = 10_000;

/// A dead letter replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedLetter {
    pub event_id: String,
    pub plugin: String,
    /// The new run's replay number.
    pub replay: u32,
}

impl Cluster {
    /// Replay dead letters (of `plugin` only, when given), oldest first, at
    /// most `max` (capped at [`MAX_REPLAY`]).
    pub async fn replay_dead(
        &self,
        plugin: Option<&str>,
        max: usize,
    ) -> Result<Vec<ReplayedLetter>, ClusterError> {
        let what = || format!("stream {DEAD_STREAM}");
        let mut stream = self
            .js
            .get_stream(DEAD_STREAM)
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        let state = stream
            .info()
            .await
            .map_err(|e| ClusterError::nats(what(), e))?
            .state
            .clone();
        let mut done = Vec::new();
        if state.messages == 0 {
            return Ok(done);
        }
        for seq in state.first_sequence..=state.last_sequence {
            if done.len() >= max.min(MAX_REPLAY) {
                break;
            }
            // A gap: deleted already.
            let Ok(raw) = stream.get_raw_message(seq).await else {
                continue;
            };
            let letter: DeadLetter = match serde_json::from_slice(&raw.payload) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(
                        "{}, message {seq}: not a dead letter ({e}); left as it is",
                        what()
                    );
                    continue;
                }
            };
            if plugin.is_some_and(|p| p != letter.run.plugin) {
                continue;
            }
            let run = RunMessage {
                replay: letter.run.replay.saturating_add(1),
                ..letter.run
            };
            self.publish_run(&run).await?.await.map_err(|e| {
                ClusterError::nats(format!("replaying {}, message {seq}", what()), e)
            })?;
            let queued = RunState {
                reports: Vec::new(),
                event_id: run.event.id.clone(),
                plugin: run.plugin.clone(),
                trigger: triggerfish_data::event::TriggerKind::of(&run.event.trigger)
                    .as_str()
                    .to_owned(),
                status: "queued".into(),
                attempts: 0,
                replay: run.replay,
                member: String::new(),
                error: None,
                updated_ms: now_ms(),
            };
            let _ = self.put_state(&queued).await;
            stream.delete_message(seq).await.map_err(|e| {
                ClusterError::nats(format!("{}, deleting message {seq}", what()), e)
            })?;
            done.push(ReplayedLetter {
                event_id: run.event.id,
                plugin: run.plugin,
                replay: run.replay,
            });
        }
        Ok(done)
    }
}
