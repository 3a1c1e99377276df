//! The durable journal: every event, each (event, plugin) run with its
//! attempts and log lines, and the sent ledger, in the store file.
//!
//! Writes go through one writer thread that commits whatever has queued up
//! in a single transaction (group commit, `synchronous = FULL`), so many
//! appends share one fsync and none is acknowledged before it is on disk.
//! Reads use a connection of their own (WAL lets them run beside the writer).

mod read;
pub mod schema;
mod stats;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, PoisonError};

use rusqlite::Connection;
use serde::Serialize;

use crate::event::Event;
pub use read::{
    AttemptRow, Counts, EventFilter, EventRow, RunDetail, RunFilter, RunRow, SentEntry,
    MAX_WRITES_SHOWN,
};
pub use schema::{append_in, now_ms};
pub use stats::{Bucket, PluginStats, MAX_BUCKETS, STATS_WINDOW};
use writer::Cmd;

/// Log lines kept per attempt of a run; later ones are counted in a marker.
pub const MAX_LOG_LINES_PER_ATTEMPT: usize = 200;
/// Longest log line or error text kept, in bytes.
pub const MAX_STORED_TEXT_BYTES: usize = 4096;
/// Commands committed together at most (one transaction).
pub const MAX_GROUP_COMMIT: usize = 4096;
/// How long a write waits for another writer of the store file (a long
/// import) before failing.
pub const BUSY_TIMEOUT_MS: u64 = 120_000;
/// How long past its deadline a run that a command attempts itself (`fire`,
/// `refresh`) stays held off a running daemon.
pub const HOLD_MARGIN_MS: i64 = 60_000;

/// The hold for runs attempted by their caller with this deadline.
pub fn hold_for(deadline_ms: u64) -> i64 {
    i64::try_from(deadline_ms)
        .unwrap_or(i64::MAX / 4)
        .saturating_add(HOLD_MARGIN_MS)
}

/// Most rows one listing returns.
pub const MAX_PAGE: u32 = 1000;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {message}")]
    Sqlite { path: PathBuf, message: String },
    #[error("journal {0}: the writer has stopped")]
    Stopped(PathBuf),
}

/// An event to append, with the plugins it gets a run for.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Event,
    /// Where it came from: `insights`, `api`, `fire`.
    pub origin: String,
    pub plugins: Vec<String>,
    /// Its runs are not due before this many ms from now (0: at once). A
    /// caller that attempts the run itself (`fire`) holds it off the daemon.
    pub hold_ms: i64,
}

/// What an append did with one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Appended {
    pub seq: i64,
    pub id: String,
    /// The runs created for it (none for a duplicate).
    pub runs: Vec<i64>,
    /// The id was already in the log: nothing was appended.
    pub duplicate: bool,
}

/// Where a run stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for its first attempt (or replayed).
    Queued,
    /// Failed; waiting for its next attempt.
    Retrying,
    /// An attempt succeeded.
    Succeeded,
    /// Every attempt failed: dead-lettered until replayed.
    Dead,
    /// Finished, then replayed: a newer run (`replay_of` this one) took over.
    Replayed,
}

/// A run replayed, and the new run that replays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub run: i64,
    pub new_run: i64,
}

impl RunStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One log line of an attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub level: String,
    pub source: String,
    pub text: String,
}

/// A status report of an attempt (`status.report`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    /// `info`, `success`, `warning` or `error`.
    pub level: String,
    pub message: String,
    /// A JSON value, as text.
    pub details: Option<String>,
    pub at_ms: i64,
}

/// What happens to a run after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Succeeded,
    /// Try again at this time (ms since the epoch).
    Retry {
        at_ms: i64,
    },
    /// No attempts left.
    Dead,
}

/// The record of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub run: i64,
    pub started_ms: i64,
    pub duration_ms: u64,
    pub verdict: Verdict,
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
    pub reports: Vec<Report>,
}

/// A run due for an attempt, with its event.
#[derive(Debug, Clone)]
pub struct DueRun {
    pub run: i64,
    pub plugin: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts not counted against the retry budget (from journals where a
    /// replay re-queued the same run; a replay is now a new run, from 0).
    pub budget_from: u32,
    /// When the run could first be attempted (ms since the epoch): its
    /// event's acceptance, or the replay that created it.
    pub accepted_ms: i64,
    pub event: Event,
}

/// Decides which plugins get a run for an event (their triggers and
/// filters); the data layer knows no more of plugins than their names.
pub trait Router: Send + Sync {
    /// The plugins subscribed to `event`.
    fn plugins_for(&self, event: &Event) -> Vec<String>;
}

/// Called with the result of a write once it is committed (or failed).
pub type Reply<T> = Box<dyn FnOnce(Result<T, JournalError>) + Send>;

/// The journal of one store file.
pub struct Journal {
    path: PathBuf,
    writer: mpsc::Sender<Cmd>,
    reader: Mutex<Connection>,
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |e| JournalError::Sqlite {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Open a connection to the store file set up for the journal.
fn connect(path: &Path, page_size: u32) -> Result<Connection, JournalError> {
    let conn = Connection::open(path).map_err(sqlite(path))?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(sqlite(path))?;
    // Should the journal create the store file.
    crate::store::set_new_file_page_size(&conn, page_size).map_err(sqlite(path))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(sqlite(path))?;
    Ok(conn)
}

impl Journal {
    /// Open the journal in the store file at `path`, creating its tables
    /// (and the file, with the default page size).
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, crate::store::DEFAULT_PAGE_SIZE)
    }

    /// [`Journal::open`], creating a missing store file with pages of
    /// `page_size` bytes (one of [`crate::store::PAGE_SIZES`]).
    pub fn open_with(path: &Path, page_size: u32) -> Result<Self, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| JournalError::Sqlite {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        }
        let write_conn = connect(path, page_size)?;
        schema::ensure(&write_conn).map_err(sqlite(path))?;
        let reader = connect(path, page_size)?;
        let writer =
            writer::start(path.to_owned(), write_conn).map_err(|e| JournalError::Sqlite {
                path: path.to_owned(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            path: path.to_owned(),
            writer,
            reader: Mutex::new(reader),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, cmd: Cmd) {
        if let Err(mpsc::SendError(cmd)) = self.writer.send(cmd) {
            cmd.fail(JournalError::Stopped(self.path.clone()));
        }
    }

    /// Append events and their runs; `reply` is called once they are durable.
    pub fn append(&self, events: Vec<NewEvent>, reply: Reply<Vec<Appended>>) {
        self.send(Cmd::Append(events, reply));
    }

    /// Record attempts; `reply` is called once they are durable.
    pub fn finish(&self, attempts: Vec<Attempt>, reply: Reply<()>) {
        self.send(Cmd::Finish(attempts, reply));
    }

    /// Replay finished `runs` (dead-lettered or succeeded): each becomes
    /// `replayed` and a new run of the same event and plugin is queued, with
    /// a retry budget of its own and the same sent ledger. Replies with the
    /// pairs replayed; a run still waiting, or already replayed, is skipped.
    pub fn replay(&self, runs: Vec<i64>, reply: Reply<Vec<Replayed>>) {
        self.send(Cmd::Replay(runs, reply));
    }

    /// Delete finished runs, their logs and events with no run left, older
    /// than `before_ms`. Replies with (events, runs) deleted.
    pub fn prune(&self, before_ms: i64, reply: Reply<(u64, u64)>) {
        self.send(Cmd::Prune(before_ms, reply));
    }

    /// Record what a host-mediated send returned, keyed by (event, plugin,
    /// call index).
    pub fn record_sent(
        &self,
        entry: read::SentKey,
        kind: String,
        result: String,
        reply: Reply<()>,
    ) {
        self.send(Cmd::Sent(entry, kind, result, reply));
    }

    /// Wait for a write: the blocking form of the calls above.
    pub fn wait<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Self, Reply<T>),
    ) -> Result<T, JournalError> {
        let (tx, rx) = mpsc::sync_channel(1);
        call(
            self,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(JournalError::Stopped(self.path.clone())))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(sqlite(&self.path))
    }
}

pub use read::SentKey;

#[cfg(test)]
mod tests;
