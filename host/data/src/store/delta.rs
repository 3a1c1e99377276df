//! Rows of a live entity added, changed or deleted in place, by key, as a
//! database source's incremental read finds them: one transaction, the keys
//! recorded for unification as a replacement records them, a new
//! generation. A changed row keeps its place (rowid). An added one comes
//! after every other, unless [`Delta::keep_only`] puts it where the key
//! order the caller gives places it: between two stored rows, in the room
//! their rowids leave ([`super::sink::ROW_SPACING`]). A key that is the
//! rowid (an integer) is always in place.

use std::collections::{HashMap, HashSet};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, OptionalExtension, Statement};

use super::sink::ROW_SPACING;
use super::{
    changes, key_is_rowid, partitions, table_name, valid_identifier, EntityDb, StoreError,
};

mod buckets;

pub use buckets::Buckets;

/// What [`Delta::upsert`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// No row had its key: it was added, after every other (until
    /// [`Delta::keep_only`] places it).
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
    /// More rows were added between two stored rows than the rowids
    /// between them leave room for.
    NoRoom,
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
    delete: Statement<'t>,
    note: Statement<'t>,
    generation: i64,
    key_index: usize,
    columns: usize,
    counts: DeltaCounts,
    /// Added rows take explicit rowids, from `next_rowid` on, and may be
    /// placed: the key is not the rowid.
    spaced: bool,
    /// The rowid the next added row takes (when `spaced`).
    next_rowid: i64,
    /// The first rowid an added row took: the stored rows are below it.
    first_added: i64,
    /// Added rows' rowids by key ([`key_bytes`]), when `spaced`.
    added: HashMap<Vec<u8>, i64>,
}

/// Where rows go once [`Delta::keep_only`] has walked the keys.
struct Walked {
    gone: Vec<(i64, Value)>,
    /// (rowid taken when added, rowid in its place).
    moves: Vec<(i64, i64)>,
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
            let mut values: Vec<&dyn rusqlite::ToSql> = row.iter().map(|v| v as _).collect();
            let rowid = self.next_rowid;
            if self.spaced {
                values.insert(0, &rowid);
                self.next_rowid = rowid
                    .checked_add(ROW_SPACING)
                    .ok_or_else(|| row_error("no rowid is left to add a row".into()))?;
            }
            self.insert.execute(&*values).map_err(sql)?;
            if self.spaced {
                self.added.insert(key_bytes(key), rowid);
            }
            self.counts.added += 1;
            Upserted::Added
        };
        self.note_key(key)?;
        Ok(done)
    }

    /// Delete the row keyed `key`; whether one was stored.
    pub fn remove(&mut self, key: &Value) -> Result<bool, StoreError> {
        if self.delete.execute([key]).map_err(sql_error(self.path))? == 0 {
            return Ok(false);
        }
        self.added.remove(&key_bytes(key));
        self.counts.deleted += 1;
        self.note_key(key)?;
        Ok(true)
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

    /// Delete every stored row whose key `next` does not yield, and put
    /// each row added so far in the place its key takes among the others,
    /// given that `next` yields every key to keep, in the order the rows
    /// are to be stored (each once, then `None`), and that at most `most`
    /// rows go. An added key goes between the stored rows around it, its
    /// rowid spread over the room between theirs. Nothing changes, and
    /// [`Kept::NotInOrder`], [`Kept::TooMany`] or [`Kept::NoRoom`] says
    /// why, when the keys are not the stored and added ones in an order
    /// that keeps the stored rows' (less some), or more would go, or the
    /// added rows do not fit between their neighbours.
    pub fn keep_only<E: From<StoreError>>(
        &mut self,
        next: impl FnMut() -> Result<Option<Value>, E>,
        most: u64,
    ) -> Result<Kept, E> {
        let walked = match self.walk(next, most)? {
            Ok(walked) => walked,
            Err(refused) => return Ok(refused),
        };
        self.delete_rows(&walked.gone)?;
        // Into the room the deleted rows may have held.
        self.settle(&walked.moves)?;
        Ok(Kept::Deleted(walked.gone.len() as u64))
    }

    /// Delete the rows `gone` (rowid and key, as [`Delta::absent_in`] gives
    /// them), recording their keys.
    pub fn delete_rows(&mut self, gone: &[(i64, Value)]) -> Result<(), StoreError> {
        let sql = sql_error(self.path);
        let mut delete = self
            .tx
            .prepare(&format!("DELETE FROM {} WHERE rowid = ?1", self.table))
            .map_err(sql)?;
        for (rowid, key) in gone {
            if delete.execute([rowid]).map_err(sql)? > 0 {
                self.added.remove(&key_bytes(key));
                self.counts.deleted += 1;
                self.note_key(key)?;
            }
        }
        Ok(())
    }

    /// Move the added rows to their places, `(from, to)` rowids: each
    /// target lies between two stored rows that stay, below every added
    /// rowid. Every row is then in its place, taken as stored from now on.
    fn settle(&mut self, moves: &[(i64, i64)]) -> Result<(), StoreError> {
        let sql = sql_error(self.path);
        let mut moved = self
            .tx
            .prepare(&format!(
                "UPDATE {} SET rowid = ?2 WHERE rowid = ?1",
                self.table
            ))
            .map_err(sql)?;
        for (from, to) in moves {
            moved.execute([from, to]).map_err(sql)?;
        }
        self.added.clear();
        self.first_added = self.next_rowid;
        Ok(())
    }

    /// [`Delta::keep_only`]'s walk: what goes and what moves, or why not.
    fn walk<E: From<StoreError>>(
        &self,
        mut next: impl FnMut() -> Result<Option<Value>, E>,
        most: u64,
    ) -> Result<Result<Walked, Kept>, E> {
        let sql = sql_error(self.path);
        // The stored rows, without those added (which keep_only places).
        let mut scan = self
            .tx
            .prepare(&format!(
                "SELECT rowid, {} FROM {} WHERE rowid <= ?1 ORDER BY rowid",
                self.key, self.table
            ))
            .map_err(sql)?;
        let last = match self.spaced {
            true => self.first_added - 1,
            false => i64::MAX,
        };
        let mut rows = scan.query([last]).map_err(sql)?;
        let mut walked = Walked {
            gone: Vec::new(),
            moves: Vec::new(),
        };
        // Added rows whose keys came since the last stored row kept.
        let mut pending: Vec<i64> = Vec::new();
        let mut placed: HashSet<i64> = HashSet::new();
        let mut before = 0i64;
        let mut wanted = next()?;
        loop {
            while let Some(&rowid) = wanted.as_ref().and_then(|k| self.added.get(&key_bytes(k))) {
                if !placed.insert(rowid) {
                    return Ok(Err(Kept::NotInOrder));
                }
                pending.push(rowid);
                wanted = next()?;
            }
            let Some(row) = rows.next().map_err(sql)? else {
                break;
            };
            let (rowid, key): (i64, Value) = (row.get(0).map_err(sql)?, row.get(1).map_err(sql)?);
            if wanted.as_ref() == Some(&key) {
                if !place(&mut pending, before, rowid, &mut walked.moves) {
                    return Ok(Err(Kept::NoRoom));
                }
                before = rowid;
                wanted = next()?;
            } else if walked.gone.len() as u64 >= most {
                return Ok(Err(Kept::TooMany));
            } else {
                walked.gone.push((rowid, key));
            }
        }
        // Keys after the last stored row stay where they were added, which
        // must be in their order.
        if wanted.is_some() || placed.len() != self.added.len() || !pending.is_sorted() {
            return Ok(Err(Kept::NotInOrder));
        }
        Ok(Ok(walked))
    }

    /// Put each row added so far between the stored rows around its key in
    /// the store's own order of keys (SQLite's), without reading every key
    /// as [`Delta::keep_only`] does: for keys whose order the caller knows
    /// to be the one the rows are stored in (a uuid's text). Nothing moves,
    /// and [`Kept::NoRoom`] or [`Kept::NotInOrder`] says why, when the
    /// added rows do not fit between their neighbours, or were not added in
    /// that order (or their keys are not text).
    pub fn place_by_key(&mut self) -> Result<Result<(), Kept>, StoreError> {
        let sql = sql_error(self.path);
        let neighbour = |cmp: &str, order: &str| {
            self.tx.prepare(&format!(
                "SELECT rowid FROM {} WHERE {} {cmp} ?1 AND rowid < ?2 ORDER BY {} {order} LIMIT 1",
                self.table, self.key, self.key
            ))
        };
        let mut before = neighbour("<", "DESC").map_err(sql)?;
        let mut after = neighbour(">", "ASC").map_err(sql)?;
        let mut added: Vec<(i64, &Vec<u8>)> = self.added.iter().map(|(k, r)| (*r, k)).collect();
        // Added in key order: each gap's rows come together.
        added.sort_unstable();
        let (mut moves, mut pending) = (Vec::new(), Vec::new());
        let mut gap: Option<(i64, Option<i64>)> = None;
        let mut keys = self
            .tx
            .prepare(&format!(
                "SELECT {} FROM {} WHERE rowid = ?1",
                self.key, self.table
            ))
            .map_err(sql)?;
        let mut last: Option<String> = None;
        for (rowid, _) in added {
            let key: Value = keys.query_row([rowid], |r| r.get(0)).map_err(sql)?;
            // SQLite compares text as bytes, as `str` does.
            match &key {
                Value::Text(k) if last.as_ref().is_none_or(|l| l < k) => last = Some(k.clone()),
                _ => return Ok(Err(Kept::NotInOrder)),
            }
            let find = |stmt: &mut Statement<'_>| {
                stmt.query_row(params![key, self.first_added], |r| r.get::<_, i64>(0))
                    .optional()
            };
            let here = (
                find(&mut before).map_err(sql)?.unwrap_or(0),
                find(&mut after).map_err(sql)?,
            );
            if gap != Some(here) {
                if let Some((low, Some(high))) = gap {
                    if !place(&mut pending, low, high, &mut moves) {
                        return Ok(Err(Kept::NoRoom));
                    }
                }
                gap = Some(here);
            }
            pending.push(rowid);
        }
        // The last gap's rows after every stored one stay where they were
        // added, in their order.
        if let Some((low, Some(high))) = gap {
            if !place(&mut pending, low, high, &mut moves) {
                return Ok(Err(Kept::NoRoom));
            }
        }
        drop((before, after, keys));
        self.settle(&moves)?;
        Ok(Ok(()))
    }

    /// Whether the rows stay in key order whatever is added, the key being
    /// the rowid (an integer); else [`Delta::keep_only`] places added rows.
    pub fn keeps_key_order(&self) -> bool {
        !self.spaced
    }

    /// The rows added and changed so far.
    pub fn counts(&self) -> DeltaCounts {
        self.counts
    }
}

/// Give the added rows `pending` (in key order) rowids spread over the room
/// between the stored rows `before` and `after`, into `moves`; false when
/// there is not room for them all.
fn place(pending: &mut Vec<i64>, before: i64, after: i64, moves: &mut Vec<(i64, i64)>) -> bool {
    if pending.is_empty() {
        return true;
    }
    let (room, n) = (
        i128::from(after) - i128::from(before),
        pending.len() as i128,
    );
    if room <= n {
        return false;
    }
    for (i, from) in (1i128..).zip(pending.drain(..)) {
        let to = i128::from(before) + room * i / (n + 1);
        moves.push((from, i64::try_from(to).unwrap_or(i64::MAX)));
    }
    true
}

/// A key as bytes that tell its type and value apart, to look it up.
fn key_bytes(key: &Value) -> Vec<u8> {
    let (tag, bytes): (u8, Vec<u8>) = match ValueRef::from(key) {
        ValueRef::Null => (b'n', Vec::new()),
        ValueRef::Integer(n) => (b'i', n.to_be_bytes().to_vec()),
        ValueRef::Real(f) => (b'r', f.to_bits().to_be_bytes().to_vec()),
        ValueRef::Text(t) => (b't', t.to_vec()),
        ValueRef::Blob(b) => (b'b', b.to_vec()),
    };
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(tag);
    out.extend(bytes);
    out
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
        // A file of its own is never changed: the rows move home first.
        self.localize(entity)?;
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
        let spaced = !key_is_rowid(columns, key_index);
        let last: Option<i64> = tx
            .query_row(&format!("SELECT max(rowid) FROM {table}"), [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        let first_added = last.unwrap_or(0).saturating_add(ROW_SPACING);
        let (names, placeholders) = match spaced {
            true => (
                format!(
                    "(rowid, {})",
                    columns
                        .iter()
                        .map(|(c, _)| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (1..=n + 1).map(|i| format!("?{i}")).collect::<Vec<_>>(),
            ),
            false => (String::new(), (1..=n).map(|i| format!("?{i}")).collect()),
        };
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
                delete: prepare(&format!("DELETE FROM {table} WHERE \"{key}\" = ?1"))?,
                insert: prepare(&format!(
                    "INSERT INTO {table}{names} VALUES ({})",
                    placeholders.join(", ")
                ))?,
                note: prepare(
                    "INSERT INTO _tf_changes (entity, generation, key) VALUES (?1, ?2, ?3)",
                )?,
                generation: next,
                key_index,
                columns: n,
                counts: DeltaCounts::default(),
                spaced,
                next_rowid: first_added,
                first_added,
                added: HashMap::new(),
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

    /// The values of the one column `sql` selects.
    fn column<T: rusqlite::types::FromSql>(store: &EntityDb, sql: &str) -> Vec<T> {
        let s = store.session();
        let mut stmt = s.prepare(sql).unwrap();
        let values = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        values
    }

    /// `keys` as text, one a call, for [`Delta::keep_only`].
    fn texts<K: Into<String>>(
        keys: impl IntoIterator<Item = K>,
    ) -> impl FnMut() -> Result<Option<Value>, StoreError> {
        let mut it = keys.into_iter().map(|k| Value::Text(k.into()));
        move || Ok(it.next())
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
        let keys = |ks: &'static [&'static str]| texts(ks.iter().copied());
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

    /// `E` imported with its rows spaced, as a database source's are.
    fn spaced(store: &EntityDb, keys: &[&str]) {
        store
            .import_entity_with("E", "id", &cols(), |sink| {
                sink.space_rows()?;
                for k in keys {
                    sink.push(&row(k, Value::Real(1.0)))?;
                }
                Ok::<(), StoreError>(())
            })
            .unwrap();
    }

    fn keys_of(store: &EntityDb) -> Vec<String> {
        rows_of(store).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn buckets_of_rows_say_which_rows_of_the_ranges_compared_went() {
        let (_dir, store) = store();
        let stored: Vec<String> = (0..100).map(|n| format!("k{n:02}")).collect();
        spaced(
            &store,
            &stored.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let g = store.meta("E").unwrap().generation;
        let in_bucket = |b: usize, without: &[&str]| {
            let keys: Vec<String> = stored[b * 10..b * 10 + 10]
                .iter()
                .filter(|k| !without.contains(&k.as_str()))
                .cloned()
                .collect();
            keys
        };
        let counts = store
            .apply_delta("E", g, |d| {
                assert_eq!(d.upsert(&row("z1", Value::Null))?, Upserted::Added);
                let b = d.buckets(10)?;
                assert_eq!(b.len(), 11, "the added row is the eleventh bucket");
                assert_eq!((b.rows_in(0), b.rows_in(10), b.rows_in(11)), (10, 1, 0));
                assert_eq!(b.starts[2].1, Value::Text("k20".into()));

                let mut keep = in_bucket(2, &["k23"]);
                keep.extend(in_bucket(7, &["k71", "k72"]));
                let gone = d.absent_in(&b, &[2, 7], texts(keep.clone()), 3)?.unwrap();
                let keys: Vec<&Value> = gone.iter().map(|(_, k)| k).collect();
                assert_eq!(
                    keys,
                    ["k23", "k71", "k72"]
                        .map(|k| Value::Text(k.into()))
                        .iter()
                        .collect::<Vec<_>>()
                );
                // More would go than allowed; a key not stored; the added row.
                assert_eq!(
                    d.absent_in(&b, &[2, 7], texts(keep), 2)?,
                    Err(Kept::TooMany)
                );
                let mut odd = in_bucket(0, &[]);
                odd.insert(1, "k005".into());
                assert_eq!(d.absent_in(&b, &[0], texts(odd), 9)?, Err(Kept::NotInOrder));
                assert_eq!(
                    d.absent_in(&b, &[10], texts(Vec::<String>::new()), 9)?,
                    Err(Kept::NotInOrder)
                );
                d.delete_rows(&gone)
            })
            .unwrap();
        assert_eq!((counts.added, counts.deleted), (1, 3));
        let keys = keys_of(&store);
        assert_eq!(keys.len(), 98);
        assert!(!keys
            .iter()
            .any(|k| ["k23", "k71", "k72"].contains(&k.as_str())));
        assert_eq!(keys.last().map(String::as_str), Some("z1"));
    }

    #[test]
    fn added_rows_are_placed_among_spaced_ones_in_the_order_given() {
        let (_dir, store) = store();
        spaced(&store, &["b", "d", "f"]);
        let rowids =
            |store: &EntityDb| column::<i64>(store, "SELECT rowid FROM \"ent_E\" ORDER BY rowid");
        assert_eq!(
            rowids(&store),
            [ROW_SPACING, 2 * ROW_SPACING, 3 * ROW_SPACING]
        );
        let g = store.meta("E").unwrap().generation;
        let keys = |ks: &'static [&'static str]| texts(ks.iter().copied());
        let counts = store
            .apply_delta("E", g, |d| {
                assert!(!d.keeps_key_order());
                for k in ["a", "c1", "c2", "e", "g"] {
                    assert_eq!(d.upsert(&row(k, Value::Null))?, Upserted::Added);
                }
                // An added key missing, or one neither stored nor added.
                assert_eq!(
                    d.keep_only(keys(&["a", "b", "c1", "c2", "d", "e", "f"]), 9)?,
                    Kept::NotInOrder
                );
                assert_eq!(
                    d.keep_only(keys(&["a", "b", "c1", "c2", "d", "e", "f", "g", "h"]), 9)?,
                    Kept::NotInOrder
                );
                // Added keys after the last stored one stay in their order.
                assert_eq!(
                    d.keep_only(keys(&["a", "b", "c1", "c2", "d", "e", "f", "g"]), 0)?,
                    Kept::Deleted(0)
                );
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!((counts.added, counts.deleted), (5, 0));
        assert_eq!(keys_of(&store), ["a", "b", "c1", "c2", "d", "e", "f", "g"]);
        let s = ROW_SPACING;
        assert_eq!(
            rowids(&store),
            [
                s / 2,
                s,
                s + s / 3,
                s + 2 * s / 3,
                2 * s,
                2 * s + s / 2,
                3 * s,
                // g keeps the rowid it was added with, after those the others took.
                8 * s
            ]
        );

        // Deleted rows make room.
        let g = store.meta("E").unwrap().generation;
        store
            .apply_delta("E", g, |d| {
                d.upsert(&row("c3", Value::Null))?;
                assert_eq!(
                    d.keep_only(keys(&["a", "b", "c1", "c3", "e", "f", "g"]), 2)?,
                    Kept::Deleted(2)
                );
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(keys_of(&store), ["a", "b", "c1", "c3", "e", "f", "g"]);
    }

    #[test]
    fn added_rows_are_placed_by_the_key_index_when_added_in_its_order() {
        let (_dir, store) = self::store();
        spaced(&store, &["b", "d"]);
        let g = store.meta("E").unwrap().generation;
        let mut placed = None;
        store
            .apply_delta("E", g, |d| {
                for k in ["a", "c1", "c2", "e"] {
                    d.upsert(&row(k, Value::Null))?;
                }
                placed = Some(d.place_by_key()?);
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(placed, Some(Ok(())));
        assert_eq!(keys_of(&store), ["a", "b", "c1", "c2", "d", "e"]);

        let g = store.meta("E").unwrap().generation;
        let mut refused = None;
        store
            .apply_delta("E", g, |d| {
                d.upsert(&row("c4", Value::Null))?;
                d.upsert(&row("c3", Value::Null))?;
                refused = Some(d.place_by_key()?);
                Err(StoreError::UnknownEntity("rolled back".into()))
            })
            .unwrap_err();
        assert_eq!(refused, Some(Err(Kept::NotInOrder)), "added in no order");

        let (_other, dense) = self::store();
        let two = ["a", "c"].map(|k| Ok(row(k, Value::Real(1.0))));
        dense.replace_entity("E", "id", &cols(), two).unwrap();
        let g = dense.meta("E").unwrap().generation;
        dense
            .apply_delta("E", g, |d| {
                d.upsert(&row("b", Value::Null))?;
                refused = Some(d.place_by_key()?);
                Err(StoreError::UnknownEntity("rolled back".into()))
            })
            .unwrap_err();
        assert_eq!(refused, Some(Err(Kept::NoRoom)));
    }

    #[test]
    fn spaced_rows_in_no_order_name_a_duplicate_by_its_row_and_tag() {
        let (_dir, store) = self::store();
        let mut keys = crate::store::scattered_keys(3000, 7);
        keys[2500] = keys[40].clone();
        let values: Vec<Vec<ValueRef<'_>>> = keys
            .iter()
            .map(|k| vec![ValueRef::Text(k.as_bytes()), ValueRef::Null])
            .collect();
        let rows: Vec<(u64, &[ValueRef<'_>])> = (0..)
            .zip(values.iter())
            .map(|(i, v)| (700 + i, v.as_slice()))
            .collect();
        #[derive(Debug)]
        struct Failed(Option<(i64, u64)>, StoreError);
        impl From<StoreError> for Failed {
            fn from(e: StoreError) -> Self {
                Failed(None, e)
            }
        }
        let failed = store
            .import_entity_with("E", "id", &cols(), |sink| {
                sink.space_rows()?;
                sink.push_batch(&rows).map_err(|(_, e)| e)?;
                // The keys came in no order: the index is built now.
                sink.build_key_index().map_err(|(at, e)| Failed(at, e))
            })
            .unwrap_err();
        assert_eq!(
            failed.0,
            Some((0, 3200)),
            "no partition begun; tag 700 + 2500"
        );
        assert_eq!(
            failed.1.to_string(),
            format!(
                "entity 'E', row 2501: duplicate key '{}' in field 'id'",
                keys[40]
            )
        );
    }

    #[test]
    fn rows_are_removed_by_key_and_their_keys_recorded() {
        let (_dir, store) = self::store();
        let three = ["a", "b", "c"].map(|k| Ok(row(k, Value::Real(1.0))));
        store.replace_entity("E", "id", &cols(), three).unwrap();
        let g = store.meta("E").unwrap().generation;
        let counts = store
            .apply_delta("E", g, |d| {
                assert!(d.remove(&Value::Text("b".into()))?);
                assert!(!d.remove(&Value::Text("z".into()))?, "never stored");
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(counts.deleted, 1);
        assert_eq!(keys_of(&store), ["a", "c"]);
        assert_eq!(store.meta("E").unwrap().rows, 2);
        assert_eq!(
            store.changed_keys("E", g).unwrap().unwrap(),
            [Value::Text("b".into())]
        );
    }

    #[test]
    fn sixteen_rows_fit_between_two_spaced_ones() {
        let (_dir, store) = store();
        spaced(&store, &["x", "y"]);
        let mut between = String::from("x");
        let mut placed = 0;
        loop {
            between.insert(1, '0');
            let key = between.clone();
            let g = store.meta("E").unwrap().generation;
            let mut order: Vec<String> = keys_of(&store);
            order.push(key.clone());
            order.sort();
            let mut kept = None;
            let applied = store.apply_delta("E", g, |d| {
                d.upsert(&row(&key, Value::Null))?;
                kept = Some(d.keep_only(texts(order.clone()), 0)?);
                match kept {
                    Some(Kept::Deleted(0)) => Ok(()),
                    _ => Err(StoreError::UnknownEntity("rolled back".into())),
                }
            });
            if kept == Some(Kept::NoRoom) {
                assert!(applied.is_err());
                assert!(!keys_of(&store).contains(&key), "rolled back");
                break;
            }
            applied.unwrap();
            placed += 1;
            assert_eq!(keys_of(&store), order);
        }
        assert_eq!(placed, 16, "between x and y, then ever closer to x");
    }

    #[test]
    fn rows_stored_unspaced_leave_no_room_and_integer_keys_need_none() {
        let (_dir, store) = store();
        let two = ["a", "c"].map(|k| Ok(row(k, Value::Real(1.0))));
        store.replace_entity("E", "id", &cols(), two).unwrap();
        let g = store.meta("E").unwrap().generation;
        let mut kept = None;
        store
            .apply_delta("E", g, |d| {
                d.upsert(&row("b", Value::Null))?;
                kept = Some(d.keep_only(texts(["a", "b", "c"]), 0)?);
                Err(StoreError::UnknownEntity("rolled back".into()))
            })
            .unwrap_err();
        assert_eq!(kept, Some(Kept::NoRoom));

        let int_cols = vec![("n".to_owned(), ColumnType::Integer)];
        let rows = [10, 30].map(|n| Ok(vec![Value::Integer(n)]));
        store.replace_entity("N", "n", &int_cols, rows).unwrap();
        let g = store.meta("N").unwrap().generation;
        store
            .apply_delta("N", g, |d| {
                assert!(d.keeps_key_order());
                d.upsert(&[Value::Integer(20)])?;
                d.upsert(&[Value::Integer(5)]).map(drop)
            })
            .unwrap();
        let ns = column::<i64>(&store, "SELECT n FROM \"ent_N\" ORDER BY rowid");
        assert_eq!(ns, [5, 10, 20, 30]);
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
