//! Bulk-builds a SQLite 3 database file page by page.
//!
//! A [`PageFile`] takes one table's rows in rowid order, and optionally the
//! keys of one unique index in ascending order, and writes the table's and
//! the index's B-trees bottom-up, each page once, in file order. No SQL is
//! run and no page is revisited: the file SQLite would hold after the same
//! inserts, for a fraction of the cost (see `BENCHMARKS.md`, "A page
//! writer of our own"). The result is an ordinary database that SQLite
//! opens, checks (`PRAGMA integrity_check`) and writes to as any other.
//!
//! Values must already be what SQLite would store (the column's affinity
//! applied, text in UTF-8); the writer checks the order of rowids and keys
//! and the count of values, not types.

mod format;
mod page;
mod pages;
mod tree;

use std::path::{Path, PathBuf};

use format::{record, record_len, Header, Tree};
use page::{Kind, Page};
use pages::Pages;
use tree::{IndexTree, TableTree};

pub use pages::MAX_PAGES;

/// The largest record the writer takes: SQLite's default `SQLITE_MAX_LENGTH`,
/// past which SQLite cannot read a row back.
pub const MAX_RECORD: usize = 1_000_000_000;

/// A value as stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    /// Text as its UTF-8 bytes, already known to be valid UTF-8 (the
    /// writer does not check it again; SQLite would read invalid bytes as
    /// they are).
    Utf8(&'a [u8]),
    Blob(&'a [u8]),
}

/// How the file is laid out.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Bytes a page: a power of two from 512 to 65536.
    pub page_size: u32,
    /// Whether the header marks the file for WAL mode.
    pub wal: bool,
    /// Whether [`PageFile::finish`] syncs the file to disk (as SQLite's
    /// `synchronous` above `OFF` would).
    pub sync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            page_size: 4096,
            wal: false,
            sync: true,
        }
    }
}

/// The table the rows go to.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    pub name: &'a str,
    /// Its `CREATE TABLE` statement, as `sqlite_schema` keeps it.
    pub sql: &'a str,
    /// Values a row has.
    pub columns: usize,
}

/// A unique index over one column of the table.
#[derive(Clone, Copy, Debug)]
pub struct Index<'a> {
    pub name: &'a str,
    /// Its `CREATE UNIQUE INDEX` statement; `None` for the index SQLite
    /// makes itself for a `PRIMARY KEY` or `UNIQUE` constraint (named
    /// `sqlite_autoindex_<table>_<n>`).
    pub sql: Option<&'a str>,
    /// The column it indexes (0-based).
    pub column: usize,
}

/// What a finished file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub pages: u32,
    pub table_root: u32,
    pub index_root: Option<u32>,
}

/// Why a file could not be written. Rows are counted from 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("page size {0}: must be a power of two from 512 to 65536")]
    PageSize(u32),
    #[error(
        "index '{index}': column {column} is outside the {columns} columns of table '{table}'"
    )]
    IndexColumn {
        index: String,
        column: usize,
        columns: usize,
        table: String,
    },
    #[error("row {row}: {got} values for the {expected} columns of table '{table}'")]
    Columns {
        row: u64,
        got: usize,
        expected: usize,
        table: String,
    },
    #[error("row {row}: rowid {rowid} is not above the previous row's {previous}")]
    RowidOrder { row: u64, rowid: i64, previous: i64 },
    #[error("row {row}: {bytes} bytes, more than the {MAX_RECORD} a row may take")]
    RecordTooLarge { row: u64, bytes: usize },
    #[error("row {row}: the key of index '{index}' (column {column}) is {found}; keys are integers, text or blobs")]
    KeyType {
        row: u64,
        index: String,
        column: usize,
        found: &'static str,
    },
    #[error("row {row}: the key of index '{index}' is not above the previous row's (keys come in ascending order, each once)")]
    KeyOrder { row: u64, index: String },
    #[error("the schema of table '{0}' and its index does not fit on page 1")]
    SchemaTooLarge(String),
    #[error("{path}: more than {MAX_PAGES} pages")]
    TooManyPages { path: PathBuf },
    #[error("page writer invariant broken: {0}")]
    Invariant(&'static str),
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The last key indexed, kept to check the next one's order.
#[derive(Default)]
struct LastKey {
    /// 0 before the first key, then 1 integer, 2 text, 3 blob: SQLite's
    /// order between storage classes.
    class: u8,
    int: i64,
    bytes: Vec<u8>,
}

impl LastKey {
    /// Whether `key` sorts after the last key; it becomes the last.
    fn advance(&mut self, key: &Value<'_>) -> bool {
        let (class, int, bytes): (u8, i64, &[u8]) = match *key {
            Value::Integer(i) => (1, i, &[]),
            Value::Text(s) => (2, 0, s.as_bytes()),
            Value::Utf8(s) => (2, 0, s),
            Value::Blob(b) => (3, 0, b),
            Value::Null | Value::Real(_) => return false,
        };
        let after = match class.cmp(&self.class) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if class == 1 => int > self.int,
            std::cmp::Ordering::Equal => bytes > self.bytes.as_slice(),
        };
        if after {
            self.class = class;
            self.int = int;
            self.bytes.clear();
            self.bytes.extend_from_slice(bytes);
        }
        after
    }
}

struct IndexState {
    tree: IndexTree,
    name: String,
    sql: Option<String>,
    column: usize,
    last: LastKey,
}

/// A database file being written: see the crate's documentation.
pub struct PageFile {
    pages: Option<Pages>,
    path: PathBuf,
    options: Options,
    table: TableTree,
    table_name: String,
    table_sql: String,
    columns: usize,
    index: Option<IndexState>,
    rows: u64,
    last_rowid: Option<i64>,
    record: Vec<u8>,
    cell: Vec<u8>,
}

impl PageFile {
    /// Start the file at `path`, which must not exist. Dropped before
    /// [`PageFile::finish`], the file is removed.
    pub fn create(
        path: &Path,
        options: Options,
        table: Table<'_>,
        index: Option<Index<'_>>,
    ) -> Result<Self, Error> {
        let size = options.page_size;
        if !(512..=65536).contains(&size) || !size.is_power_of_two() {
            return Err(Error::PageSize(size));
        }
        if let Some(index) = &index {
            if index.column >= table.columns {
                return Err(Error::IndexColumn {
                    index: index.name.to_owned(),
                    column: index.column,
                    columns: table.columns,
                    table: table.name.to_owned(),
                });
            }
        }
        let size = size as usize;
        Ok(Self {
            pages: Some(Pages::create(path, size)?),
            path: path.to_owned(),
            options,
            table: TableTree::new(size),
            table_name: table.name.to_owned(),
            table_sql: table.sql.to_owned(),
            columns: table.columns,
            index: index.map(|i| IndexState {
                tree: IndexTree::new(size),
                name: i.name.to_owned(),
                sql: i.sql.map(str::to_owned),
                column: i.column,
                last: LastKey::default(),
            }),
            rows: 0,
            last_rowid: None,
            record: Vec::new(),
            cell: Vec::new(),
        })
    }

    /// Add a row with the rowid after the last one (1 for the first).
    pub fn push(&mut self, values: &[Value<'_>]) -> Result<(), Error> {
        let rowid = self.last_rowid.map_or(1, |r| r.saturating_add(1));
        self.push_rowid(rowid, values)
    }

    /// Add a row with `rowid`, above the last row's.
    pub fn push_rowid(&mut self, rowid: i64, values: &[Value<'_>]) -> Result<(), Error> {
        let row = self.rows + 1;
        if values.len() != self.columns {
            return Err(Error::Columns {
                row,
                got: values.len(),
                expected: self.columns,
                table: self.table_name.clone(),
            });
        }
        if let Some(previous) = self.last_rowid.filter(|p| rowid <= *p) {
            return Err(Error::RowidOrder {
                row,
                rowid,
                previous,
            });
        }
        let sizes = record_len(values);
        let bytes = sizes.1;
        if bytes > MAX_RECORD {
            return Err(Error::RecordTooLarge { row, bytes });
        }
        let pages = self.pages.as_mut().ok_or(Error::Invariant("pages open"))?;
        if let Some(index) = &mut self.index {
            let key = &values[index.column];
            if !index.last.advance(key) {
                let found = match key {
                    Value::Null => "NULL",
                    Value::Real(_) => "a real number",
                    _ => {
                        return Err(Error::KeyOrder {
                            row,
                            index: index.name.clone(),
                        })
                    }
                };
                return Err(Error::KeyType {
                    row,
                    index: index.name.clone(),
                    column: index.column,
                    found,
                });
            }
        }
        self.cell.clear();
        pages.record_cell(
            &mut self.cell,
            &mut self.record,
            (Tree::Table, Some(rowid)),
            values,
            sizes,
        )?;
        self.table.add(pages, rowid, &self.cell)?;
        if let Some(index) = &mut self.index {
            let entry = [values[index.column], Value::Integer(rowid)];
            self.cell.clear();
            let sizes = record_len(&entry);
            pages.record_cell(
                &mut self.cell,
                &mut self.record,
                (Tree::Index, None),
                &entry,
                sizes,
            )?;
            index.tree.add(pages, &self.cell)?;
        }
        self.rows = row;
        self.last_rowid = Some(rowid);
        Ok(())
    }

    /// Write the trees' last pages, the schema and the header, and sync.
    pub fn finish(mut self) -> Result<Summary, Error> {
        let mut pages = self.pages.take().ok_or(Error::Invariant("pages open"))?;
        let size = pages.size();
        let table = std::mem::replace(&mut self.table, TableTree::new(size));
        let table_root = table.finish(&mut pages)?;
        let index = match self.index.take() {
            Some(i) => Some((i.tree.finish(&mut pages)?, i.name, i.sql)),
            None => None,
        };
        let mut schema = Page::new(Kind::LeafTable, size, 100);
        let name = self.table_name.as_str();
        let mut rows = vec![[
            Value::Text("table"),
            Value::Text(name),
            Value::Text(name),
            Value::Integer(i64::from(table_root)),
            Value::Text(&self.table_sql),
        ]];
        if let Some((root, index_name, sql)) = &index {
            rows.push([
                Value::Text("index"),
                Value::Text(index_name),
                Value::Text(name),
                Value::Integer(i64::from(*root)),
                sql.as_deref().map_or(Value::Null, Value::Text),
            ]);
        }
        for (i, row) in rows.iter().enumerate() {
            record(&mut self.record, row);
            self.cell.clear();
            pages.cell(
                &mut self.cell,
                Tree::Table,
                Some(i as i64 + 1),
                &self.record,
            )?;
            if !schema.fits(self.cell.len()) {
                return Err(Error::SchemaTooLarge(self.table_name.clone()));
            }
            schema.push(&self.cell);
        }
        let count = pages.count();
        let mut first = schema.finish(0).to_vec();
        first[..100].copy_from_slice(
            &Header {
                page_size: self.options.page_size,
                pages: count,
                wal: self.options.wal,
            }
            .bytes(),
        );
        pages.finish(&first, self.options.sync)?;
        let summary = Summary {
            rows: self.rows,
            pages: count,
            table_root,
            index_root: index.map(|(root, ..)| root),
        };
        self.path = PathBuf::new();
        Ok(summary)
    }
}

impl Drop for PageFile {
    fn drop(&mut self) {
        // Unfinished: the file is not a database; remove it.
        if !self.path.as_os_str().is_empty() {
            drop(self.pages.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
