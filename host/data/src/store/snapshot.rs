//! Whole-file copies of the store, for moving a generation between
//! machines: [`snapshot`] writes a consistent copy, [`restore`] replaces a
//! store's contents with one in a single transaction, so a reader sees the
//! old generation or the new one.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Tries of [`snapshot`] when an entity's file is replaced while it copies.
const SNAPSHOT_TRIES: usize = 3;

/// Write a consistent copy of the store at `path` to the new file `to`
/// (`VACUUM INTO`: compacted, without the write-ahead log), one file with
/// the entities kept in files of their own brought into it; its size.
pub fn snapshot(path: &Path, to: &Path) -> Result<u64, StoreError> {
    let dir = super::files::dir_of(path);
    for attempt in 1..=SNAPSHOT_TRIES {
        let _ = std::fs::remove_file(to);
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| sql(path, e))?;
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map_err(|e| sql(path, e))?;
        drop(conn);
        match bring_files_home(to, &dir) {
            Ok(()) => break,
            // A file named in the copy was replaced (and removed) since.
            Err(e) if attempt < SNAPSHOT_TRIES => {
                tracing::debug!(store = %path.display(), "snapshot again: {e}");
            }
            Err(e) => return Err(sql(to, e)),
        }
    }
    std::fs::metadata(to)
        .map(|m| m.len())
        .map_err(|source| StoreError::Io {
            path: to.to_owned(),
            source,
        })
}

/// Copy the tables of the entities the copy `to` keeps in files of their
/// own (in `dir`) into it, so that it stands alone.
fn bring_files_home(to: &Path, dir: &Path) -> rusqlite::Result<()> {
    let mut copy = Connection::open(to)?;
    let has_files: i64 = copy.query_row(
        "SELECT count(*) FROM pragma_table_info('_tf_entities') WHERE name = 'file'",
        [],
        |r| r.get(0),
    )?;
    if has_files == 0 {
        return Ok(());
    }
    let named: Vec<(String, String)> = {
        let mut stmt =
            copy.prepare("SELECT name, file FROM _tf_entities WHERE file IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (entity, file) in named {
        let schema = super::files::schema(&entity);
        super::files::attach(&copy, &dir.join(&file), &schema)?;
        let tx = copy.transaction()?;
        super::files::copy_home(&tx, &schema)?;
        tx.execute(
            "UPDATE _tf_entities SET file = NULL WHERE name = ?1",
            [&entity],
        )?;
        tx.commit()?;
        copy.execute_batch(&format!("DETACH DATABASE {schema}"))?;
    }
    Ok(())
}

/// Replace everything in the store at `path` with the copy at `from`, once
/// the copy passes SQLite's `quick_check`.
pub fn restore(path: &Path, from: &Path) -> Result<(), StoreError> {
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sql(from, e))?;
    let check: String = src
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| sql(from, e))?;
    if check != "ok" {
        return Err(StoreError::Row {
            entity: from.display().to_string(),
            row: 0,
            message: format!("the copy is damaged: {check}"),
        });
    }
    drop(src);
    let mut dst = Connection::open(path).map_err(|e| sql(path, e))?;
    dst.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(|e| sql(path, e))?;
    dst.restore(
        rusqlite::MAIN_DB,
        from,
        None::<fn(rusqlite::backup::Progress)>,
    )
    .map_err(|e| sql(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_store_reads_as_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        let b = dir.path().join("b.db");
        let copy = dir.path().join("copy.db");
        let ca = Connection::open(&a).unwrap();
        ca.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        let cb = Connection::open(&b).unwrap();
        cb.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE u(y); INSERT INTO u VALUES (9);")
            .unwrap();
        assert!(snapshot(&a, &copy).unwrap() > 0);
        restore(&b, &copy).unwrap();
        let n: i64 = cb
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert!(cb
            .query_row("SELECT y FROM u", [], |r| r.get::<_, i64>(0))
            .is_err());
        std::fs::write(&copy, b"not a database").unwrap();
        assert!(restore(&b, &copy).is_err());
        let n: i64 = cb
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3, "a damaged copy leaves the store as it was");
    }
}
