//! Rows of a live entity added, changed or deleted in place, by key, as a
//! database source's incremental read finds them: one transaction, the keys
//! recorded for unification as a replacement records them, a new
//! generation. A changed row keeps its place (rowid); an added one comes
//! after every other, so the caller adds only keys that sort after the
//! stored ones when row order matters to it.

use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Statement};

use super::{changes, partitions, table_name, valid_identifier, EntityDb, StoreError};

/// What [`Delta::upsert`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// No row had its key: it was added, after every other.
    Added,
    /// The row with its key held other values: they were replaced.
    Changed,
    /// The row with its key held the same values: nothing was written.
    Same,
}

/// How many rows a delta added, changed and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaCounts {
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    /// Rows pushed that were already stored as they are.
    pub same: u64,
}

/// What [`Delta::keep_only`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// This many rows were deleted.
    Deleted(u64),
    /// A key to keep is not stored, or not where its order puts it.
    NotInOrder,
    /// More rows than allowed would have gone.
    TooMany,
}

/// The live rows of an entity being changed; see [`EntityDb::apply_delta`].
pub struct Delta<'t> {
    entity: String,
    path: &'t std::path::Path,
    tx: &'t rusqlite::Transaction<'t>,
    /// The live table and its key column, quoted.
    table: String,
    key: String,
    /// `UPDATE … WHERE key = ? AND NOT (every column IS its new value)`.
    update: Statement<'t>,
    exists: Statement<'t>,
    insert: Statement<'t>,
    note: Statement<'t>,
    generation: i64,
    key_index: usize,
    columns: usize,
    counts: DeltaCounts,
}

impl Delta<'_> {
    /// Store `row` (one value per column, in the entity's order) by its key.
    pub fn upsert(&mut self, row: &[Value]) -> Result<Upserted, StoreError> {
        let row_error = |message: String| StoreError::Row {
            entity: self.entity.clone(),
            row: self.counts.added + self.counts.changed + self.counts.same + 1,
            message,
        };
        if row.len() != self.columns {
            return Err(row_error(format!(
                "{} values for {} columns",
                row.len(),
                self.columns
            )));
        }
        let key = match row.get(self.key_index) {
            Some(Value::Null) | None => return Err(row_error("the key is empty".into())),
            Some(k) => k,
        };
        let sql = sql_error(self.path);
        let mut bound: Vec<&dyn rusqlite::ToSql> = row.iter().map(|v| v as _).collect();
        bound.push(key);
        let done = if self.update.execute(&*bound).map_err(sql)? > 0 {
            self.counts.changed += 1;
            Upserted::Changed
        } else if self.exists.exists([key]).map_err(sql)? {
            self.counts.same += 1;
            return Ok(Upserted::Same);
        } else {
            let values: Vec<&dyn rusqlite::ToSql> = row.iter().map(|v| v as _).collect();
            self.insert.execute(&*values).map_err(sql)?;
            self.counts.added += 1;
            Upserted::Added
        };
        self.note_key(key)?;
        Ok(done)
    }

    /// Record `key` as changed, while the changes stay tracked.
    fn note_key(&mut self, key: &Value) -> Result<(), StoreError> {
        let c = &self.counts;
        if c.added + c.changed + c.deleted <= changes::MAX_TRACKED_CHANGES {
            self.note
                .execute(params![self.entity, self.generation, key])
                .map_err(sql_error(self.path))?;
        }
        Ok(())
    }

    /// Delete every stored row whose key `next` does not yield, given that
    /// `next` yields the keys to keep in stored order (each once, then
    /// `None`), and that at most `most` rows go. Nothing is deleted, and
    /// [`Kept::NotInOrder`] or [`Kept::TooMany`] says why, when the keys
    /// are not the stored ones in their order less some, or more would go.
    pub fn keep_only<E: From<StoreError>>(
        &mut self,
        mut next: impl FnMut() -> Result<Option<Value>, E>,
        most: u64,
    ) -> Result<Kept, E> {
        let sql = sql_error(self.path);
        let mut scan = self
            .tx
            .prepare(&format!(
                "SELECT rowid, {} FROM {} ORDER BY rowid",
                self.key, self.table
            ))
            .map_err(sql)?;
        let mut rows = scan.query([]).map_err(sql)?;
        let mut wanted = next()?;
        let mut gone: Vec<(i64, Value)> = Vec::new();
        while let Some(row) = rows.next().map_err(sql)? {
            let (rowid, key): (i64, Value) = (row.get(0).map_err(sql)?, row.get(1).map_err(sql)?);
            if wanted.as_ref() == Some(&key) {
                wanted = next()?;
            } else if gone.len() as u64 >= most {
                return Ok(Kept::TooMany);
            } else {
                gone.push((rowid, key));
            }
        }
        if wanted.is_some() {
            return Ok(Kept::NotInOrder);
        }
        drop(rows);
        drop(scan);
        let mut delete = self
            .tx
            .prepare(&format!("DELETE FROM {} WHERE rowid = ?1", self.table))
            .map_err(sql)?;
        for (rowid, key) in &gone {
            delete.execute([rowid]).map_err(sql)?;
            self.counts.deleted += 1;
            self.note_key(key)?;
        }
        Ok(Kept::Deleted(gone.len() as u64))
    }

    /// The rows added and changed so far.
    pub fn counts(&self) -> DeltaCounts {
        self.counts
    }
}

/// The store's error for a failed statement on the file at `path`.
fn sql_error(path: &std::path::Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

impl EntityDb {
    /// Add, change or delete rows of the live `entity` in place, as `fill`
    /// asks through [`Delta::upsert`] and [`Delta::keep_only`], in one
    /// transaction, provided its generation
    /// is still `generation` (else nothing is done and an error says so).
    /// When any row was added, changed or deleted, the entity gets a new generation
    /// with the changed keys recorded (as [`EntityDb::replace_entity_with`]
    /// records them) and its partition, if it has one, covers every row
    /// under the new generation; when none was, nothing is written. On an
    /// error from `fill` or the store, nothing changes.
    pub fn apply_delta<E: From<StoreError>>(
        &self,
        entity: &str,
        generation: u64,
        fill: impl FnOnce(&mut Delta<'_>) -> Result<(), E>,
    ) -> Result<DeltaCounts, E> {
        if !valid_identifier(entity) {
            return Err(StoreError::BadName(entity.to_owned(), "entity").into());
        }
        let meta = self.meta(entity)?;
        let declaration = |message: String| StoreError::Declaration {
            entity: entity.to_owned(),
            message,
        };
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let (stored, rows): (i64, i64) = tx
            .query_row(
                "SELECT generation, rows FROM _tf_entities WHERE name = ?1",
                [entity],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| StoreError::UnknownEntity(entity.to_owned()))?;
        if u64::try_from(stored).ok() != Some(generation) {
            return Err(declaration(format!(
                "was replaced while being changed (generation {stored}, expected {generation})"
            ))
            .into());
        }
        tx.execute_batch(partitions::PARTITIONS_SCHEMA)
            .map_err(|e| self.sql(e))?;
        let parts: i64 = tx
            .query_row(
                "SELECT count(*) FROM _tf_partitions WHERE entity = ?1",
                [entity],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        if parts > 1 {
            return Err(declaration(format!(
                "is held in {parts} partitions (files): only an entity held whole can be changed in place"
            ))
            .into());
        }
        changes::create_tables(&tx).map_err(|e| self.sql(e))?;
        let next = stored.saturating_add(1);
        let (table, key) = (table_name(entity), &meta.key);
        let columns = &meta.schema.columns;
        let key_index = columns.iter().position(|(c, _)| c == key).ok_or_else(|| {
            StoreError::KeyNotAColumn {
                entity: entity.to_owned(),
                key: key.clone(),
            }
        })?;
        let n = columns.len();
        let set: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("\"{c}\" = ?{}", i + 1))
            .collect();
        let same: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("\"{c}\" IS ?{}", i + 1))
            .collect();
        let placeholders: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
        let counts = {
            let prepare = |sql: &str| tx.prepare(sql).map_err(|e| self.sql(e));
            let mut delta = Delta {
                entity: entity.to_owned(),
                path: &self.path,
                tx: &tx,
                table: table.clone(),
                key: format!("\"{key}\""),
                update: prepare(&format!(
                    "UPDATE {table} SET {} WHERE \"{key}\" = ?{} AND NOT ({})",
                    set.join(", "),
                    n + 1,
                    same.join(" AND ")
                ))?,
                exists: prepare(&format!("SELECT 1 FROM {table} WHERE \"{key}\" = ?1"))?,
                insert: prepare(&format!(
                    "INSERT INTO {table} VALUES ({})",
                    placeholders.join(", ")
                ))?,
                note: prepare(
                    "INSERT INTO _tf_changes (entity, generation, key) VALUES (?1, ?2, ?3)",
                )?,
                generation: next,
                key_index,
                columns: n,
                counts: DeltaCounts::default(),
            };
            fill(&mut delta)?;
            delta.counts
        };
        let written = counts.added + counts.changed + counts.deleted;
        if written == 0 {
            // Nothing to record: the entity stays at its generation.
            return Ok(counts);
        }
        let tracked = written <= changes::MAX_TRACKED_CHANGES;
        changes::note_set(&tx, entity, next, tracked).map_err(|e| self.sql(e))?;
        let total = u64::try_from(rows)
            .unwrap_or(0)
            .saturating_add(counts.added)
            .saturating_sub(counts.deleted);
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        let now = crate::event::now_rfc3339();
        tx.execute(
            "UPDATE _tf_entities SET generation = ?2, rows = ?3, updated_at = ?4 WHERE name = ?1",
            params![entity, next, total, now],
        )
        .map_err(|e| self.sql(e))?;
        tx.execute(
            "UPDATE _tf_partitions SET id = ?2 || '-' || n, rows = ?3, refreshed_at = ?4
             WHERE entity = ?1",
            params![entity, next, total, now],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        drop(conn);
        self.forget(entity);
        Ok(counts)
    }

    /// The key of `entity`'s last row in stored order (the one an added row
    /// comes after), or `None` when it holds none.
    pub fn last_key(&self, entity: &str) -> Result<Option<Value>, StoreError> {
        let meta = self.meta(entity)?;
        let s = self.session();
        s.query_row(
            &format!(
                "SELECT \"{}\" FROM {} ORDER BY rowid DESC LIMIT 1",
                meta.key,
                meta.table()
            ),
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| s.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::ColumnType;

    fn store() -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        (dir, store)
    }

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("id".into(), ColumnType::String),
            ("score".into(), ColumnType::Decimal),
        ]
    }

    fn row(id: &str, score: Value) -> Vec<Value> {
        vec![Value::Text(id.into()), score]
    }

    fn rows_of(store: &EntityDb) -> Vec<(String, Value)> {
        let s = store.session();
        let mut stmt = s
            .prepare("SELECT id, score FROM \"ent_E\" ORDER BY rowid")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    }

    #[test]
    fn rows_are_changed_in_place_added_last_and_their_keys_recorded() {
        let (_dir, store) = store();
        let first = vec![
            Ok(row("a", Value::Real(1.0))),
            Ok(row("b", Value::Real(2.0))),
        ];
        store.replace_entity("E", "id", &cols(), first).unwrap();
        let g = store.meta("E").unwrap().generation;
        assert_eq!(store.last_key("E").unwrap(), Some(Value::Text("b".into())));

        let counts = store
            .apply_delta("E", g, |d| {
                // An integer where a decimal is stored compares as SQLite does.
                assert_eq!(d.upsert(&row("a", Value::Integer(1)))?, Upserted::Same);
                assert_eq!(d.upsert(&row("b", Value::Real(2.5)))?, Upserted::Changed);
                assert_eq!(d.upsert(&row("c", Value::Null))?, Upserted::Added);
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(
            counts,
            DeltaCounts {
                added: 1,
                changed: 1,
                deleted: 0,
                same: 1
            }
        );
        let meta = store.meta("E").unwrap();
        assert_eq!((meta.generation, meta.rows), (g + 1, 3));
        assert_eq!(
            rows_of(&store),
            [
                ("a".into(), Value::Real(1.0)),
                ("b".into(), Value::Real(2.5)),
                ("c".into(), Value::Null)
            ]
        );
        let s = store.session();
        let mut keys: Vec<String> = s
            .prepare("SELECT key FROM _tf_changes WHERE entity = 'E' AND generation = ?1")
            .unwrap()
            .query_map([g as i64 + 1], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        keys.sort();
        assert_eq!(keys, ["b", "c"]);
        let tracked: bool = s
            .query_row(
                "SELECT tracked FROM _tf_change_sets WHERE entity = 'E' AND generation = ?1",
                [g as i64 + 1],
                |r| r.get(0),
            )
            .unwrap();
        assert!(tracked);
    }

    #[test]
    fn rows_whose_keys_are_not_kept_are_deleted_when_the_kept_ones_come_in_stored_order() {
        let (_dir, store) = store();
        let four = ["a", "b", "c", "d"].map(|k| Ok(row(k, Value::Real(1.0))));
        store.replace_entity("E", "id", &cols(), four).unwrap();
        let g = store.meta("E").unwrap().generation;
        let keys = |ks: &'static [&'static str]| {
            let mut it = ks.iter().map(|k| Value::Text((*k).into()));
            move || Ok::<_, StoreError>(it.next())
        };
        let refused = store
            .apply_delta("E", g, |d| {
                assert_eq!(d.keep_only(keys(&["c", "a"]), 10)?, Kept::NotInOrder);
                assert_eq!(d.keep_only(keys(&["a", "e"]), 10)?, Kept::NotInOrder);
                assert_eq!(d.keep_only(keys(&["a", "b", "c"]), 0)?, Kept::TooMany);
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(refused, DeltaCounts::default());
        assert_eq!(
            store.meta("E").unwrap().generation,
            g,
            "nothing was written"
        );

        let counts = store
            .apply_delta("E", g, |d| {
                assert_eq!(d.keep_only(keys(&["a", "c"]), 2)?, Kept::Deleted(2));
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(counts.deleted, 2);
        assert_eq!(store.meta("E").unwrap().rows, 2);
        let left: Vec<String> = rows_of(&store).into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, ["a", "c"]);
        let mut changed = store.changed_keys("E", g).unwrap().unwrap();
        changed.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(changed, [Value::Text("b".into()), Value::Text("d".into())]);
    }

    #[test]
    fn nothing_is_written_when_nothing_changed_or_the_fill_fails_or_the_entity_moved_on() {
        let (_dir, store) = store();
        store
            .replace_entity("E", "id", &cols(), vec![Ok(row("a", Value::Real(1.0)))])
            .unwrap();
        let g = store.meta("E").unwrap().generation;
        let same = store
            .apply_delta("E", g, |d| d.upsert(&row("a", Value::Real(1.0))).map(drop))
            .unwrap();
        assert_eq!(same.same, 1);
        assert_eq!(store.meta("E").unwrap().generation, g);

        let failed = store.apply_delta("E", g, |d| {
            d.upsert(&row("z", Value::Real(9.0)))?;
            Err(StoreError::UnknownEntity("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(rows_of(&store).len(), 1, "the added row was rolled back");

        let null_key = store
            .apply_delta("E", g, |d| d.upsert(&[Value::Null, Value::Null]).map(drop))
            .unwrap_err();
        assert_eq!(null_key.to_string(), "entity 'E', row 1: the key is empty");
        store
            .apply_delta("E", g, |d| d.upsert(&row("", Value::Null)).map(drop))
            .expect("an empty text is a key");

        let moved = store
            .apply_delta("E", g + 7, |_| Ok::<(), StoreError>(()))
            .unwrap_err();
        assert_eq!(
            moved.to_string(),
            format!(
                "entity 'E': was replaced while being changed (generation {}, expected {})",
                g + 1,
                g + 7
            )
        );
    }
}
