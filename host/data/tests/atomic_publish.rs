//! A reader looping through a refresh sees `Customer`, `CustomerSourceLink`,
//! segment members and measure values of one generation, never a mix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use triggerfish_data::event::Event;
use triggerfish_data::insights::workspace::parse_workspace_file;
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_data::store::EntityDb;

struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event) {}
}

const ROWS: usize = 6_000;

/// CRM rows; `pairs` gives two rows one e-mail, so they merge.
fn write_crm(path: &std::path::Path, pairs: bool) {
    let mut out = String::from("Id,Email,Tier\n");
    for i in 0..ROWS {
        let person = if pairs { i / 2 } else { i };
        out.push_str(&format!("r{i},p{person}@example.com,gold\n"));
    }
    std::fs::write(path, out).unwrap();
}

const CONFIG: &str = r#"
[[sources]]
name = "crm"
path = "crm.csv"
key = "Id"
[sources.map]
Email = "Email"
LoyaltyTier = "Tier"

[unification]
[[unification.rules]]
fields = ["Email"]

[[segments]]
name = "everyone"
filter = "LoyaltyTier eq 'gold'"

[[measures]]
name = "customers"
aggregate = "count"
"#;

/// One snapshot: (customers, customers named by links, links to no
/// customer, segment members, the measure).
fn snapshot(tx: &Connection) -> rusqlite::Result<(i64, i64, i64, i64, f64)> {
    let one = |sql: &str| tx.query_row(sql, [], |r| r.get::<_, i64>(0));
    let customers = one("SELECT count(*) FROM ent_Customer")?;
    let linked = one("SELECT count(DISTINCT CustomerId) FROM ent_CustomerSourceLink")?;
    let dangling = one("SELECT count(*) FROM ent_CustomerSourceLink l
         WHERE NOT EXISTS (SELECT 1 FROM ent_Customer c WHERE c.CustomerId = l.CustomerId)")?;
    let members = one("SELECT count(*) FROM ent_SegmentMember WHERE Segment = 'everyone'")?;
    let measure: f64 = tx.query_row(
        "SELECT Value FROM ent_Measure WHERE Name = 'customers'",
        [],
        |r| r.get(0),
    )?;
    Ok((customers, linked, dangling, members, measure))
}

#[test]
fn a_reader_sees_one_generation_or_the_next_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("insights.toml");
    std::fs::write(&config, CONFIG).unwrap();
    write_crm(&dir.path().join("crm.csv"), false);
    let ws = parse_workspace_file(&config, CONFIG).unwrap();
    let db = dir.path().join("store.sqlite");
    let engine = InsightsEngine::new(ws, EntityDb::open(&db, Default::default()).unwrap());
    let report = engine.refresh(&Scope::Full, &mut Quiet).unwrap();
    assert!(report.succeeded(), "{:?}", report.stages);

    let stop = Arc::new(AtomicBool::new(false));
    let (looped, first) = mpsc::channel();
    let reader = {
        let (stop, db) = (stop.clone(), db.clone());
        std::thread::spawn(move || {
            // A store of its own, as another process would open: it reads
            // the entities kept in files of their own as well.
            let store = EntityDb::open(&db, Default::default()).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            let mut mixes = Vec::new();
            let mut reads = 0u64;
            loop {
                let done = stop.load(Ordering::Acquire);
                let (customers, linked, dangling, members, measure) =
                    store.read_snapshot(snapshot).unwrap();
                if customers != linked
                    || dangling != 0
                    || members != customers
                    || measure != customers as f64
                {
                    mixes.push((customers, linked, dangling, members, measure));
                }
                seen.insert(customers);
                reads += 1;
                let _ = looped.send(());
                if done {
                    return (seen, mixes, reads);
                }
            }
        })
    };
    first.recv().unwrap();
    // Pairs of rows now share an e-mail: half as many customers.
    write_crm(&dir.path().join("crm.csv"), true);
    let report = engine.refresh(&Scope::Full, &mut Quiet).unwrap();
    assert!(report.succeeded(), "{:?}", report.stages);
    stop.store(true, Ordering::Release);
    // Customers and their links were published as files of their own.
    let in_files: i64 = EntityDb::open(&db, Default::default())
        .unwrap()
        .read_snapshot(|c| {
            c.query_row(
                "SELECT count(*) FROM _tf_entities WHERE file IS NOT NULL
                   AND name IN ('Customer', 'CustomerSourceLink')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(in_files, 2);
    let (seen, mixes, reads) = reader.join().unwrap();
    assert!(
        mixes.is_empty(),
        "{} of {reads} reads mixed generations: {:?}",
        mixes.len(),
        &mixes[..mixes.len().min(5)]
    );
    let expected: std::collections::BTreeSet<i64> = [ROWS as i64 / 2, ROWS as i64].into();
    assert_eq!(seen, expected, "after {reads} reads");
}
