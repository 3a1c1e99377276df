//! The sent ledger in the bucket [`LEDGER_BUCKET`](super::LEDGER_BUCKET):
//! a record is created only if absent (atomic in JetStream), so the first
//! record of a send stays, whichever member made it.

use async_nats::jetstream::kv;
use triggerfish_data::journal::SentKey;
use triggerfish_runtime::ledger::{BoxFuture, SentStore};

use super::id_hash;

/// The shared sent ledger.
pub struct KvLedger(pub kv::Store);

fn key(k: &SentKey) -> String {
    format!("{}.{}.{}", k.plugin, id_hash(&k.event_id), k.call)
}

impl SentStore for KvLedger {
    fn sent<'a>(&'a self, k: &'a SentKey) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let v = self
                .0
                .get(key(k))
                .await
                .map_err(|e| format!("bucket {}: {e}", super::LEDGER_BUCKET))?;
            Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        })
    }

    fn record(
        &self,
        k: SentKey,
        _kind: String,
        result: String,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.0.create(key(&k), result.into()).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(format!("bucket {}: {e}", super::LEDGER_BUCKET)),
            }
        })
    }
}
