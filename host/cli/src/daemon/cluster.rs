//! The daemon as a cluster member: what changes when `[cluster]` is set.
//! Intake publishes to NATS instead of the journal; runs come from the
//! shared consumers instead of the scheduler; the insights engine refreshes
//! only on the member holding the lease, which publishes each generation,
//! while the others read the newest one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use triggerfish_data::event::Event;
use triggerfish_data::insights::Scope;
use triggerfish_data::journal::{Journal, Router};

use triggerfish_runtime::Host;

use crate::cluster::{Member, REFRESH_SUBJECT};

/// How often a member that does not refresh looks for a new generation.
pub const GENERATION_POLL: Duration = Duration::from_secs(1);

/// Routes no event to any plugin: in a cluster the refresher's journal is
/// an outbox, and runs are made when its events are forwarded.
pub struct NoRuns;

impl Router for NoRuns {
    fn plugins_for(&self, _: &Event) -> Vec<String> {
        Vec::new()
    }
}

/// What the member's roles need of the daemon.
pub struct Roles {
    pub member: Arc<Member>,
    pub store: PathBuf,
    pub journal: Arc<Journal>,
    pub router: Arc<dyn Router>,
    pub refresh: Option<mpsc::Sender<Scope>>,
    pub sources: Vec<String>,
}

impl Roles {
    /// Start everything a member does: seek the lease, heartbeat, take runs
    /// (at most `concurrency` at once), and follow or lead. The refresher
    /// refreshes in full when it takes the lease.
    pub fn spawn(
        self,
        host: watch::Receiver<Arc<Host>>,
        concurrency: u32,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let m = self.member.clone();
        vec![
            tokio::spawn(m.clone().campaign(stop.clone())),
            tokio::spawn(m.clone().heartbeat(host.clone(), stop.clone())),
            tokio::spawn(m.work(host, concurrency, stop.clone())),
            tokio::spawn(self.run(stop)),
        ]
    }

    /// Follow (read new generations) or lead (take over, then answer refresh
    /// requests) as the lease says, until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut leader = self.member.refresher.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            if *leader.borrow_and_update() {
                self.take_over().await;
                self.lead(&mut leader, &mut stop).await;
            } else {
                {
                    let _store = self.member.store_lock.lock().await;
                    if !self.member.is_refresher() {
                        if let Err(e) = self.member.apply_latest(&self.store).await {
                            tracing::warn!(member = %self.member.id, "{e}");
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(GENERATION_POLL) => {}
                    _ = leader.changed() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Read the newest generation, forward what the last refresher did not,
    /// and refresh in full (as a starting daemon does).
    async fn take_over(&self) {
        let m = &self.member;
        tracing::info!(member = %m.id, "taking over as the refresher");
        let _store = m.store_lock.lock().await;
        loop {
            match m.apply_latest(&self.store).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(member = %m.id, "cannot read the newest store generation before refreshing: {e}")
                }
            }
            if !m.is_refresher() {
                return;
            }
            tokio::time::sleep(GENERATION_POLL).await;
        }
        if let Err(e) = m.start_outbox(&self.journal).await {
            tracing::warn!(member = %m.id, "{e}");
        }
        if let Err(e) = m.forward_events(&self.journal, self.router.as_ref()).await {
            tracing::warn!(member = %m.id, "forwarding the journal's events: {e}");
        }
        if let Some(tx) = &self.refresh {
            let _ = tx.try_send(Scope::Full);
        }
    }

    /// Answer refresh requests while the lease is held.
    async fn lead(&self, leader: &mut watch::Receiver<bool>, stop: &mut watch::Receiver<bool>) {
        let m = &self.member;
        let mut requests = match m
            .cluster
            .client
            .queue_subscribe(REFRESH_SUBJECT, "refresher".into())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(member = %m.id, "cannot take refresh requests: {e}");
                tokio::time::sleep(GENERATION_POLL).await;
                return;
            }
        };
        loop {
            tokio::select! {
                msg = requests.next() => {
                    let Some(msg) = msg else { break };
                    let answer = self.refresh_request(&msg.payload).await;
                    if let Some(reply) = msg.reply {
                        let _ = m.cluster.client.publish(reply, answer.to_string().into()).await;
                    }
                }
                r = leader.changed() => {
                    let held = r.is_ok() && *leader.borrow();
                    if !held { break }
                }
                r = stop.changed() => {
                    let stopping = r.is_err() || *stop.borrow();
                    if stopping { break }
                }
            }
        }
        let _ = requests.unsubscribe().await;
    }

    async fn refresh_request(&self, body: &[u8]) -> Value {
        let Some(tx) = &self.refresh else {
            return json!({"error": "the refresher has no [insights] section: nothing to refresh"});
        };
        let scope = match serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("source").cloned())
        {
            Some(Value::String(s)) if self.sources.contains(&s) => Scope::Source(s),
            Some(Value::String(s)) => {
                return json!({"error": format!("no data source named '{s}' (sources: {})", self.sources.join(", "))})
            }
            _ => Scope::Full,
        };
        match tx.send(scope.clone()).await {
            Ok(()) => json!({"queued": super::scope_name(&scope), "refresher": self.member.id}),
            Err(_) => json!({"error": "stopping"}),
        }
    }
}

/// Ask the member holding the lease to refresh `scope`.
pub async fn ask_refresher(
    m: &Member,
    scope: &Scope,
) -> Result<Value, (axum::http::StatusCode, String)> {
    use axum::http::StatusCode;
    let body = match scope {
        Scope::Source(name) => json!({ "source": name }),
        _ => json!({}),
    };
    let unavailable = |e: String| (StatusCode::SERVICE_UNAVAILABLE, e);
    let reply = m
        .cluster
        .client
        .request(REFRESH_SUBJECT, body.to_string().into())
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => unavailable(
                "no member holds the refresher's lease yet (a takeover takes up to [cluster] lease_ttl); try again".into(),
            ),
            _ => unavailable(format!("asking the refresher: {e}")),
        })?;
    let answer: Value = serde_json::from_slice(&reply.payload).map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the refresher's answer is not JSON: {e}"),
        )
    })?;
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        return Err((StatusCode::BAD_REQUEST, error.to_owned()));
    }
    Ok(answer)
}
