//! [`RowSink`]: where the rows of an entity being replaced go, in chunks of
//! prepared inserts, with partitions noted and the key's index or order
//! kept (see [`key_index`]).

use std::path::Path;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use super::{key_index, partitions, pipe, StoreError};

/// A fill for [`super::EntityDb::replace_entity_with`] and
/// [`super::Publication::replace_entity_with`] that pushes `rows`.
pub fn pushing<I>(rows: I) -> impl FnOnce(&mut RowSink<'_>) -> Result<(), StoreError>
where
    I: IntoIterator<Item = Result<Vec<Value>, StoreError>>,
{
    move |sink| {
        for row in rows {
            sink.push(&row?)?;
        }
        Ok(())
    }
}

/// Receives the rows of an entity being replaced.
pub struct RowSink<'a> {
    pub(super) tx: &'a rusqlite::Transaction<'a>,
    pub(super) insert: rusqlite::Statement<'a>,
    /// The table rows are inserted into: the staging table, or the side
    /// table of [`Later::Sort`].
    pub(super) target: String,
    pub(super) staging: String,
    pub(super) entity: String,
    pub(super) key: String,
    pub(super) key_index: usize,
    pub(super) columns: usize,
    /// The columns' names, quoted, in order.
    pub(super) names: String,
    /// Set by [`RowSink::space_rows`]: row `n` (1-based) takes rowid
    /// `n × spacing`.
    pub(super) spacing: Option<i64>,
    /// Whether rows may be spaced: a rowid table whose key is not the rowid.
    pub(super) spaceable: bool,
    pub(super) count: u64,
    pub(super) path: &'a Path,
    pub(super) noted: partitions::Noted,
    pub(super) member_insert: Option<rusqlite::Statement<'a>>,
    pub(super) partition: i64,
    /// The statement inserting [`RowSink::chunk_rows`] rows at once,
    /// prepared on first use.
    pub(super) insert_chunk: Option<rusqlite::Statement<'a>>,
    /// The key's index, when it is built after the rows.
    pub(super) key_later: Option<KeyLater>,
}

/// A key index that may be built after the rows, and where the rows
/// pushed came from.
pub(super) struct KeyLater {
    pub(super) later: Later,
    runs: key_index::TagRuns,
    /// How far the keys pushed so far are from their order.
    pub(super) order: key_index::KeyOrder,
}

/// What is done when keys come in no order.
pub(super) enum Later {
    /// A rowid table's key index is dropped, and built after the rows.
    Index { name: String, built: bool },
    /// A clustered table's rows go to a side table, and into the table
    /// in key order after the last.
    Sort { side: String, diverted: bool },
}

impl KeyLater {
    pub(super) fn new(later: Later) -> Self {
        Self {
            later,
            runs: key_index::TagRuns::default(),
            order: key_index::KeyOrder::default(),
        }
    }

    /// Rows still go into the keyed table, in the order pushed.
    fn in_place(&self) -> bool {
        match self.later {
            Later::Index { built, .. } => built,
            Later::Sort { diverted, .. } => !diverted,
        }
    }
}

/// Rows one statement of [`RowSink::push_batch`] inserts: fewer statements
/// to run (about a sixth less of the writer's time than one row each).
pub const INSERT_CHUNK_ROWS: usize = 8;

/// Values one statement may bind (SQLite's `SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_BOUND_VALUES: usize = 32_766;

/// The rowids [`RowSink::space_rows`] leaves from one row to the next: room
/// for rows added later between two neighbours, halving it each time, 16
/// times over (see [`super::Delta::keep_only`]).
pub const ROW_SPACING: i64 = 1 << 16;

impl<'a> RowSink<'a> {
    /// Start a partition (one file of an import, one refresh of a database):
    /// the rows pushed from now on belong to it. From the second one on,
    /// which partition each key came from is kept (the first's keys are
    /// filled in then), so a partition can be read alone; a single
    /// partition is every row and costs nothing per row.
    pub fn begin_partition(&mut self, origin: &str) -> Result<(), StoreError> {
        if self.partition == 1 {
            // Keys are noted per partition from here on, in a keyed table:
            // the first partition's must be known to be unique first.
            self.build_key_index().map_err(|(_, e)| e)?;
        }
        self.noted.starts.push((origin.to_owned(), self.count));
        self.partition += 1;
        if self.partition == 2 {
            let table = partitions::members_staging(&self.entity);
            let sql = |source| StoreError::Sqlite {
                path: self.path.to_owned(),
                source,
            };
            self.tx
                .execute_batch(&format!(
                    "DROP TABLE IF EXISTS {table};
                     CREATE TABLE {table} (k PRIMARY KEY, p INTEGER NOT NULL) WITHOUT ROWID;
                     INSERT INTO {table} SELECT \"{}\", 1 FROM {};",
                    self.key, self.staging
                ))
                .map_err(sql)?;
            self.member_insert = Some(
                self.tx
                    .prepare(&format!("INSERT INTO {table} VALUES (?1, ?2)"))
                    .map_err(sql)?,
            );
        }
        Ok(())
    }

    /// Space the rows' rowids `ROW_SPACING` apart, so that rows added
    /// later in place ([`super::EntityDb::apply_delta`]) can go between two
    /// of them, keeping the order a full read gives. Call it before the
    /// first row. Nothing changes for a key that is the rowid (an integer:
    /// rows are then in key order whatever comes).
    pub fn space_rows(&mut self) -> Result<(), StoreError> {
        if !self.spaceable || self.spacing.is_some() {
            return Ok(());
        }
        if self.count > 0 {
            return Err(StoreError::Declaration {
                entity: self.entity.clone(),
                message: "rows can only be spaced before the first".into(),
            });
        }
        self.spacing = Some(ROW_SPACING);
        let placeholders = vec!["?"; self.columns + 1].join(", ");
        self.insert = self
            .tx
            .prepare(&format!(
                "INSERT INTO {}(rowid, {}) VALUES ({placeholders})",
                self.target, self.names
            ))
            .map_err(|source| StoreError::Sqlite {
                path: self.path.to_owned(),
                source,
            })?;
        self.insert_chunk = None;
        Ok(())
    }

    /// The rowid of row `n` (1-based) when rows are spaced.
    fn spaced_rowid(&self, n: u64) -> Result<Option<i64>, StoreError> {
        let Some(spacing) = self.spacing else {
            return Ok(None);
        };
        i64::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(spacing))
            .map(Some)
            .ok_or_else(|| StoreError::Row {
                entity: self.entity.clone(),
                row: n,
                message: "too many rows to space their rowids".into(),
            })
    }

    /// Rows written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Add one row (one value per column). A duplicate or empty key is an
    /// error naming the row.
    pub fn push(&mut self, row: &[Value]) -> Result<(), StoreError> {
        let key = row
            .get(self.key_index)
            .map_or(ValueRef::Null, ValueRef::from);
        let values = row.iter().map(|v| ToSqlOutput::Borrowed(v.into()));
        self.insert_row(row.len(), values, key)
    }

    /// [`RowSink::push`] with borrowed values.
    pub fn push_refs(&mut self, row: &[ValueRef<'_>]) -> Result<(), StoreError> {
        let key = row.get(self.key_index).copied().unwrap_or(ValueRef::Null);
        let values = row.iter().map(|v| ToSqlOutput::Borrowed(*v));
        self.insert_row(row.len(), values, key)
    }

    /// Add rows, each tagged by the caller (a row number), as
    /// [`RowSink::push_refs`] does for each one; on failure, the failed
    /// row's tag with the error. Rows go [`INSERT_CHUNK_ROWS`] to a
    /// statement; when one fails, the rows after those it inserted go one
    /// by one, so that the row at fault is named as by `push_refs`.
    pub fn push_batch(&mut self, rows: &pipe::Rows<'_>) -> Result<(), (u64, StoreError)> {
        if let Some(later) = &mut self.key_later {
            if later.in_place() && later.order.watching() {
                for &(_, row) in rows.iter() {
                    if let Some(key) = row.get(self.key_index) {
                        later.order.see(*key);
                    }
                }
                if later.order.unordered() && self.partition < 2 {
                    self.defer_keys()
                        .map_err(|e| (rows.first().map_or(0, |r| r.0), e))?;
                }
            }
        }
        // Once the index is dropped, a duplicate is found after the last
        // row, by position: note where each row came from. (Before, the
        // index refused one as it came.)
        if let Some(KeyLater {
            later: Later::Index { built: false, .. },
            runs,
            ..
        }) = &mut self.key_later
        {
            for (i, &(tag, _)) in (1u64..).zip(rows.iter()) {
                runs.note(self.count + i, tag, self.partition);
            }
        }
        let per = self.chunk_rows();
        let mut chunks = rows.chunks_exact(per);
        for chunk in &mut chunks {
            let inserted = match per {
                1 => 0,
                _ => self.insert_chunk(chunk).map_err(|e| (chunk[0].0, e))?,
            };
            for &(tag, row) in chunk.get(inserted..).unwrap_or_default() {
                self.push_refs(row).map_err(|e| (tag, e))?;
            }
        }
        for &(tag, row) in chunks.remainder() {
            self.push_refs(row).map_err(|e| (tag, e))?;
        }
        Ok(())
    }

    /// Keys come in no order: a rowid table's rows go in unindexed from
    /// now on (the index is built once they are all in); a clustered
    /// table's go to a side table, sorted into it after the last.
    fn defer_keys(&mut self) -> Result<(), StoreError> {
        let sql = |source| StoreError::Sqlite {
            path: self.path.to_owned(),
            source,
        };
        let Some(later) = &mut self.key_later else {
            return Ok(());
        };
        match &mut later.later {
            Later::Index { name, built } => {
                self.tx
                    .execute_batch(&format!("DROP INDEX {name}"))
                    .map_err(sql)?;
                *built = false;
            }
            Later::Sort { side, diverted } => {
                self.tx
                    .execute_batch(&format!(
                        "DROP TABLE IF EXISTS {side};
                         CREATE TABLE {side} AS SELECT * FROM {} WHERE 0;",
                        self.staging
                    ))
                    .map_err(sql)?;
                *diverted = true;
                let side = side.clone();
                self.retarget(side)?;
            }
        }
        Ok(())
    }

    /// Insert rows into `table` from now on.
    fn retarget(&mut self, table: String) -> Result<(), StoreError> {
        let placeholders = vec!["?"; self.columns].join(", ");
        self.insert = self
            .tx
            .prepare(&format!("INSERT INTO {table} VALUES ({placeholders})"))
            .map_err(|source| StoreError::Sqlite {
                path: self.path.to_owned(),
                source,
            })?;
        self.insert_chunk = None;
        self.target = table;
        Ok(())
    }

    /// Rows a chunk statement inserts, for this many columns.
    fn chunk_rows(&self) -> usize {
        (MAX_BOUND_VALUES / self.columns.max(1)).clamp(1, INSERT_CHUNK_ROWS)
    }

    /// Insert `chunk` in one statement, and say how many of its rows went
    /// in: all of them, or those before the first that does not fit (its
    /// width, a duplicate or empty key). `OR FAIL` keeps those (where a
    /// plain insert would take them back), so SQLite keeps no statement
    /// journal: a copy of each page before the statement changes it, a
    /// seventh of the writer's time.
    fn insert_chunk(&mut self, chunk: &pipe::Rows<'_>) -> Result<usize, StoreError> {
        if chunk.iter().any(|(_, row)| row.len() != self.columns) {
            return Ok(0);
        }
        let sql = |source| StoreError::Sqlite {
            path: self.path.to_owned(),
            source,
        };
        // Checked for the chunk's last row: the others' rowids are lower.
        self.spaced_rowid(self.count + chunk.len() as u64)?;
        let (spacing, first) = (self.spacing, self.count + 1);
        let stmt = match &mut self.insert_chunk {
            Some(stmt) => stmt,
            None => {
                let (names, width) = match self.spacing {
                    Some(_) => (format!("(rowid, {})", self.names), self.columns + 1),
                    None => (String::new(), self.columns),
                };
                let one = format!("({})", vec!["?"; width].join(", "));
                let sql_text = format!(
                    "INSERT OR FAIL INTO {}{names} VALUES {}",
                    self.target,
                    vec![one.as_str(); chunk.len()].join(", ")
                );
                self.insert_chunk
                    .insert(self.tx.prepare(&sql_text).map_err(sql)?)
            }
        };
        let mut at = 1;
        for (n, (_, row)) in (first..).zip(chunk.iter()) {
            if let Some(spacing) = spacing {
                stmt.raw_bind_parameter(at, n as i64 * spacing)
                    .map_err(sql)?;
                at += 1;
            }
            for v in *row {
                stmt.raw_bind_parameter(at, ToSqlOutput::Borrowed(*v))
                    .map_err(sql)?;
                at += 1;
            }
        }
        let inserted = match stmt.raw_execute() {
            Ok(_) => chunk.len(),
            // The rows before the one at fault are in.
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                usize::try_from(self.tx.changes())
                    .unwrap_or(usize::MAX)
                    .min(chunk.len())
            }
            Err(e) => return Err(sql(e)),
        };
        self.count += inserted as u64;
        for (_, row) in chunk.get(..inserted).unwrap_or_default() {
            let key = row.get(self.key_index).copied().unwrap_or(ValueRef::Null);
            self.note_partition(key)?;
        }
        Ok(inserted)
    }

    /// Note which partition the row keyed `key` came from, once a second
    /// partition has begun.
    fn note_partition(&mut self, key: ValueRef<'_>) -> Result<(), StoreError> {
        if let Some(member) = &mut self.member_insert {
            member
                .execute(rusqlite::params![
                    ToSqlOutput::Borrowed(key),
                    self.partition
                ])
                .map_err(|source| StoreError::Sqlite {
                    path: self.path.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Insert `values` (`len` of them), `key` being the key's.
    fn insert_row<'v>(
        &mut self,
        len: usize,
        values: impl Iterator<Item = ToSqlOutput<'v>>,
        key: ValueRef<'_>,
    ) -> Result<(), StoreError> {
        self.count += 1;
        if len != self.columns {
            return Err(StoreError::Row {
                entity: self.entity.clone(),
                row: self.count,
                message: format!("{len} values for {} columns", self.columns),
            });
        }
        let rowid = self
            .spaced_rowid(self.count)?
            .map(|r| ToSqlOutput::Owned(Value::Integer(r)));
        let values = rusqlite::params_from_iter(rowid.into_iter().chain(values));
        if let Err(e) = self.insert.execute(values) {
            let message = match &e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    match key {
                        ValueRef::Null => empty_key(&self.key),
                        v => self.duplicate(v),
                    }
                }
                _ => e.to_string(),
            };
            return Err(StoreError::Row {
                entity: self.entity.clone(),
                row: self.count,
                message,
            });
        }
        self.note_partition(key)
    }

    /// Build the key's index, when the rows came first (an import: see
    /// [`super::EntityDb::import_entity_with`]); does nothing otherwise or again.
    /// A second partition builds it as it begins (rows are then checked as
    /// they come), so call it before to learn the tag of a duplicate.
    /// A duplicate key fails it with the error an insert would have given,
    /// and, when [`RowSink::push_batch`] pushed that row, its partition
    /// (1-based, as begun) and tag.
    pub fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)> {
        let Some(later) = self.key_later.as_mut().filter(|l| !l.in_place()) else {
            return Ok(());
        };
        let sql = |source| StoreError::Sqlite {
            path: self.path.to_owned(),
            source,
        };
        let name = match &mut later.later {
            Later::Index { name, .. } => name,
            Later::Sort { side, diverted } => {
                // Into the clustered table in its order: each page filled
                // once. A duplicate key is an engine fault here (computed
                // entities), so SQLite's message stands.
                let sorted = format!(
                    "INSERT INTO {} SELECT * FROM {side} ORDER BY \"{}\"",
                    self.staging, self.key
                );
                self.tx.execute_batch(&sorted).map_err(|e| (None, sql(e)))?;
                let side = side.clone();
                *diverted = false;
                self.retarget(self.staging.clone()).map_err(|e| (None, e))?;
                self.tx
                    .execute_batch(&format!("DROP TABLE {side}"))
                    .map_err(|e| (None, sql(e)))?;
                return Ok(());
            }
        };
        match key_index::build(self.tx, name, &self.staging, &self.key) {
            Ok(None) => {
                if let Later::Index { built, .. } = &mut later.later {
                    *built = true;
                }
                Ok(())
            }
            Ok(Some((rowid, key))) => {
                let position = rowid / self.spacing.map_or(1, |s| s.unsigned_abs());
                Err((
                    later.runs.find(position),
                    StoreError::Row {
                        entity: self.entity.clone(),
                        row: position,
                        message: self.duplicate(ValueRef::from(&key)),
                    },
                ))
            }
            Err(e) => Err((None, sql(e))),
        }
    }

    /// The message for a second row with key `v`.
    fn duplicate(&self, v: ValueRef<'_>) -> String {
        duplicate_key(v, &self.key)
    }

    /// Add the rows of a `SELECT` over the store's tables.
    pub fn insert_select(&mut self, select: &str, params: &[Value]) -> Result<(), StoreError> {
        let n = self
            .tx
            .execute(
                &format!("INSERT INTO {} {select}", self.staging),
                rusqlite::params_from_iter(params.iter()),
            )
            .map_err(|source| StoreError::Sqlite {
                path: self.path.to_owned(),
                source,
            })?;
        self.count += n as u64;
        Ok(())
    }
}

/// The error of an empty key in field `key`, as every insert path words it.
pub(super) fn empty_key(key: &str) -> String {
    format!("field '{key}' (the key) is empty")
}

/// The error of key `v` met twice in field `key`, as every insert path
/// words it.
pub(super) fn duplicate_key(v: ValueRef<'_>, key: &str) -> String {
    format!("duplicate key {} in field '{key}'", show(v))
}

pub(super) fn show(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "null".into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(s) => format!("'{}'", String::from_utf8_lossy(s)),
        ValueRef::Blob(_) => "(blob)".into(),
    }
}
