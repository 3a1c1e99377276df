//! The journal's tables and the statements every writer shares, so an event
//! can be appended inside any transaction on the store file (the insights
//! engine's, with the threshold value that raised it, or the group-commit
//! writer's).

use rusqlite::{params, Connection, OptionalExtension};

use super::{Appended, NewEvent, RunStatus};
use crate::event::{Event, TriggerKind};

/// Create the journal's tables if they are missing.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _tf_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    accepted_ms INTEGER NOT NULL,
    origin TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _tf_runs (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    budget_from INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    next_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    duration_ms INTEGER,
    error TEXT,
    replay_of INTEGER
);
CREATE INDEX IF NOT EXISTS _tf_runs_by_event ON _tf_runs (event_id, plugin);
CREATE INDEX IF NOT EXISTS _tf_runs_replays ON _tf_runs (replay_of) WHERE replay_of IS NOT NULL;
DROP INDEX IF EXISTS _tf_runs_due;
CREATE INDEX IF NOT EXISTS _tf_runs_waiting ON _tf_runs (plugin, next_ms, id)
    WHERE status IN ('queued', 'retrying');
CREATE INDEX IF NOT EXISTS _tf_runs_status ON _tf_runs (status, id);
CREATE TABLE IF NOT EXISTS _tf_run_logs (
    run_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    n INTEGER NOT NULL,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _tf_run_attempts (
    run_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, attempt)
);
CREATE TABLE IF NOT EXISTS _tf_run_reports (
    run_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    n INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, attempt, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _tf_sent (
    event_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    call INTEGER NOT NULL,
    kind TEXT NOT NULL,
    result TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (event_id, plugin, call)
) WITHOUT ROWID;
";

/// Whether `_tf_runs` is the older table, unique per (event, plugin).
fn runs_unique_per_event(conn: &Connection) -> rusqlite::Result<bool> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '_tf_runs'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(sql.is_some_and(|s| s.contains("UNIQUE (event_id, plugin)")))
}

/// Bring a journal written by an older version up to [`SCHEMA`]: runs were
/// unique per (event, plugin) until a replay became a new run of its own
/// (`replay_of`). The old table is renamed, [`SCHEMA`] creates the new one
/// with its indexes, and the rows are copied over, in one transaction
/// (checked again inside it, so two processes opening the file at once
/// migrate it once).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    if !runs_unique_per_event(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let moved = (|| {
        if !runs_unique_per_event(conn)? {
            return Ok(());
        }
        conn.execute_batch(
            "ALTER TABLE _tf_runs RENAME TO _tf_runs_unique;
             DROP INDEX IF EXISTS _tf_runs_waiting;
             DROP INDEX IF EXISTS _tf_runs_status;",
        )?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(
            "INSERT INTO _tf_runs (id, event_id, plugin, status, attempts, budget_from, created_ms,
                                   next_ms, started_ms, finished_ms, duration_ms, error)
                 SELECT id, event_id, plugin, status, attempts, budget_from, created_ms,
                        next_ms, started_ms, finished_ms, duration_ms, error FROM _tf_runs_unique;
             DROP TABLE _tf_runs_unique;",
        )
    })();
    match moved {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Create the journal's tables, migrating older ones first.
pub fn ensure(conn: &Connection) -> rusqlite::Result<()> {
    migrate(conn)?;
    conn.execute_batch(SCHEMA)?;
    crate::store::ensure_writes_schema(conn)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// Append `events` and a queued run for each of their plugins, inside the
/// caller's transaction. An event id already in the log is not appended
/// again and gets no new runs (`duplicate`), so a retried intake is safe.
pub fn append_in(conn: &Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<Appended>> {
    let now = now_ms();
    let mut out = Vec::with_capacity(events.len());
    let mut find = conn.prepare_cached("SELECT seq FROM _tf_events WHERE id = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO _tf_events (id, kind, occurred_at, accepted_ms, origin, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
    )?;
    let mut run = conn.prepare_cached(
        "INSERT INTO _tf_runs (event_id, plugin, status, created_ms, next_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in events {
        let id = &e.event.id;
        let body = serde_json::to_string(&e.event)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        let inserted = insert.execute(params![
            id,
            TriggerKind::of(&e.event.trigger).as_str(),
            e.event.occurred_at,
            now,
            e.origin,
            body
        ])?;
        if inserted == 0 {
            out.push(Appended {
                seq: find.query_row([id], |r| r.get(0))?,
                id: id.clone(),
                runs: Vec::new(),
                duplicate: true,
            });
            continue;
        }
        let seq = conn.last_insert_rowid();
        let mut runs = Vec::with_capacity(e.plugins.len());
        for p in &e.plugins {
            run.execute(params![
                id,
                p,
                RunStatus::Queued.as_str(),
                now,
                now.saturating_add(e.hold_ms.max(0))
            ])?;
            runs.push(conn.last_insert_rowid());
        }
        out.push(Appended {
            seq,
            id: id.clone(),
            runs,
            duplicate: false,
        });
    }
    Ok(out)
}

/// Parse an event body as stored.
pub fn parse_body(body: &str) -> Option<Event> {
    serde_json::from_str(body).ok()
}
