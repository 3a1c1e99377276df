//! An entity scanned whole on two cores for the few rows a test on one
//! column picks: the first half of its rows (by rowid) on the store's
//! connection, the second on a thread of its own that opens the entity's
//! file read-only (a published file never changes). An entity kept in the
//! main file, a small one, or a file that cannot be opened, is scanned on
//! the store's connection alone. The scan reads the tested column only (a
//! statement decodes every column it selects, row by row); the other
//! columns are read for the rows picked, by rowid.

use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};

use super::{files, live_table, table_name, EntityDb, StoreError};

/// Rows under which an entity is scanned on one core (a thread and a
/// connection cost more than they save).
pub const HALVED_FROM_ROWS: i64 = 64 * 1024;

impl EntityDb {
    /// What `keep` makes of each live row of `entity` whose `column` passes
    /// `test`, given the row's `columns`, in rowid order; `None` once more
    /// than `limit` passed. Both halves run `test` and `keep` at once.
    pub fn scan_halves<T: Send>(
        &self,
        entity: &str,
        (column, test): (&str, impl Fn(ValueRef<'_>) -> bool + Sync),
        columns: &[&str],
        limit: usize,
        keep: impl Fn(&Row<'_>) -> rusqlite::Result<T> + Sync,
    ) -> Result<Option<Vec<T>>, StoreError> {
        let conn = self.conn();
        let (_, file) = self.kept_in(&conn, entity)?;
        let live = live_table(entity, file.is_some());
        let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let scan = Scan {
            kept: AtomicUsize::new(0),
            limit,
            test: &test,
            keep: &keep,
        };
        // A clustered table (`WITHOUT ROWID`) is read in one pass, its
        // columns and the tested one last.
        if conn
            .prepare(&format!("SELECT rowid FROM {live} LIMIT 0"))
            .is_err()
        {
            let select = format!("SELECT {}, \"{column}\" FROM {live}", names.join(", "));
            return scan
                .run_whole(&conn, &select, columns.len())
                .map_err(|e| self.sql(e));
        }
        let (first, last): (Option<i64>, Option<i64>) = conn
            // Each in a query of its own: together, they would scan the table.
            .query_row(
                &format!("SELECT (SELECT min(rowid) FROM {live}), (SELECT max(rowid) FROM {live})"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Some(Vec::new()));
        };
        let select = |table: &str| Selects {
            scan: format!("SELECT rowid, \"{column}\" FROM {table} WHERE rowid BETWEEN ?1 AND ?2"),
            fetch: format!("SELECT {} FROM {table} WHERE rowid = ?1", names.join(", ")),
        };
        let span = last.saturating_sub(first);
        let mid = first.saturating_add(span / 2);
        let path = file.map(|f| self.files.dir().join(f));
        let Some(path) = path.filter(|_| span >= HALVED_FROM_ROWS) else {
            return scan
                .run(&conn, &select(&live), (first, last))
                .map_err(|e| self.sql(e));
        };
        let away = format!("main.{}", table_name(entity));
        let (near, far) = std::thread::scope(|s| {
            let far = s.spawn(|| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let other = Connection::open_with_flags(files::uri(&path), flags)?;
                scan.run(&other, &select(&away), (mid + 1, last))
            });
            let near = scan.run(&conn, &select(&live), (first, mid));
            (near, far.join())
        });
        let near = near.map_err(|e| self.sql(e))?;
        let far = match far {
            Ok(far) => far,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let far = match far {
            Ok(far) => far,
            // Rows it kept before failing still count toward the limit: at
            // worst the scan gives up early, which callers take as "too many".
            Err(e) => {
                tracing::warn!(file = %path.display(), "scanning half of {entity} on a thread of its own: {e}");
                scan.run(&conn, &select(&live), (mid + 1, last))
                    .map_err(|e| self.sql(e))?
            }
        };
        Ok(near.zip(far).map(|(mut near, far)| {
            near.extend(far);
            near
        }))
    }
}

/// A half's statements: the scan of the tested column over a range of
/// rowids, and the read of a picked row's columns.
struct Selects {
    scan: String,
    fetch: String,
}

/// What both halves share: the test, what is kept of a row that passes,
/// and how many passed, of `limit`.
struct Scan<'k, P, K> {
    kept: AtomicUsize,
    limit: usize,
    test: &'k P,
    keep: &'k K,
}

impl<P, K> Scan<'_, P, K>
where
    P: Fn(ValueRef<'_>) -> bool,
{
    /// Scan the rowids `range` (inclusive); `None` once the halves kept
    /// more than the limit.
    fn run<T>(
        &self,
        conn: &Connection,
        select: &Selects,
        range: (i64, i64),
    ) -> rusqlite::Result<Option<Vec<T>>>
    where
        K: Fn(&Row<'_>) -> rusqlite::Result<T>,
    {
        let mut scan = conn.prepare(&select.scan)?;
        let mut fetch = conn.prepare(&select.fetch)?;
        let mut rows = scan.query([range.0, range.1])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            if !(self.test)(r.get_ref(1)?) {
                continue;
            }
            if self.kept.fetch_add(1, Ordering::Relaxed) >= self.limit {
                return Ok(None);
            }
            let rowid: i64 = r.get(0)?;
            out.push(fetch.query_row([rowid], |row| (self.keep)(row))?);
        }
        Ok(Some(out))
    }

    /// Run `select`, whose column `tested` is the tested one, over the
    /// whole table; `None` once more than the limit passed.
    fn run_whole<T>(
        &self,
        conn: &Connection,
        select: &str,
        tested: usize,
    ) -> rusqlite::Result<Option<Vec<T>>>
    where
        K: Fn(&Row<'_>) -> rusqlite::Result<T>,
    {
        let mut stmt = conn.prepare(select)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            if !(self.test)(r.get_ref(tested)?) {
                continue;
            }
            if self.kept.fetch_add(1, Ordering::Relaxed) >= self.limit {
                return Ok(None);
            }
            out.push((self.keep)(r)?);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::ColumnType;
    use rusqlite::types::Value;

    /// A store whose entity `E` (Id TEXT key, N INTEGER) holds `n` rows,
    /// in a file of its own when `in_file`.
    fn store_of(n: i64, in_file: bool) -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let columns = [
            ("Id".to_owned(), ColumnType::String),
            ("N".to_owned(), ColumnType::Integer),
        ];
        let rows: Vec<Vec<Value>> = (0..n)
            .map(|i| vec![Value::Text(format!("k{i:07}")), Value::Integer(i)])
            .collect();
        match in_file {
            true => {
                let paged = crate::store::paged::import_paged(&store, "E", &columns, &rows, 512);
                assert_eq!(
                    paged.unwrap(),
                    Some(n as u64),
                    "written to a file of its own"
                );
            }
            false => {
                let rows = rows.into_iter().map(Ok);
                store
                    .replace_entity_with("E", "Id", &columns, super::super::pushing(rows))
                    .unwrap();
            }
        }
        (dir, store)
    }

    /// A store whose entity `E` holds `n` rows in a clustered table
    /// (`WITHOUT ROWID`, as a publication writes computed entities).
    fn clustered_store_of(n: i64) -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let columns = [
            ("Id".to_owned(), ColumnType::String),
            ("N".to_owned(), ColumnType::Integer),
        ];
        let rows = (0..n).map(|i| Ok(vec![Value::Text(format!("k{i:07}")), Value::Integer(i)]));
        let mut publication = store.publication();
        publication
            .replace_entity_with("E", "Id", &columns, super::super::pushing(rows))
            .unwrap();
        publication.publish().unwrap();
        (dir, store)
    }

    fn multiples_of(store: &EntityDb, m: i64, limit: usize) -> Option<Vec<(i64, String)>> {
        let test = |v: ValueRef<'_>| v.as_i64().is_ok_and(|n| n % m == 0);
        store
            .scan_halves("E", ("N", test), &["N", "Id"], limit, |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
    }

    #[test]
    fn both_halves_keep_their_rows_in_rowid_order_up_to_the_limit() {
        let n = 3 * HALVED_FROM_ROWS;
        for in_file in [true, false] {
            let (_dir, store) = store_of(n, in_file);
            let expected: Vec<(i64, String)> = (0..n)
                .filter(|i| i % 1000 == 0)
                .map(|i| (i, format!("k{i:07}")))
                .collect();
            assert_eq!(multiples_of(&store, 1000, 10_000), Some(expected.clone()));
            assert_eq!(
                multiples_of(&store, 1000, expected.len()),
                Some(expected.clone())
            );
            assert_eq!(
                multiples_of(&store, 1000, expected.len() - 1),
                None,
                "{in_file}"
            );
        }
    }

    #[test]
    fn a_clustered_table_is_scanned_in_one_pass() {
        let (_dir, store) = clustered_store_of(5000);
        let expected: Vec<(i64, String)> = (0..5000)
            .filter(|i| i % 1000 == 0)
            .map(|i| (i, format!("k{i:07}")))
            .collect();
        assert_eq!(multiples_of(&store, 1000, 10), Some(expected));
        assert_eq!(multiples_of(&store, 1000, 4), None);
    }

    #[test]
    fn an_empty_or_small_entity_is_scanned_on_one_core() {
        let (_dir, store) = store_of(0, true);
        assert_eq!(multiples_of(&store, 1, 10), Some(vec![]));
        let (_dir, store) = store_of(5, true);
        let picked = multiples_of(&store, 2, 10).unwrap();
        assert_eq!(picked.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 2, 4]);
    }
}
