//! Files written page by page, read back by SQLite itself: every row and
//! key as written, `PRAGMA integrity_check` clean, and the file still a
//! database SQLite writes to.

use std::path::Path;

use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use triggerfish_pagefile::{Error, Index, Options, PageFile, Table, Value};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TABLE_SQL: &str =
    "CREATE TABLE t (\"Id\" TEXT NOT NULL, \"N\" INTEGER, \"X\" REAL, \"S\" TEXT, \"B\" BLOB)";
const INDEX_SQL: &str = "CREATE UNIQUE INDEX t_id ON t (\"Id\")";

/// Row `i`'s values: a key that ascends, and values of every class and of
/// sizes that reach the overflow pages of `page` bytes.
fn row(rng: &mut Rng, i: u64, page: usize) -> Vec<Sql> {
    // Keys of 6..(page / 2) bytes: some index entries overflow too.
    let pad = rng.below((page / 2) as u64) as usize;
    let key = format!("k{i:08}{}", "x".repeat(pad.min(3 * page)));
    let n = match rng.below(6) {
        0 => Sql::Integer(0),
        1 => Sql::Integer(1),
        2 => Sql::Integer(rng.next() as i64),
        3 => Sql::Integer(-(rng.below(1 << 20) as i64)),
        4 => Sql::Null,
        _ => Sql::Integer(1 << (rng.below(62) + 1)),
    };
    let x = match rng.below(3) {
        0 => Sql::Real(rng.next() as f64 / 7.0),
        1 => Sql::Real(-0.5),
        _ => Sql::Null,
    };
    let len = match rng.below(10) {
        0 => rng.below(4 * page as u64) as usize,
        _ => rng.below(40) as usize,
    };
    let s = Sql::Text(
        (0..len)
            .map(|j| char::from(b'a' + ((i as usize + j) % 26) as u8))
            .collect(),
    );
    let b = match rng.below(4) {
        0 => Sql::Blob((0..rng.below(2 * page as u64)).map(|j| j as u8).collect()),
        1 => Sql::Blob(Vec::new()),
        _ => Sql::Null,
    };
    vec![Sql::Text(key), n, x, s, b]
}

fn borrowed(v: &Sql) -> Value<'_> {
    match v {
        Sql::Null => Value::Null,
        Sql::Integer(i) => Value::Integer(*i),
        Sql::Real(f) => Value::Real(*f),
        Sql::Text(s) => Value::Text(s),
        Sql::Blob(b) => Value::Blob(b),
    }
}

fn write(path: &Path, page: u32, rows: &[Vec<Sql>], index: Option<Index<'_>>) -> Result<(), Error> {
    let mut file = PageFile::create(
        path,
        Options {
            page_size: page,
            wal: false,
            sync: true,
        },
        Table {
            name: "t",
            sql: TABLE_SQL,
            columns: 5,
        },
        index,
    )?;
    for r in rows {
        let values: Vec<Value<'_>> = r.iter().map(borrowed).collect();
        file.push(&values)?;
    }
    let summary = file.finish()?;
    assert_eq!(summary.rows, rows.len() as u64);
    Ok(())
}

fn integrity(conn: &Connection) -> String {
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    lines.join("\n")
}

/// The count `query` gives on the file at `path`, once SQLite has found
/// the file clean.
fn clean_count(path: &Path, query: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    assert_eq!(integrity(&conn), "ok", "{}", path.display());
    conn.query_row(query, [], |r| r.get(0)).unwrap()
}

fn check(path: &Path, rows: &[Vec<Sql>], indexed: bool) {
    let conn = Connection::open(path).unwrap();
    assert_eq!(integrity(&conn), "ok", "{}", path.display());
    let mut stmt = conn
        .prepare("SELECT rowid, * FROM t ORDER BY rowid")
        .unwrap();
    let back: Vec<(i64, Vec<Sql>)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                (1..=5).map(|i| r.get(i)).collect::<Result<_, _>>()?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back.len(), rows.len());
    for (i, ((rowid, got), want)) in back.iter().zip(rows).enumerate() {
        assert_eq!(*rowid, i as i64 + 1);
        assert_eq!(got, want, "row {}", i + 1);
    }
    if indexed {
        // Through the index: its entries in key order, each naming its row.
        let mut stmt = conn
            .prepare("SELECT \"Id\", rowid FROM t INDEXED BY t_id ORDER BY \"Id\"")
            .unwrap();
        let keys: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys.len(), rows.len());
        for (i, (key, rowid)) in keys.iter().enumerate() {
            assert_eq!(Sql::Text(key.clone()), rows[i][0]);
            assert_eq!(*rowid, i as i64 + 1);
        }
        if let Some(last) = rows.last() {
            let Sql::Text(key) = &last[0] else { panic!() };
            let found: i64 = conn
                .query_row(
                    "SELECT rowid FROM t INDEXED BY t_id WHERE \"Id\" = ?1",
                    [key],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(found, rows.len() as i64);
        }
    }
}

#[test]
fn sqlite_reads_every_row_and_key_back_at_every_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for page in [512u32, 1024, 4096, 65536] {
        // Counts around one page, one level and two levels of 512-byte pages.
        for n in [0u64, 1, 2, 3, 7, 40, 41, 300, 2_000] {
            if page == 65536 && n > 300 {
                continue;
            }
            let rows: Vec<Vec<Sql>> = (0..n).map(|i| row(&mut rng, i, page as usize)).collect();
            let path = dir.path().join(format!("p{page}-n{n}.db"));
            let index = Index {
                name: "t_id",
                sql: Some(INDEX_SQL),
                column: 0,
            };
            write(&path, page, &rows, Some(index)).unwrap();
            check(&path, &rows, true);
            let bare = dir.path().join(format!("p{page}-n{n}-bare.db"));
            write(&bare, page, &rows, None).unwrap();
            check(&bare, &rows, false);
        }
    }
}

#[test]
fn small_rows_make_deep_trees_that_sqlite_checks_clean() {
    // Short keys on 512-byte pages: four levels of interior pages.
    let dir = tempfile::tempdir().unwrap();
    for n in [30_000u64, 30_001, 30_017] {
        let path = dir.path().join(format!("deep-{n}.db"));
        let mut file = PageFile::create(
            &path,
            Options {
                page_size: 512,
                wal: false,
                sync: true,
            },
            Table {
                name: "t",
                sql: "CREATE TABLE t (k INTEGER NOT NULL)",
                columns: 1,
            },
            Some(Index {
                name: "t_k",
                sql: Some("CREATE UNIQUE INDEX t_k ON t (k)"),
                column: 0,
            }),
        )
        .unwrap();
        for i in 0..n as i64 {
            file.push(&[Value::Integer(i * 3 - 40_000)]).unwrap();
        }
        file.finish().unwrap();
        let c = clean_count(&path, "SELECT count(*) FROM t INDEXED BY t_k WHERE k >= 0");
        assert_eq!(c, (0..n as i64).filter(|i| i * 3 >= 40_000).count() as i64);
    }
}

#[test]
fn every_count_closes_its_last_pages_with_a_cell() {
    // Wide rows and keys on 512-byte pages: three rows a table leaf, four
    // entries an index page; each count in turn ends the trees with a
    // full page at some level, or none.
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=400u64 {
        let path = dir.path().join(format!("c{n}.db"));
        let mut file = one_column(&path, 512);
        let pad = "p".repeat(90);
        for i in 0..n {
            let key = format!("{i:06}{pad}");
            file.push(&[Value::Text(&key), Value::Text(&pad)]).unwrap();
        }
        file.finish().unwrap();
        let c = clean_count(&path, "SELECT count(*) FROM t INDEXED BY t_k WHERE k > ''");
        assert_eq!(c, n as i64, "{n} rows");
    }
}

#[test]
fn the_file_stays_a_database_sqlite_writes_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut rng = Rng(7);
    let rows: Vec<Vec<Sql>> = (0..3_000).map(|i| row(&mut rng, i, 4096)).collect();
    let mut file = PageFile::create(
        &path,
        Options {
            page_size: 4096,
            wal: true,
            sync: true,
        },
        Table {
            name: "t",
            sql: "CREATE TABLE t (\"Id\" TEXT NOT NULL, \"N\" INTEGER, \"X\" REAL, \"S\" TEXT, \"B\" BLOB, PRIMARY KEY (\"Id\"))",
            columns: 5,
        },
        Some(Index {
            name: "sqlite_autoindex_t_1",
            sql: None,
            column: 0,
        }),
    )
    .unwrap();
    for r in &rows {
        let values: Vec<Value<'_>> = r.iter().map(borrowed).collect();
        file.push(&values).unwrap();
    }
    file.finish().unwrap();
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "DELETE FROM t WHERE rowid % 3 = 0;
         UPDATE t SET S = 'changed' WHERE rowid % 5 = 0;
         INSERT INTO t (\"Id\", \"N\") VALUES ('a-new-key', 5), ('zz-new-key', 6);",
    )
    .unwrap();
    // The primary key the index enforces holds.
    let dup = conn.execute("INSERT INTO t (\"Id\") VALUES ('a-new-key')", []);
    assert!(dup.is_err(), "a duplicate key was taken");
    assert_eq!(integrity(&conn), "ok");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3_000 - 1_000 + 2);
}

fn one_column(path: &Path, page_size: u32) -> PageFile {
    PageFile::create(
        path,
        Options {
            page_size,
            wal: false,
            sync: true,
        },
        Table {
            name: "t",
            sql: "CREATE TABLE t (k, v)",
            columns: 2,
        },
        Some(Index {
            name: "t_k",
            sql: Some("CREATE UNIQUE INDEX t_k ON t (k)"),
            column: 0,
        }),
    )
    .unwrap()
}

#[test]
fn rows_out_of_order_are_refused_with_the_row_and_the_file_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    let mut file = one_column(&path, 4096);
    file.push(&[Value::Text("b"), Value::Null]).unwrap();
    let cases: [(&[Value<'_>], &str); 5] = [
        (
            &[Value::Text("a"), Value::Null],
            "row 2: the key of index 't_k' is not above the previous row's (keys come in ascending order, each once)",
        ),
        (
            &[Value::Text("b"), Value::Null],
            "row 2: the key of index 't_k' is not above the previous row's (keys come in ascending order, each once)",
        ),
        (
            &[Value::Integer(9), Value::Null],
            "row 2: the key of index 't_k' is not above the previous row's (keys come in ascending order, each once)",
        ),
        (
            &[Value::Null, Value::Null],
            "row 2: the key of index 't_k' (column 0) is NULL; keys are integers, text or blobs",
        ),
        (
            &[Value::Text("c")],
            "row 2: 1 values for the 2 columns of table 't'",
        ),
    ];
    for (values, message) in cases {
        let err = file.push(values).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    // A refused row changes nothing: the next good one is row 2.
    file.push(&[Value::Blob(b"a"), Value::Null]).unwrap();
    let err = file
        .push_rowid(2, &[Value::Blob(b"b"), Value::Null])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "row 3: rowid 2 is not above the previous row's 2"
    );
    drop(file);
    assert!(!path.exists(), "an unfinished file was left behind");
}

#[test]
fn bad_layouts_are_refused_before_a_byte_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let table = Table {
        name: "t",
        sql: "CREATE TABLE t (k)",
        columns: 1,
    };
    for size in [0u32, 256, 1000, 131072] {
        let err = PageFile::create(
            &path,
            Options {
                page_size: size,
                wal: false,
                sync: true,
            },
            table,
            None,
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            format!("page size {size}: must be a power of two from 512 to 65536")
        );
    }
    let err = PageFile::create(
        &path,
        Options::default(),
        table,
        Some(Index {
            name: "t_k",
            sql: None,
            column: 1,
        }),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "index 't_k': column 1 is outside the 1 columns of table 't'"
    );
    assert!(!path.exists());
    std::fs::write(&path, b"taken").unwrap();
    let err = PageFile::create(&path, Options::default(), table, None)
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"taken");
}
