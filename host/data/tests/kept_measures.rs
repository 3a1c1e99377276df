//! A measure whose definition and entity are as when it was last published
//! keeps its value; any change to either computes it again. What is kept is
//! seen by changing a source's stored rows behind the engine's back (no new
//! generation): a kept measure does not see it, a computed one does.

use triggerfish_data::event::Event;
use triggerfish_data::insights::workspace::parse_workspace_file;
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_data::store::EntityDb;

struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event) {}
}

const SOURCES: &str = r#"
[[sources]]
name = "crm"
path = "crm.csv"
key = "Id"
[sources.map]
Email = "Email"

[[sources]]
name = "shop"
path = "shop.csv"
key = "OrderId"
[sources.map]
Email = "Email"

[unification]
[[unification.rules]]
fields = ["Email"]

[[measures]]
name = "contacts"
aggregate = "count"
entity = "Crm"

[[measures]]
name = "customers"
aggregate = "count"
entity = "Customer"

[[measures]]
name = "revenue-by-country"
aggregate = "sum"
entity = "Shop"
field = "Amount"
dimension = "Country"
"#;

fn write_crm(dir: &std::path::Path, contacts: u32) {
    let mut crm = String::from("Id,Email\n");
    for i in 0..contacts {
        crm.push_str(&format!("c{i},p{i}@example.com\n"));
    }
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
}

fn write_shop(dir: &std::path::Path) {
    let mut shop = String::from("OrderId,Email,Amount,Country\n");
    for i in 0..30 {
        let country = ["FR", "DE", "NL"][i % 3];
        shop.push_str(&format!("o{i},p{i}@example.com,{}.5,{country}\n", 10 + i));
    }
    std::fs::write(dir.join("shop.csv"), shop).unwrap();
}

/// Refresh `scope` with the orders measure defined by `orders`.
fn refresh_with(dir: &std::path::Path, orders: &str, scope: Scope, force: bool) {
    let config = dir.join("insights.toml");
    let text = SOURCES.replace("name = \"revenue-by-country\"", orders);
    std::fs::write(&config, &text).unwrap();
    let ws = parse_workspace_file(&config, &text).unwrap();
    let store = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
    let report = InsightsEngine::new(ws, store)
        .forcing(force)
        .refresh(&scope, &mut Quiet)
        .unwrap();
    assert!(report.succeeded(), "{:?}", report.stages);
}

fn refresh(dir: &std::path::Path, orders: &str) {
    refresh_with(dir, orders, Scope::Full, false);
}

/// `ent_Measure` and `ent_MeasureValue`, as text, in key order.
fn measures(dir: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("store.sqlite")).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT Name || '=' || ifnull(Value, '-') FROM ent_Measure ORDER BY Name",
        "SELECT Id || '=' || ifnull(Value, '-') FROM ent_MeasureValue ORDER BY Id",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let values = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.extend(values.map(Result::unwrap));
    }
    rows
}

/// Rows of an imported entity changed in its file itself: no generation,
/// no fingerprint.
fn behind_the_engines_back(dir: &std::path::Path, entity: &str, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("store.sqlite")).unwrap();
    let file: String = conn
        .query_row(
            "SELECT file FROM _tf_entities WHERE name = ?1",
            [entity],
            |r| r.get(0),
        )
        .unwrap();
    let kept = rusqlite::Connection::open(dir.join("store.sqlite.files").join(file)).unwrap();
    kept.execute_batch(sql).unwrap();
}

#[test]
fn measures_over_unchanged_entities_keep_their_values_and_any_change_recomputes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let same = "name = \"revenue-by-country\"";
    write_crm(dir, 20);
    write_shop(dir);
    refresh(dir, same);
    let first = measures(dir);
    assert_eq!(
        first,
        [
            "contacts=20.0",
            "customers=30.0",
            "revenue-by-country=-",
            "revenue-by-country/DE=250.0",
            "revenue-by-country/FR=240.0",
            "revenue-by-country/NL=260.0",
        ]
    );

    // Orders lose their French rows unseen; a contact is added to the CRM
    // file. The CRM import and the customers it makes are new: those
    // measures are computed. The orders are as published: theirs is kept.
    behind_the_engines_back(dir, "Shop", "DELETE FROM ent_Shop WHERE Country = 'FR'");
    write_crm(dir, 21);
    refresh(dir, same);
    let mut expected = first.clone();
    expected[0] = "contacts=21.0".into();
    assert_eq!(measures(dir), expected);

    // Another definition of the same name is computed, and sees the rows.
    let by_country = "name = \"revenue-by-country\"\nfilter = \"Amount gt 0\"";
    refresh(dir, by_country);
    assert_eq!(
        measures(dir),
        [
            "contacts=21.0",
            "customers=30.0",
            "revenue-by-country=-",
            "revenue-by-country/DE=250.0",
            "revenue-by-country/NL=260.0",
        ]
    );

    // So is one whose entity has a new generation: a forced import of the
    // orders gives them one (and brings the French rows back).
    refresh_with(dir, by_country, Scope::Source("shop".into()), true);
    refresh(dir, by_country);
    assert_eq!(measures(dir), expected);
}
