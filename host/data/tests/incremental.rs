//! Incremental unification gives what a full one gives: two workspaces start
//! from the same data; after the same edits one refreshes normally (only the
//! touched clusters are unified again) and the other with `--full --force`.
//! Their customers, links, segment members and sizes and measures must be
//! identical.

use triggerfish_data::event::Event;
use triggerfish_data::event::StageSummary;
use triggerfish_data::insights::workspace::parse_workspace_file;
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_data::store::EntityDb;

struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event) {}
}

const CONFIG: &str = r#"
[[sources]]
name = "crm"
path = "crm.csv"
key = "Id"
updated_at = "Modified"
[sources.types]
Phone = "string"
Zip = "string"
[sources.map]
FirstName = "First"
LastName = "Last"
Email = "Email"
Phone = "Phone"
PostalCode = "Zip"
LoyaltyTier = "Tier"

[[sources]]
name = "shop"
path = "shop.csv"
key = "OrderId"
[sources.types]
Phone = "string"
Zip = "string"
[sources.map]
FirstName = "First"
LastName = "Last"
Email = "Email"
Phone = "Phone"
PostalCode = "Zip"

[unification]
priority = ["crm", "shop"]
[[unification.rules]]
fields = ["Email"]
[[unification.rules]]
fields = ["Phone"]
[[unification.rules]]
fields = ["FirstName", "LastName", "PostalCode"]
precision = { FirstName = "high", LastName = "high" }
guards = ["Email"]

[[segments]]
name = "gold"
filter = "LoyaltyTier eq 'gold'"

[[measures]]
name = "customers"
aggregate = "count"

# Read through the patched Customer while it is staged, not its row count.
[[measures]]
name = "gold-customers"
aggregate = "count"
filter = "LoyaltyTier eq 'gold'"
"#;

const FIRST: [&str; 8] = [
    "Ann", "Bob", "Chloe", "David", "Emma", "Farid", "Gina", "Hugo",
];
const LAST: [&str; 6] = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit"];

/// A source row: (key, first, last, email, phone, zip, tier).
type Row = (String, String, String, String, String, String, String);

/// Deterministic rows for person `p` (several records per person, some
/// sharing e-mail, some phone, some only a name and postal code).
fn person(p: u64, n: u64) -> Row {
    let first = FIRST[(p % 8) as usize];
    let last = LAST[(p / 8 % 6) as usize];
    let zip = format!("{:05}", 75000 + p % 300);
    let email = if n % 3 == 2 {
        String::new()
    } else {
        format!("p{p}@example.com")
    };
    let phone = if n.is_multiple_of(2) {
        format!("06{:08}", p)
    } else {
        String::new()
    };
    let tier = if p.is_multiple_of(4) {
        "gold"
    } else {
        "silver"
    };
    (
        String::new(),
        first.into(),
        last.into(),
        email,
        phone,
        zip,
        tier.into(),
    )
}

struct Data {
    crm: Vec<Row>,
    shop: Vec<Row>,
}

impl Data {
    fn new() -> Self {
        let mut crm = Vec::new();
        let mut shop = Vec::new();
        for p in 0..600u64 {
            let mut r = person(p, 0);
            r.0 = format!("c{p}");
            crm.push(r);
            for n in 1..=(p % 3) {
                let mut r = person(p, n);
                r.0 = format!("o{p}-{n}");
                shop.push(r);
            }
        }
        Self { crm, shop }
    }

    fn write(&self, dir: &std::path::Path) {
        let mut crm = String::from("Id,First,Last,Email,Phone,Zip,Tier,Modified\n");
        for r in &self.crm {
            crm.push_str(&format!(
                "{},{},{},{},{},{},{},2024-01-{:02}T00:00:00Z\n",
                r.0,
                r.1,
                r.2,
                r.3,
                r.4,
                r.5,
                r.6,
                1 + r.0.len() % 28
            ));
        }
        std::fs::write(dir.join("crm.csv"), crm).unwrap();
        let mut shop = String::from("OrderId,First,Last,Email,Phone,Zip\n");
        for r in &self.shop {
            shop.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.0, r.1, r.2, r.3, r.4, r.5
            ));
        }
        std::fs::write(dir.join("shop.csv"), shop).unwrap();
    }

    /// Edits that merge clusters, split them, add, remove and change rows.
    fn edit(&mut self, round: u64) {
        let k = round * 7;
        // Person 10+k's CRM record takes person 11+k's e-mail: two clusters merge.
        self.crm[(10 + k) as usize].3 = format!("p{}@example.com", 11 + k);
        // A bridge loses its e-mail and phone: its cluster may split.
        for r in self
            .shop
            .iter_mut()
            .filter(|r| r.0.starts_with(&format!("o{}-", 20 + k)))
        {
            r.3 = String::new();
            r.4 = String::new();
        }
        // Typos in a name keep a fuzzy match; another name changes outright.
        self.crm[(30 + k) as usize].1.push('e');
        self.crm[(31 + k) as usize].2 = "Zola".into();
        // Tier changes (no key changes): the cluster is recomputed anyway.
        self.crm[(40 + k) as usize].6 = "gold".into();
        // Removed rows, and new ones (a new person and a new record of an old one).
        self.crm.retain(|r| r.0 != format!("c{}", 50 + k));
        self.shop.retain(|r| r.0 != format!("o{}-1", 61 + k));
        let mut r = person(5000 + round, 0);
        r.0 = format!("c-new{round}");
        self.crm.push(r);
        let mut r = person(70 + k, 1);
        r.0 = format!("o-new{round}");
        self.shop.push(r);
    }
}

/// Every row of a table, sorted, as text.
fn table(db: &std::path::Path, sql: &str) -> Vec<String> {
    // Through the store: computed entities are kept in files of their own.
    let store = EntityDb::open(db, Default::default()).unwrap();
    let conn = store.session();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut rows: Vec<String> = stmt
        .query_map([], |r| {
            let cols: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect();
            Ok(cols.join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}

struct Workspace {
    dir: tempfile::TempDir,
    engine: InsightsEngine,
}

impl Workspace {
    fn new(data: &Data, force: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("insights.toml");
        std::fs::write(&config, CONFIG).unwrap();
        data.write(dir.path());
        let ws = parse_workspace_file(&config, CONFIG).unwrap();
        let store = EntityDb::open(&dir.path().join("store.sqlite"), Default::default()).unwrap();
        let engine = InsightsEngine::new(ws, store).forcing(force);
        let ws = Self { dir, engine };
        ws.refresh();
        ws
    }

    fn refresh(&self) -> StageSummary {
        let report = self.engine.refresh(&Scope::Full, &mut Quiet).unwrap();
        assert!(report.succeeded(), "{:?}", report.stages);
        report
            .stages
            .into_iter()
            .find(|s| s.name == "unification")
            .unwrap()
    }

    fn tables(&self) -> [Vec<String>; 5] {
        let db = self.dir.path().join("store.sqlite");
        [
            table(&db, "SELECT * FROM ent_Customer"),
            table(&db, "SELECT * FROM ent_CustomerSourceLink"),
            table(&db, "SELECT * FROM ent_SegmentMember"),
            table(&db, "SELECT Name, Filter, Members FROM ent_Segment"),
            table(&db, "SELECT Name, Value FROM ent_Measure"),
        ]
    }
}

#[test]
fn incremental_unification_matches_a_full_one_round_after_round() {
    let mut data = Data::new();
    let incremental = Workspace::new(&data, false);
    let full = Workspace::new(&data, true);
    assert_eq!(incremental.tables(), full.tables());
    for round in 0..3 {
        data.edit(round);
        data.write(incremental.dir.path());
        data.write(full.dir.path());
        let stage = incremental.refresh();
        full.refresh();
        let detail = stage.detail.clone().unwrap_or_default();
        let reunified: u64 = detail
            .split(": ")
            .nth(1)
            .and_then(|d| d.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: not incremental: {detail:?}"));
        let total = (data.crm.len() + data.shop.len()) as u64;
        assert!(
            reunified > 0 && reunified * 10 < total,
            "round {round}: {reunified} records unified again ({detail})"
        );
        // A change this small writes a delta beside the key map and the link
        // map, which the next round reads.
        let db = incremental.dir.path().join("store.sqlite");
        for delta in ["store.sqlite.keys.delta", "store.sqlite.links.delta"] {
            let path = incremental.dir.path().join(delta);
            assert!(path.exists(), "round {round}: no {delta}");
        }
        // The count measure is read from the row count a patch keeps.
        let counted = table(&db, "SELECT count(*) FROM ent_Customer");
        let measured = table(
            &db,
            "SELECT CAST(Value AS INTEGER) FROM ent_Measure WHERE Name = 'customers'",
        );
        assert_eq!(
            counted, measured,
            "round {round}: customers counted and measured"
        );
        let [a, b] = [incremental.tables(), full.tables()];
        let names = [
            "Customer",
            "CustomerSourceLink",
            "SegmentMember",
            "Segment",
            "Measure",
        ];
        for (i, name) in names.iter().enumerate() {
            let only_a: Vec<_> = a[i].iter().filter(|r| !b[i].contains(r)).take(5).collect();
            let only_b: Vec<_> = b[i].iter().filter(|r| !a[i].contains(r)).take(5).collect();
            assert!(
                a[i] == b[i],
                "round {round}, {name}: incremental has {only_a:?}, full has {only_b:?}"
            );
        }
    }
}
