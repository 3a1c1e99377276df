//! Bench binary: how fast can SQLite itself take the rows a refresh loads?
//!
//! Generates N source rows (`demo generate`, seed 1), times Triggerfish's
//! source stages (each source imported from its file into a new store), then
//! reads the stored rows back into memory and times writing them, already
//! parsed and typed, into a new SQLite file with `journal_mode = OFF` and
//! `synchronous = OFF`, in one transaction of 8-row prepared inserts:
//!
//! - `floor`: no key index: the least SQLite does to hold these rows;
//! - `keyed`: each source's key its table's `PRIMARY KEY`, as in the store;
//! - `keyed, WAL …`, `keyed, rollback journal …`: the same, journaled and
//!   synced: as the store writes (WAL), and as a file outside its WAL would;
//! - `…, 2 threads`: the same with the sources split over two files written
//!   on two threads (the CRM on one, the others on the other): the least
//!   for any design on this machine's two cores.
//!
//! - `page writer, …`: the same rows and keys written by
//!   `triggerfish-pagefile`, SQLite's file format built page by page, one
//!   file per source (each file then checked by SQLite, outside the time).
//!
//! Parsing the files is not in these figures: each is a floor under a load
//! into SQLite of the same rows.
//!
//! `cargo bench -p triggerfish-tests --bench load_floor -- [ROWS] [--runs N]`
//! (default 1000000 rows, 3 runs; each way's fastest run is reported).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::types::Value;
use rusqlite::Connection;
use triggerfish::config_file::Config;
use triggerfish_data::event::Event;
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_demo::generate::{generate, GenerateOptions};

type Error = Box<dyn std::error::Error>;

struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event) {}
}

/// One source's rows as stored: its table's columns, key and values.
struct Source {
    name: String,
    /// `"col" TYPE` per column.
    columns: Vec<String>,
    key: String,
    rows: Vec<Vec<Value>>,
}

/// Rows one statement inserts (as the store's import does).
const CHUNK: usize = 8;

fn main() -> Result<(), Error> {
    let mut rows = 1_000_000u64;
    let mut runs = 3usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                let v = it.next().ok_or("--runs needs a number")?;
                runs = v.parse().map_err(|e| format!("--runs {v}: {e}"))?;
            }
            a if a.starts_with('-') => {}
            n => rows = n.parse().map_err(|e| format!("rows '{n}': {e}"))?,
        }
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let report = generate(
        &GenerateOptions {
            rows,
            seed: 1,
            typos_per_mille: 0,
            fuzzy: false,
        },
        &data,
    )?;
    let config = Config::load(&report.config)?;
    let workspace = config
        .insights
        .clone()
        .ok_or("no [insights] in the generated config")?;
    let names: Vec<String> = workspace.sources.iter().map(|s| s.name.clone()).collect();
    let entities: Vec<String> = workspace.sources.iter().map(|s| s.entity.clone()).collect();

    // Triggerfish's source stages, each run on a new store.
    let mut best_sources = f64::INFINITY;
    for run in 1..=runs {
        remove_db(&config.store_path());
        let engine = InsightsEngine::new(workspace.clone(), config.open_store()?);
        let mut total = 0.0;
        let mut parts = Vec::new();
        for name in &names {
            let t = Instant::now();
            let report = engine.refresh(&Scope::Source(name.clone()), &mut Quiet)?;
            let s = t.elapsed().as_secs_f64();
            if !report.succeeded() {
                return Err(format!("source '{name}' failed: {:?}", report.stages).into());
            }
            total += s;
            parts.push(format!("{name} {s:.3}"));
        }
        println!(
            "run {run}: Triggerfish sources {total:.3} s ({})",
            parts.join(", ")
        );
        best_sources = best_sources.min(total);
    }

    let sources = read_back(&config.store_path(), &entities)?;
    let total_rows: usize = sources.iter().map(|s| s.rows.len()).sum();
    println!("{total_rows} rows read back into memory");

    let all: Vec<&Source> = sources.iter().collect();
    // Two files on two threads: the CRM on one, the other sources on the other.
    let (first, rest) = all.split_at(1.min(all.len()));
    let mut results = vec![("Triggerfish sources (parse and store)", best_sources)];
    for (label, keyed, split, journal) in [
        ("floor", false, false, NO_JOURNAL),
        ("keyed", true, false, NO_JOURNAL),
        (
            "keyed, WAL, synchronous = FULL (the store's)",
            true,
            false,
            STORE_WAL,
        ),
        (
            "keyed, rollback journal, synchronous = FULL",
            true,
            false,
            ROLLBACK,
        ),
        ("floor, 2 threads", false, true, NO_JOURNAL),
        ("keyed, 2 threads", true, true, NO_JOURNAL),
    ] {
        let mut best = f64::INFINITY;
        for run in 0..runs {
            let files = [
                dir.path().join(format!("floor-a-{run}.db")),
                dir.path().join(format!("floor-b-{run}.db")),
            ];
            let t = Instant::now();
            match split {
                false => write_all(&files[0], &all, keyed, journal)?,
                true => std::thread::scope(|s| -> Result<(), String> {
                    let a = s.spawn(|| {
                        write_all(&files[0], first, keyed, journal).map_err(|e| e.to_string())
                    });
                    let b = s.spawn(|| {
                        write_all(&files[1], rest, keyed, journal).map_err(|e| e.to_string())
                    });
                    for h in [a, b] {
                        h.join().map_err(|_| "a writer panicked".to_owned())??;
                    }
                    Ok(())
                })?,
            }
            best = best.min(t.elapsed().as_secs_f64());
            files.iter().for_each(|f| remove_db(f));
        }
        results.push((label, best));
    }

    for (label, keyed, split) in [
        ("page writer", false, false),
        ("page writer, keyed", true, false),
        ("page writer, keyed, 2 threads", true, true),
    ] {
        let mut best = f64::INFINITY;
        for run in 0..runs {
            let files: Vec<PathBuf> = (0..all.len())
                .map(|i| dir.path().join(format!("pages-{run}-{i}.db")))
                .collect();
            let (files_a, files_b) = files.split_at(first.len());
            let t = Instant::now();
            match split {
                false => write_pages(&files, &all, keyed)?,
                true => std::thread::scope(|s| -> Result<(), String> {
                    let a =
                        s.spawn(|| write_pages(files_a, first, keyed).map_err(|e| e.to_string()));
                    let b =
                        s.spawn(|| write_pages(files_b, rest, keyed).map_err(|e| e.to_string()));
                    for h in [a, b] {
                        h.join().map_err(|_| "a writer panicked".to_owned())??;
                    }
                    Ok(())
                })?,
            }
            best = best.min(t.elapsed().as_secs_f64());
            if run == 0 {
                check_pages(&files, &all, keyed)?;
            }
            files.iter().for_each(|f| remove_db(f));
        }
        results.push((label, best));
    }

    println!("\n{total_rows} rows, fastest of {runs} runs:");
    println!("| writing | wall |");
    println!("|---|---|");
    for (label, s) in results {
        println!("| {label} | {s:.3} s |");
    }
    Ok(())
}

/// Each source entity's stored rows, in the store's order.
fn read_back(store: &Path, entities: &[String]) -> Result<Vec<Source>, Error> {
    let conn = Connection::open(store)?;
    let mut out = Vec::new();
    for name in entities {
        let key: String = conn.query_row(
            "SELECT key FROM _tf_entities WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        // The store's table for an entity (`store::Table`).
        let table = format!("\"ent_{name}\"");
        let mut columns = Vec::new();
        let mut info = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let mut it = info.query([])?;
        while let Some(r) = it.next()? {
            let (c, t): (String, String) = (r.get(1)?, r.get(2)?);
            columns.push(format!("\"{c}\" {t}"));
        }
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
        let n = columns.len();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
            .collect::<Result<Vec<Vec<Value>>, _>>()?;
        out.push(Source {
            name: name.clone(),
            columns,
            key,
            rows,
        });
    }
    Ok(out)
}

/// No journal, no sync: the least SQLite does.
const NO_JOURNAL: &str = "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;";
/// The store's settings; its checkpoints run on a thread of their own, so
/// none runs in the writer's time here either.
const STORE_WAL: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;";
/// A rollback journal, synced at the commit.
const ROLLBACK: &str = "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;";

/// Write `sources` into a new database `file` with the `journal` settings,
/// each source's key its table's primary key when `keyed`.
fn write_all(file: &Path, sources: &[&Source], keyed: bool, journal: &str) -> Result<(), Error> {
    let mut conn = Connection::open(file)?;
    conn.execute_batch(journal)?;
    let tx = conn.transaction()?;
    for (i, s) in sources.iter().enumerate() {
        let table = format!("t{i}");
        let key = match keyed {
            true => format!(", PRIMARY KEY (\"{}\")", s.key),
            false => String::new(),
        };
        tx.execute_batch(&format!(
            "CREATE TABLE {table} ({}{key})",
            s.columns.join(", ")
        ))?;
        let one = format!("({})", vec!["?"; s.columns.len()].join(", "));
        let mut chunk = tx.prepare(&format!(
            "INSERT INTO {table} VALUES {}",
            [one.as_str(); CHUNK].join(", ")
        ))?;
        let mut single = tx.prepare(&format!("INSERT INTO {table} VALUES {one}"))?;
        let mut chunks = s.rows.chunks_exact(CHUNK);
        for rows in &mut chunks {
            chunk.execute(rusqlite::params_from_iter(rows.iter().flatten()))?;
        }
        for row in chunks.remainder() {
            single.execute(rusqlite::params_from_iter(row.iter()))?;
        }
        if s.rows.is_empty() {
            return Err(format!("source '{}' has no rows", s.name).into());
        }
    }
    tx.commit()?;
    Ok(())
}

/// Write each source into a file of its own with the page writer, its key
/// under a unique index when `keyed`.
fn write_pages(files: &[PathBuf], sources: &[&Source], keyed: bool) -> Result<(), Error> {
    use triggerfish_pagefile::{Index, Options, PageFile, Table, Value as V};
    for (file, s) in files.iter().zip(sources) {
        let sql = format!("CREATE TABLE t ({})", s.columns.join(", "));
        let index_sql = format!("CREATE UNIQUE INDEX t_key ON t (\"{}\")", s.key);
        let key = key_column(s)?;
        // Not synced, as SQLite's `synchronous = OFF` above.
        let mut out = PageFile::create(
            file,
            Options {
                sync: false,
                ..Options::default()
            },
            Table {
                name: "t",
                sql: &sql,
                columns: s.columns.len(),
            },
            keyed.then_some(Index {
                name: "t_key",
                sql: Some(&index_sql),
                column: key,
            }),
        )?;
        let mut values = Vec::with_capacity(s.columns.len());
        for row in &s.rows {
            values.clear();
            values.extend(row.iter().map(|v| match v {
                Value::Null => V::Null,
                Value::Integer(i) => V::Integer(*i),
                Value::Real(f) => V::Real(*f),
                Value::Text(t) => V::Text(t),
                Value::Blob(b) => V::Blob(b),
            }));
            out.push(&values)?;
        }
        out.finish()?;
    }
    Ok(())
}

/// The position of a source's key among its columns.
fn key_column(s: &Source) -> Result<usize, Error> {
    let quoted = format!("\"{}\" ", s.key);
    s.columns
        .iter()
        .position(|c| c.starts_with(&quoted))
        .ok_or_else(|| format!("source '{}': no key column '{}'", s.name, s.key).into())
}

/// SQLite's own check of the page writer's files: clean, every row there,
/// every key found through the index.
fn check_pages(files: &[PathBuf], sources: &[&Source], keyed: bool) -> Result<(), Error> {
    for (file, s) in files.iter().zip(sources) {
        let conn = Connection::open(file)?;
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        let n: usize = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
        if ok != "ok" || n != s.rows.len() {
            return Err(format!(
                "{}: integrity {ok}, {n} rows of {}",
                file.display(),
                s.rows.len()
            )
            .into());
        }
        if keyed {
            let key = &s.rows[s.rows.len() / 2][key_column(s)?];
            let found: i64 = conn.query_row(
                &format!(
                    "SELECT rowid FROM t INDEXED BY t_key WHERE \"{}\" = ?1",
                    s.key
                ),
                [key],
                |r| r.get(0),
            )?;
            if found != (s.rows.len() / 2) as i64 + 1 {
                return Err(format!("{}: key found at row {found}", file.display()).into());
            }
        }
    }
    Ok(())
}

fn remove_db(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}
