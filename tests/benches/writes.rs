//! The store side of the write and partition actions. Run:
//!   cargo bench -p triggerfish-tests --bench writes [-- ROWS]
//! 1. Import ROWS rows (default 1,000,000) from one CSV file, then the same
//!    rows split over 10 files: the cost of keeping which partition each key
//!    came from (only multi-file imports keep it).
//! 2. Walk one partition (a tenth of the rows) in pages of 1,000 with
//!    `$skip`, against the same number of rows of the whole entity.
//! 3. Creates, then updates, of a writable entity, one durable transaction
//!    each (`synchronous = FULL`): the floor under the `create-item` and
//!    `update-item` imports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use triggerfish_data::odata::ColumnType;
use triggerfish_data::store::{
    import, EntityDb, ImportSpec, PageLimits, PageRequest, WritableEntity, WriteBy,
};

fn write_files(dir: &Path, rows: usize, files: usize) -> Vec<PathBuf> {
    let per = rows / files;
    (0..files)
        .map(|f| {
            let path = dir.join(format!("part-{f:02}.csv"));
            let mut text = String::with_capacity(per * 48);
            text.push_str("Id,Email,Amount\n");
            for i in f * per..(f + 1) * per {
                text.push_str(&format!("o{i:08},p{i}@example.com,{}\n", i % 997));
            }
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

fn import_into(store: &EntityDb, dir: &Path, files: &[PathBuf], entity: &str) -> Duration {
    let types = BTreeMap::new();
    let started = Instant::now();
    import(
        &ImportSpec {
            root: Some(dir),
            ..ImportSpec::new(files, &types, "Id")
        },
        store,
        entity,
    )
    .unwrap();
    started.elapsed()
}

fn walk(store: &EntityDb, entity: &str, partition: Option<String>, limit: usize) -> Duration {
    let started = Instant::now();
    let (mut skip, mut seen) = (0u64, 0usize);
    loop {
        let page = store
            .get_page(
                "bench",
                entity,
                &PageRequest {
                    top: Some(1_000),
                    skip: Some(skip),
                    partition: partition.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        seen += page.items.len();
        match page.next_skip {
            Some(s) if seen < limit => skip = s,
            _ => break,
        }
    }
    assert!(seen >= limit.min(1_000), "{seen}");
    started.elapsed()
}

fn size_mib(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let data = tempfile::tempdir().unwrap();
    let one = write_files(&data.path().join("one").tap_mkdir(), rows, 1);
    let ten = write_files(&data.path().join("ten").tap_mkdir(), rows, 10);

    let s1 = tempfile::tempdir().unwrap();
    let store = EntityDb::open(&s1.path().join("s.sqlite"), PageLimits::default()).unwrap();
    let t_one = import_into(&store, &data.path().join("one"), &one, "Orders");
    let mib_one = size_mib(s1.path());
    let s10 = tempfile::tempdir().unwrap();
    let store10 = EntityDb::open(&s10.path().join("s.sqlite"), PageLimits::default()).unwrap();
    let t_ten = import_into(&store10, &data.path().join("ten"), &ten, "Orders");
    let mib_ten = size_mib(s10.path());
    println!("import of {rows} rows, release build, one run:");
    println!(
        "  1 file  (one partition, no key table): {:>8.2} s, store {mib_one:.0} MiB",
        t_one.as_secs_f64()
    );
    println!(
        "  10 files (10 partitions, key table):   {:>8.2} s, store {mib_ten:.0} MiB  ({:.2}x the time)",
        t_ten.as_secs_f64(),
        t_ten.as_secs_f64() / t_one.as_secs_f64()
    );

    let parts = store10.partitions("Orders").unwrap();
    assert_eq!(parts.len(), 10);
    let tenth = rows / 10;
    let whole = walk(&store10, "Orders", None, tenth);
    let part = walk(&store10, "Orders", Some(parts[4].id.clone()), tenth);
    println!("walk of {tenth} rows in pages of 1,000:");
    println!(
        "  the whole entity's first rows: {:>8.1} ms",
        whole.as_secs_f64() * 1e3
    );
    println!(
        "  one partition (partition 5):  {:>8.1} ms  ({:.2}x)",
        part.as_secs_f64() * 1e3,
        part.as_secs_f64() / whole.as_secs_f64()
    );

    let w = tempfile::tempdir().unwrap();
    let db = EntityDb::open(&w.path().join("s.sqlite"), PageLimits::default()).unwrap();
    let spec = WritableEntity {
        name: "FollowUp".into(),
        key: "Id".into(),
        fields: vec![
            ("Id".into(), ColumnType::String),
            ("CustomerId".into(), ColumnType::String),
            ("Score".into(), ColumnType::Decimal),
        ],
        required: vec![],
        writable_by: vec!["bench".into()],
        max_rows: u64::MAX,
    };
    db.declare_writable(std::slice::from_ref(&spec)).unwrap();
    let by = WriteBy {
        plugin: "bench",
        event_id: "e1",
        attempt: "a1",
        run: None,
    };
    const WRITES: usize = 2_000;
    let started = Instant::now();
    for i in 0..WRITES {
        db.create_item(
            &spec,
            &format!(r#"{{"Id":"f{i}","CustomerId":"c{i}"}}"#),
            by,
        )
        .unwrap();
    }
    let creates = started.elapsed();
    let started = Instant::now();
    for i in 0..WRITES {
        db.update_item(&spec, &format!("f{i}"), r#"{"Score":1.5}"#, by)
            .unwrap();
    }
    let updates = started.elapsed();
    println!("{WRITES} writes, one durable transaction each (item + write log):");
    for (what, t) in [("create-item", creates), ("update-item", updates)] {
        println!(
            "  {what}: {:>7.0} per second, {:.3} ms each",
            WRITES as f64 / t.as_secs_f64(),
            t.as_secs_f64() * 1e3 / WRITES as f64
        );
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
