//! A source's import started on a thread of its own while the sources
//! before it load, so that several imports (each a parser and a writer of
//! its own file) share the cores. The stage of that source then waits for it,
//! telling its progress as it goes; stages still run, and events are still
//! raised, in the workspace's order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::source::{Loaded, Source, SourceError};
use crate::store::EntityDb;

/// Imports under way at once in a full refresh, the refreshing thread's
/// own included. Each is a parser and a writer, and ends waiting for the
/// disk to take its file: one more than two cores keeps both busy (three
/// loaded the million rows of BENCHMARKS.md in 0.45 s, two in 0.51 s).
pub const IMPORTS_AT_ONCE: usize = 3;

/// How often a stage waiting for its import tells the progress made.
pub const PROGRESS_POLL: Duration = Duration::from_millis(50);

/// An import under way on another thread.
pub(super) struct Started<'s> {
    began: Instant,
    handle: ScopedJoinHandle<'s, ()>,
    /// The import's outcome, sent as it ends.
    done: mpsc::Receiver<Result<Loaded, SourceError>>,
    progress: Arc<(AtomicU64, AtomicU64)>,
}

/// Start `source`'s refresh on a thread of `scope`.
pub(super) fn start<'s, 'e: 's>(
    scope: &'s Scope<'s, 'e>,
    source: &'e dyn Source,
    store: &'e EntityDb,
    force: bool,
) -> Started<'s> {
    let began = Instant::now();
    let progress = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let told = progress.clone();
    let (send, done) = mpsc::sync_channel(1);
    let handle = scope.spawn(move || {
        let loaded = source.refresh(store, force, &|done, total| {
            told.1.store(total, Ordering::Relaxed);
            told.0.store(done, Ordering::Relaxed);
        });
        // The stage may have stopped waiting (a panic elsewhere).
        let _ = send.send(loaded);
    });
    Started {
        began,
        handle,
        done,
        progress,
    }
}

impl Started<'_> {
    /// When the import started.
    pub(super) fn began(&self) -> Instant {
        self.began
    }

    /// Wait for the import, telling `progress` what it has done meanwhile.
    pub(super) fn wait(self, progress: &dyn Fn(u64, u64)) -> Result<Loaded, SourceError> {
        let mut told = (0, 0);
        let mut tell = || {
            let now = (
                self.progress.0.load(Ordering::Relaxed),
                self.progress.1.load(Ordering::Relaxed),
            );
            if now != told && now.1 > 0 {
                progress(now.0, now.1);
                told = now;
            }
        };
        loop {
            match self.done.recv_timeout(PROGRESS_POLL) {
                Ok(loaded) => {
                    // The last step, however quickly it came.
                    tell();
                    return loaded;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => tell(),
                // It ended without an outcome: it panicked.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return match self.handle.join() {
                        Err(panic) => std::panic::resume_unwind(panic),
                        Ok(()) => Err(SourceError::new(
                            false,
                            "the import ended without an outcome".into(),
                        )),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A source whose refresh tells two steps of progress, slowly.
    struct Slow;

    impl Source for Slow {
        fn refresh(
            &self,
            _: &EntityDb,
            _: bool,
            progress: &dyn Fn(u64, u64),
        ) -> Result<Loaded, SourceError> {
            progress(1, 2);
            std::thread::sleep(PROGRESS_POLL * 4);
            progress(2, 2);
            std::thread::sleep(PROGRESS_POLL * 4);
            Ok(Loaded::unchanged(7))
        }
    }

    struct Panics;

    impl Source for Panics {
        fn refresh(
            &self,
            _: &EntityDb,
            _: bool,
            _: &dyn Fn(u64, u64),
        ) -> Result<Loaded, SourceError> {
            panic!("a source's own panic");
        }
    }

    #[test]
    fn a_stage_waiting_for_its_import_tells_the_progress_made_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let told = Mutex::new(Vec::new());
        let loaded = std::thread::scope(|scope| {
            let started = start(scope, &Slow, &store, false);
            started.wait(&|done, total| told.lock().unwrap().push((done, total)))
        });
        assert_eq!(loaded.unwrap().rows, 7);
        // Each step is told once, in order; the first unless a poll came
        // too late for it (a loaded machine), the last always.
        let told = told.into_inner().unwrap();
        assert!(told == [(1, 2), (2, 2)] || told == [(2, 2)], "{told:?}");
    }

    #[test]
    fn a_panic_in_the_import_reaches_the_stage() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|scope| start(scope, &Panics, &store, false).wait(&|_, _| {}))
        }));
        let message = caught.unwrap_err();
        assert_eq!(
            message.downcast_ref::<&str>(),
            Some(&"a source's own panic")
        );
    }
}
