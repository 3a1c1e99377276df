//! A cluster of daemons sharing the work over NATS JetStream (`[cluster]`).
//!
//! - Events go to the stream [`EVENTS_STREAM`], deduplicated by event id
//!   (`Nats-Msg-Id`); each (event, plugin) run is one message on the
//!   work-queue stream [`RUNS_STREAM`], taken by one durable pull consumer
//!   per plugin that every member shares (the `worker` module).
//! - Run status and the sent ledger live in key-value buckets, so a run
//!   redelivered to another member sees what the first attempt sent.
//! - One member at a time, holding a lease (the `lease` module), refreshes the
//!   insights; it publishes each new store generation to an object store,
//!   and the others switch to it once it is whole (the `generation` module).
//!
//! [`Cluster`] is the connection and the named streams and buckets; the
//! daemon's [`Member`] adds the roles of a member; `triggerfish cluster
//! status` only connects.

pub mod config;
mod generation;
mod intake;
mod lease;
mod ledger;
pub mod replay;
pub mod status;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

pub use config::{ClusterSection, ClusterSettings};
pub use intake::Ingested;
pub use ledger::KvLedger;
pub use status::{ClusterStatus, MemberInfo};

/// Every event, kept as history (limits retention).
pub const EVENTS_STREAM: &str = "TF_EVENTS";
/// Runs waiting for an attempt (work-queue retention: gone once acked).
pub const RUNS_STREAM: &str = "TF_RUNS";
/// Runs that used up their attempts.
pub const DEAD_STREAM: &str = "TF_DEAD";
/// The sent ledger: `<plugin>.<event hash>.<call>` → what the send did.
pub const LEDGER_BUCKET: &str = "tf_ledger";
/// Run status: `<plugin>.<event hash>` → a run's state (`worker::RunState`).
pub const RUNS_BUCKET: &str = "tf_runs";
/// The refresher's lease (entries expire after the lease's time to live).
pub const LEASE_BUCKET: &str = "tf_lease";
/// Members' heartbeats (entries expire after [`MEMBER_TTL`]).
pub const MEMBERS_BUCKET: &str = "tf_members";
/// The current store generation and the refresher's forwarding mark.
pub const STATE_BUCKET: &str = "tf_state";
/// Store generations (SQLite files).
pub const STORE_OBJECTS: &str = "tf_store";
/// Refresh requests, answered by the refresher.
pub const REFRESH_SUBJECT: &str = "tf.refresh";

/// Longest wait to reach NATS at start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for JetStream to answer a request or acknowledge a write.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a member says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// A member silent this long is gone from the members list.
pub const MEMBER_TTL: Duration = Duration::from_secs(15);
/// Largest message accepted from a stream (a run or an event).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Errors of the cluster, naming the server or the stream and key.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{what}: {message}")]
    Nats { what: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl ClusterError {
    /// A failed NATS call, naming what it was about.
    pub fn nats(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Nats {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// A hex digest of an event id: ids are free text, keys and headers are not.
pub fn id_hash(event_id: &str) -> String {
    hex::encode(&Sha256::digest(event_id.as_bytes())[..16])
}

/// The connection and every stream and bucket of the cluster.
pub struct Cluster {
    pub settings: ClusterSettings,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub ledger: kv::Store,
    pub runs: kv::Store,
    pub lease: kv::Store,
    pub members: kv::Store,
    pub state: kv::Store,
    pub objects: object_store::ObjectStore,
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Cluster {
    /// Connect with the credentials the environment holds, and create what
    /// is missing (streams and buckets; an existing one is used as it is).
    pub async fn connect(
        settings: &ClusterSettings,
        name: &str,
        history: Duration,
    ) -> Result<Self, ClusterError> {
        let url = settings.nats_urls.join(",");
        let fail = |message: String| ClusterError::Connect {
            url: url.clone(),
            message,
        };
        let mut opts = match env_value(&settings.creds_env) {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(&path)
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot read the credentials file named by {}: {e}",
                        settings.creds_env
                    ))
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(token) = env_value(&settings.token_env) {
            opts = opts.token(token);
        }
        if let (Some(u), Some(p)) = (
            env_value(&settings.user_env),
            env_value(&settings.password_env),
        ) {
            opts = opts.user_and_password(u, p);
        }
        let what = format!("NATS at {url}");
        let client = opts
            .name(format!("triggerfish {name}"))
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .max_reconnects(None)
            .event_callback(move |e| {
                let what = what.clone();
                async move {
                    match e {
                        async_nats::Event::Connected => tracing::info!("{what}: connected"),
                        async_nats::Event::Closed => tracing::info!("{what}: closed"),
                        e => tracing::warn!("{what}: {e}"),
                    }
                }
            })
            .connect(settings.nats_urls.clone())
            .await
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        let replicas = settings.replicas as usize;
        let file = stream::StorageType::File;
        let streams = [
            stream::Config {
                name: EVENTS_STREAM.into(),
                subjects: vec!["tf.events.>".into()],
                max_age: history,
                ..Default::default()
            },
            stream::Config {
                name: RUNS_STREAM.into(),
                subjects: vec!["tf.runs.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            },
            stream::Config {
                name: DEAD_STREAM.into(),
                subjects: vec!["tf.dead.>".into()],
                max_age: history,
                ..Default::default()
            },
        ];
        for config in streams {
            let config = stream::Config {
                storage: file,
                num_replicas: replicas,
                duplicate_window: settings.duplicate_window,
                max_message_size: MAX_MESSAGE_BYTES as i32,
                ..config
            };
            ensure_stream(&js, config, true).await?;
        }
        // A bucket's stream, made here as `create_key_value` would: that
        // call first reads the account's info, which it cannot parse from
        // a 2.9 server.
        let kv = |name: &'static str, max_age: Duration| {
            let js = js.clone();
            async move {
                let what =
                    |e: &dyn std::fmt::Display| ClusterError::nats(format!("bucket {name}"), e);
                let config = stream::Config {
                    name: format!("KV_{name}"),
                    subjects: vec![format!("$KV.{name}.>")],
                    max_messages_per_subject: 1,
                    max_age,
                    max_message_size: MAX_MESSAGE_BYTES as i32,
                    storage: file,
                    num_replicas: replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                };
                ensure_stream(&js, config, false).await?;
                js.get_key_value(name).await.map_err(|e| what(&e))
            }
        };
        let objects = match js.get_object_store(STORE_OBJECTS).await {
            Ok(o) => o,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: STORE_OBJECTS.into(),
                    storage: file,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| ClusterError::nats(format!("object store {STORE_OBJECTS}"), e))?,
        };
        Ok(Self {
            settings: settings.clone(),
            ledger: kv(LEDGER_BUCKET, history).await?,
            runs: kv(RUNS_BUCKET, history).await?,
            lease: kv(LEASE_BUCKET, settings.lease_ttl).await?,
            members: kv(MEMBERS_BUCKET, MEMBER_TTL).await?,
            state: kv(STATE_BUCKET, Duration::ZERO).await?,
            objects,
            client,
            js,
        })
    }

    /// The server addresses, for messages.
    pub fn url(&self) -> String {
        self.settings.nats_urls.join(",")
    }
}

/// Create the stream `config` names, or bring an existing one's `max_age`
/// (and, with `window`, its duplicate window) to what the configuration says
/// now: a changed `lease_ttl`, `duplicate_window` or `history_days` applies
/// at the next start of any member.
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    window: bool,
) -> Result<(), ClusterError> {
    let what = format!("stream {}", config.name);
    let mut s = js
        .get_or_create_stream(config.clone())
        .await
        .map_err(|e| ClusterError::nats(&what, e))?;
    let have = s
        .info()
        .await
        .map_err(|e| ClusterError::nats(&what, e))?
        .config
        .clone();
    let stale_window = window && have.duplicate_window != config.duplicate_window;
    if have.max_age != config.max_age || stale_window {
        tracing::info!(
            "{what}: max_age {:?} -> {:?}, duplicate window {:?} -> {:?}",
            have.max_age,
            config.max_age,
            have.duplicate_window,
            config.duplicate_window
        );
        let duplicate_window = match (window, config.max_age.is_zero()) {
            (true, _) => config.duplicate_window,
            (false, true) => have.duplicate_window,
            // The server refuses a window longer than the age.
            (false, false) => have.duplicate_window.min(config.max_age),
        };
        js.update_stream(stream::Config {
            max_age: config.max_age,
            duplicate_window,
            ..have
        })
        .await
        .map_err(|e| ClusterError::nats(&what, e))?;
    }
    Ok(())
}

/// What a member counts, for its metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub attempts_ok: AtomicU64,
    pub attempts_failed: AtomicU64,
    pub redelivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped_done: AtomicU64,
    pub in_flight: AtomicU64,
    pub generations_applied: AtomicU64,
}

/// The daemon as a member: its roles over a [`Cluster`].
pub struct Member {
    pub id: String,
    pub cluster: Cluster,
    pub api: String,
    /// True while this member holds the refresher's lease.
    pub refresher: watch::Sender<bool>,
    /// The store generation this member reads.
    pub generation: AtomicU64,
    pub counters: Counters,
    /// The daemon's metrics, which attempts are counted in too.
    pub metrics: Arc<crate::daemon::metrics::Metrics>,
    /// The newest status gathered by the heartbeat.
    pub last_status: Mutex<Option<ClusterStatus>>,
    /// Held while the store is refreshed, published or replaced.
    pub store_lock: tokio::sync::Mutex<()>,
    /// The store file generations are applied to.
    store: PathBuf,
    stopping: AtomicBool,
}

impl Member {
    /// A member named `id` over `cluster`, serving its API at `api`.
    pub fn new(
        id: String,
        cluster: Cluster,
        api: String,
        metrics: Arc<crate::daemon::metrics::Metrics>,
        store: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            cluster,
            api,
            metrics,
            refresher: watch::channel(false).0,
            generation: AtomicU64::new(0),
            counters: Counters::default(),
            last_status: Mutex::new(None),
            store_lock: tokio::sync::Mutex::new(()),
            store,
            stopping: AtomicBool::new(false),
        })
    }

    /// Whether this member holds the refresher's lease now.
    pub fn is_refresher(&self) -> bool {
        *self.refresher.borrow()
    }

    /// The status gathered last (members, leader, lag), if any yet.
    pub fn status(&self) -> Option<ClusterStatus> {
        self.last_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stop taking runs and give up the lease.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Wait until no attempt is in flight, or `grace` has passed. True when idle.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        while self.counters.in_flight.load(Ordering::Relaxed) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// The default member name: the host name and the API port.
pub fn default_member_name(port: u16) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "member".into());
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(config::MAX_MEMBER_NAME - 6)
        .collect();
    format!("{clean}-{port}")
}
