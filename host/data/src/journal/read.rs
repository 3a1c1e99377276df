//! Reading the journal: due runs for the dispatcher, listings for the API
//! and the CLI, one run in full, counts for metrics, the sent ledger.

use std::collections::HashSet;

use rusqlite::{params, types::Value, OptionalExtension, Row};
use serde::Serialize;

use super::schema::parse_body;
use super::{DueRun, Journal, JournalError, LogLine, RunStatus, MAX_PAGE};
use crate::event::Event;

/// A run as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub event_id: String,
    /// The trigger of its event (empty once the event was pruned).
    pub trigger: String,
    pub plugin: String,
    pub status: String,
    pub attempts: u32,
    pub created_ms: i64,
    pub next_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// The run this one replays, when it is a replay.
    pub replay_of: Option<i64>,
}

/// An event as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub trigger: String,
    pub occurred_at: String,
    pub accepted_ms: i64,
    pub origin: String,
}

/// One entry of the sent ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentEntry {
    pub call: u32,
    pub kind: String,
    pub result: String,
    pub at_ms: i64,
}

/// The key of a sent-ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentKey {
    pub event_id: String,
    pub plugin: String,
    /// The n-th host-mediated send of the run (0-based), across attempts.
    pub call: u32,
}

/// Totals in the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub runs_by_status: Vec<(String, u64)>,
    pub events_by_trigger: Vec<(String, u64)>,
}

/// One finished attempt of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    /// 1-based.
    pub attempt: u32,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// `succeeded`, `failed, retrying` or `failed, dead-lettered`.
    pub outcome: String,
    pub error: Option<String>,
}

/// A run with its attempts, log lines (by attempt), sent-ledger entries and
/// the event it handled (its JSON body, while the event is kept).
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRow,
    /// Every finished attempt, oldest first (`attempts` is their count).
    pub history: Vec<AttemptRow>,
    pub logs: Vec<(u32, LogLine)>,
    /// The sent ledger of its event and plugin (before its replay, if any).
    pub sent: Vec<SentEntry>,
    /// Status reports, by attempt.
    pub reports: Vec<(u32, super::Report)>,
    /// Writes to writable entities by its event and plugin (at most
    /// [`MAX_WRITES_SHOWN`]).
    pub writes: Vec<crate::store::WriteRecord>,
    pub event: Option<serde_json::Value>,
    /// The run that replays this one, once it is replayed.
    pub replayed_by: Option<i64>,
}

/// Which runs to list: all filters optional; newest first, `before` pages.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub plugin: Option<String>,
    pub event: Option<String>,
    /// Only runs of events of this trigger.
    pub trigger: Option<String>,
    /// Only runs with an id below this (the next page).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Which events to list; newest first, `before` pages.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub trigger: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// Most writes one run's detail lists.
pub const MAX_WRITES_SHOWN: u32 = 1_000;

const RUN_COLUMNS: &str = "r.id, r.event_id, COALESCE((SELECT kind FROM _tf_events e WHERE e.id = r.event_id), ''), r.plugin, r.status, r.attempts, r.created_ms, r.next_ms, r.started_ms, r.finished_ms, r.duration_ms, r.error, r.replay_of";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        trigger: r.get(2)?,
        plugin: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        created_ms: r.get(6)?,
        next_ms: r.get(7)?,
        started_ms: r.get(8)?,
        finished_ms: r.get(9)?,
        duration_ms: r.get(10)?,
        error: r.get(11)?,
        replay_of: r.get(12)?,
    })
}

fn limit(n: u32) -> i64 {
    i64::from(if n == 0 { 100 } else { n.min(MAX_PAGE) })
}

impl Journal {
    /// Runs of `plugin` due by `now_ms`, oldest first, skipping `busy` (runs
    /// already being attempted), at most `max`.
    pub fn due(
        &self,
        plugin: &str,
        now_ms: i64,
        max: usize,
        busy: &HashSet<i64>,
    ) -> Result<Vec<DueRun>, JournalError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Runs in `busy` may still read as waiting: fetch enough ids (from
        // the covering index alone) to skip them, then read only those taken.
        let fetch = i64::try_from(max + busy.len()).unwrap_or(i64::MAX);
        self.read(|c| {
            let mut ids = c.prepare_cached(
                "SELECT id FROM _tf_runs
                 WHERE plugin = ?1 AND status IN ('queued', 'retrying') AND next_ms <= ?2
                 ORDER BY next_ms, id LIMIT ?3",
            )?;
            let chosen: Vec<i64> = ids
                .query_map(params![plugin, now_ms, fetch], |r| r.get(0))?
                .filter(|id| id.as_ref().map_or(true, |id| !busy.contains(id)))
                .take(max)
                .collect::<rusqlite::Result<_>>()?;
            let mut one = c.prepare_cached(
                "SELECT r.attempts, r.budget_from, e.body, MAX(e.accepted_ms, r.created_ms) FROM _tf_runs r
                 JOIN _tf_events e ON e.id = r.event_id WHERE r.id = ?1",
            )?;
            let mut out = Vec::with_capacity(chosen.len());
            for run in chosen {
                let (attempts, budget_from, body, accepted_ms) = one.query_row([run], |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?;
                let Some(event) = parse_body(&body) else {
                    tracing::error!(
                        run,
                        "journal: event body of run {run} does not parse; skipped"
                    );
                    continue;
                };
                out.push(DueRun {
                    run,
                    plugin: plugin.to_owned(),
                    attempts,
                    budget_from,
                    accepted_ms,
                    event,
                });
            }
            Ok(out)
        })
    }

    /// The earliest time a waiting run of `plugin` falls due, if any.
    pub fn next_due(&self, plugin: &str) -> Result<Option<i64>, JournalError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT MIN(next_ms) FROM _tf_runs WHERE plugin = ?1 AND status IN ('queued', 'retrying')",
            )?
            .query_row([plugin], |r| r.get(0))
        })
    }

    /// Runs matching `f`, newest first.
    pub fn runs(&self, f: &RunFilter) -> Result<Vec<RunRow>, JournalError> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM _tf_runs r WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(s) = f.status {
            sql.push_str(" AND r.status = ?");
            args.push(Value::Text(s.as_str().into()));
        }
        if let Some(p) = &f.plugin {
            sql.push_str(" AND r.plugin = ?");
            args.push(Value::Text(p.clone()));
        }
        if let Some(e) = &f.event {
            sql.push_str(" AND r.event_id = ?");
            args.push(Value::Text(e.clone()));
        }
        if let Some(t) = &f.trigger {
            sql.push_str(" AND r.event_id IN (SELECT id FROM _tf_events WHERE kind = ?)");
            args.push(Value::Text(t.clone()));
        }
        if let Some(b) = f.before {
            sql.push_str(" AND r.id < ?");
            args.push(Value::Integer(b));
        }
        sql.push_str(" ORDER BY r.id DESC LIMIT ?");
        args.push(Value::Integer(limit(f.limit)));
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), run_row)?;
            rows.collect()
        })
    }

    /// One run with its logs and sent-ledger entries.
    pub fn run(&self, id: i64) -> Result<Option<RunDetail>, JournalError> {
        self.read(|c| {
            let Some(run) = c
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM _tf_runs r WHERE r.id = ?1"),
                    [id],
                    run_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT attempt, level, source, text FROM _tf_run_logs WHERE run_id = ?1 ORDER BY attempt, n",
            )?;
            let logs = stmt
                .query_map([id], |r| {
                    Ok((
                        r.get(0)?,
                        LogLine {
                            level: r.get(1)?,
                            source: r.get(2)?,
                            text: r.get(3)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            // A run is replayed at most once. The ledger is per (event,
            // plugin), shared by a run and its replay: a replayed run shows
            // what was sent before its replay.
            let replay: Option<(i64, i64)> = c
                .prepare_cached("SELECT id, created_ms FROM _tf_runs WHERE replay_of = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let mut stmt = c.prepare_cached(
                "SELECT call, kind, result, at_ms FROM _tf_sent WHERE event_id = ?1 AND plugin = ?2
                 AND at_ms < ?3 ORDER BY call",
            )?;
            let sent = stmt
                .query_map(params![run.event_id, run.plugin, replay.map_or(i64::MAX, |(_, at)| at)], |r| {
                    Ok(SentEntry {
                        call: r.get(0)?,
                        kind: r.get(1)?,
                        result: r.get(2)?,
                        at_ms: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare_cached(
                "SELECT attempt, started_ms, duration_ms, outcome, error FROM _tf_run_attempts
                 WHERE run_id = ?1 ORDER BY attempt",
            )?;
            let history = stmt
                .query_map([id], |r| {
                    Ok(AttemptRow {
                        attempt: r.get(0)?,
                        started_ms: r.get(1)?,
                        duration_ms: r.get(2)?,
                        outcome: r.get(3)?,
                        error: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare_cached(
                "SELECT attempt, level, message, details, at_ms FROM _tf_run_reports
                 WHERE run_id = ?1 ORDER BY attempt, n",
            )?;
            let reports = stmt
                .query_map([id], |r| {
                    Ok((
                        r.get(0)?,
                        super::Report {
                            level: r.get(1)?,
                            message: r.get(2)?,
                            details: r.get(3)?,
                            at_ms: r.get(4)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let writes =
                crate::store::writes_of(c, &run.event_id, &run.plugin, MAX_WRITES_SHOWN)?;
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM _tf_events WHERE id = ?1")?
                .query_row([&run.event_id], |r| r.get(0))
                .optional()?;
            let event = body.and_then(|b| serde_json::from_str(&b).ok());
            Ok(Some(RunDetail {
                run,
                history,
                logs,
                sent,
                reports,
                writes,
                event,
                replayed_by: replay.map(|(by, _)| by),
            }))
        })
    }

    /// Events matching `f`, newest first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<EventRow>, JournalError> {
        let mut sql =
            "SELECT seq, id, kind, occurred_at, accepted_ms, origin FROM _tf_events WHERE 1 = 1"
                .to_owned();
        let mut args: Vec<Value> = Vec::new();
        if let Some(t) = &f.trigger {
            sql.push_str(" AND kind = ?");
            args.push(Value::Text(t.clone()));
        }
        if let Some(b) = f.before {
            sql.push_str(" AND seq < ?");
            args.push(Value::Integer(b));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        args.push(Value::Integer(limit(f.limit)));
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok(EventRow {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    trigger: r.get(2)?,
                    occurred_at: r.get(3)?,
                    accepted_ms: r.get(4)?,
                    origin: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Whole events past `seq`, oldest first, at most `limit` (capped at
    /// [`MAX_PAGE`]): what a cluster's refresher forwards from its journal.
    /// An event whose body no longer parses is skipped.
    pub fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<(i64, Event)>, JournalError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, body FROM _tf_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![seq, limit.clamp(1, MAX_PAGE)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, body) = row?;
                if let Some(event) = parse_body(&body) {
                    out.push((seq, event));
                }
            }
            Ok(out)
        })
    }

    /// Runs by status, and events by trigger (for metrics).
    pub fn counts(&self) -> Result<Counts, JournalError> {
        self.read(|c| {
            let pairs = |sql: &str| -> rusqlite::Result<Vec<(String, u64)>> {
                let mut stmt = c.prepare_cached(sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            };
            Ok(Counts {
                runs_by_status: pairs("SELECT status, COUNT(*) FROM _tf_runs GROUP BY status")?,
                events_by_trigger: pairs("SELECT kind, COUNT(*) FROM _tf_events GROUP BY kind")?,
            })
        })
    }

    /// The recorded result of a host-mediated send, if there is one.
    pub fn sent(&self, key: &SentKey) -> Result<Option<String>, JournalError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT result FROM _tf_sent WHERE event_id = ?1 AND plugin = ?2 AND call = ?3",
            )?
            .query_row(params![key.event_id, key.plugin, key.call], |r| r.get(0))
            .optional()
        })
    }
}
