//! WAL checkpoints off the writer's thread. SQLite's automatic checkpoint
//! runs inside the commit that grows the write-ahead log past its limit, so
//! an import of a few hundred thousand rows paid for copying them into the
//! database file (and syncing it) before the next stage could start. Here
//! the store's connection only notes the log's size at each commit; once it
//! passes [`CHECKPOINT_FRAMES`], a thread of the store's own runs a passive
//! checkpoint on a connection of its own, while the writer goes on. A
//! passive checkpoint never blocks readers or writers, so nothing waits for
//! it; SQLite's last connection to close checkpoints whatever is left.

use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;

/// Log size, in frames (pages), from which a commit wakes the checkpointer:
/// SQLite's own default for its automatic checkpoint.
pub const CHECKPOINT_FRAMES: i32 = 1000;

thread_local! {
    /// The largest log size a commit on this thread reported since it was
    /// last read: a WAL hook is a plain function, and the commit runs on the
    /// thread that holds the store's connection.
    static LOG_FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn note_log(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_FRAMES.with(|f| f.set(f.get().max(frames)));
    Ok(())
}

/// Checkpoints of one store file, on a thread of their own.
pub(super) struct Checkpointer {
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Take over `writer`'s checkpoints (its automatic ones stop) for the
    /// database at `path`.
    pub(super) fn start(path: &Path, writer: &Connection) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        // Replaces the automatic checkpoint, which is itself a WAL hook.
        writer.wal_hook(Some(note_log));
        let (wake, asked) = mpsc::sync_channel::<()>(1);
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("tf-checkpoint".into())
            .spawn(move || {
                for () in asked {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    match done {
                        Ok((log, copied)) => {
                            tracing::debug!(store = %shown, log, copied, "checkpoint")
                        }
                        Err(e) => tracing::warn!(store = %shown, "checkpoint failed: {e}"),
                    }
                }
            })
            .map_err(|e| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(format!("cannot start the checkpoint thread: {e}")),
                )
            })?;
        Ok(Self {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// After using the writer on this thread: wake the checkpointer when a
    /// commit since the last call left the log at [`CHECKPOINT_FRAMES`] or
    /// more. Returns whether it did.
    pub(super) fn after_use(&self) -> bool {
        let frames = LOG_FRAMES.with(|f| f.replace(0));
        if frames < CHECKPOINT_FRAMES {
            return false;
        }
        // Full means a wake-up is already pending: it will see this commit.
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
        true
    }
}

impl Drop for Checkpointer {
    /// Let a running checkpoint finish, so that closing the store does not
    /// leave it half-copied (harmless, but redone on the next open).
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB);")
            .unwrap();
        c
    }

    /// About a page of 4 KiB for each of `rows` rows of 3 KB, in one commit.
    fn write(c: &Connection, rows: i32) {
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO t SELECT zeroblob(3000) FROM n",
            [rows],
        )
        .unwrap();
    }

    fn db_bytes(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_small_commit_does_not_wake_it_and_a_large_one_is_copied_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let c = writer(&path);
        let cp = Checkpointer::start(&path, &c).unwrap();
        write(&c, 10);
        assert!(!cp.after_use(), "10 pages do not wake it");
        let before = db_bytes(&path);
        write(&c, 2 * CHECKPOINT_FRAMES);
        // The commit itself no longer checkpoints: the rows are only in the log.
        assert_eq!(db_bytes(&path), before);
        assert!(cp.after_use());
        assert!(!cp.after_use(), "each commit is counted once");
        // Dropping waits for the checkpoint it was woken for.
        drop(cp);
        assert!(
            db_bytes(&path) > before + 4096 * u64::try_from(CHECKPOINT_FRAMES).unwrap(),
            "the rows were copied into the database file"
        );
    }
}
