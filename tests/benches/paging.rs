//! Deep paging: walk 1,000,000 `Customer` rows in pages of 1,000 with `$skip`,
//! once with keyset seeks (the caller continues its own pages) and once with
//! OFFSET only (a fresh caller per page, so no cursor applies). The limiter is
//! not involved: the store is called directly. Run:
//!   cargo bench -p triggerfish --bench paging [-- ROWS]
//! Prints first/last page times, their ratio, and the whole walk.

use std::time::{Duration, Instant};

use rusqlite::types::Value;
use triggerfish_data::odata::ColumnType;
use triggerfish_data::store::{EntityDb, PageLimits, PageRequest, StoreError};

const PAGE: u32 = 1_000;

fn walk(store: &EntityDb, keyset: bool, rows: usize) -> (Duration, Duration, Duration, usize) {
    let started = Instant::now();
    let mut skip = 0u64;
    let mut seen = 0usize;
    let mut first = Duration::ZERO;
    let mut last;
    let mut n = 0u64;
    loop {
        let caller = if keyset {
            "walker".to_owned()
        } else {
            format!("offset-{n}")
        };
        let t = Instant::now();
        let page = store
            .get_page(
                &caller,
                "Customer",
                &PageRequest {
                    top: Some(PAGE),
                    skip: Some(skip),
                    ..Default::default()
                },
            )
            .expect("page");
        let took = t.elapsed();
        if n == 0 {
            first = took;
        }
        last = took;
        assert_eq!(page.seek, keyset && n > 0, "page {n}");
        seen += page.items.len();
        n += 1;
        match page.next_skip {
            Some(s) => skip = s,
            None => break,
        }
    }
    assert_eq!(seen, rows);
    (first, last, started.elapsed(), n as usize)
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        EntityDb::open(&dir.path().join("bench.sqlite"), PageLimits::default()).expect("store");
    let columns = vec![
        ("CustomerId".to_owned(), ColumnType::String),
        ("FirstName".to_owned(), ColumnType::String),
        ("LastName".to_owned(), ColumnType::String),
        ("Email".to_owned(), ColumnType::String),
        ("Age".to_owned(), ColumnType::Integer),
    ];
    let t = Instant::now();
    store
        .replace_entity(
            "Customer",
            "CustomerId",
            &columns,
            (0..rows).map(|i| {
                Ok::<_, StoreError>(vec![
                    Value::Text(format!("C{i:08}")),
                    Value::Text(format!("First{}", i % 1000)),
                    Value::Text(format!("Last{}", i % 7919)),
                    Value::Text(format!("user{i}@example.com")),
                    Value::Integer((18 + i % 70) as i64),
                ])
            }),
        )
        .expect("fill");
    println!("filled {rows} rows in {:.2} s", t.elapsed().as_secs_f64());

    for (name, keyset) in [("keyset", true), ("offset", false)] {
        let (first, last, total, pages) = walk(&store, keyset, rows);
        println!(
            "{name:>6}: {pages} pages; first {:.3} ms, last {:.3} ms, last/first {:.2}; whole walk {:.2} s",
            first.as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3,
            last.as_secs_f64() / first.as_secs_f64(),
            total.as_secs_f64()
        );
    }
}
