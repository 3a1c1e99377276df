//! Store generations: after each refresh the refresher writes a consistent
//! copy of its store to the object store [`STORE_OBJECTS`], then points key
//! [`GENERATION_KEY`] at it by compare-and-set (a member that lost the lease
//! meanwhile fails there), then forwards the refresh's events from its
//! journal to the events stream. The other members download a new generation
//! whole and swap it into their store in one transaction.
//!
//! The copy carries the journal: a member taking over forwards what its
//! predecessor published but did not forward (past [`OUTBOX_KEY`]), so an
//! event raised by a refresh is published once, and one raised by a refresh
//! whose generation never got out is raised again by the next refresh.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use triggerfish_data::journal::{now_ms, Journal, Router};

use super::{Cluster, ClusterError, Member, STATE_BUCKET, STORE_OBJECTS};

/// Key of the current generation in [`STATE_BUCKET`].
pub const GENERATION_KEY: &str = "generation";
/// Key of the last journal sequence forwarded to the events stream.
pub const OUTBOX_KEY: &str = "outbox";
/// Events forwarded per journal read.
const FORWARD_BATCH: u32 = 500;
/// Generations kept in the object store (the current and the one before,
/// which a member may still be downloading).
pub const KEPT_GENERATIONS: u64 = 2;

/// A published generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub number: u64,
    pub object: String,
    pub bytes: u64,
    pub member: String,
    /// The newest journal sequence in the copy.
    pub events_through: i64,
    pub at_ms: i64,
}

fn object_name(n: u64) -> String {
    format!("store-{n}.db")
}

impl Cluster {
    /// The current generation and its key's revision.
    pub async fn generation(&self) -> Result<Option<(Generation, u64)>, ClusterError> {
        let entry = self.state.entry(GENERATION_KEY).await.map_err(|e| {
            ClusterError::nats(format!("bucket {STATE_BUCKET}, key {GENERATION_KEY}"), e)
        })?;
        Ok(entry
            .filter(|e| !e.value.is_empty())
            .and_then(|e| Some((serde_json::from_slice(&e.value).ok()?, e.revision))))
    }

    async fn outbox_mark(&self) -> Result<i64, ClusterError> {
        let v = self.state.get(OUTBOX_KEY).await.map_err(|e| {
            ClusterError::nats(format!("bucket {STATE_BUCKET}, key {OUTBOX_KEY}"), e)
        })?;
        Ok(v.and_then(|b| String::from_utf8_lossy(&b).parse().ok())
            .unwrap_or(0))
    }
}

/// A scratch file beside the store, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scratch(store: &Path, what: &str) -> Scratch {
    let mut name = store
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(format!(".{what}.{}", std::process::id()));
    let path = store.with_file_name(name);
    let _ = std::fs::remove_file(&path);
    Scratch(path)
}

fn blocking_error(e: tokio::task::JoinError) -> ClusterError {
    ClusterError::Other(format!("a blocking task failed: {e}"))
}

/// The newest sequence in `journal` (0 when empty).
async fn newest_seq(journal: &Arc<Journal>) -> Result<i64, ClusterError> {
    let j = journal.clone();
    Ok(tokio::task::spawn_blocking(move || {
        j.events(&triggerfish_data::journal::EventFilter {
            trigger: None,
            before: None,
            limit: 1,
        })
    })
    .await
    .map_err(blocking_error)?
    .map_err(|e| ClusterError::Other(e.to_string()))?
    .first()
    .map_or(0, |e| e.seq))
}

impl Member {
    /// The first refresher of a cluster (no generation yet) starts
    /// forwarding after what its journal already held: its single-node
    /// history is not the cluster's.
    pub async fn start_outbox(&self, journal: &Arc<Journal>) -> Result<(), ClusterError> {
        let c = &self.cluster;
        if c.generation().await?.is_some() {
            return Ok(());
        }
        let newest = newest_seq(journal).await?;
        // Only if unset: a mark already there is a predecessor's.
        let _ = c.state.create(OUTBOX_KEY, newest.to_string().into()).await;
        Ok(())
    }

    /// Publish the store at `store` as the next generation, then forward
    /// its new events. Fails, changing nothing, when another member
    /// published since this one last read.
    pub async fn publish_generation(
        &self,
        store: &Path,
        journal: &Arc<Journal>,
        router: &dyn Router,
    ) -> Result<u64, ClusterError> {
        let c = &self.cluster;
        let current = c.generation().await?;
        let number = current.as_ref().map_or(0, |(g, _)| g.number) + 1;
        if let Some((g, _)) = &current {
            if g.number > self.generation.load(Ordering::Relaxed) && g.member != self.id {
                return Err(ClusterError::Other(format!(
                    "member {} published generation {} since this member read generation {}: not publishing over it",
                    g.member,
                    g.number,
                    self.generation.load(Ordering::Relaxed)
                )));
            }
        }
        let copy = scratch(store, "publish");
        let (from, to) = (store.to_owned(), copy.0.clone());
        let bytes =
            tokio::task::spawn_blocking(move || triggerfish_data::store::snapshot(&from, &to))
                .await
                .map_err(blocking_error)?
                .map_err(|e| ClusterError::Other(e.to_string()))?;
        let through = newest_seq(journal).await?;
        let object = object_name(number);
        let mut file = tokio::fs::File::open(&copy.0)
            .await
            .map_err(|e| ClusterError::Other(format!("{}: {e}", copy.0.display())))?;
        c.objects
            .put(object.as_str(), &mut file)
            .await
            .map_err(|e| {
                ClusterError::nats(format!("object store {STORE_OBJECTS}, object {object}"), e)
            })?;
        let generation = Generation {
            number,
            object: object.clone(),
            bytes,
            member: self.id.clone(),
            events_through: through,
            at_ms: now_ms(),
        };
        let body =
            serde_json::to_vec(&generation).map_err(|e| ClusterError::Other(e.to_string()))?;
        let what = format!("bucket {STATE_BUCKET}, key {GENERATION_KEY}");
        match &current {
            Some((_, rev)) => c
                .state
                .update(GENERATION_KEY, body.into(), *rev)
                .await
                .map(|_| ())
                .map_err(|e| ClusterError::nats(&what, e)),
            None => c
                .state
                .create(GENERATION_KEY, body.into())
                .await
                .map(|_| ())
                .map_err(|e| ClusterError::nats(&what, e)),
        }
        .map_err(|e| {
            ClusterError::Other(format!(
                "generation {number} not published (another member published first?): {e}"
            ))
        })?;
        self.generation.store(number, Ordering::Relaxed);
        if number > KEPT_GENERATIONS {
            let _ = c
                .objects
                .delete(object_name(number - KEPT_GENERATIONS))
                .await;
        }
        self.forward_events(journal, router).await?;
        Ok(number)
    }

    /// Publish the journal's events past the forwarding mark, with a run
    /// per plugin the router names; move the mark after each batch.
    pub async fn forward_events(
        &self,
        journal: &Arc<Journal>,
        router: &dyn Router,
    ) -> Result<u64, ClusterError> {
        let c = &self.cluster;
        // Their runs read this generation (the refresher's own) or newer.
        let generation = self.generation.load(Ordering::Relaxed);
        let mut mark = c.outbox_mark().await?;
        let mut forwarded = 0;
        loop {
            let j = journal.clone();
            let batch = tokio::task::spawn_blocking(move || j.events_after(mark, FORWARD_BATCH))
                .await
                .map_err(blocking_error)?
                .map_err(|e| ClusterError::Other(e.to_string()))?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            for (_, event) in &batch {
                let plugins = router.plugins_for(event);
                c.ingest(event, &plugins, generation).await?;
                forwarded += 1;
            }
            mark = last;
            c.state
                .put(OUTBOX_KEY, mark.to_string().into())
                .await
                .map_err(|e| {
                    ClusterError::nats(format!("bucket {STATE_BUCKET}, key {OUTBOX_KEY}"), e)
                })?;
        }
        if forwarded > 0 {
            tracing::info!(member = %self.id, "forwarded {forwarded} event(s) of the refresher's journal");
        }
        Ok(forwarded)
    }

    /// Switch the store at `store` to the current generation when it is
    /// newer than the one read now; the generation applied, if any.
    pub async fn apply_latest(&self, store: &Path) -> Result<Option<u64>, ClusterError> {
        let c = &self.cluster;
        let Some((g, _)) = c.generation().await? else {
            return Ok(None);
        };
        if g.number <= self.generation.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let copy = scratch(store, "download");
        let what = || format!("object store {STORE_OBJECTS}, object {}", g.object);
        let mut object = c
            .objects
            .get(&g.object)
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        let mut file = tokio::fs::File::create(&copy.0)
            .await
            .map_err(|e| ClusterError::Other(format!("{}: {e}", copy.0.display())))?;
        // The object store checks the digest as the last chunk arrives.
        tokio::io::copy(&mut object, &mut file)
            .await
            .map_err(|e| ClusterError::nats(what(), e))?;
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|e| ClusterError::Other(format!("{}: {e}", copy.0.display())))?;
        drop(file);
        let (to, from) = (store.to_owned(), copy.0.clone());
        tokio::task::spawn_blocking(move || triggerfish_data::store::restore(&to, &from))
            .await
            .map_err(blocking_error)?
            .map_err(|e| ClusterError::Other(format!("generation {}: {e}", g.number)))?;
        self.generation.store(g.number, Ordering::Relaxed);
        self.counters
            .generations_applied
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(member = %self.id, "now reading store generation {} ({} bytes, by {})", g.number, g.bytes, g.member);
        Ok(Some(g.number))
    }
}
