//! The entity store: every entity is a SQLite table with a primary key and
//! typed columns, registered in `_tf_entities`. Replacing an entity's data is
//! atomic: readers see the old rows or the new ones, never a mix.

mod changes;
mod checkpoint;
mod delta;
mod digests;
mod files;
mod gzip;
mod halves;
mod hash_diff;
mod history;
mod import;
mod json_array;
mod key_index;
mod metadata;
mod page;
mod paged;
mod partitions;
pub mod pipe;
mod publish;
mod row_bound;
mod sink;
mod snapshot;
#[cfg(test)]
mod staged_file_tests;
mod walk_diff;
mod writable;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

pub use crate::odata::normalize_datetime;
pub use changes::{Untracked, KEPT_CHANGE_SETS, MAX_TRACKED_CHANGES};
pub use delta::{Buckets, Delta, DeltaCounts, Kept, Upserted};
pub use files::{FILE_CACHE_KIB, MAX_ENTITY_FILES, ORPHAN_GRACE};
pub use halves::HALVED_FROM_ROWS;
pub use history::{HistoryPoint, RefreshRecord, KEPT_HISTORY_POINTS, KEPT_REFRESHES};
pub(crate) use import::convert_text;
pub use import::{
    column_name, import, import_inferred, import_rows, infer, named_column,
    parse_decimal_separator, parse_delimiter, parse_encoding, quoted, DateFormat, DateFormats,
    Encoding, ImportError, ImportErrorKind, ImportFailure, ImportFormat, ImportReport, ImportSpec,
    Inferred, Locale, Opener, MAX_COLUMNS, MAX_DATETIME_FORMATS, MAX_QUOTED_CHARS,
};
pub use import::{
    DialectError, DialectText, FileDialect, MAX_DATETIME_FORMAT_BYTES, MAX_FLATTEN_DEPTH,
    PLAIN as PLAIN_DIALECT,
};
#[cfg(test)]
pub(crate) use key_index::scattered_keys;
pub use key_index::{MAX_TAG_RUNS, SAMPLE_ROWS};
pub use page::{PageError, PageLimits, PageRequest, PageResult, CURSOR_CAPACITY};
pub use paged::Sink;
pub use partitions::{Partition, WHOLE as WHOLE_PARTITION};
pub use publish::Publication;
pub use row_bound::MAX_ROW_BYTES;
pub use sink::{pushing, RowSink, INSERT_CHUNK_ROWS};
use sink::{KeyLater, Later};
pub use snapshot::{restore, snapshot};
pub use writable::{
    ensure_writes_schema, writes_of, WritableEntity, WriteBy, WriteError, WriteRecord, Written,
    DEFAULT_MAX_ROWS, MAX_ITEM_BYTES, MAX_MAX_ROWS, MAX_WRITABLE_FIELDS,
};

use crate::odata::{ColumnType, Schema};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("entity store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("entity '{0}' does not exist")]
    UnknownEntity(String),
    #[error("'{0}' is not a valid {1} name (letters, digits and '_', not starting with a digit, at most 64)")]
    BadName(String, &'static str),
    #[error("entity '{entity}': key field '{key}' is not one of its columns")]
    KeyNotAColumn { entity: String, key: String },
    #[error("entity '{entity}': {message}")]
    Declaration { entity: String, message: String },
    #[error("entity '{entity}' has no partition {partition} (partitions change with each import; list them again)")]
    UnknownPartition { entity: String, partition: String },
    #[error("entity '{entity}', row {row}: {message}")]
    Row {
        entity: String,
        row: u64,
        message: String,
    },
}

/// What the store knows about one entity.
#[derive(Debug, Clone)]
pub struct EntityMeta {
    /// Entity name.
    pub name: String,
    /// Primary-key field.
    pub key: String,
    /// Columns in declaration order.
    pub schema: Schema,
    /// Bumped on every replacement, so paging cursors of old data die.
    pub generation: u64,
    /// Rows held.
    pub rows: u64,
}

impl EntityMeta {
    fn table(&self) -> String {
        table_name(&self.name)
    }
}

/// Tries of [`EntityDb::read_snapshot`] to find the files it has attached
/// current, when publications keep replacing them.
pub const SNAPSHOT_READ_TRIES: usize = 8;

/// Batches of row digests that may wait for the walk beside an import.
const WALK_DEPTH: usize = 4;

/// What the walk beside an import answers (see [`walk_diff::diff`]).
type WalkAnswer = rusqlite::Result<Option<Vec<Value>>>;
/// The walk beside an import: the live file it reads, and its thread.
type Walking = (PathBuf, std::thread::JoinHandle<WalkAnswer>);

/// The store. Cheap to share behind an `Arc`; calls block (use a blocking task).
pub struct EntityDb {
    path: PathBuf,
    /// Declared before `conn`: dropped first, finishing its checkpoint.
    checkpoints: checkpoint::Checkpointer,
    conn: Mutex<Connection>,
    /// The entity files `conn` has attached.
    files: files::Files,
    meta: RwLock<HashMap<String, Arc<EntityMeta>>>,
    cursors: page::Cursors,
    limits: PageLimits,
    /// `PRAGMA data_version` when the metadata cache was last valid.
    data_version: AtomicI64,
    /// [`changes::Untracked`] guards held: replacements record no changes.
    untracked: AtomicUsize,
}

impl std::fmt::Debug for EntityDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Entity and field names: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters.
pub fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Whether `key` is an integer column of `columns`, stored as the rowid.
fn integer_key(columns: &[(String, ColumnType)], key: &str) -> bool {
    columns
        .iter()
        .position(|(c, _)| c == key)
        .is_some_and(|i| key_is_rowid(columns, i))
}

/// Check that `entity` and its `columns` have valid names.
fn check_names(entity: &str, columns: &[(String, ColumnType)]) -> Result<(), StoreError> {
    if !valid_identifier(entity) {
        return Err(StoreError::BadName(entity.to_owned(), "entity"));
    }
    match columns.iter().find(|(c, _)| !valid_identifier(c)) {
        Some((c, _)) => Err(StoreError::BadName(c.clone(), "field")),
        None => Ok(()),
    }
}

fn table_name(entity: &str) -> String {
    Table::of(entity).to_string()
}

/// An entity's table, for the engine's own SQL: `Display` writes its quoted
/// name. The one place that knows how entities map to tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table(String);

impl Table {
    /// The table of `entity`.
    pub fn of(entity: &str) -> Self {
        Self(entity.to_owned())
    }

    /// The keys a staged patch deletes.
    fn deleted(entity: &str) -> String {
        format!("\"ent_{entity}__deleted\"")
    }

    /// The view of a patched entity before publication.
    fn patched(entity: &str) -> String {
        format!("\"ent_{entity}__patched\"")
    }

    /// The staging table an entity's new rows go to before they replace it.
    fn staging(entity: &str) -> String {
        format!("\"ent_{entity}__staging\"")
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"ent_{}\"", self.0)
    }
}

/// Exclusive use of the store's connection for the engine's own queries
/// (work tables, aggregates), scoped to this value's lifetime. The store's
/// own methods hold one too. On release it hands a log grown by its commits
/// to the checkpointer (the `checkpoint` module).
pub struct Session<'a> {
    conn: std::sync::MutexGuard<'a, Connection>,
    path: &'a Path,
    checkpoints: &'a checkpoint::Checkpointer,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.checkpoints.after_use();
    }
}

impl Session<'_> {
    /// Begin a transaction (committed with `synchronous = FULL`: durable).
    pub fn durable_transaction(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        let path = self.path;
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Sqlite {
                path: path.to_owned(),
                source,
            })
    }

    /// (Re)create the temporary table `temp.<name>` with one column `v` of
    /// `sql_type`, holding `values` once each, for `IN (SELECT v FROM …)`.
    pub fn temp_set<V: rusqlite::ToSql>(
        &self,
        name: &str,
        sql_type: &str,
        values: impl IntoIterator<Item = V>,
    ) -> rusqlite::Result<()> {
        self.conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.\"{name}\";
             CREATE TEMP TABLE \"{name}\" (v {sql_type} PRIMARY KEY);"
        ))?;
        // One transaction of the temporary database, not one per value.
        self.conn.execute_batch("SAVEPOINT tf_temp_set")?;
        let filled = (|| {
            let mut put = self.conn.prepare(&format!(
                "INSERT OR IGNORE INTO temp.\"{name}\" VALUES (?1)"
            ))?;
            for v in values {
                put.execute([v])?;
            }
            Ok(())
        })();
        if filled.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK TO tf_temp_set");
        }
        self.conn.execute_batch("RELEASE tf_temp_set")?;
        filled
    }

    /// Whether `entity` (a source, stored by row) holds its first rows in
    /// no order of `key`, as GUID keys come (judged on the first [`SAMPLE_ROWS`]).
    pub fn keys_stored_unordered(&self, entity: &str, key: &str) -> rusqlite::Result<bool> {
        key_index::stored_unordered(&self.conn, &Table::of(entity).to_string(), key)
    }

    /// A SQLite error, naming the store.
    pub fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.to_owned(),
            source,
        }
    }
}

impl std::ops::Deref for Session<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// Mutable, to lend the connection to another thread for a while.
impl std::ops::DerefMut for Session<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Text keys, sorted (tests compare sets of keys given in no order).
#[cfg(test)]
pub(crate) fn sorted_texts(values: Vec<Value>) -> Vec<String> {
    let mut out: Vec<String> = values
        .into_iter()
        .map(|v| match v {
            Value::Text(t) => t,
            other => panic!("not a text key: {other:?}"),
        })
        .collect();
    out.sort();
    out
}

/// Whether a rowid table keyed by `columns[key_index]` holds its key as
/// the rowid (an `INTEGER` primary key): its rows are then in key order.
fn key_is_rowid(columns: &[(String, ColumnType)], key_index: usize) -> bool {
    columns
        .get(key_index)
        .is_some_and(|(_, t)| sql_type(*t) == "INTEGER")
}

/// SQL that holds when rows `a` and `b` (table aliases) hold the same value
/// in every column but `key`, NULLs alike (`IS`); `1` when there is none.
/// Column types give every column an affinity, so `IS` holds only between
/// values stored alike.
fn same_values(columns: &[(String, ColumnType)], key: &str, a: &str, b: &str) -> String {
    let same: Vec<String> = columns
        .iter()
        .filter(|(c, _)| c != key)
        .map(|(c, _)| format!("{a}.\"{c}\" IS {b}.\"{c}\""))
        .collect();
    match same.is_empty() {
        true => "1".to_owned(),
        false => same.join(" AND "),
    }
}

fn sql_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String | ColumnType::DateTime => "TEXT",
        ColumnType::Integer | ColumnType::Boolean => "INTEGER",
        ColumnType::Decimal => "REAL",
    }
}

/// The name of a column type, as written in files and on the command line.
pub fn type_name(t: ColumnType) -> &'static str {
    t.into()
}

/// The columns' definitions in a `CREATE TABLE`, the key's `NOT NULL`.
fn column_defs(columns: &[(String, ColumnType)], key: &str) -> String {
    columns
        .iter()
        .map(|(c, t)| {
            let not_null = if c == key { " NOT NULL" } else { "" };
            format!("\"{c}\" {}{not_null}", sql_type(*t))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `entity`'s live table, qualified by the schema it is kept in.
fn live_table(entity: &str, in_file: bool) -> String {
    match in_file {
        true => format!("{}.{}", files::schema(entity), table_name(entity)),
        false => format!("main.{}", table_name(entity)),
    }
}

/// Add `_tf_entities.file` to a store made before entities had files.
fn add_file_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('_tf_entities') WHERE name = 'file'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE _tf_entities ADD COLUMN file TEXT")?;
    }
    Ok(())
}

/// Parse a column type name.
pub fn parse_type(s: &str) -> Option<ColumnType> {
    s.parse().ok()
}

/// Page size of a new store file, in bytes, unless configured: SQLite's
/// default, which suits the journal's many small commits.
pub const DEFAULT_PAGE_SIZE: u32 = 4 << 10;

/// The page sizes a new store file may be given. Larger pages make bulk
/// refreshes faster (fewer B-tree splits and WAL frames for the same rows)
/// and the journal's small commits slower (each writes whole pages):
/// BENCHMARKS.md has the figures.
pub const PAGE_SIZES: [u32; 5] = [4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10];

/// Set the page size `connection` gives the store file if it creates it
/// (SQLite ignores it for an existing file, which keeps its own).
pub fn set_new_file_page_size(conn: &Connection, page_size: u32) -> rusqlite::Result<()> {
    conn.pragma_update(None, "page_size", page_size)
}

impl EntityDb {
    /// Open (or create, with [`DEFAULT_PAGE_SIZE`]) the store file.
    pub fn open(path: &Path, limits: PageLimits) -> Result<Self, StoreError> {
        Self::open_with(path, limits, DEFAULT_PAGE_SIZE)
    }

    /// Open the store file, or create it with pages of `page_size` bytes
    /// (one of [`PAGE_SIZES`]).
    pub fn open_with(path: &Path, limits: PageLimits, page_size: u32) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let sql = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        // The journal's writer shares the file: wait for it rather than fail.
        conn.busy_timeout(std::time::Duration::from_millis(
            crate::journal::BUSY_TIMEOUT_MS,
        ))
        .map_err(sql)?;
        set_new_file_page_size(&conn, page_size).map_err(sql)?;
        // FULL: a commit (the journal's events among them) survives power
        // loss; imports commit once per entity, so this costs little.
        // FILE: temporary tables and sorts spill to (deleted) files past
        // the page cache; in memory, SQLite's sorter never spills, so one
        // large sort (a key index built, an ORDER BY) could take any memory.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = FILE;
             CREATE TABLE IF NOT EXISTS _tf_entities (
                 name TEXT PRIMARY KEY,
                 key TEXT NOT NULL,
                 columns TEXT NOT NULL,
                 generation INTEGER NOT NULL,
                 rows INTEGER NOT NULL,
                 updated_at TEXT NOT NULL,
                 file TEXT
             );",
        )
        .map_err(sql)?;
        add_file_column(&conn).map_err(sql)?;
        let files = files::Files::new(path);
        files.sync(&conn, true).map_err(sql)?;
        let removed = files.remove_orphans(&conn);
        if removed > 0 {
            tracing::info!(store = %path.display(), removed, "removed entity files no generation names");
        }
        writable::ensure_writes_schema(&conn).map_err(sql)?;
        conn.execute_batch(partitions::PARTITIONS_SCHEMA)
            .map_err(sql)?;
        let checkpoints = checkpoint::Checkpointer::start(path, &conn).map_err(sql)?;
        Ok(Self {
            path: path.to_owned(),
            checkpoints,
            conn: Mutex::new(conn),
            files,
            meta: RwLock::default(),
            cursors: page::Cursors::default(),
            limits,
            data_version: AtomicI64::new(-1),
            untracked: AtomicUsize::new(0),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the engine's temporary files go: next to the store (not a
    /// RAM-backed /tmp).
    pub fn temp_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// The page size the store file was created with, in bytes.
    pub fn page_size(&self) -> Result<u32, StoreError> {
        let s = self.conn();
        s.query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| s.error(e))
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> Session<'_> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        // Another connection may have published an entity's new file.
        if let Err(e) = self.files.sync(&conn, false) {
            tracing::warn!(store = %self.path.display(), "cannot attach the entity files: {e}");
        }
        Session {
            conn,
            path: &self.path,
            checkpoints: &self.checkpoints,
        }
    }

    /// The connection, for the engine's own queries; see [`Session`].
    pub fn session(&self) -> Session<'_> {
        self.conn()
    }

    /// Run `f` on one snapshot of every entity, those kept in files
    /// included: inside a read transaction whose `_tf_entities` names the
    /// files attached (else they are attached again and it starts over;
    /// a publication in between is seen whole or not at all).
    pub fn read_snapshot<T>(
        &self,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(|e| self.sql(e))?;
            if self.files.current(&tx).map_err(|e| self.sql(e))? {
                let out = f(&tx).map_err(|e| self.sql(e))?;
                tx.commit().map_err(|e| self.sql(e))?;
                return Ok(out);
            }
            drop(tx);
            if tries >= SNAPSHOT_READ_TRIES {
                return Err(StoreError::Io {
                    path: self.files.dir().to_owned(),
                    source: std::io::Error::other(format!(
                        "entity files were replaced {tries} times while a snapshot was read"
                    )),
                });
            }
            if let Err(e) = self.files.sync(&conn, true) {
                tracing::warn!(store = %self.path.display(), "cannot attach the entity files: {e}");
            }
        }
    }

    /// Every entity name, sorted.
    pub fn entity_names(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT name FROM _tf_entities ORDER BY name")
            .map_err(|e| self.sql(e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        Ok(names)
    }

    /// Forget cached entity metadata when another connection (the insights
    /// engine, another process) has committed since we last looked.
    fn revalidate(&self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if self.data_version.swap(version, Ordering::AcqRel) != version {
            self.meta
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        Ok(())
    }

    /// What the store knows about `entity`.
    pub fn meta(&self, entity: &str) -> Result<Arc<EntityMeta>, StoreError> {
        self.revalidate()?;
        if let Some(m) = self
            .meta
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(entity)
        {
            return Ok(m.clone());
        }
        let row: Option<(String, String, i64, i64)> = self
            .conn()
            .query_row(
                "SELECT key, columns, generation, rows FROM _tf_entities WHERE name = ?1",
                params![entity],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((key, columns, generation, rows)) = row else {
            return Err(StoreError::UnknownEntity(entity.to_owned()));
        };
        let cols: Vec<(String, String)> =
            serde_json::from_str(&columns).map_err(|e| StoreError::Row {
                entity: entity.to_owned(),
                row: 0,
                message: format!("corrupt column list in the registry: {e}"),
            })?;
        let schema = Schema {
            columns: cols
                .into_iter()
                .map(|(n, t)| (n, parse_type(&t).unwrap_or(ColumnType::String)))
                .collect(),
        };
        let meta = Arc::new(EntityMeta {
            name: entity.to_owned(),
            key,
            schema,
            generation: u64::try_from(generation).unwrap_or(0),
            rows: u64::try_from(rows).unwrap_or(0),
        });
        self.meta
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(entity.to_owned(), meta.clone());
        Ok(meta)
    }

    /// Replace all rows of `entity` (creating it if needed) in one
    /// transaction. `rows` yields one value per column, in `columns` order.
    /// On any error the previous data stays as it was.
    pub fn replace_entity<I>(
        &self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        rows: I,
    ) -> Result<u64, StoreError>
    where
        I: IntoIterator<Item = Result<Vec<Value>, StoreError>>,
    {
        self.replace_entity_with(entity, key, columns, pushing(rows))
    }

    /// Replace all rows of `entity`, the rows being pushed by `fill` into a
    /// [`RowSink`]. Everything happens in one transaction: when `fill` or the
    /// store fails, the previous data stays as it was.
    pub fn replace_entity_with<E: From<StoreError>>(
        &self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.replace_laid_out(entity, key, columns, Layout::Rowid, fill)
    }

    /// [`EntityDb::replace_entity_with`] for a bulk import: the key's index
    /// is built once every row is in, which is faster for many rows, above
    /// all with keys in no order. A duplicate key is then found by
    /// [`RowSink::build_key_index`], which `fill` calls last to learn the
    /// tag of the row at fault (else it is named by its position).
    pub fn import_entity_with<E: From<StoreError>>(
        &self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.replace_laid_out(entity, key, columns, Layout::RowidKeyLater, fill)
    }

    fn replace_laid_out<E: From<StoreError>>(
        &self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        layout: Layout,
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let (previous, file) = self.kept_in(&tx, entity)?;
        let (count, noted, unordered) =
            self.fill_staging(&tx, entity, key, columns, (layout, previous), fill)?;
        let tables = changes::Replacing {
            live: live_table(entity, file.is_some()),
            new: Table::staging(entity),
            new_file: None,
            digests: None,
            walked: None,
        };
        changes::record(self, &tx, entity, key, columns, unordered, &tables)?;
        let old = self.swap_in(&tx, entity, key, columns, count, NewRows::Staged)?;
        partitions::record(&tx, entity, &noted, count, false).map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        self.retire(&conn, old);
        drop(conn);
        self.forget(entity);
        Ok(count)
    }

    /// [`EntityDb::import_entity_with`], the rows written into a file of
    /// their own (see [`files`]): off the store's write-ahead log, on a
    /// connection of their own, and swapped in whole. Past
    /// [`MAX_ENTITY_FILES`] entities, new ones go to the main file.
    pub fn import_entity_into_file_with<E: From<StoreError>>(
        &self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let Some(previous) = self.may_have_file(entity)? else {
            return self.import_entity_with(entity, key, columns, fill);
        };
        let page_size = self.page_size()?;
        let (new, mut writer) = files::NewFile::create(
            self.files.dir(),
            entity,
            previous.saturating_add(1),
            page_size,
        )?;
        let in_new = |source| StoreError::Sqlite {
            path: new.path.clone(),
            source,
        };
        let tx = writer.transaction().map_err(in_new)?;
        let (count, noted, unordered) = self.fill_staging(
            &tx,
            entity,
            key,
            columns,
            (Layout::RowidKeyLater, previous),
            fill,
        )?;
        // The file holds the tables under the names they are read by.
        let mut names = format!(
            "ALTER TABLE {} RENAME TO {};",
            Table::staging(entity),
            table_name(entity)
        );
        if noted.starts.len() > 1 {
            names.push_str(&format!(
                "ALTER TABLE {} RENAME TO {};",
                partitions::members_staging(entity),
                partitions::members(entity)
            ));
        }
        tx.execute_batch(&names).map_err(in_new)?;
        tx.commit().map_err(in_new)?;
        writer.close().map_err(|(_, e)| in_new(e))?;
        new.sync()?;
        let tables = (key, columns);
        Ok(self.publish_file(entity, tables, new, (count, &noted), (unordered, None))?)
    }

    /// [`EntityDb::import_entity_into_file_with`], the rows written page by
    /// page (see [`paged`]): `None` when they cannot be (keys in no order or
    /// values SQLite would convert, in more rows than may be set aside, see
    /// [`paged::ASIDE_FREE_ROWS`]; several files; shown by the rows pushed),
    /// an integer key, or when the entity is kept in the main file. Nothing
    /// is stored then: import them through SQLite.
    pub fn import_entity_paged_with<E: From<StoreError>>(
        &self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut dyn Sink) -> Result<(), E>,
    ) -> Result<Option<u64>, E> {
        check_names(entity, columns)?;
        let integer_key = integer_key(columns, key);
        let Some(previous) = self.may_have_file(entity)?.filter(|_| !integer_key) else {
            return Ok(None);
        };
        let page_size = self.page_size()?;
        let generation = previous.saturating_add(1);
        let new = files::NewFile::reserve(self.files.dir(), entity, generation)?;
        let mut sink =
            paged::PagedSink::create(&new.path, page_size, entity, key, columns, generation)?
                .setting_some_aside();
        let (tap, walk) = self.walk_beside(entity);
        let writer = digests::Writer::create(&new.path)
            .inspect_err(|e| tracing::debug!(entity, "row digests left out: {e}"))
            .ok()
            .map(|w| match tap {
                Some(tap) => w.tapped(tap),
                None => w,
            });
        let key_at = columns.iter().position(|(c, _)| c == key).unwrap_or(0);
        let mut digesting = digests::Digesting::new(&mut sink, writer, key_at);
        let filled = fill(&mut digesting);
        let writer = digesting.into_writer();
        if let Some(why) = sink.unpaged() {
            tracing::debug!(entity, "an import goes through SQLite: {why}");
            return Ok(None);
        }
        filled?;
        if let Some(why) = sink.why_set_aside() {
            tracing::debug!(entity, "rows of an import set aside for SQLite: {why}");
        }
        let count = sink.count();
        let noted = std::mem::take(&mut sink.noted);
        if !sink.finish(&new.path)? {
            tracing::debug!(
                entity,
                "an import goes through SQLite: a key set aside repeats"
            );
            return Ok(None);
        }
        // The list is not synced: a torn one fails its checksum. One that
        // could not be finished is removed, and the tables are compared.
        if let Some(w) = writer {
            w.finish(count);
        }
        let walked = walk.map(|(live, walking)| {
            let answer = walking
                .join()
                .map_err(|_| "the thread stopped unexpectedly".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .inspect_err(|e| tracing::debug!(entity, "the walk beside the import failed: {e}"))
                .ok();
            (live, answer)
        });
        new.sync()?;
        Ok(Some(self.publish_file(
            entity,
            (key, columns),
            new,
            (count, &noted),
            (false, walked),
        )?))
    }

    /// For an import written page by page: when the live file has a list
    /// of row digests, a thread walking it against the new list as the
    /// rows are written (see [`walk_diff::diff_digests_fed`]), and the tap
    /// that feeds it; the live file with the thread.
    fn walk_beside(&self, entity: &str) -> (Option<digests::Tap>, Option<Walking>) {
        if self.untracked.load(Ordering::Relaxed) > 0 {
            return (None, None);
        }
        let live: Option<(String, i64)> = self
            .conn()
            .query_row(
                "SELECT file, rows FROM _tf_entities WHERE name = ?1 AND file IS NOT NULL",
                [entity],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .inspect_err(|e| tracing::debug!(entity, "no walk beside the import: {e}"))
            .ok()
            .flatten();
        let Some((file, rows)) = live else {
            return (None, None);
        };
        let live = self.files.dir().join(file);
        if !digests::path_of(&live).exists() {
            return (None, None);
        }
        let (send, fed) = std::sync::mpsc::sync_channel(WALK_DEPTH);
        let rows = u64::try_from(rows).unwrap_or(0);
        let path = live.clone();
        let spawned = std::thread::Builder::new()
            .name("tf-walk".to_owned())
            .spawn(move || {
                let limit = changes::MAX_TRACKED_CHANGES + 1;
                walk_diff::diff_digests_fed((&path, rows), fed, limit, walk_diff::MAX_WAITING_ROWS)
            });
        match spawned {
            Ok(walking) => (Some(digests::Tap::new(send)), Some((live, walking))),
            Err(e) => {
                tracing::debug!(entity, "no walk beside the import: {e}");
                (None, None)
            }
        }
    }

    /// The generation `entity` has (0: none) when its next import may go to
    /// a file of its own (see [`EntityDb::has_room`]).
    fn may_have_file(&self, entity: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.conn();
        let (previous, _) = self.kept_in(&conn, entity)?;
        Ok(self.has_room(&conn, entity)?.then_some(previous))
    }

    /// Whether `entity` may be kept in a file of its own: fewer than
    /// [`MAX_ENTITY_FILES`] other entities are.
    fn has_room(&self, conn: &Connection, entity: &str) -> Result<bool, StoreError> {
        Ok(self.files_but(conn, entity)? < MAX_ENTITY_FILES)
    }

    /// How many entities but `entity` are kept in files of their own (each
    /// attached); `""` counts them all (no entity has that name).
    fn files_but(&self, conn: &Connection, entity: &str) -> Result<usize, StoreError> {
        let n: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM _tf_entities WHERE file IS NOT NULL AND name <> ?1",
            )
            .and_then(|mut s| s.query_row([entity], |r| r.get(0)))
            .map_err(|e| self.sql(e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Make the written file `new` the data of `entity` (its `key` and
    /// `columns`): `count` rows, partitions as `noted`, in one transaction
    /// that records the rows changed. The file it replaces is removed.
    fn publish_file(
        &self,
        entity: &str,
        (key, columns): (&str, &[(String, ColumnType)]),
        new: files::NewFile,
        (count, noted): (u64, &partitions::Noted),
        (unordered, walked): (bool, Option<changes::Walked>),
    ) -> Result<u64, StoreError> {
        let in_new = |source| StoreError::Sqlite {
            path: new.path.clone(),
            source,
        };
        let mut conn = self.conn();
        files::attach(&conn, &new.path, files::INCOMING).map_err(in_new)?;
        let published = (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.sql(e))?;
            let (_, file) = self.kept_in(&tx, entity)?;
            let dir = self.files.dir();
            let tables = changes::Replacing {
                live: live_table(entity, file.is_some()),
                new: format!("{}.{}", files::INCOMING, table_name(entity)),
                new_file: Some((files::uri(&new.path), table_name(entity))),
                digests: file
                    .as_ref()
                    .map(|f| (dir.join(f), new.path.clone(), count)),
                walked,
            };
            changes::record(self, &tx, entity, key, columns, unordered, &tables)?;
            // Imports under way at once may each have found room: the
            // limit holds here, where publishing is one at a time.
            let home = !self.has_room(&tx, entity)?;
            let rows = match home {
                true => NewRows::Home,
                false => NewRows::File(&new.name),
            };
            let old = self.swap_in(&tx, entity, key, columns, count, rows)?;
            partitions::record(&tx, entity, noted, count, true).map_err(|e| self.sql(e))?;
            if home {
                files::copy_home(&tx, files::INCOMING).map_err(|e| self.sql(e))?;
            }
            tx.commit().map_err(|e| self.sql(e))?;
            Ok::<_, StoreError>((old, home))
        })();
        if let Err(e) = conn.execute_batch(&format!("DETACH DATABASE {}", files::INCOMING)) {
            tracing::warn!(store = %self.path.display(), "cannot detach a published file: {e}");
        }
        let (old, home) = published?;
        if !home {
            new.keep();
        }
        self.retire(&conn, old);
        drop(conn);
        self.forget(entity);
        Ok(count)
    }

    /// Move `entity`'s tables from its file into the main file (rows keep
    /// their rowids), for a change in place; nothing if it has no file.
    pub(super) fn localize(&self, entity: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let (_, Some(file)) = self.kept_in(&tx, entity)? else {
            return Ok(());
        };
        files::copy_home(&tx, &files::schema(entity)).map_err(|e| self.sql(e))?;
        tx.execute(
            "UPDATE _tf_entities SET file = NULL WHERE name = ?1",
            params![entity],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        self.retire(&conn, Some(file));
        Ok(())
    }

    /// `entity`'s generation (0 when it has none) and the file it is kept
    /// in, if any.
    fn kept_in(
        &self,
        conn: &Connection,
        entity: &str,
    ) -> Result<(i64, Option<String>), StoreError> {
        let row: Option<(i64, Option<String>)> = conn
            .query_row(
                "SELECT generation, file FROM _tf_entities WHERE name = ?1",
                params![entity],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(row.unwrap_or((0, None)))
    }

    /// After a commit that replaced entity files: attach the new ones,
    /// detach and remove the old.
    fn retire(&self, conn: &Connection, old: Option<String>) {
        if let Err(e) = self.files.sync(conn, true) {
            tracing::warn!(store = %self.path.display(), "cannot attach the entity files: {e}");
        }
        if let Some(name) = old {
            files::remove(self.files.dir(), &name);
        }
    }

    /// Write `entity`'s new rows into its staging table, inside `tx` (laid
    /// out as given; the generation the entity has names a key index built
    /// later): the rows written, the partitions noted, and whether the keys
    /// came in no order (see [`key_index`]).
    fn fill_staging<E: From<StoreError>>(
        &self,
        tx: &rusqlite::Transaction<'_>,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        (layout, generation): (Layout, i64),
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<(u64, partitions::Noted, bool), E> {
        check_names(entity, columns)?;
        let key_index = columns.iter().position(|(c, _)| c == key).ok_or_else(|| {
            StoreError::KeyNotAColumn {
                entity: entity.to_owned(),
                key: key.to_owned(),
            }
        })?;
        let staging = Table::staging(entity);
        let col_defs = column_defs(columns, key);
        let placeholders = vec!["?"; columns.len()].join(", ");
        let integer_key = key_is_rowid(columns, key_index);
        let key_later = match layout {
            Layout::RowidKeyLater if !integer_key => Some(KeyLater::new(Later::Index {
                name: key_index::name(entity, generation.saturating_add(1)),
                built: true,
            })),
            Layout::Clustered => Some(KeyLater::new(Later::Sort {
                side: key_index::side_table(entity),
                diverted: false,
            })),
            Layout::Rowid | Layout::RowidKeyLater => None,
        };
        let (primary_key, without_rowid) = match layout {
            Layout::RowidKeyLater if key_later.is_some() => (String::new(), ""),
            Layout::Rowid | Layout::RowidKeyLater => (format!(", PRIMARY KEY (\"{key}\")"), ""),
            Layout::Clustered => (format!(", PRIMARY KEY (\"{key}\")"), " WITHOUT ROWID"),
        };
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {staging};
             CREATE TABLE {staging} ({col_defs}{primary_key}){without_rowid};"
        ))
        .map_err(|e| self.sql(e))?;
        // Indexed from the start: keys that come in order cost little to
        // index as they come; the index is dropped if they do not.
        if let Some(Later::Index { name, .. }) = key_later.as_ref().map(|l| &l.later) {
            tx.execute_batch(&format!(
                "CREATE UNIQUE INDEX {name} ON {staging} (\"{key}\")"
            ))
            .map_err(|e| self.sql(e))?;
        }
        let insert = tx
            .prepare(&format!("INSERT INTO {staging} VALUES ({placeholders})"))
            .map_err(|e| self.sql(e))?;
        let mut sink = RowSink {
            tx,
            insert,
            target: staging.clone(),
            staging,
            entity: entity.to_owned(),
            key: key.to_owned(),
            key_index,
            columns: columns.len(),
            names: columns
                .iter()
                .map(|(c, _)| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            spacing: None,
            spaceable: !integer_key && !matches!(layout, Layout::Clustered),
            count: 0,
            path: &self.path,
            noted: partitions::Noted::default(),
            member_insert: None,
            partition: 0,
            insert_chunk: None,
            key_later,
        };
        fill(&mut sink)?;
        sink.build_key_index().map_err(|(_, e)| e)?;
        let unordered = sink.key_later.is_some_and(|l| l.order.unordered());
        Ok((sink.count, sink.noted, unordered))
    }

    /// Make `entity`'s new `rows` its data, with a new generation, inside
    /// `tx`. The file it was kept in before, if any, to
    /// [`EntityDb::retire`] once `tx` commits; call [`EntityDb::forget`]
    /// then too.
    fn swap_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        count: u64,
        rows: NewRows<'_>,
    ) -> Result<Option<String>, StoreError> {
        let file = match rows {
            NewRows::File(name) => Some(name),
            NewRows::Staged | NewRows::Home => None,
        };
        let (table, staging) = (table_name(entity), Table::staging(entity));
        let (previous, old_file) = self.kept_in(tx, entity)?;
        let generation = previous + 1;
        let cols_json = serde_json::to_string(
            &columns
                .iter()
                .map(|(c, t)| (c.as_str(), type_name(*t)))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".into());
        // Qualified: a table of the same name may be in an attached file.
        let mut swap = format!("DROP TABLE IF EXISTS main.{table};");
        if let NewRows::Staged = rows {
            swap.push_str(&format!("ALTER TABLE main.{staging} RENAME TO {table};"));
        }
        tx.execute_batch(&swap).map_err(|e| self.sql(e))?;
        tx.execute(
            "INSERT INTO _tf_entities (name, key, columns, generation, rows, updated_at, file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(name) DO UPDATE SET key = excluded.key, columns = excluded.columns,
               generation = excluded.generation, rows = excluded.rows,
               updated_at = excluded.updated_at, file = excluded.file",
            params![
                entity,
                key,
                cols_json,
                generation,
                i64::try_from(count).unwrap_or(i64::MAX),
                crate::event::now_rfc3339(),
                file
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(old_file.filter(|old| Some(old.as_str()) != file))
    }

    /// Drop what is cached about `entity` after its data changed.
    fn forget(&self, entity: &str) {
        self.meta
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(entity);
        self.cursors.forget_entity(entity);
    }

    /// One item by primary key, as a JSON object.
    pub fn get_item(
        &self,
        entity: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let meta = self.meta(entity)?;
        let key_type = meta.schema.get(&meta.key).unwrap_or(ColumnType::String);
        let id_value = match key_type {
            ColumnType::Integer => match id.trim().parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => return Ok(None),
            },
            ColumnType::Decimal => match id.trim().parse::<f64>() {
                Ok(n) => Value::Real(n),
                Err(_) => return Ok(None),
            },
            _ => Value::Text(id.to_owned()),
        };
        let cols = page::column_list(
            &meta
                .schema
                .columns
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>(),
        );
        let sql = format!(
            "SELECT {cols} FROM {} WHERE \"{}\" = ?1",
            meta.table(),
            meta.key
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let item = stmt
            .query_row([id_value], |r| {
                page::row_to_json(r, &meta.schema.columns, 0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(item)
    }
}

/// Where an entity's new rows are when [`EntityDb::swap_in`] makes them
/// its data.
#[derive(Debug, Clone, Copy)]
enum NewRows<'f> {
    /// In its staging table, in the main file.
    Staged,
    /// In the published entity file of this name.
    File(&'f str),
    /// In a file that will not be kept: the caller copies them into the
    /// main file before its transaction ends.
    Home,
}

/// How an entity's table is laid out.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Rows by rowid, with an index on the key: source entities, whose
    /// rowids the engine tracks (incremental unification, partitions).
    Rowid,
    /// [`Layout::Rowid`], the key's index built once the rows are in (see
    /// [`key_index`]); an integer key stays the rowid, as in `Rowid`.
    RowidKeyLater,
    /// Rows kept in key order (`WITHOUT ROWID`): the engine's computed
    /// entities, read by key. One B-tree instead of a table and an index:
    /// the key is stored once. Rows pushed in no key order are sorted in
    /// after the last (see [`key_index`]).
    Clustered,
}
