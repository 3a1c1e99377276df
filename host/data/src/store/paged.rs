//! An import written straight into a new entity file's pages, by
//! [`triggerfish_pagefile`], instead of through SQLite's inserts: the rows'
//! B-tree and the key's index built bottom-up, each page written once.
//!
//! It takes what such a file can hold as SQLite would have stored it: one
//! file's rows, keys in ascending order, each value already of its
//! column's storage class. When a row shows otherwise (a key below the one
//! before, a value SQLite would convert), [`PagedSink`] stops and says so
//! ([`PagedSink::unpaged`]), and the import is made again through SQLite
//! ([`super::EntityDb::import_entity_into_file_with`]). A file's import
//! first sets a few such rows aside (at most [`ASIDE_FREE_ROWS`], or one row
//! in [`ASIDE_SHARE`]): rows added at the end of a file sorted by key, as an
//! edit leaves it, then cost little more than paging. Rows that cannot be
//! pushed again (a computed entity's, see
//! [`super::Publication::replace_entity_paged_with`]) are set aside instead
//! ([`aside`]) and inserted by SQLite once the pages are finished. A
//! duplicate or empty key is the error an insert would give.

mod aside;
mod hold;

use std::path::{Path, PathBuf};

use rusqlite::types::{Value, ValueRef};
use triggerfish_pagefile as pagefile;

use super::sink::{duplicate_key, empty_key};
use super::{column_defs, key_index, partitions, pipe, table_name, StoreError};
use crate::odata::ColumnType;

/// Rows a file's import may set aside whatever their share
/// ([`PagedSink::setting_some_aside`]).
pub const ASIDE_FREE_ROWS: u64 = 4096;
/// Past [`ASIDE_FREE_ROWS`], a file's import sets aside at most one row in
/// this many; one more, and it is made again through SQLite, which takes
/// keys in any order at one cost.
pub const ASIDE_SHARE: u64 = 8;

/// Where the rows of an import go: SQLite's inserts ([`super::RowSink`]) or
/// pages ([`PagedSink`]).
pub trait Sink {
    /// Start a partition (one file of an import); see
    /// [`super::RowSink::begin_partition`].
    fn begin_partition(&mut self, origin: &str) -> Result<(), StoreError>;
    /// Add rows, each tagged by the caller; see [`super::RowSink::push_batch`].
    fn push_batch(&mut self, rows: &pipe::Rows<'_>) -> Result<(), (u64, StoreError)>;
    /// Check the keys once every row is in; see
    /// [`super::RowSink::build_key_index`].
    fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)>;
}

impl Sink for super::RowSink<'_> {
    fn begin_partition(&mut self, origin: &str) -> Result<(), StoreError> {
        super::RowSink::begin_partition(self, origin)
    }
    fn push_batch(&mut self, rows: &pipe::Rows<'_>) -> Result<(), (u64, StoreError)> {
        super::RowSink::push_batch(self, rows)
    }
    fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)> {
        super::RowSink::build_key_index(self)
    }
}

/// Rows of one import, written into the pages of a new file.
pub(super) struct PagedSink {
    file: Option<pagefile::PageFile>,
    entity: String,
    key: String,
    key_index: usize,
    types: Vec<ColumnType>,
    count: u64,
    /// The last key pushed, to check the next is above it.
    last: Last,
    pub(super) noted: partitions::Noted,
    /// Set when a row cannot be paged: the import must go through SQLite.
    unpaged: Option<String>,
    /// The file's path, and what becomes of rows that cannot be paged.
    path: PathBuf,
    unpageable: Unpageable,
    aside: Option<aside::Aside>,
    /// With [`Unpageable::SetAside`]: the last rows pushed, not yet paged.
    held: hold::Held,
    /// Buffers reused from row to row (see [`relabel`]).
    page_buf: Vec<pagefile::Value<'static>>,
    held_buf: Vec<ValueRef<'static>>,
}

/// `v`, emptied, as a vector of values borrowed for another lifetime: its
/// allocation is reused (an empty vector's items are never mapped).
fn relabel<'a, 'b, T: Relabel<'a, 'b>>(mut v: Vec<T>) -> Vec<T::As> {
    v.clear();
    v.into_iter().map(T::relabel).collect()
}

/// A value type borrowed for `'a`, and the same borrowed for `'b`.
trait Relabel<'a, 'b> {
    type As;
    fn relabel(self) -> Self::As;
}

impl<'a, 'b> Relabel<'a, 'b> for pagefile::Value<'a> {
    type As = pagefile::Value<'b>;
    fn relabel(self) -> Self::As {
        pagefile::Value::Null
    }
}

impl<'a, 'b> Relabel<'a, 'b> for ValueRef<'a> {
    type As = ValueRef<'b>;
    fn relabel(self) -> Self::As {
        ValueRef::Null
    }
}

impl PagedSink {
    /// Write `entity`'s rows into the new file `path`: pages of
    /// `page_size` bytes, the key's unique index named for `generation`.
    pub(super) fn create(
        path: &Path,
        page_size: u32,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        generation: i64,
    ) -> Result<Self, StoreError> {
        let key_index = columns.iter().position(|(c, _)| c == key).ok_or_else(|| {
            StoreError::KeyNotAColumn {
                entity: entity.to_owned(),
                key: key.to_owned(),
            }
        })?;
        let table = table_name(entity);
        let table_sql = format!("CREATE TABLE {table} ({})", column_defs(columns, key));
        let index = key_index::name(entity, generation);
        let index_sql = format!("CREATE UNIQUE INDEX {index} ON {table} (\"{key}\")");
        let unquoted = |s: &str| s.trim_matches('"').to_owned();
        let file = pagefile::PageFile::create(
            path,
            pagefile::Options {
                page_size,
                wal: false,
                // Synced by the caller, with its directory.
                sync: false,
            },
            pagefile::Table {
                name: &unquoted(&table),
                sql: &table_sql,
                columns: columns.len(),
            },
            Some(pagefile::Index {
                name: &unquoted(&index),
                sql: Some(&index_sql),
                column: key_index,
            }),
        )
        .map_err(|e| StoreError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self {
            file: Some(file),
            entity: entity.to_owned(),
            key: key.to_owned(),
            key_index,
            types: columns.iter().map(|(_, t)| *t).collect(),
            count: 0,
            last: Last::None,
            noted: partitions::Noted::default(),
            unpaged: None,
            path: path.to_owned(),
            unpageable: Unpageable::Stop,
            aside: None,
            held: hold::Held::default(),
            page_buf: Vec::new(),
            held_buf: Vec::new(),
        })
    }

    /// For rows that cannot be pushed again: a row that cannot be paged is
    /// set aside, for SQLite to insert.
    pub(super) fn going_on(mut self) -> Self {
        self.unpageable = Unpageable::SetAside;
        self
    }

    /// For a file's rows, which can be pushed again: a row that cannot be
    /// paged is set aside while few are (see [`ASIDE_FREE_ROWS`]), else
    /// paging stops.
    pub(super) fn setting_some_aside(mut self) -> Self {
        self.unpageable = Unpageable::SetAsideFew;
        self
    }

    /// Whether one more row that cannot be paged may be set aside.
    fn may_set_aside(&self) -> bool {
        let set = self.aside.as_ref().map_or(0, aside::Aside::rows);
        match self.unpageable {
            Unpageable::Stop => false,
            Unpageable::SetAsideFew => set < ASIDE_FREE_ROWS.max(self.count / ASIDE_SHARE),
            Unpageable::SetAside => true,
        }
    }

    /// Why rows were set aside, if some were.
    pub(super) fn why_set_aside(&self) -> Option<&str> {
        self.aside.as_ref().map(|a| a.why.as_str())
    }

    /// Why the rows could not be paged, once a row showed it.
    pub(super) fn unpaged(&self) -> Option<&str> {
        self.unpaged.as_deref()
    }

    /// Rows written.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Write the trees' last pages and the schema, then have SQLite insert
    /// the rows set aside. False when one of those repeats a key and the
    /// rows can be pushed again ([`PagedSink::setting_some_aside`]): the
    /// import is to be made through SQLite, which names the first repeat in
    /// the rows' order.
    pub(super) fn finish(mut self, path: &Path) -> Result<bool, StoreError> {
        while self.page_oldest_held().map_err(|(_, e)| e)? {}
        let file = self.file.take().ok_or_else(|| StoreError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("the file was finished already"),
        })?;
        file.finish().map_err(|e| StoreError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let Some(aside) = self.aside.take() else {
            return Ok(true);
        };
        let (entity, key) = (&self.entity, &self.key);
        let repeated = std::cell::Cell::new(false);
        let inserted = aside.insert_into(path, &table_name(entity), self.key_index, |row, k| {
            repeated.set(true);
            StoreError::Row {
                entity: entity.clone(),
                row,
                message: duplicate_key(k, key),
            }
        });
        match inserted {
            Err(_) if repeated.get() && self.unpageable == Unpageable::SetAsideFew => Ok(false),
            inserted => inserted.map(|()| true),
        }
    }

    /// Page row number `no`, or set it aside (or stop) when it cannot be.
    fn page_row(
        &mut self,
        tag: u64,
        no: u64,
        row: &[ValueRef<'_>],
    ) -> Result<(), (u64, StoreError)> {
        let key = row.get(self.key_index).copied().unwrap_or(ValueRef::Null);
        let mut why = match self.check_key(tag, no, key) {
            Err(_) if self.unpaged.is_some() && self.may_set_aside() => self.unpaged.take(),
            checked => {
                checked?;
                None
            }
        };
        let mut values = relabel(std::mem::take(&mut self.page_buf));
        if why.is_none() {
            for (i, (t, v)) in self.types.iter().zip(row.iter()).enumerate() {
                match stored(*t, *v) {
                    Some(v) => values.push(v),
                    None => {
                        why = Some(format!(
                            "row {no}: column {} as SQLite would convert it",
                            i + 1
                        ));
                        break;
                    }
                }
            }
        }
        if let Some(why) = why {
            self.page_buf = relabel(values);
            if !self.may_set_aside() {
                return Err(self.stop(tag, why));
            }
            return self.set_aside(tag, no, row, || why);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(self.stop(tag, "the file was finished already".into()));
        };
        let pushed = file.push(&values).map_err(|e| e.to_string());
        let pushed = pushed.map_err(|message| self.at_row(tag, no, message));
        self.page_buf = relabel(values);
        pushed
    }

    /// Set row `no` aside for SQLite to insert; `why`, for the first.
    fn set_aside(
        &mut self,
        tag: u64,
        no: u64,
        row: &[ValueRef<'_>],
        why: impl FnOnce() -> String,
    ) -> Result<(), (u64, StoreError)> {
        if self.aside.is_none() {
            let aside = aside::Aside::create(&self.path, self.types.len(), why());
            self.aside = Some(aside.map_err(|e| (tag, e))?);
        }
        match &mut self.aside {
            Some(aside) => aside.push(no, row).map_err(|e| (tag, e)),
            None => Ok(()),
        }
    }

    /// Hold row `no` back a moment (see [`hold`]): set it aside when it
    /// comes below the last row paged or most rows held, or set aside the
    /// held rows it shows jumped ahead; page the oldest held past
    /// [`hold::HOLD_ROWS`].
    fn hold(&mut self, tag: u64, no: u64, row: &[ValueRef<'_>]) -> Result<(), (u64, StoreError)> {
        let k = self.key_index;
        let key = row.get(k).copied().unwrap_or(ValueRef::Null);
        let duplicate = |s: &Self| s.at_row(tag, no, duplicate_key(key, &s.key));
        if key == ValueRef::Null {
            return Err(self.at_row(tag, no, empty_key(&self.key)));
        }
        let disorder = || format!("row {no}: keys come in no order");
        match self.last_key().map(|last| key_index::order(last, key)) {
            Some(std::cmp::Ordering::Equal) => return Err(duplicate(self)),
            Some(std::cmp::Ordering::Greater) => return self.set_aside(tag, no, row, disorder),
            _ => {}
        }
        match self.held.above_newest(key, k) {
            Some(std::cmp::Ordering::Equal) => return Err(duplicate(self)),
            Some(std::cmp::Ordering::Less) => match self.held.below(key, k) {
                hold::Below::Duplicate => return Err(duplicate(self)),
                hold::Below::SetAside => return self.set_aside(tag, no, row, disorder),
                hold::Below::Held(jumped) => {
                    for r in jumped {
                        let mut values = Vec::new();
                        r.values(&mut values);
                        let why = || format!("row {}: keys come in no order", r.no);
                        self.set_aside(r.tag, r.no, &values, why)?;
                        drop(values);
                        self.held.recycle(r);
                    }
                }
            },
            _ => {}
        }
        self.held.push(tag, no, row);
        if self.held.len() > hold::HOLD_ROWS {
            self.page_oldest_held()?;
        }
        Ok(())
    }

    /// Page the oldest row held; false when none is.
    fn page_oldest_held(&mut self) -> Result<bool, (u64, StoreError)> {
        let Some(r) = self.held.pop_oldest() else {
            return Ok(false);
        };
        let mut values = relabel(std::mem::take(&mut self.held_buf));
        r.values(&mut values);
        let paged = self.page_row(r.tag, r.no, &values);
        self.held_buf = relabel(values);
        self.held.recycle(r);
        paged.map(|()| true)
    }

    /// The error `message` about row number `row`, pushed with `tag`.
    fn at_row(&self, tag: u64, row: u64, message: String) -> (u64, StoreError) {
        let entity = self.entity.clone();
        (
            tag,
            StoreError::Row {
                entity,
                row,
                message,
            },
        )
    }

    /// The last key paged.
    fn last_key(&self) -> Option<ValueRef<'_>> {
        match &self.last {
            Last::None => None,
            Last::Text(t) => Some(ValueRef::Text(t)),
            Last::Other(v) => Some(ValueRef::from(v)),
        }
    }

    /// Stop paging: `why` a row cannot be.
    fn stop(&mut self, tag: u64, why: String) -> (u64, StoreError) {
        let e = StoreError::Declaration {
            entity: self.entity.clone(),
            message: format!("not written page by page: {why}"),
        };
        self.unpaged = Some(why);
        (tag, e)
    }

    /// Check `key` (of row number `row`) against the last one.
    fn check_key(
        &mut self,
        tag: u64,
        row: u64,
        key: ValueRef<'_>,
    ) -> Result<(), (u64, StoreError)> {
        if key == ValueRef::Null {
            return Err(self.at_row(tag, row, empty_key(&self.key)));
        }
        if let Some(last) = self.last_key() {
            match key_index::order(last, key) {
                std::cmp::Ordering::Less => {}
                // After rows set aside, an earlier one may repeat a key too:
                // the repeat is found by SQLite (see `finish`).
                std::cmp::Ordering::Equal
                    if self.unpageable == Unpageable::SetAsideFew && self.aside.is_some() =>
                {
                    return Err(self.stop(tag, format!("row {row}: a key repeated")))
                }
                std::cmp::Ordering::Equal => {
                    return Err(self.at_row(tag, row, duplicate_key(key, &self.key)))
                }
                std::cmp::Ordering::Greater => {
                    return Err(self.stop(tag, format!("row {row}: keys come in no order")))
                }
            }
        }
        match (&mut self.last, key) {
            (Last::Text(last), ValueRef::Text(t)) => {
                last.clear();
                last.extend_from_slice(t);
            }
            (last, ValueRef::Text(t)) => *last = Last::Text(t.to_vec()),
            (last, key) => *last = Last::Other(key.into()),
        }
        Ok(())
    }
}

/// What becomes of a row that cannot be paged (a key out of order, a value
/// SQLite would convert).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unpageable {
    /// Paging stops ([`PagedSink::unpaged`]); the rows are pushed again
    /// through SQLite.
    Stop,
    /// A file's rows: set aside while few are ([`ASIDE_FREE_ROWS`]), else
    /// paging stops.
    SetAsideFew,
    /// Rows that cannot be pushed again: always set aside, the last few
    /// held back a moment first (see [`hold`]).
    SetAside,
}

/// A key kept to compare the next with: text as its bytes, its buffer
/// reused from key to key.
enum Last {
    None,
    Text(Vec<u8>),
    Other(Value),
}

/// `v` as SQLite stores it in a column of type `t`, when storing it
/// changes nothing but a REAL column's integer; `None` when SQLite would
/// convert it otherwise.
fn stored(t: ColumnType, v: ValueRef<'_>) -> Option<pagefile::Value<'_>> {
    Some(match (t, v) {
        (_, ValueRef::Null) => pagefile::Value::Null,
        // The import's text is UTF-8, checked as it was read.
        (ColumnType::String | ColumnType::DateTime, ValueRef::Text(s)) => pagefile::Value::Utf8(s),
        (ColumnType::Integer | ColumnType::Boolean, ValueRef::Integer(n)) => {
            pagefile::Value::Integer(n)
        }
        (ColumnType::Decimal, ValueRef::Real(f)) => pagefile::Value::Real(f),
        (ColumnType::Decimal, ValueRef::Integer(n)) => pagefile::Value::Real(n as f64),
        _ => return None,
    })
}

impl Sink for PagedSink {
    fn begin_partition(&mut self, origin: &str) -> Result<(), StoreError> {
        if !self.noted.starts.is_empty() {
            self.unpaged = Some("more than one file".into());
            return Err(StoreError::Declaration {
                entity: self.entity.clone(),
                message: "not written page by page: more than one file".into(),
            });
        }
        self.noted.starts.push((origin.to_owned(), self.count));
        Ok(())
    }

    fn push_batch(&mut self, rows: &pipe::Rows<'_>) -> Result<(), (u64, StoreError)> {
        for &(tag, row) in rows.iter() {
            if row.len() != self.types.len() {
                let message = format!("{} values for {} columns", row.len(), self.types.len());
                return Err(self.at_row(tag, self.count + 1, message));
            }
            self.count += 1;
            match self.unpageable {
                Unpageable::SetAside => self.hold(tag, self.count, row)?,
                _ => self.page_row(tag, self.count, row)?,
            }
        }
        Ok(())
    }

    fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)> {
        // Built as the rows came.
        Ok(())
    }
}

/// Import `rows` into `entity` (keyed by its first column) page by page,
/// in batches of `batch`; see [`super::EntityDb::import_entity_paged_with`].
#[cfg(test)]
pub(crate) fn import_paged(
    store: &super::EntityDb,
    entity: &str,
    columns: &[(String, ColumnType)],
    rows: &[Vec<Value>],
    batch: usize,
) -> Result<Option<u64>, StoreError> {
    let key = columns.first().map_or("", |(k, _)| k.as_str());
    store.import_entity_paged_with(entity, key, columns, |sink: &mut dyn Sink| {
        sink.begin_partition(&format!("{entity}.csv"))?;
        let refs: Vec<Vec<ValueRef<'_>>> = rows
            .iter()
            .map(|r| r.iter().map(ValueRef::from).collect())
            .collect();
        let tagged: Vec<(u64, &[ValueRef<'_>])> =
            (1..).zip(refs.iter().map(Vec::as_slice)).collect();
        for chunk in tagged.chunks(batch.max(1)) {
            sink.push_batch(chunk).map_err(|(_, e)| e)?;
        }
        sink.build_key_index().map_err(|(_, e)| e)
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::super::{pushing, EntityDb, StoreError};
    use super::*;

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("Id".into(), ColumnType::String),
            ("N".into(), ColumnType::Integer),
            ("Amount".into(), ColumnType::Decimal),
        ]
    }

    fn row(id: &str, n: i64) -> Vec<Value> {
        vec![
            Value::Text(id.into()),
            Value::Integer(n),
            Value::Integer(n * 2),
        ]
    }

    /// Import `rows` page by page, in batches of 3.
    fn paged(store: &EntityDb, rows: &[Vec<Value>]) -> Result<Option<u64>, StoreError> {
        import_paged(store, "E", &cols(), rows, 3)
    }

    fn files_in(store: &EntityDb) -> usize {
        std::fs::read_dir(super::super::files::dir_of(store.path())).map_or(0, |d| d.count())
    }

    fn store() -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        (dir, store)
    }

    #[test]
    fn rows_with_keys_in_order_are_written_as_sqlite_would_store_them() {
        let (_dir, store) = store();
        let rows: Vec<_> = (0..500).map(|i| row(&format!("k{i:04}"), i)).collect();
        assert_eq!(paged(&store, &rows).unwrap(), Some(500));
        let s = store.session();
        let check: String = s
            .query_row("PRAGMA \"tf_file_E\".integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // The decimal column's integer reads as a real, as SQLite stores it.
        let (n, amount, kind): (i64, f64, String) = s
            .query_row(
                "SELECT N, Amount, typeof(Amount) FROM \"ent_E\" WHERE Id = 'k0421'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, amount, kind.as_str()), (421, 842.0, "real"));
        let plan: String = s
            .query_row(
                "EXPLAIN QUERY PLAN SELECT N FROM \"ent_E\" WHERE Id = 'k0001'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("USING INDEX"), "{plan}");
        drop(s);
        assert_eq!(store.meta("E").unwrap().rows, 500);
    }

    #[test]
    fn a_few_rows_out_of_order_or_converted_are_set_aside_and_stored_as_sqlite_would() {
        let (_dir, store) = store();
        // Sorted, then rows added at the end, as an edit leaves a file.
        let mut rows: Vec<_> = (0..300).map(|i| row(&format!("k{i:04}"), i)).collect();
        rows.extend((0..30).map(|i| row(&format!("k{:04}-copy", i * 10), 1000 + i)));
        let mut converted = row("k0299-z", 7);
        converted[1] = Value::Text("7".into());
        rows.push(converted);
        assert_eq!(paged(&store, &rows).unwrap(), Some(331));
        let s = store.session();
        let check: String = s
            .query_row("PRAGMA \"tf_file_E\".integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let got: Vec<(String, i64)> = s
            .prepare("SELECT Id, N FROM \"ent_E\" ORDER BY Id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut expected: Vec<(String, i64)> = rows
            .iter()
            .map(|r| match (&r[0], &r[1]) {
                (Value::Text(k), Value::Integer(n)) => (k.clone(), *n),
                (Value::Text(k), _) => (k.clone(), 7),
                _ => unreachable!(),
            })
            .collect();
        expected.sort();
        assert_eq!(got, expected);
        // The text '7' in an integer column, stored as SQLite converts it.
        let kind: String = s
            .query_row(
                "SELECT typeof(N) FROM \"ent_E\" WHERE Id = 'k0299-z'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "integer");
        drop(s);
        // A key set aside that repeats another: nothing is stored, for
        // SQLite to name the first repeat in the rows' order.
        let mut repeated: Vec<_> = (0..10).map(|i| row(&format!("k{i:04}"), i)).collect();
        repeated.extend([row("k0003", 99), row("k0009", 99)]);
        let before = store.meta("E").unwrap().generation;
        assert_eq!(paged(&store, &repeated).unwrap(), None);
        assert_eq!(store.meta("E").unwrap().generation, before);
        let e = store
            .import_entity_into_file_with("E", "Id", &cols(), pushing(repeated.into_iter().map(Ok)))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "entity 'E', row 11: duplicate key 'k0003' in field 'Id'");
    }

    #[test]
    fn rows_that_cannot_be_paged_leave_nothing_and_say_so() {
        let (_dir, store) = store();
        // A key above all that follow: every row after it is out of order,
        // more than may be set aside.
        let n = ASIDE_FREE_ROWS as usize + 10;
        let mut unordered = vec![row("~", 0)];
        unordered.extend((0..n).map(|i| row(&format!("k{i:05}"), i as i64)));
        assert_eq!(paged(&store, &unordered).unwrap(), None);
        assert_eq!(files_in(&store), 0);
        assert!(store.meta("E").is_err(), "nothing was published");
        // An integer key is the rowid: through SQLite.
        let ints = vec![("Id".to_owned(), ColumnType::Integer)];
        let none =
            store
                .import_entity_paged_with("I", "Id", &ints, |_: &mut dyn Sink| {
                    Ok::<(), StoreError>(())
                })
                .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn a_duplicate_key_fails_as_an_insert_would() {
        let (_dir, store) = store();
        let rows = vec![row("a", 1), row("b", 2), row("b", 3)];
        let paged = paged(&store, &rows).unwrap_err().to_string();
        let through_sqlite = store
            .import_entity_into_file_with("E", "Id", &cols(), pushing(rows.into_iter().map(Ok)))
            .unwrap_err()
            .to_string();
        assert_eq!(paged, "entity 'E', row 3: duplicate key 'b' in field 'Id'");
        assert_eq!(paged, through_sqlite);
        assert_eq!(files_in(&store), 0);
    }
}
