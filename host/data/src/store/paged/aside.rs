//! Rows of a paged file set aside: those whose key falls below the last
//! key paged, or whose values SQLite would convert. They wait in a scratch
//! SQLite file beside the new one, and SQLite inserts them, in key order,
//! once the pages are finished. Rows that come nearly in order (a few new
//! customer ids among reused ones) cost little more than paging them.

use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;

use super::StoreError;

/// Rows set aside, in a scratch file removed when dropped.
pub(super) struct Aside {
    conn: Connection,
    path: PathBuf,
    insert: String,
    columns: usize,
    /// Rows set aside so far.
    rows: u64,
    /// Why the first row was set aside.
    pub(super) why: String,
}

impl Aside {
    /// A scratch file beside the new file `new`, for rows of `columns`
    /// values; `why` the first is set aside.
    pub(super) fn create(new: &Path, columns: usize, why: String) -> Result<Self, StoreError> {
        let mut name = new.file_name().unwrap_or_default().to_os_string();
        name.push(".aside.sqlite");
        let path = new.with_file_name(name);
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).map_err(sql)?;
        // Untyped columns: values wait as given; the insert types them.
        let cols: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             CREATE TABLE aside (row INTEGER, {});
             BEGIN;",
            cols.join(", ")
        ))
        .map_err(sql)?;
        let insert = format!("INSERT INTO aside VALUES (?{})", ", ?".repeat(columns));
        tracing::debug!(file = %new.display(), "rows set aside for SQLite: {why}");
        Ok(Self {
            conn,
            path,
            insert,
            columns,
            rows: 0,
            why,
        })
    }

    /// Set aside `values`, row number `row` of the file's.
    pub(super) fn push(&mut self, row: u64, values: &[ValueRef<'_>]) -> Result<(), StoreError> {
        self.rows += 1;
        let row = i64::try_from(row).unwrap_or(i64::MAX);
        let params = std::iter::once(ToSqlOutput::Owned(Value::Integer(row)))
            .chain(values.iter().map(|v| ToSqlOutput::Borrowed(*v)));
        self.conn
            .prepare_cached(&self.insert)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(params)))
            .map(drop)
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// Rows set aside so far.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// Insert every row set aside into `table` of the finished file `file`,
    /// in order of the key (column `key_index`); a duplicate key is the
    /// error `duplicate` makes of its row number and key.
    pub(super) fn insert_into(
        self,
        file: &Path,
        table: &str,
        key_index: usize,
        duplicate: impl Fn(u64, ValueRef<'_>) -> StoreError,
    ) -> Result<(), StoreError> {
        let in_file = |source| StoreError::Sqlite {
            path: file.to_owned(),
            source,
        };
        let conn = &self.conn;
        conn.execute_batch("COMMIT")
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        conn.execute("ATTACH DATABASE ?1 AS tf_new", [file.to_string_lossy()])
            .map_err(in_file)?;
        conn.execute_batch(
            "PRAGMA tf_new.journal_mode = OFF;
             PRAGMA tf_new.synchronous = OFF;
             BEGIN;",
        )
        .map_err(in_file)?;
        {
            let mut read = conn
                .prepare(&format!(
                    "SELECT * FROM main.aside ORDER BY c{key_index}, row"
                ))
                .map_err(in_file)?;
            let mut write = conn
                .prepare(&format!(
                    "INSERT INTO tf_new.{table} VALUES ({})",
                    vec!["?"; self.columns].join(", ")
                ))
                .map_err(in_file)?;
            let mut rows = read.query([]).map_err(in_file)?;
            while let Some(r) = rows.next().map_err(in_file)? {
                let values = (1..=self.columns).map(|i| r.get_ref(i).map(ToSqlOutput::Borrowed));
                let values = values.collect::<Result<Vec<_>, _>>().map_err(in_file)?;
                match write.execute(rusqlite::params_from_iter(values.iter())) {
                    Ok(_) => {}
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                    {
                        let row: i64 = r.get(0).map_err(in_file)?;
                        let key = r.get_ref(key_index + 1).map_err(in_file)?;
                        return Err(duplicate(u64::try_from(row).unwrap_or(0), key));
                    }
                    Err(e) => return Err(in_file(e)),
                }
            }
        }
        conn.execute_batch("COMMIT; DETACH DATABASE tf_new;")
            .map_err(in_file)
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
