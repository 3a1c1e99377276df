//! The engine's metadata tables: named counters (`_tf_insights_meta`), named
//! texts (`_tf_insights_notes`) and
//! the last value of each watched segment or measure (`_tf_insights_values`).

use rusqlite::{params, OptionalExtension};

use super::{EntityDb, StoreError};
use crate::journal::{self, NewEvent};

pub(super) const COUNTERS: &str =
    "CREATE TABLE IF NOT EXISTS _tf_insights_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)";

const NOTES: &str =
    "CREATE TABLE IF NOT EXISTS _tf_insights_notes (name TEXT PRIMARY KEY, value TEXT NOT NULL)";

const VALUES: &str = "CREATE TABLE IF NOT EXISTS _tf_insights_values (
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     value REAL NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (kind, name)
 )";

impl EntityDb {
    /// The counter `name`, or `None` before it was first saved.
    pub fn counter(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let s = self.session();
        s.execute_batch(COUNTERS).map_err(|e| s.error(e))?;
        let n: Option<i64> = s
            .query_row(
                "SELECT value FROM _tf_insights_meta WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| s.error(e))?;
        // Stored as SQLite's signed 64 bits: every u64 round-trips.
        Ok(n.map(|n| n as u64))
    }

    /// Save the counter `name`.
    pub fn set_counter(&self, name: &str, value: u64) -> Result<(), StoreError> {
        let s = self.session();
        s.execute_batch(COUNTERS).map_err(|e| s.error(e))?;
        s.execute(
            "INSERT INTO _tf_insights_meta (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value as i64],
        )
        .map_err(|e| s.error(e))?;
        Ok(())
    }

    /// The text saved as `name` (see [`EntityDb::set_note`]), if any.
    pub fn note(&self, name: &str) -> Result<Option<String>, StoreError> {
        let s = self.session();
        s.execute_batch(NOTES).map_err(|e| s.error(e))?;
        s.query_row(
            "SELECT value FROM _tf_insights_notes WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| s.error(e))
    }

    /// Save a text as `name`, such as what a source's last import saw.
    pub fn set_note(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let s = self.session();
        s.execute_batch(NOTES).map_err(|e| s.error(e))?;
        s.execute(
            "INSERT INTO _tf_insights_notes (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )
        .map_err(|e| s.error(e))?;
        Ok(())
    }

    /// The last value recorded for (`kind`, `name`), if any.
    pub fn watched_value(&self, kind: &str, name: &str) -> Result<Option<f64>, StoreError> {
        let s = self.session();
        s.execute_batch(VALUES).map_err(|e| s.error(e))?;
        s.query_row(
            "SELECT value FROM _tf_insights_values WHERE kind = ?1 AND name = ?2",
            params![kind, name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| s.error(e))
    }

    /// Record the value of (`kind`, `name`) as of now.
    pub fn record_watched_value(
        &self,
        kind: &str,
        name: &str,
        value: f64,
    ) -> Result<(), StoreError> {
        let s = self.session();
        s.execute_batch(VALUES).map_err(|e| s.error(e))?;
        s.execute(
            "INSERT INTO _tf_insights_values (kind, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(kind, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![kind, name, value, crate::event::now_rfc3339()],
        )
        .map_err(|e| s.error(e))?;
        Ok(())
    }

    /// In one durable transaction: read the last value of (`kind`, `name`),
    /// let `events` decide what it raised (and which thresholds it crossed),
    /// record `value` and its history point, and append those events with
    /// their runs to the journal. A crash can then neither drop nor invent a
    /// crossing. Returns the events appended.
    pub fn record_watched_value_with_events(
        &self,
        kind: &str,
        name: &str,
        value: f64,
        events: impl FnOnce(f64) -> (Vec<NewEvent>, Vec<f64>),
    ) -> Result<Vec<NewEvent>, StoreError> {
        let mut s = self.session();
        s.execute_batch(VALUES).map_err(|e| s.error(e))?;
        journal::schema::ensure(&s).map_err(|e| s.error(e))?;
        let tx = s.durable_transaction()?;
        let previous: f64 = tx
            .query_row(
                "SELECT value FROM _tf_insights_values WHERE kind = ?1 AND name = ?2",
                params![kind, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .unwrap_or(0.0);
        let (raised, crossed) = events(previous);
        tx.execute(
            "INSERT INTO _tf_insights_values (kind, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(kind, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![kind, name, value, crate::event::now_rfc3339()],
        )
        .map_err(|e| self.sql(e))?;
        super::history::append_point(&tx, kind, name, value, &crossed).map_err(|e| self.sql(e))?;
        journal::append_in(&tx, &raised).map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(raised)
    }

    /// Append events with their runs to the journal, durably; with `mark`,
    /// set that counter in the same transaction (what was journaled).
    pub fn append_events(
        &self,
        events: &[NewEvent],
        mark: Option<(&str, u64)>,
    ) -> Result<(), StoreError> {
        let mut s = self.session();
        journal::schema::ensure(&s).map_err(|e| s.error(e))?;
        s.execute_batch(COUNTERS).map_err(|e| s.error(e))?;
        let tx = s.durable_transaction()?;
        journal::append_in(&tx, events).map_err(|e| self.sql(e))?;
        if let Some((name, value)) = mark {
            tx.execute(
                "INSERT INTO _tf_insights_meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, value as i64],
            )
            .map_err(|e| self.sql(e))?;
        }
        tx.commit().map_err(|e| self.sql(e))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{EntityDb, PageLimits};

    #[test]
    fn counters_round_trip_every_u64() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        assert_eq!(store.counter("c").unwrap(), None);
        for v in [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            store.set_counter("c", v).unwrap();
            assert_eq!(store.counter("c").unwrap(), Some(v));
        }
    }
}
