//! The sent ledger, as capabilities see it: each host-mediated send of a
//! run (Teams post, email) has an index; once a send succeeded, its result
//! is recorded durably under (event, plugin, index) before the guest hears
//! of it, and a later attempt of the same run gets that result back instead
//! of sending again.
//!
//! Where the ledger lives is a [`SentStore`]: the journal of a single
//! daemon, or a key-value bucket shared by a cluster's members.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use triggerfish_data::journal::{Journal, SentKey};

use crate::context::CallContext;

/// A boxed future, for the object-safe [`SentStore`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where sends are recorded. Errors are texts for the host's log.
pub trait SentStore: Send + Sync {
    /// What an earlier attempt recorded under `key`, if anything.
    fn sent<'a>(&'a self, key: &'a SentKey) -> BoxFuture<'a, Result<Option<String>, String>>;
    /// Record a successful send; resolves once it is durable. Recording a
    /// key twice keeps the first record.
    fn record(
        &self,
        key: SentKey,
        kind: String,
        result: String,
    ) -> BoxFuture<'_, Result<(), String>>;
}

impl SentStore for Journal {
    fn sent<'a>(&'a self, key: &'a SentKey) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move { Journal::sent(self, key).map_err(|e| e.to_string()) })
    }

    fn record(
        &self,
        key: SentKey,
        kind: String,
        result: String,
    ) -> BoxFuture<'_, Result<(), String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.record_sent(
            key,
            kind,
            result,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        Box::pin(async move {
            match rx.await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the journal's writer has stopped".into()),
            }
        })
    }
}

/// The ledger of one attempt.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn SentStore>,
    next: Arc<AtomicU32>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("next", &self.next.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One send's place in the ledger.
pub struct Slot {
    key: SentKey,
    /// What an earlier attempt recorded, if it made this send.
    pub earlier: Option<String>,
    store: Arc<dyn SentStore>,
}

impl Ledger {
    /// A ledger over `store`, counting sends from 0.
    pub fn new(store: Arc<dyn SentStore>) -> Self {
        Self {
            store,
            next: Arc::default(),
        }
    }

    /// The next send's slot (every send takes one, in call order).
    pub async fn slot(&self, cx: &CallContext) -> Slot {
        let key = SentKey {
            event_id: cx.event_id.to_string(),
            plugin: cx.plugin.to_string(),
            call: self.next.fetch_add(1, Ordering::Relaxed),
        };
        let earlier = match self.store.sent(&key).await {
            Ok(e) => e,
            Err(e) => {
                // Without the ledger the send goes ahead: at least once.
                tracing::warn!(plugin = %cx.plugin, event = %cx.event_id, "sent ledger unreadable: {e}");
                None
            }
        };
        Slot {
            key,
            earlier,
            store: self.store.clone(),
        }
    }
}

impl Slot {
    /// Record a successful send; returns once it is durable.
    pub async fn record(self, kind: &str, result: String) {
        let key = self.key.clone();
        if let Err(e) = self.store.record(self.key, kind.to_owned(), result).await {
            tracing::warn!(plugin = %key.plugin, event = %key.event_id, call = key.call, "cannot record a send in the ledger: {e}");
        }
    }
}
