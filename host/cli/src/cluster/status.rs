//! What the cluster is doing: members (from their heartbeats), the
//! refresher, the store generation, stream sizes and each plugin's consumer
//! lag. Gathered by `triggerfish cluster status`, by each member's heartbeat
//! (for `/metrics` and the console).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use triggerfish_data::journal::now_ms;
use triggerfish_runtime::Host;

use super::generation::Generation;
use super::lease::LEASE_KEY;
use super::{
    Cluster, ClusterError, Member, DEAD_STREAM, EVENTS_STREAM, HEARTBEAT_EVERY, MEMBERS_BUCKET,
    RUNS_STREAM,
};

/// Members listed at most (heartbeats past it are ignored).
pub const MAX_MEMBERS: usize = 256;

/// How long gathering the status may take before it fails.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin as a member runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberPlugin {
    pub name: String,
    pub sha256: String,
    pub concurrency: u32,
}

/// A member's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: String,
    pub api: String,
    pub version: String,
    pub started_ms: i64,
    pub seen_ms: i64,
    pub refresher: bool,
    pub generation: u64,
    pub in_flight: u64,
    pub attempts_ok: u64,
    pub attempts_failed: u64,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub plugins: Vec<MemberPlugin>,
}

/// One plugin's consumer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerLag {
    pub plugin: String,
    /// Runs not yet delivered to any member.
    pub pending: u64,
    /// Runs delivered and not yet acked (being attempted, or waiting for a retry).
    pub ack_pending: u64,
    pub redelivered: u64,
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    pub nats: String,
    pub members: Vec<MemberInfo>,
    pub refresher: Option<String>,
    pub generation: Option<Generation>,
    pub events: u64,
    pub runs_waiting: u64,
    pub dead_letters: u64,
    pub consumers: Vec<ConsumerLag>,
    pub at_ms: i64,
}

/// The lease holder's name, if the lease is held.
pub async fn lease_holder(c: &Cluster) -> Option<String> {
    let v = c.lease.get(LEASE_KEY).await.ok()??;
    Some(String::from_utf8_lossy(&v).into_owned()).filter(|s| !s.is_empty())
}

impl Cluster {
    /// Refuse a member name another live daemon (another API address)
    /// heartbeats under: two members with one name would look like one. A
    /// recent heartbeat from another address is watched for one more beat,
    /// so a member restarted after a crash is not taken for a twin.
    pub async fn check_name_free(&self, id: &str, api: &str) -> Result<(), ClusterError> {
        let seen = || async {
            let v = self.members.get(id).await.ok()??;
            let m = serde_json::from_slice::<MemberInfo>(&v).ok()?;
            (m.api != api).then_some((m.api, m.seen_ms))
        };
        let Some((_, first)) = seen().await else {
            return Ok(());
        };
        if now_ms() - first > super::MEMBER_TTL.as_millis() as i64 {
            return Ok(());
        }
        tokio::time::sleep(HEARTBEAT_EVERY + std::time::Duration::from_secs(1)).await;
        match seen().await {
            Some((other, later)) if later > first => Err(ClusterError::Other(format!(
                "member name '{id}' is in use by the live daemon at {other}: give each daemon its own [cluster] member"
            ))),
            _ => Ok(()),
        }
    }

    async fn stream_messages(&self, name: &str) -> Result<u64, ClusterError> {
        let mut s = self
            .js
            .get_stream(name)
            .await
            .map_err(|e| ClusterError::nats(format!("stream {name}"), e))?;
        let info = s
            .info()
            .await
            .map_err(|e| ClusterError::nats(format!("stream {name}"), e))?;
        Ok(info.state.messages)
    }

    /// Gather the status, within [`STATUS_TIMEOUT`].
    pub async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        match tokio::time::timeout(STATUS_TIMEOUT, self.gather()).await {
            Ok(status) => status,
            Err(_) => Err(ClusterError::Other(format!(
                "cluster status: NATS at {} gave no full answer within {}s",
                self.url(),
                STATUS_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The members' heartbeats, by the subjects the bucket's stream holds
    /// (one request, no consumer: a listing by consumer waits for entries
    /// that may expire before they are delivered).
    async fn members(&self) -> Result<Vec<MemberInfo>, ClusterError> {
        let what = || format!("bucket {MEMBERS_BUCKET}");
        let store = &self.members;
        let mut subjects = store
            .stream
            .info_with_subjects(format!("{}>", store.prefix))
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        let mut keys = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| ClusterError::nats(what(), e))?;
            if let Some(key) = subject.strip_prefix(store.prefix.as_str()) {
                keys.push(key.to_owned());
            }
            if keys.len() >= MAX_MEMBERS {
                break;
            }
        }
        let mut members = Vec::new();
        for key in keys {
            // An entry deleted (a member that left) reads as none.
            if let Ok(Some(v)) = store.get(&key).await {
                if let Ok(m) = serde_json::from_slice::<MemberInfo>(&v) {
                    members.push(m);
                }
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(members)
    }

    async fn gather(&self) -> Result<ClusterStatus, ClusterError> {
        let members = self.members().await?;
        let mut consumers = Vec::new();
        let stream = self
            .js
            .get_stream(RUNS_STREAM)
            .await
            .map_err(|e| ClusterError::nats(format!("stream {RUNS_STREAM}"), e))?;
        let mut list = stream.consumers();
        while let Some(info) = list.next().await {
            let info = info
                .map_err(|e| ClusterError::nats(format!("stream {RUNS_STREAM}, consumers"), e))?;
            let Some(plugin) = info.name.strip_prefix("run-") else {
                continue;
            };
            consumers.push(ConsumerLag {
                plugin: plugin.to_owned(),
                pending: info.num_pending,
                ack_pending: info.num_ack_pending as u64,
                redelivered: info.num_redelivered as u64,
            });
        }
        consumers.sort_by(|a, b| a.plugin.cmp(&b.plugin));
        Ok(ClusterStatus {
            nats: self.url(),
            members,
            refresher: lease_holder(self).await,
            generation: self.generation().await?.map(|(g, _)| g),
            events: self.stream_messages(EVENTS_STREAM).await?,
            runs_waiting: self.stream_messages(RUNS_STREAM).await?,
            dead_letters: self.stream_messages(DEAD_STREAM).await?,
            consumers,
            at_ms: now_ms(),
        })
    }
}

impl Member {
    fn info(&self, host: &Host, started_ms: i64) -> MemberInfo {
        let c = &self.counters;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        MemberInfo {
            id: self.id.clone(),
            api: self.api.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_ms,
            seen_ms: now_ms(),
            refresher: self.is_refresher(),
            generation: self.generation.load(Ordering::Relaxed),
            in_flight: n(&c.in_flight),
            attempts_ok: n(&c.attempts_ok),
            attempts_failed: n(&c.attempts_failed),
            redelivered: n(&c.redelivered),
            dead_lettered: n(&c.dead_lettered),
            plugins: host
                .plugins()
                .map(|p| MemberPlugin {
                    name: p.config.name.clone(),
                    sha256: p.component.sha256.clone(),
                    concurrency: p.config.concurrency,
                })
                .collect(),
        }
    }

    /// Say this member is alive every [`HEARTBEAT_EVERY`] and gather the
    /// status, until `stop`; then leave the members list.
    pub async fn heartbeat(
        self: Arc<Self>,
        host: watch::Receiver<Arc<Host>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let started_ms = now_ms();
        loop {
            let info = self.info(&host.borrow().clone(), started_ms);
            if let Ok(body) = serde_json::to_vec(&info) {
                if let Err(e) = self.cluster.members.put(&self.id, body.into()).await {
                    tracing::warn!(member = %self.id, "heartbeat to bucket {MEMBERS_BUCKET}: {e}");
                }
            }
            match self.cluster.status().await {
                Ok(s) => {
                    *self
                        .last_status
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(s)
                }
                Err(e) => tracing::debug!("cluster status: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let _ = self.cluster.members.delete(&self.id).await;
    }
}
