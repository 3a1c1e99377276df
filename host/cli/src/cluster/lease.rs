//! The refresher's lease: key [`LEASE_KEY`] of the bucket
//! [`LEASE_BUCKET`](super::LEASE_BUCKET), whose entries expire after the
//! lease's time to live. A member takes it by creating the key (atomic: one
//! wins) and keeps it by updating it at its last revision every third of the
//! time to live. When the holder dies, the key expires and another member
//! creates it: a takeover within about the time to live and one renewal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Member;

/// The lease's key.
pub const LEASE_KEY: &str = "refresher";

impl Member {
    /// Seek or hold the lease until `stop`, keeping [`Member::refresher`]
    /// true exactly while it is held; on stop, give it up at once.
    pub async fn campaign(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let ttl = self.cluster.settings.lease_ttl;
        let renew = (ttl / 3).max(Duration::from_secs(1));
        let lease = &self.cluster.lease;
        // (revision, when it was last renewed)
        let mut held: Option<(u64, Instant)> = None;
        loop {
            held = match held {
                None => match lease.create(LEASE_KEY, self.id.clone().into()).await {
                    Ok(rev) => {
                        tracing::info!(member = %self.id, "took the refresher's lease");
                        Some((rev, Instant::now()))
                    }
                    Err(_) => None,
                },
                Some((rev, renewed)) => {
                    match lease.update(LEASE_KEY, self.id.clone().into(), rev).await {
                        Ok(rev) => Some((rev, Instant::now())),
                        Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                            tracing::warn!(member = %self.id, "lost the refresher's lease to another member");
                            None
                        }
                        // NATS unreachable: still ours while it cannot have expired.
                        Err(e) if renewed.elapsed() + renew < ttl => {
                            tracing::warn!(member = %self.id, "cannot renew the refresher's lease yet: {e}");
                            Some((rev, renewed))
                        }
                        Err(e) => {
                            tracing::warn!(member = %self.id, "gave up the refresher's lease (not renewed in time): {e}");
                            None
                        }
                    }
                }
            };
            self.refresher.send_if_modified(|v| {
                let now = held.is_some();
                std::mem::replace(v, now) != now
            });
            tokio::select! {
                _ = tokio::time::sleep(renew) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if held.is_some() {
            self.refresher.send_replace(false);
            if let Err(e) = lease.delete(LEASE_KEY).await {
                tracing::warn!("cannot give up the refresher's lease (it expires by itself): {e}");
            }
        }
    }
}
