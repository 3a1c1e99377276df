//! The sent ledger, as capabilities see it: each host-mediated send of a
//! run (Teams post, email) has an index; once a send succeeded, its result
//! is recorded durably under (event, plugin, index) before the guest hears
//! of it, and a later attempt of the same run gets that result back instead
//! of sending again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use triggerfish_data::journal::{Journal, SentKey};

use crate::context::CallContext;

/// The ledger of one attempt.
#[derive(Clone)]
pub struct Ledger {
    journal: Arc<Journal>,
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
    journal: Arc<Journal>,
}

impl Ledger {
    /// A ledger over `journal`, counting sends from 0.
    pub fn new(journal: Arc<Journal>) -> Self {
        Self {
            journal,
            next: Arc::default(),
        }
    }

    /// The next send's slot (every send takes one, in call order).
    pub fn slot(&self, cx: &CallContext) -> Slot {
        let key = SentKey {
            event_id: cx.event_id.to_string(),
            plugin: cx.plugin.to_string(),
            call: self.next.fetch_add(1, Ordering::Relaxed),
        };
        let earlier = match self.journal.sent(&key) {
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
            journal: self.journal.clone(),
        }
    }
}

impl Slot {
    /// Record a successful send; returns once it is durable.
    pub async fn record(self, kind: &str, result: String) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let key = self.key.clone();
        self.journal.record_sent(
            self.key,
            kind.to_owned(),
            result,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        if let Ok(Err(e)) = rx.await {
            tracing::warn!(plugin = %key.plugin, event = %key.event_id, call = key.call, "cannot record a send in the ledger: {e}");
        }
    }
}
