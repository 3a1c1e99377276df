//! What the console draws: each refresh with its stages (`_tf_refreshes`)
//! and each watched segment's or measure's value across refreshes, with the
//! thresholds it crossed (`_tf_insights_history`). Both are bounded.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{EntityDb, StoreError};
use crate::event::StageSummary;

/// Refreshes kept; older ones are deleted as new ones are recorded.
pub const KEPT_REFRESHES: i64 = 1000;
/// Values kept per segment or measure.
pub const KEPT_HISTORY_POINTS: i64 = 500;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _tf_refreshes (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    stages TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _tf_insights_history (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    crossed TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _tf_insights_history_by_name ON _tf_insights_history (kind, name, id);
";

/// One recorded refresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefreshRecord {
    pub id: i64,
    /// `full`, `source:<name>` or `unification`.
    pub scope: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub succeeded: bool,
    pub stages: Vec<StageSummary>,
}

/// A segment's size or a measure's value as of one refresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub at_ms: i64,
    pub value: f64,
    /// Thresholds this value crossed (an event was raised for each).
    pub crossed: Vec<f64>,
}

/// Append a point for (`kind`, `name`) inside the caller's transaction,
/// keeping the newest [`KEPT_HISTORY_POINTS`].
pub(super) fn append_point(
    conn: &Connection,
    kind: &str,
    name: &str,
    value: f64,
    crossed: &[f64],
) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let crossed = serde_json::to_string(crossed).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO _tf_insights_history (kind, name, at_ms, value, crossed) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![kind, name, crate::journal::now_ms(), value, crossed])?;
    conn.prepare_cached(
        "DELETE FROM _tf_insights_history WHERE kind = ?1 AND name = ?2 AND id <=
             (SELECT id FROM _tf_insights_history WHERE kind = ?1 AND name = ?2
              ORDER BY id DESC LIMIT 1 OFFSET ?3)",
    )?
    .execute(params![kind, name, KEPT_HISTORY_POINTS])?;
    Ok(())
}

impl EntityDb {
    /// Record a finished refresh, keeping the newest [`KEPT_REFRESHES`].
    pub fn record_refresh(
        &self,
        scope: &str,
        started_ms: i64,
        duration_ms: u64,
        stages: &[StageSummary],
    ) -> Result<i64, StoreError> {
        let s = self.session();
        s.execute_batch(SCHEMA).map_err(|e| s.error(e))?;
        let succeeded = stages
            .iter()
            .all(|st| st.status == crate::event::StageStatus::Ok);
        let stages = serde_json::to_string(stages).unwrap_or_else(|_| "[]".into());
        s.execute(
            "INSERT INTO _tf_refreshes (scope, started_ms, duration_ms, succeeded, stages) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![scope, started_ms, i64::try_from(duration_ms).unwrap_or(i64::MAX), succeeded, stages],
        )
        .map_err(|e| s.error(e))?;
        let id = s.last_insert_rowid();
        s.execute(
            "DELETE FROM _tf_refreshes WHERE id <= ?1",
            [id - KEPT_REFRESHES],
        )
        .map_err(|e| s.error(e))?;
        Ok(id)
    }

    /// The newest `limit` refreshes, newest first.
    pub fn refreshes(&self, limit: u32) -> Result<Vec<RefreshRecord>, StoreError> {
        let s = self.session();
        s.execute_batch(SCHEMA).map_err(|e| s.error(e))?;
        let mut stmt = s
            .prepare_cached(
                "SELECT id, scope, started_ms, duration_ms, succeeded, stages FROM _tf_refreshes
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| s.error(e))?;
        let rows = stmt
            .query_map([limit], |r| {
                let stages: String = r.get(5)?;
                Ok(RefreshRecord {
                    id: r.get(0)?,
                    scope: r.get(1)?,
                    started_ms: r.get(2)?,
                    duration_ms: r.get(3)?,
                    succeeded: r.get(4)?,
                    stages: serde_json::from_str(&stages).unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| s.error(e))?;
        Ok(rows)
    }

    /// The id of the newest refresh recorded, or 0 (one index seek).
    pub fn latest_refresh(&self) -> Result<i64, StoreError> {
        let s = self.session();
        s.execute_batch(SCHEMA).map_err(|e| s.error(e))?;
        s.query_row("SELECT COALESCE(MAX(id), 0) FROM _tf_refreshes", [], |r| {
            r.get(0)
        })
        .map_err(|e| s.error(e))
    }

    /// The values of (`kind`, `name`) across refreshes, oldest first.
    pub fn history(&self, kind: &str, name: &str) -> Result<Vec<HistoryPoint>, StoreError> {
        let s = self.session();
        s.execute_batch(SCHEMA).map_err(|e| s.error(e))?;
        let mut stmt = s
            .prepare_cached(
                "SELECT at_ms, value, crossed FROM _tf_insights_history
                 WHERE kind = ?1 AND name = ?2 ORDER BY id",
            )
            .map_err(|e| s.error(e))?;
        let rows = stmt
            .query_map(params![kind, name], |r| {
                let crossed: String = r.get(2)?;
                Ok(HistoryPoint {
                    at_ms: r.get(0)?,
                    value: r.get(1)?,
                    crossed: serde_json::from_str(&crossed).unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| s.error(e))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{StageStatus, StageSummary};
    use crate::store::{EntityDb, PageLimits};

    #[test]
    fn refreshes_and_points_are_kept_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        let stage = StageSummary {
            name: "crm".into(),
            status: StageStatus::Failed,
            rows: 3,
            duration_ms: 12,
            detail: Some("line 4: bad".into()),
        };
        store
            .record_refresh("full", 1, 20, std::slice::from_ref(&stage))
            .unwrap();
        let got = store.refreshes(10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(store.latest_refresh().unwrap(), got[0].id);
        assert!(!got[0].succeeded);
        assert_eq!(got[0].stages, [stage]);

        for i in 0..(super::KEPT_HISTORY_POINTS + 5) {
            let crossed: Vec<f64> = if i == super::KEPT_HISTORY_POINTS + 4 {
                vec![2.5]
            } else {
                vec![]
            };
            store
                .record_watched_value_with_events("measure", "m", i as f64, |_| {
                    (Vec::new(), crossed)
                })
                .unwrap();
        }
        let points = store.history("measure", "m").unwrap();
        assert_eq!(points.len() as i64, super::KEPT_HISTORY_POINTS);
        let last = points.last().unwrap();
        assert_eq!(last.value, (super::KEPT_HISTORY_POINTS + 4) as f64);
        assert_eq!(last.crossed, [2.5]);
        assert!(store.history("segment", "m").unwrap().is_empty());
    }
}
