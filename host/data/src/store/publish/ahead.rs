//! A copy of an entity's live file started ahead of a patch that may come
//! (see [`super::Publication::copy_ahead`]): copying, the largest part of
//! making a patched file, runs while the engine still works the patch out.

use std::path::PathBuf;
use std::thread::JoinHandle;

use super::super::{files::NewFile, EntityDb, StoreError};

/// A copy of `entity`'s live file being made on a thread of its own.
/// Dropped unused, it waits for the thread, and the copy is removed.
pub(super) struct Ahead {
    pub(super) entity: String,
    /// The live file copied.
    pub(super) live: PathBuf,
    copying: Option<JoinHandle<Result<NewFile, StoreError>>>,
}

impl Ahead {
    /// Start copying `entity`'s live file; `None` when it is kept in the
    /// main file, or no thread can be started.
    pub(super) fn start(store: &EntityDb, entity: &str) -> Result<Option<Self>, StoreError> {
        let (generation, live) = store.kept_in(&store.conn(), entity)?;
        let Some(live) = live else { return Ok(None) };
        let dir = store.files.dir();
        let live = dir.join(live);
        let new = NewFile::reserve(dir, entity, generation.saturating_add(1))?;
        let from = live.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tf-copy-{entity}"))
            .spawn(move || {
                std::fs::copy(&from, &new.path).map_err(|source| StoreError::Io {
                    path: new.path.clone(),
                    source,
                })?;
                Ok(new)
            });
        match spawned {
            Ok(copying) => Ok(Some(Self {
                entity: entity.to_owned(),
                live,
                copying: Some(copying),
            })),
            Err(e) => {
                tracing::debug!(entity, "no copy ahead of a patch: {e}");
                Ok(None)
            }
        }
    }

    /// The copy, once made.
    pub(super) fn wait(mut self) -> Result<NewFile, StoreError> {
        let entity = self.entity.clone();
        let copying = self.copying.take();
        copying.map_or_else(
            || Err(stopped(&entity)),
            |c| c.join().unwrap_or_else(|_| Err(stopped(&entity))),
        )
    }
}

fn stopped(entity: &str) -> StoreError {
    StoreError::Declaration {
        entity: entity.to_owned(),
        message: "the thread copying its file ahead of a patch stopped unexpectedly".to_owned(),
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        if let Some(copying) = self.copying.take() {
            // The copy (a `NewFile`) is removed as it drops.
            drop(copying.join());
        }
    }
}
