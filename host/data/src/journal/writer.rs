//! The journal's single writer: takes every command that has queued up (at
//! most [`MAX_GROUP_COMMIT`]), applies each under its own savepoint, commits
//! them in one transaction, then answers each.

use std::path::PathBuf;
use std::sync::mpsc;

use rusqlite::{params, Connection, OptionalExtension};

use super::read::SentKey;
use super::schema::{append_in, now_ms};
use super::{
    Appended, Attempt, JournalError, NewEvent, Replayed, Reply, RunStatus, Verdict,
    MAX_GROUP_COMMIT, MAX_LOG_LINES_PER_ATTEMPT, MAX_STORED_TEXT_BYTES,
};
use crate::text::truncate;

pub(super) enum Cmd {
    Append(Vec<NewEvent>, Reply<Vec<Appended>>),
    Finish(Vec<Attempt>, Reply<()>),
    Replay(Vec<i64>, Reply<Vec<Replayed>>),
    Prune(i64, Reply<(u64, u64)>),
    Sent(SentKey, String, String, Reply<()>),
}

/// A command's answer, held until the transaction commits.
enum Done {
    Append(Reply<Vec<Appended>>, rusqlite::Result<Vec<Appended>>),
    Finish(Reply<()>, rusqlite::Result<()>),
    Replay(Reply<Vec<Replayed>>, rusqlite::Result<Vec<Replayed>>),
    Prune(Reply<(u64, u64)>, rusqlite::Result<(u64, u64)>),
    Sent(Reply<()>, rusqlite::Result<()>),
}

impl Cmd {
    pub(super) fn fail(self, e: JournalError) {
        match self {
            Cmd::Append(_, r) => r(Err(e)),
            Cmd::Finish(_, r) => r(Err(e)),
            Cmd::Replay(_, r) => r(Err(e)),
            Cmd::Prune(_, r) => r(Err(e)),
            Cmd::Sent(_, _, _, r) => r(Err(e)),
        }
    }

    fn apply(self, conn: &Connection) -> Done {
        match self {
            Cmd::Append(events, r) => Done::Append(r, guarded(conn, |c| append_in(c, &events))),
            Cmd::Finish(attempts, r) => Done::Finish(
                r,
                guarded(conn, |c| attempts.iter().try_for_each(|a| finish(c, a))),
            ),
            Cmd::Replay(runs, r) => Done::Replay(r, guarded(conn, |c| replay(c, &runs))),
            Cmd::Prune(before, r) => Done::Prune(r, guarded(conn, |c| prune(c, before))),
            Cmd::Sent(key, kind, result, r) => Done::Sent(
                r,
                guarded(conn, |c| {
                    c.prepare_cached(
                        "INSERT OR IGNORE INTO _tf_sent (event_id, plugin, call, kind, result, at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        key.event_id,
                        key.plugin,
                        key.call,
                        kind,
                        result,
                        now_ms()
                    ])
                    .map(drop)
                }),
            ),
        }
    }
}

impl Done {
    fn answer(self, path: &std::path::Path, commit: &Result<(), String>) {
        let err = |m: String| JournalError::Sqlite {
            path: path.to_owned(),
            message: m,
        };
        fn settle<T>(
            r: rusqlite::Result<T>,
            commit: &Result<(), String>,
            err: impl Fn(String) -> JournalError,
        ) -> Result<T, JournalError> {
            match (r, commit) {
                (Ok(v), Ok(())) => Ok(v),
                (Err(e), _) => Err(err(e.to_string())),
                (_, Err(m)) => Err(err(format!("commit failed: {m}"))),
            }
        }
        match self {
            Done::Append(r, v) => r(settle(v, commit, err)),
            Done::Finish(r, v) => r(settle(v, commit, err)),
            Done::Replay(r, v) => r(settle(v, commit, err)),
            Done::Prune(r, v) => r(settle(v, commit, err)),
            Done::Sent(r, v) => r(settle(v, commit, err)),
        }
    }
}

/// Run `f` under a savepoint: its failure undoes only its own writes.
fn guarded<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT cmd")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE cmd")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
            Err(e)
        }
    }
}

fn finish(conn: &Connection, a: &Attempt) -> rusqlite::Result<()> {
    let (status, next) = match a.verdict {
        Verdict::Succeeded => (RunStatus::Succeeded, None),
        Verdict::Retry { at_ms } => (RunStatus::Retrying, Some(at_ms)),
        Verdict::Dead => (RunStatus::Dead, None),
    };
    let finished = now_ms();
    let attempt: i64 = conn
        .prepare_cached(
            "UPDATE _tf_runs SET status = ?2, attempts = attempts + 1, next_ms = COALESCE(?3, next_ms),
                 started_ms = ?4, finished_ms = ?5, duration_ms = ?6, error = ?7
             WHERE id = ?1 RETURNING attempts",
        )?
        .query_row(params![
        a.run,
        status.as_str(),
        next,
        a.started_ms,
        finished,
        i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
        a.error.as_deref().map(|e| truncate(e, MAX_STORED_TEXT_BYTES)),
        ],
        |r| r.get(0),
    )?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO _tf_run_attempts (run_id, attempt, started_ms, duration_ms, outcome, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        a.run,
        attempt,
        a.started_ms,
        i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
        match a.verdict {
            Verdict::Succeeded => "succeeded",
            Verdict::Retry { .. } => "failed, retrying",
            Verdict::Dead => "failed, dead-lettered",
        },
        a.error.as_deref().map(|e| truncate(e, MAX_STORED_TEXT_BYTES)),
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO _tf_run_logs (run_id, attempt, n, level, source, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (n, line) in a.logs.iter().take(MAX_LOG_LINES_PER_ATTEMPT).enumerate() {
        insert.execute(params![
            a.run,
            attempt,
            n as i64,
            line.level,
            line.source,
            truncate(&line.text, MAX_STORED_TEXT_BYTES)
        ])?;
    }
    let mut report = conn.prepare_cached(
        "INSERT INTO _tf_run_reports (run_id, attempt, n, level, message, details, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (n, r) in a.reports.iter().enumerate() {
        report.execute(params![
            a.run,
            attempt,
            n as i64,
            r.level,
            truncate(&r.message, MAX_STORED_TEXT_BYTES),
            r.details,
            r.at_ms
        ])?;
    }
    if a.logs.len() > MAX_LOG_LINES_PER_ATTEMPT {
        insert.execute(params![
            a.run,
            attempt,
            MAX_LOG_LINES_PER_ATTEMPT as i64,
            "warn",
            "host",
            format!(
                "[{} more log lines not kept]",
                a.logs.len() - MAX_LOG_LINES_PER_ATTEMPT
            )
        ])?;
    }
    Ok(())
}

fn replay(conn: &Connection, runs: &[i64]) -> rusqlite::Result<Vec<Replayed>> {
    let mut retire = conn.prepare_cached(
        "UPDATE _tf_runs SET status = 'replayed'
         WHERE id = ?1 AND status IN ('dead', 'succeeded') RETURNING event_id, plugin",
    )?;
    let mut queue = conn.prepare_cached(
        "INSERT INTO _tf_runs (event_id, plugin, status, created_ms, next_ms, replay_of)
         VALUES (?1, ?2, 'queued', ?3, ?3, ?4)",
    )?;
    let now = now_ms();
    let mut done = Vec::new();
    for &id in runs {
        let retired: Option<(String, String)> = retire
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((event, plugin)) = retired {
            queue.execute(params![event, plugin, now, id])?;
            done.push(Replayed {
                run: id,
                new_run: conn.last_insert_rowid(),
            });
        }
    }
    Ok(done)
}

fn prune(conn: &Connection, before: i64) -> rusqlite::Result<(u64, u64)> {
    for table in ["_tf_run_logs", "_tf_run_attempts", "_tf_run_reports"] {
        conn.execute(
            &format!(
                "DELETE FROM {table} WHERE run_id IN
                 (SELECT id FROM _tf_runs WHERE status IN ('succeeded', 'dead', 'replayed') AND finished_ms < ?1)"
            ),
            [before],
        )?;
    }
    let runs = conn.execute(
        "DELETE FROM _tf_runs WHERE status IN ('succeeded', 'dead', 'replayed') AND finished_ms < ?1",
        [before],
    )?;
    let events = conn.execute(
        "DELETE FROM _tf_events WHERE accepted_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM _tf_runs r WHERE r.event_id = _tf_events.id)",
        [before],
    )?;
    conn.execute(
        "DELETE FROM _tf_sent WHERE at_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM _tf_events e WHERE e.id = _tf_sent.event_id)",
        [before],
    )?;
    conn.execute(
        "DELETE FROM _tf_writes WHERE at_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM _tf_events e WHERE e.id = _tf_writes.event_id)",
        [before],
    )?;
    Ok((events as u64, runs as u64))
}

/// Start the writer thread; it ends when every sender is dropped.
pub(super) fn start(path: PathBuf, conn: Connection) -> std::io::Result<mpsc::Sender<Cmd>> {
    let (tx, rx) = mpsc::channel::<Cmd>();
    std::thread::Builder::new()
        .name("triggerfish-journal".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_GROUP_COMMIT {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                commit(&path, &conn, batch);
            }
        })?;
    Ok(tx)
}

fn commit(path: &std::path::Path, conn: &Connection, batch: Vec<Cmd>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = e.to_string();
        for c in batch {
            c.fail(JournalError::Sqlite {
                path: path.to_owned(),
                message: format!("cannot begin a transaction: {e}"),
            });
        }
        return;
    }
    let done: Vec<Done> = batch.into_iter().map(|c| c.apply(conn)).collect();
    let committed = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    if let Err(e) = &committed {
        tracing::error!(journal = %path.display(), "commit failed: {e}");
    }
    for d in done {
        // A caller's reply must not take the writer down with it.
        let answered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.answer(path, &committed)));
        if answered.is_err() {
            tracing::error!(journal = %path.display(), "a reply to the journal's writer panicked");
        }
    }
}
