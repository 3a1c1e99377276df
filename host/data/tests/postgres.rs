//! The postgres source against a real PostgreSQL server on loopback, through
//! the insights engine: the events it raises, what it stores, when it skips
//! an unchanged table, and how its failures are classed and retried.

mod pg;

use std::path::Path;
use std::time::Duration;

use pg::{Postgres, PASSWORD};
use triggerfish_data::event::{
    DataSourceRefreshFailed, DataSourceRefreshSucceeded, Event, StageSummary, Trigger,
};
use triggerfish_data::insights::source::SourceError;
use triggerfish_data::insights::workspace::parse_workspace_file;
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_data::odata::ColumnType;
use triggerfish_data::store::EntityDb;

/// What a refresh told its observer.
#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    stages: Vec<StageSummary>,
    /// (source, attempt, error) of each retry.
    retries: Vec<(String, u32, SourceError)>,
    /// (done, total) of the source stages.
    progress: Vec<(u64, Option<u64>)>,
}

impl Observer for Seen {
    fn stage_progress(&mut self, stage: &str, done: u64, total: Option<u64>) {
        if stage.starts_with("source:") {
            self.progress.push((done, total));
        }
    }
    fn stage_finished(&mut self, summary: &StageSummary) {
        self.stages.push(summary.clone());
    }
    fn retrying(&mut self, source: &str, attempt: u32, _wait: Duration, error: &SourceError) {
        self.retries
            .push((source.to_owned(), attempt, error.clone()));
    }
    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

impl Seen {
    fn succeeded(&self) -> Vec<&DataSourceRefreshSucceeded> {
        self.events
            .iter()
            .filter_map(|e| match &e.trigger {
                Trigger::DataSourceRefreshSucceeded(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn failed(&self) -> Vec<&DataSourceRefreshFailed> {
        self.events
            .iter()
            .filter_map(|e| match &e.trigger {
                Trigger::DataSourceRefreshFailed(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn stage(&self, name: &str) -> &StageSummary {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stage {name}: {:?}", self.stages))
    }
}

/// Point `var` at `url`. Each test uses its own variable, set before it
/// refreshes; the driver reads no environment of its own for an IP host.
fn set_env(var: &str, url: &str) {
    std::env::set_var(var, url);
}

/// An engine for the workspace file text `ws`, on a store in `dir`.
fn engine(dir: &Path, ws: &str) -> InsightsEngine {
    let ws = parse_workspace_file(&dir.join("workspace.toml"), ws).unwrap();
    let store = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
    InsightsEngine::new(ws, store)
}

fn refresh(engine: &InsightsEngine, scope: &Scope) -> Seen {
    let mut seen = Seen::default();
    engine.refresh(scope, &mut seen).unwrap();
    seen
}

/// A postgres source `crm` reading `relation` (a `table = …` or `query = …`
/// line) through `$env`, then `extra` source keys; unified by e-mail.
fn workspace(env: &str, relation: &str, extra: &str, map: &str) -> String {
    format!(
        r#"retries = 2
retry_backoff_ms = 1

[[sources]]
name = "crm"
kind = "postgres"
connection_env = "{env}"
{relation}
{extra}
[sources.map]
{map}

[[unification.rules]]
fields = ["Email"]
"#
    )
}

const CONTACTS: &str = "
CREATE TABLE contacts (
    id text PRIMARY KEY,
    email text,
    last_name varchar(40),
    score numeric(8, 2),
    visits int4,
    big int8,
    small int2,
    ratio float8,
    vip boolean,
    joined date,
    seen timestamp,
    updated_at timestamptz NOT NULL,
    tags text[],
    ref uuid,
    doc jsonb
);
INSERT INTO contacts VALUES
    ('c1', 'ann@example.com', 'Smith', 12.50, 3, 9000000000, 7, 0.25, true, '2024-03-01',
     '2024-03-01 09:30:00', '2024-01-01 12:00:00+02', '{a,b}',
     '6f1c2a9e-1b7d-4c55-9a0e-3a1f7d2b8c4e', '{\"tier\": \"gold\"}'),
    ('c2', 'bob@example.com', 'Jones', NULL, NULL, NULL, NULL, NULL, false, NULL,
     NULL, '2024-01-02 00:00:00+00', NULL, NULL, NULL),
    ('c3', 'ANN@example.com', 'Smith', 1, 1, 1, 1, 1, NULL, NULL,
     NULL, '2024-01-03 00:00:00+00', '{}', NULL, '[]');
";

/// Success: rows typed from PostgreSQL's types, unified into customers; a
/// second refresh skips the unchanged table; an update, and a row replaced
/// by another with the same count and `updated_at`, are read again.
#[test]
fn a_postgres_table_is_imported_skipped_while_unchanged_and_read_again_after_changes() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(CONTACTS);
    set_env("TF_TEST_PG_SUCCESS", &pg.url());
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(
        "TF_TEST_PG_SUCCESS",
        r#"table = "public.contacts""#,
        "key = \"id\"\nupdated_at = \"updated_at\"",
        "Email = \"email\"\nLastName = \"last_name\"",
    );
    let engine = engine(dir.path(), &ws);
    let store = engine.store();

    let first = refresh(&engine, &Scope::Full);
    assert!(first.failed().is_empty(), "{:?}", first.failed());
    assert_eq!(first.succeeded().len(), 1);
    assert_eq!(first.succeeded()[0].source, "crm");
    assert_eq!(first.succeeded()[0].rows_read, 3);
    assert_eq!(first.stage("source:crm").detail, None);
    assert_eq!(first.progress.last(), Some(&(3, Some(3))));
    let meta = store.meta("Crm").unwrap();
    let types: Vec<(&str, ColumnType)> = meta
        .schema
        .columns
        .iter()
        .map(|(c, t)| (c.as_str(), *t))
        .collect();
    use ColumnType::*;
    assert_eq!(
        types,
        [
            ("id", String),
            ("email", String),
            ("last_name", String),
            ("score", Decimal),
            ("visits", Integer),
            ("big", Integer),
            ("small", Integer),
            ("ratio", Decimal),
            ("vip", Boolean),
            ("joined", DateTime),
            ("seen", DateTime),
            ("updated_at", DateTime),
            ("tags", String),
            ("ref", String),
            ("doc", String),
        ]
    );
    let c1 = store.get_item("Crm", "c1").unwrap().unwrap();
    let expected = serde_json::json!({
        "id": "c1", "email": "ann@example.com", "last_name": "Smith", "score": 12.5,
        "visits": 3, "big": 9_000_000_000_i64, "small": 7, "ratio": 0.25, "vip": true,
        "joined": "2024-03-01T00:00:00Z", "seen": "2024-03-01T09:30:00Z",
        "updated_at": "2024-01-01T10:00:00Z", "tags": "{a,b}",
        "ref": "6f1c2a9e-1b7d-4c55-9a0e-3a1f7d2b8c4e", "doc": "{\"tier\": \"gold\"}",
    });
    assert_eq!(c1, expected);
    let c2 = store.get_item("Crm", "c2").unwrap().unwrap();
    assert_eq!(c2["score"], serde_json::Value::Null);
    assert_eq!(c2["vip"], false);
    // c1 and c3 share an e-mail: two customers.
    assert_eq!(store.meta("Customer").unwrap().rows, 2);
    let generation = meta.generation;
    // Each refresh of a database source is one partition.
    let parts = store.partitions("Crm").unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].origin.as_str(), parts[0].rows),
        ("postgres: table public.contacts", 3)
    );

    let second = refresh(&engine, &Scope::Full);
    assert_eq!(second.succeeded().len(), 1);
    assert_eq!(second.succeeded()[0].rows_read, 3);
    assert_eq!(
        second.stage("source:crm").detail.as_deref(),
        Some("unchanged since the last import (row count, greatest updated_at and keys): not read again")
    );
    assert_eq!(store.meta("Crm").unwrap().generation, generation);

    pg.sql("UPDATE contacts SET email = 'bobby@example.com', updated_at = now() WHERE id = 'c2'");
    let third = refresh(&engine, &Scope::Full);
    assert_eq!(third.succeeded()[0].rows_read, 3);
    // Only the rows at or past the last greatest updated_at (c3's) are read.
    assert_eq!(
        third.stage("source:crm").detail.as_deref(),
        Some("read by updated_at: 2 rows from 2024-01-03 00:00:00+00: 0 added, 1 changed")
    );
    assert_eq!(store.meta("Crm").unwrap().generation, generation + 1);
    let again = store.partitions("Crm").unwrap();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].id, parts[0].id, "a new refresh is a new partition");
    assert_eq!(
        store.get_item("Crm", "c2").unwrap().unwrap()["email"],
        "bobby@example.com"
    );
    let page = store
        .get_page("t", "Customer", &Default::default())
        .unwrap();
    let emails: Vec<&str> = page
        .items
        .iter()
        .filter_map(|c| c["Email"].as_str())
        .collect();
    assert!(emails.contains(&"bobby@example.com"), "{emails:?}");

    // Same count, same greatest updated_at, another key: read again.
    pg.sql(
        "DELETE FROM contacts WHERE id = 'c3';
         INSERT INTO contacts (id, email, updated_at) VALUES ('c4', 'dan@example.com', '2024-01-03 00:00:00+00');",
    );
    let fourth = refresh(&engine, &Scope::Source("crm".into()));
    assert_eq!(
        fourth.stage("source:crm").detail.as_deref(),
        Some("read in full: rows were added or deleted without a newer updated_at")
    );
    assert!(store.get_item("Crm", "c3").unwrap().is_none());
    assert!(store.get_item("Crm", "c4").unwrap().is_some());

    // Unchanged again, but forced.
    let forced = InsightsEngine::new(
        engine.workspace().clone(),
        EntityDb::open(&dir.path().join("store.sqlite"), Default::default()).unwrap(),
    )
    .forcing(true);
    let before = store.meta("Crm").unwrap().generation;
    let fifth = refresh(&forced, &Scope::Source("crm".into()));
    assert_eq!(fifth.stage("source:crm").detail, None);
    assert_eq!(store.meta("Crm").unwrap().generation, before + 1);
}

/// A query streams many rows, reporting progress; a value the store cannot
/// hold is a malformed row, skipped within the tolerance; a duplicate key is
/// permanent.
#[test]
fn a_query_streams_its_rows_and_bad_rows_are_named() {
    let Some(pg) = Postgres::start() else { return };
    set_env("TF_TEST_PG_QUERY", &pg.url());
    let dir = tempfile::tempdir().unwrap();
    let many = r#"query = """
SELECT n AS id, 'p' || n || '@example.com' AS email,
       CASE WHEN n = 777 THEN 'NaN'::numeric ELSE n / 4.0 END AS score
FROM generate_series(1, 50000) AS n;
""""#;
    let ws = workspace(
        "TF_TEST_PG_QUERY",
        many,
        "key = \"id\"\ntolerance = 1",
        "Email = \"email\"",
    );
    let seen = refresh(&engine(dir.path(), &ws), &Scope::Source("crm".into()));
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert_eq!(seen.succeeded()[0].rows_read, 49_999);
    assert_eq!(seen.succeeded()[0].rows_rejected, 1);
    assert_eq!(
        seen.stage("source:crm").detail.as_deref(),
        Some("1 malformed rows skipped: row 777 (key 777), field 'score': 'NaN' is not a decimal number")
    );
    assert!(seen.progress.len() >= 5, "{:?}", seen.progress);
    assert!(seen
        .progress
        .iter()
        .all(|(done, total)| Some(*done) <= *total));

    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(
        "TF_TEST_PG_QUERY",
        many,
        "key = \"id\"",
        "Email = \"email\"",
    );
    let seen = refresh(&engine(dir.path(), &ws), &Scope::Source("crm".into()));
    let failed = seen.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].permanent);
    assert_eq!(failed[0].attempts, 1);
    assert_eq!(
        failed[0].error,
        "postgres source 'crm' (query): row 777 (key 777), field 'score': 'NaN' is not a decimal number"
    );
    assert_eq!(
        (failed[0].row, failed[0].field.as_deref()),
        (Some(777), Some("score"))
    );
    assert_eq!(failed[0].rows_read, 776);

    let dir = tempfile::tempdir().unwrap();
    let twice = r#"query = "SELECT 'x' AS id, 'a@example.com' AS email UNION ALL SELECT 'x', 'b@example.com'""#;
    let ws = workspace(
        "TF_TEST_PG_QUERY",
        twice,
        "key = \"id\"",
        "Email = \"email\"",
    );
    let seen = refresh(&engine(dir.path(), &ws), &Scope::Source("crm".into()));
    let failed = seen.failed();
    assert!(failed[0].permanent);
    assert_eq!(
        failed[0].error,
        "postgres source 'crm' (query): row 2: duplicate key 'x' in field 'id'"
    );
    assert!(seen.retries.is_empty());

    // Keys that reach the store in no order of its own (text read in text
    // order, stored as numbers: '-100' comes after '-10', -100 is lower) go
    // in unindexed, the index built after the last row; a duplicate is
    // then named by its row as above.
    let unordered = |extra: &str| {
        format!(
            "query = \"SELECT (-n)::text AS id, 'p' || n || '@example.com' AS email FROM generate_series(1, 5000) AS n{extra}\""
        )
    };
    for (extra, outcome) in [
        ("", Ok(5000)),
        (
            " UNION ALL SELECT '-77', 'again@example.com'",
            Err("postgres source 'crm' (query): row 4747: duplicate key -77 in field 'id'"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ws = workspace(
            "TF_TEST_PG_QUERY",
            &unordered(extra),
            "key = \"id\"\n[sources.types]\nid = \"decimal\"",
            "Email = \"email\"",
        );
        let seen = refresh(&engine(dir.path(), &ws), &Scope::Source("crm".into()));
        match outcome {
            Ok(rows) => {
                assert!(seen.failed().is_empty(), "{:?}", seen.failed());
                assert_eq!(seen.succeeded()[0].rows_read, rows);
            }
            Err(message) => {
                let failed = seen.failed();
                assert_eq!(failed[0].error, message);
                assert_eq!(failed[0].row, Some(4747));
                assert!(failed[0].permanent);
            }
        }
    }
}

/// A row larger than the store's row bound is a malformed row, as in a file:
/// skipped within the tolerance, else the refresh fails naming the row, its
/// key and its largest column. A row just under the bound is stored.
#[test]
fn a_row_over_the_row_bound_is_malformed_and_named() {
    let Some(pg) = Postgres::start() else { return };
    set_env("TF_TEST_PG_WIDE", &pg.url());
    let wide = r#"query = """
SELECT n AS id, 'p' || n || '@example.com' AS email,
       CASE n WHEN 3 THEN repeat('x', 9 * 1024 * 1024)
              WHEN 4 THEN repeat('y', 8 * 1024 * 1024 - 100)
              ELSE 'short' END AS notes
FROM generate_series(1, 5) AS n
""""#;
    let over = "the row takes 9437202 bytes, longer than 8 MiB (a source row may take at most 8388608 bytes)";
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(
        "TF_TEST_PG_WIDE",
        wide,
        "key = \"id\"\ntolerance = 1",
        "Email = \"email\"",
    );
    let tolerant = engine(dir.path(), &ws);
    let seen = refresh(&tolerant, &Scope::Source("crm".into()));
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert_eq!(seen.succeeded()[0].rows_read, 4);
    assert_eq!(seen.succeeded()[0].rows_rejected, 1);
    assert_eq!(
        seen.stage("source:crm").detail.as_deref(),
        Some(format!("1 malformed rows skipped: row 3 (key 3), field 'notes': {over}").as_str())
    );
    assert_eq!(tolerant.store().meta("Crm").unwrap().rows, 4);

    let dir = tempfile::tempdir().unwrap();
    let ws = workspace("TF_TEST_PG_WIDE", wide, "key = \"id\"", "Email = \"email\"");
    let seen = refresh(&engine(dir.path(), &ws), &Scope::Source("crm".into()));
    let failed = seen.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].permanent);
    assert_eq!(
        failed[0].error,
        format!("postgres source 'crm' (query): row 3 (key 3), field 'notes': {over}")
    );
    assert_eq!(
        (
            failed[0].row,
            failed[0].field.as_deref(),
            failed[0].rows_read
        ),
        (Some(3), Some("notes"), 2)
    );
}

/// A failed connection (nothing listens on the port) is transient: retried
/// as configured, then one failed event, not permanent. The password in the
/// connection string never shows.
#[test]
fn a_failed_connection_is_transient_and_retried() {
    let port = pg::unused_port();
    set_env(
        "TF_TEST_PG_REFUSED",
        &format!("postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"),
    );
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(
        "TF_TEST_PG_REFUSED",
        r#"table = "public.contacts""#,
        "key = \"id\"",
        "Email = \"email\"",
    );
    let seen = refresh(&engine(dir.path(), &ws), &Scope::Full);
    assert_eq!(seen.retries.len(), 2, "two retries");
    assert_eq!(seen.retries.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 2]);
    assert!(seen.retries.iter().all(|r| r.0 == "crm" && !r.2.permanent));
    let failed = seen.failed();
    assert_eq!(failed.len(), 1);
    assert!(!failed[0].permanent);
    assert_eq!(failed[0].attempts, 3);
    assert!(
        failed[0].error.starts_with(
            "postgres source 'crm' (table public.contacts): cannot connect: error connecting to server: "
        ),
        "{}",
        failed[0].error
    );
    assert!(failed[0].error.contains("refused"), "{}", failed[0].error);
    let everything = format!("{:?}{:?}", seen.events, seen.stages);
    assert!(!everything.contains(PASSWORD), "{everything}");
    assert!(seen.succeeded().is_empty());
    assert!(seen
        .stage("unification")
        .detail
        .as_deref()
        .unwrap()
        .contains("source 'crm' failed"));
}

/// Permanent failures are not retried, and say what is wrong: a column the
/// configuration uses that the table lacks, a missing table, an error in a
/// query (with its position), a wrong password, TLS asked for, a connection
/// string that does not parse, an unset variable. No password shows.
#[test]
fn a_missing_column_and_other_mistakes_are_permanent_and_named() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE contacts (id text PRIMARY KEY, email text, updated_at timestamptz);
         INSERT INTO contacts VALUES ('c1', 'ann@example.com', now());",
    );
    set_env("TF_TEST_PG_PERMANENT", &pg.url());
    set_env(
        "TF_TEST_PG_WRONG_PASSWORD",
        &pg.url().replace(PASSWORD, "not-the-Password-42"),
    );
    set_env(
        "TF_TEST_PG_BAD_STRING",
        &format!("host=127.0.0.1 port=fivefourthreetwo password={PASSWORD}"),
    );
    set_env("TF_TEST_PG_TLS", &format!("{} sslmode=require", pg.url()));
    set_env(
        "TF_TEST_PG_ROOT_IN_STRING",
        &format!("{} sslmode=verify-full sslrootcert=/etc/ca.pem", pg.url()),
    );
    let table = r#"table = "public.contacts""#;
    /// A workspace whose refresh fails for good, and how.
    struct Case {
        env: &'static str,
        relation: &'static str,
        extra: &'static str,
        map: &'static str,
        field: Option<&'static str>,
        error: &'static str,
    }
    let cases = [
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: table,
            extra: "key = \"id\"\nupdated_at = \"updated_at\"",
            map: "Email = \"emial\"",
            field: Some("emial"),
            error: "postgres source 'crm' (table public.contacts): column 'emial' used by map.Email is not in its columns (id, email, updated_at)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: table,
            extra: "key = \"Id\"",
            map: "Email = \"email\"",
            field: Some("Id"),
            error: "postgres source 'crm' (table public.contacts): column 'Id' used by key is not in its columns (id, email, updated_at)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: table,
            extra: "key = \"id\"\nupdated_at = \"modified\"",
            map: "Email = \"email\"",
            field: Some("modified"),
            error: "postgres source 'crm' (table public.contacts): column 'modified' used by updated_at is not in its columns (id, email, updated_at)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: table,
            extra: "key = \"id\"\ndeleted = \"is_deleted\"",
            map: "Email = \"email\"",
            field: Some("is_deleted"),
            error: "postgres source 'crm' (table public.contacts): column 'is_deleted' used by deleted is not in its columns (id, email, updated_at)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: r#"table = "public.contact""#,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (table public.contact): cannot read its columns: relation \"public.contact\" does not exist (SQLSTATE 42P01)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: r#"query = "SELECT id, email, phone FROM contacts""#,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (query): cannot read its columns: column \"phone\" does not exist (SQLSTATE 42703, at character 19 of the query)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: r#"query = "SELECT id, email, upper(email) AS \"Email\" FROM contacts""#,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (query): columns 'email' and 'Email' differ only in case (column names ignore case) (rename one with AS in a query)",
        },
        Case {
            env: "TF_TEST_PG_PERMANENT",
            relation: r#"query = "SELECT id, email FORM contacts""#,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (query): cannot read its columns: syntax error at or near \"contacts\" (SQLSTATE 42601, at character 23 of the query)",
        },
        Case {
            env: "TF_TEST_PG_WRONG_PASSWORD",
            relation: table,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (table public.contacts): cannot connect: password authentication failed for user \"postgres\" (SQLSTATE 28P01)",
        },
        Case {
            env: "TF_TEST_PG_BAD_STRING",
            relation: table,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (table public.contacts): the connection string in TF_TEST_PG_BAD_STRING is not valid: invalid connection string: invalid value for option `port`",
        },
        Case {
            env: "TF_TEST_PG_TLS",
            relation: table,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (table public.contacts): cannot connect: error performing TLS handshake: server does not support TLS",
        },
        Case {
            env: "TF_TEST_PG_ROOT_IN_STRING",
            relation: table,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (table public.contacts): the connection string in TF_TEST_PG_ROOT_IN_STRING is not valid: invalid connection string: unknown option `sslrootcert` (name the file as the source's ssl_root_cert)",
        },
        Case {
            env: "TF_TEST_PG_NEVER_SET",
            relation: table,
            extra: "key = \"id\"",
            map: "Email = \"email\"",
            field: None,
            error: "postgres source 'crm' (table public.contacts): the environment variable TF_TEST_PG_NEVER_SET (its connection_env) is not set: set it to the connection string",
        },
    ];
    for case in cases {
        let expected = case.error;
        let dir = tempfile::tempdir().unwrap();
        let ws = workspace(case.env, case.relation, case.extra, case.map);
        let seen = refresh(&engine(dir.path(), &ws), &Scope::Full);
        assert!(seen.retries.is_empty(), "{expected}: not retried");
        let failed = seen.failed();
        assert_eq!(failed.len(), 1, "{expected}");
        assert!(failed[0].permanent, "{expected}");
        assert_eq!(failed[0].attempts, 1, "{expected}");
        assert_eq!(failed[0].error, expected);
        assert_eq!(failed[0].field.as_deref(), case.field, "{expected}");
        let everything = format!("{:?}{:?}", seen.events, seen.stages);
        assert!(!everything.contains(PASSWORD), "{everything}");
        assert!(!everything.contains("not-the-Password-42"), "{everything}");
    }
}

/// Rows are read in key order, not in the heap's order (which an UPDATE
/// changes): the merge's tie-break within a source stays put.
#[test]
fn rows_are_read_in_key_order_so_merges_do_not_follow_the_heap() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(CONTACTS);
    pg.sql("UPDATE contacts SET last_name = 'Smyth', updated_at = now() WHERE id = 'c3'");
    // c1 now sits after c3 in the heap.
    pg.sql("UPDATE contacts SET updated_at = now() WHERE id = 'c1'");
    set_env("TF_TEST_PG_ORDER", &pg.url());
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(
        "TF_TEST_PG_ORDER",
        r#"table = "contacts""#,
        "key = \"id\"",
        "Email = \"email\"\nLastName = \"last_name\"",
    );
    let engine = engine(dir.path(), &ws);
    let seen = refresh(&engine, &Scope::Full);
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    // Through the store: computed entities are kept in files of their own.
    let store = EntityDb::open(&dir.path().join("store.sqlite"), Default::default()).unwrap();
    let conn = store.session();
    let last: String = conn
        .query_row(
            "SELECT LastName FROM ent_Customer WHERE lower(Email) = 'ann@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        last, "Smith",
        "c1 (the smaller key) wins the priority merge"
    );
}

/// The source `crm` reading `table` through `$env` (set to `pg`'s URL),
/// keyed by `id`, with `extra` source keys and `email` mapped: its workspace
/// text, and an engine on a new store.
fn keyed_by_id(
    pg: &Postgres,
    env: &str,
    table: &str,
    extra: &str,
) -> (String, tempfile::TempDir, InsightsEngine) {
    set_env(env, &pg.url());
    let ws = workspace(
        env,
        &format!("table = \"{table}\""),
        &format!("key = \"id\"\n{extra}"),
        "Email = \"email\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), &ws);
    (ws, dir, engine)
}

/// [`keyed_by_id`] with `updated_at = "updated_at"`, after a first full
/// refresh that failed nothing.
fn read_by_updated_at(
    pg: &Postgres,
    env: &str,
    table: &str,
) -> (String, tempfile::TempDir, InsightsEngine) {
    let (ws, dir, engine) = keyed_by_id(pg, env, table, "updated_at = \"updated_at\"");
    let first = refresh(&engine, &Scope::Full);
    assert!(first.failed().is_empty(), "{:?}", first.failed());
    (ws, dir, engine)
}

/// Every row of the entity `Crm`, in stored order.
fn stored_rows(dir: &Path) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = rusqlite::Connection::open(dir.join("store.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT * FROM ent_Crm ORDER BY rowid")
        .unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// Refresh everything; the crm source's detail, the refresh having failed
/// nothing.
fn crm_detail(engine: &InsightsEngine) -> String {
    let seen = refresh(engine, &Scope::Full);
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    seen.stage("source:crm").detail.clone().unwrap_or_default()
}

/// The crm rows of the store in `dir`, checked to be those, in their order,
/// that a full read of `ws` into a new store gives.
fn as_a_full_read(dir: &Path, ws: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let fresh = tempfile::tempdir().unwrap();
    assert!(refresh(&engine(fresh.path(), ws), &Scope::Full)
        .failed()
        .is_empty());
    let rows = stored_rows(dir);
    assert_eq!(rows, stored_rows(fresh.path()));
    rows
}

/// After `change` on the server, a refresh's crm stage says `detail`, and
/// the store holds the `rows` rows a full read of `ws` gives, in its order.
fn after_change(
    pg: &Postgres,
    (ws, dir, engine): (&str, &Path, &InsightsEngine),
    change: &str,
    detail: &str,
    rows: usize,
) {
    pg.sql(change);
    assert_eq!(crm_detail(engine), detail, "after {change}");
    assert_eq!(as_a_full_read(dir, ws).len(), rows, "after {change}");
}

/// A changed table is read by `updated_at` and changed in place, deletions
/// found and new keys that sort before stored ones placed by comparing keys,
/// with the same rows, order and customers as a full read into a new store;
/// a row added with an old `updated_at` or too many changes read it in full.
#[test]
fn a_changed_table_is_read_past_its_last_updated_at_as_a_full_read_would_store_it() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE people (id text PRIMARY KEY, email text, score int4,
                              updated_at timestamptz NOT NULL);
         INSERT INTO people
         SELECT 'k' || lpad(n::text, 5, '0'), 'p' || (n % 2500) || '@example.com', n,
                timestamptz '2024-01-01 00:00:00+00' + n * interval '1 minute'
         FROM generate_series(1, 3000) AS n;",
    );
    let (ws, dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_DELTA",
        "people",
        "updated_at = \"updated_at\"",
    );
    let first = refresh(&engine, &Scope::Full);
    assert!(first.failed().is_empty(), "{:?}", first.failed());
    assert_eq!(first.stage("source:crm").detail, None);
    let store = engine.store();
    let generation = store.meta("Crm").unwrap().generation;

    // As a full read into a new store would leave them: rows and customers.
    let check = |what: &str| {
        let fresh = tempfile::tempdir().unwrap();
        let full = self::engine(fresh.path(), &ws);
        let seen = refresh(&full, &Scope::Full);
        assert!(seen.failed().is_empty(), "{what}: {:?}", seen.failed());
        assert_eq!(stored_rows(dir.path()), stored_rows(fresh.path()), "{what}");
        // Customers as their records' keys and e-mail (their ids and order
        // may differ: ids are kept across refreshes).
        let customers = |dir: &Path| {
            let store = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
            let conn = store.session();
            let mut out: Vec<String> = conn
                .prepare(
                    "SELECT group_concat(l.LinkId, ' ') || ' = ' || max(c.Email)
                     FROM (SELECT * FROM ent_CustomerSourceLink ORDER BY LinkId) AS l
                     JOIN ent_Customer AS c USING (CustomerId) GROUP BY l.CustomerId",
                )
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            out.sort();
            out
        };
        let (ours, theirs) = (customers(dir.path()), customers(fresh.path()));
        assert!(ours.len() > 2000, "{what}: {} customers", ours.len());
        assert_eq!(ours, theirs, "{what}");
    };

    pg.sql(
        "UPDATE people SET score = -score, updated_at = now() WHERE id IN ('k00007', 'k01500');
         UPDATE people SET email = 'p7@example.com', updated_at = now() WHERE id = 'k02999';
         INSERT INTO people VALUES ('k09000', 'p9@example.com', 0, now()),
                                   ('k09001', 'new@example.com', 1, now());",
    );
    let second = refresh(&engine, &Scope::Full);
    assert!(second.failed().is_empty(), "{:?}", second.failed());
    assert_eq!(
        second.stage("source:crm").detail.as_deref(),
        Some("read by updated_at: 6 rows from 2024-01-03 02:00:00+00: 2 added, 3 changed"),
        "k03000 holds the greatest updated_at and is read again, unchanged"
    );
    assert_eq!(second.succeeded()[0].rows_read, 3002);
    assert_eq!(store.meta("Crm").unwrap().generation, generation + 1);
    let mut changed = store.changed_keys("Crm", generation).unwrap().unwrap();
    changed.sort_by_key(|v| format!("{v:?}"));
    let text = |s: &str| rusqlite::types::Value::Text(s.into());
    assert_eq!(
        changed,
        ["k00007", "k01500", "k02999", "k09000", "k09001"].map(text)
    );
    let parts = store.partitions("Crm").unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].rows, 3002);
    assert_eq!(parts[0].id, format!("{}-1", generation + 1));
    check("after an incremental read");

    // (change, the stage's detail: `*` stands for the time read from).
    let cases = [
        (
            "INSERT INTO people VALUES ('a00001', 'first@example.com', 2, now()),
                                      ('k00002a', 'between@example.com', 3, now())",
            "read by updated_at: *: 2 added, 0 changed (keys compared)",
        ),
        (
            "DELETE FROM people WHERE id = 'k00002';
             UPDATE people SET email = 'p2@example.com', updated_at = now() WHERE id = 'k00003'",
            "read by updated_at: *: 0 added, 1 changed, 1 deleted (keys compared)",
        ),
        (
            "DELETE FROM people WHERE id IN ('k00004', 'k00005');
             INSERT INTO people VALUES ('k00004x', 'old@example.com', 3, '2024-01-01');",
            "read in full: rows were added or deleted without a newer updated_at",
        ),
        (
            "UPDATE people SET score = score + 1, updated_at = now()",
            "read in full: more than 1501 rows changed since the last import",
        ),
    ];
    for (change, expected) in cases {
        pg.sql(change);
        let seen = refresh(&engine, &Scope::Full);
        assert!(seen.failed().is_empty(), "{expected}: {:?}", seen.failed());
        let detail = seen.stage("source:crm").detail.clone().unwrap_or_default();
        let (head, tail) = expected.split_once('*').unwrap_or((expected, ""));
        assert!(
            detail.starts_with(head) && detail.ends_with(tail) && detail.len() >= expected.len(),
            "{detail:?} is not {expected:?}"
        );
        check(expected);
    }
}

/// GUID keys (`uuid`) are read incrementally too, a deletion found by the
/// keys in the database's order.
#[test]
fn uuid_keys_are_read_incrementally() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE guests (id uuid PRIMARY KEY, email text, updated_at timestamp NOT NULL);
         INSERT INTO guests SELECT gen_random_uuid(), 'g' || n || '@example.com',
                                   timestamp '2024-01-01' + n * interval '1 hour'
         FROM generate_series(1, 200) AS n;",
    );
    let (ws, dir, engine) = read_by_updated_at(&pg, "TF_TEST_PG_DELTA_UUID", "guests");
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "DELETE FROM guests WHERE email = 'g7@example.com';
         UPDATE guests SET email = 'g8@example.org', updated_at = '2025-01-01' WHERE email = 'g8@example.com';",
        "read by updated_at: 2 rows from 2024-01-09 08:00:00: 0 added, 1 changed, 1 deleted (keys compared)",
        199,
    );

    // New GUIDs land anywhere among the stored ones: each is put in its
    // place, found by the store's key index (a uuid's text sorts as it).
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "INSERT INTO guests SELECT gen_random_uuid(), 'n' || n || '@example.com', '2025-02-01'
         FROM generate_series(1, 40) AS n;",
        "read by updated_at: 41 rows from 2025-01-01 00:00:00: 40 added, 0 changed",
        239,
    );
}

/// Rows marked deleted (`deleted`) are not imported, and an incremental read
/// deletes them without reading every key; a row deleted outright still
/// has the keys compared. A column that is not a boolean marks a row
/// deleted when it is not null.
#[test]
fn rows_marked_deleted_are_left_out_and_deleted_as_they_are_marked() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE soft (id text PRIMARY KEY, email text, gone bool, gone_at timestamptz,
                            updated_at int8 NOT NULL);
         INSERT INTO soft SELECT 's' || lpad(n::text, 4, '0'), n || '@example.com',
                                 CASE WHEN n % 10 = 0 THEN true WHEN n % 10 = 1 THEN NULL
                                      ELSE false END,
                                 NULL, n
         FROM generate_series(1, 2000) AS n;",
    );
    let (ws, dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_SOFT",
        "soft",
        "updated_at = \"updated_at\"\ndeleted = \"gone\"",
    );
    assert_eq!(crm_detail(&engine), "");
    assert_eq!(
        engine.store().meta("Crm").unwrap().rows,
        1800,
        "one in ten is marked"
    );

    // s0010 was marked already.
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "UPDATE soft SET gone = true, updated_at = 3000 WHERE id IN ('s0002', 's0003', 's0010');
         UPDATE soft SET email = 'x@example.com', updated_at = 3000 WHERE id = 's0004';",
        "read by updated_at: 5 rows from 2000: 0 added, 1 changed, 2 deleted",
        1798,
    );

    // s0020 comes back, before the last stored key.
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "UPDATE soft SET gone = false, updated_at = 3001 WHERE id = 's0020'",
        "read by updated_at: 5 rows from 3000: 1 added, 0 changed (keys compared)",
        1799,
    );

    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "DELETE FROM soft WHERE id = 's0005';
         UPDATE soft SET gone = true, updated_at = 3002 WHERE id = 's0006'",
        "read by updated_at: 2 rows from 3001: 0 added, 0 changed, 2 deleted (keys compared)",
        1797,
    );

    let (ws, dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_SOFT_AT",
        "soft",
        "updated_at = \"updated_at\"\ndeleted = \"gone_at\"",
    );
    assert_eq!(crm_detail(&engine), "");
    assert_eq!(engine.store().meta("Crm").unwrap().rows, 1999);
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "UPDATE soft SET gone_at = now(), updated_at = 3003 WHERE id = 's0007'",
        "read by updated_at: 2 rows from 3002: 0 added, 0 changed, 1 deleted",
        1998,
    );
}

/// Reading every key to find a deletion and place a new key reports its
/// progress, keys read of the table's count.
#[test]
fn the_key_walk_reports_its_progress() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE walked (id text PRIMARY KEY, email text, updated_at int8 NOT NULL);
         INSERT INTO walked SELECT 'w' || lpad(n::text, 6, '0'), n || '@example.com', n
         FROM generate_series(1, 25000) AS n;",
    );
    let (_, _dir, engine) = read_by_updated_at(&pg, "TF_TEST_PG_WALKED", "walked");
    pg.sql(
        "DELETE FROM walked WHERE id = 'w012345';
         INSERT INTO walked VALUES ('a', 'a@example.com', 30000);",
    );
    let seen = refresh(&engine, &Scope::Full);
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    let detail = seen.stage("source:crm").detail.clone().unwrap_or_default();
    assert!(
        detail.ends_with(": 1 added, 0 changed, 1 deleted (keys compared)"),
        "{detail}"
    );
    for done in [10_000, 20_000] {
        assert!(
            seen.progress.contains(&(done, Some(25_000))),
            "{:?}",
            seen.progress
        );
    }
}

/// Rows deleted outright from a large table keyed by integers (or uuids,
/// dates, timestamps) are found by counting keys in ranges of stored rows
/// and comparing only the keys of the ranges that lost rows; when the
/// deleted keys do not account for the change in the keys' hash sum (a row
/// added unseen where one went), every key is compared. Text keys always
/// have every key compared.
#[test]
fn deletions_compare_only_the_key_ranges_that_lost_rows() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE big (id int8 PRIMARY KEY, email text, updated_at int8 NOT NULL);
         INSERT INTO big SELECT n * 10, n || '@example.com', n
         FROM generate_series(1, 20000) AS n;
         CREATE TABLE named (id text PRIMARY KEY, email text, updated_at int8 NOT NULL);
         INSERT INTO named SELECT 'n' || lpad(n::text, 6, '0'), n || '@example.com', n
         FROM generate_series(1, 5000) AS n;",
    );
    let (ws, dir, engine) = read_by_updated_at(&pg, "TF_TEST_PG_BIG", "big");
    // 20,000 rows in ranges of 32.
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "DELETE FROM big WHERE id IN (10, 100000, 100010, 199990);
         UPDATE big SET email = 'x@example.com', updated_at = 30000 WHERE id = 5000;",
        "read by updated_at: 2 rows from 20000: 0 added, 1 changed, 4 deleted (keys compared in 3 of 254 ranges)",
        19996,
    );
    // Ranges past MAX_KEY_RANGES are read by their bucket numbers.
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "DELETE FROM big WHERE id % 1500 = 0",
        "read by updated_at: 1 rows from 30000: 0 added, 0 changed, 133 deleted (keys compared in 133 of 625 ranges)",
        19863,
    );
    // 50010's range keeps its count: the hash sum tells.
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "DELETE FROM big WHERE id IN (50010, 150010);
         INSERT INTO big VALUES (50015, 'late@example.com', 1);",
        "read in full: rows were added or deleted without a newer updated_at",
        19862,
    );

    let (ws, dir, engine) = read_by_updated_at(&pg, "TF_TEST_PG_NAMED", "named");
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "DELETE FROM named WHERE id = 'n002500'",
        "read by updated_at: 1 rows from 5000: 0 added, 0 changed, 1 deleted (keys compared)",
        4999,
    );
}

/// New keys go between stored ones as long as the room the full read left
/// between two rows lasts (16 halvings); then the table is read in full,
/// which spaces the rows again. Integer keys are always in place.
#[test]
fn new_keys_fill_the_room_between_two_rows_then_a_full_read_spaces_them_again() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE gaps (id text PRIMARY KEY, email text, updated_at int8 NOT NULL);
         INSERT INTO gaps VALUES ('a', 'a@example.com', 1), ('b', 'b@example.com', 1);
         CREATE TABLE numbered (id int8 PRIMARY KEY, email text, updated_at int8 NOT NULL);
         INSERT INTO numbered VALUES (10, 'x@example.com', 1), (20, 'y@example.com', 1);",
    );
    let (ws, dir, engine) = read_by_updated_at(&pg, "TF_TEST_PG_GAPS", "gaps");
    let detail = || crm_detail(&engine);
    // 'a0', 'a00', …: each between 'a' and the one before.
    let mut key = String::from("a");
    for n in 2..=18 {
        key.push('0');
        pg.sql(&format!(
            "INSERT INTO gaps VALUES ('{key}', 'e{n}@example.com', {n})"
        ));
        let seen = detail();
        if n <= 17 {
            assert!(
                seen.ends_with(": 1 added, 0 changed (keys compared)"),
                "{n}: {seen}"
            );
        } else {
            assert_eq!(
                seen,
                "read in full: new keys sort between two stored rows with no room left between them",
                "{n}"
            );
        }
    }
    key.push('0');
    pg.sql(&format!(
        "INSERT INTO gaps VALUES ('{key}', 'again@example.com', 20)"
    ));
    assert!(detail().ends_with(": 1 added, 0 changed (keys compared)"));
    assert_eq!(as_a_full_read(dir.path(), &ws).len(), 20);

    let (ws, dir, engine) = read_by_updated_at(&pg, "TF_TEST_PG_NUMBERED", "numbered");
    // No keys compared: an integer key is the rowid.
    after_change(
        &pg,
        (&ws, dir.path(), &engine),
        "INSERT INTO numbered VALUES (15, 'z@example.com', 2), (5, 'w@example.com', 2)",
        "read by updated_at: 4 rows from 1: 2 added, 0 changed",
        4,
    );
}

/// A small xorshift generator: the rounds below are the same on every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Round after round of random changes (updates, new keys anywhere among the
/// stored ones, deletions outright, rows marked deleted and unmarked, now and
/// then a row added with an old `updated_at`), to text keys in a collation
/// that is not byte order, uuids and integers: after each round the store
/// holds what a full read into a new store holds, in the same order, and most
/// rounds were read incrementally.
#[test]
fn random_changes_round_after_round_leave_what_a_full_read_leaves() {
    let Some(pg) = Postgres::start() else { return };
    let tables = [
        ("rt", r#"text COLLATE "und-x-icu""#),
        ("ru", "uuid"),
        ("ri", "int8"),
    ];
    for (table, ty) in tables {
        pg.sql(&format!(
            "CREATE TABLE {table} (id {ty} PRIMARY KEY, email text, gone bool NOT NULL,
                                   updated_at int8 NOT NULL)"
        ));
    }
    let mut dice = Dice(0x005e_ed0f_7f15);
    // A new key of the table's type, anywhere among the others.
    let key = |table: &str, dice: &mut Dice| -> String {
        let n = dice.roll(1_000_000);
        match table {
            "rt" => {
                let first = ["a", "A", "b", "B", "m", "M", "z", "-"][dice.roll(8) as usize];
                format!("'{first}{n:06}'")
            }
            "ru" => format!("md5('{n}')::uuid"),
            _ => n.to_string(),
        }
    };
    for (table, _) in tables {
        let rows: Vec<String> = (0..5000)
            .map(|i| {
                let k = key(table, &mut dice);
                format!(
                    "({k}, 'p{}@example.com', {}, {i})",
                    dice.roll(250),
                    dice.roll(9) == 0
                )
            })
            .collect();
        for rows in rows.chunks(500) {
            pg.sql(&format!(
                "INSERT INTO {table} VALUES {} ON CONFLICT (id) DO NOTHING",
                rows.join(", ")
            ));
        }
        let (ws, dir, engine) = keyed_by_id(
            &pg,
            &format!("TF_TEST_PG_RANDOM_{table}"),
            table,
            "updated_at = \"updated_at\"\ndeleted = \"gone\"",
        );
        assert_eq!(crm_detail(&engine), "");
        let (mut incremental, mut compared, mut ranged) = (0, 0, 0);
        let rounds = 24;
        for round in 1..=rounds {
            let at = 10_000 + round;
            // The `n`th row (of those `which`), in key order.
            let nth = |which: &str, n: u64| {
                format!(
                    "(SELECT id FROM {table} WHERE {which} ORDER BY id
                      OFFSET {n} % greatest(1, (SELECT count(*) FROM {table} WHERE {which}))
                      LIMIT 1)"
                )
            };
            let mut change = Vec::new();
            for _ in 0..dice.roll(5) {
                let (pick, email) = (dice.roll(1000), dice.roll(250));
                change.push(format!(
                    "UPDATE {table} SET email = 'p{email}@example.com', updated_at = {at}
                     WHERE id = {}",
                    nth("true", pick)
                ));
            }
            for _ in 0..dice.roll(5) {
                let (k, email) = (key(table, &mut dice), dice.roll(250));
                change.push(format!(
                    "INSERT INTO {table} VALUES ({k}, 'n{email}@example.com', false, {at})
                     ON CONFLICT (id) DO NOTHING"
                ));
            }
            for _ in 0..dice.roll(3) {
                change.push(format!(
                    "DELETE FROM {table} WHERE id = {}",
                    nth("true", dice.roll(1000))
                ));
            }
            for _ in 0..dice.roll(3) {
                let pick = dice.roll(1000);
                change.push(format!(
                    "UPDATE {table} SET gone = true, updated_at = {at} WHERE id = {}",
                    nth("NOT gone", pick)
                ));
            }
            for _ in 0..dice.roll(2) {
                let pick = dice.roll(1000);
                change.push(format!(
                    "UPDATE {table} SET gone = false, updated_at = {at} WHERE id = {}",
                    nth("gone", pick)
                ));
            }
            if round % 7 == 0 {
                let k = key(table, &mut dice);
                change.push(format!(
                    "INSERT INTO {table} VALUES ({k}, 'old@example.com', false, 0)
                     ON CONFLICT (id) DO NOTHING"
                ));
            }
            let change = change.join(";\n");
            if !change.is_empty() {
                pg.sql(&change);
            }
            let detail = crm_detail(&engine);
            let what = format!("{table}, round {round}: {detail:?} after\n{change}");
            if detail.starts_with("read by updated_at") {
                incremental += 1;
                compared += usize::from(detail.ends_with("(keys compared)"));
                ranged += usize::from(detail.ends_with(" ranges)"));
            } else {
                assert!(
                    detail.is_empty() || detail.starts_with("read in full"),
                    "{what}"
                );
            }
            let rows = std::panic::catch_unwind(|| as_a_full_read(dir.path(), &ws));
            assert!(rows.is_ok(), "{what}");
        }
        assert!(
            incremental * 3 >= rounds * 2,
            "{table}: {incremental} of {rounds} incremental"
        );
        if table == "rt" {
            assert!(compared > 0, "{table}: no round compared every key");
        }
        if table != "rt" {
            assert!(
                ranged > 0,
                "{table}: no round compared the keys of some ranges"
            );
        }
    }
}

/// With `full_read_every`, the table is read in full again once that long
/// passed since the last full read, changed or not.
#[test]
fn a_full_read_comes_when_due() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE due (id int4 PRIMARY KEY, email text, updated_at timestamptz NOT NULL);
         INSERT INTO due SELECT n, 'd' || n || '@example.com', '2024-01-01'
         FROM generate_series(1, 5) AS n;",
    );
    let (_, _dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_DUE",
        "due",
        "updated_at = \"updated_at\"\nfull_read_every = \"3s\"",
    );
    let detail = || {
        let seen = refresh(&engine, &Scope::Source("crm".into()));
        assert!(seen.failed().is_empty(), "{:?}", seen.failed());
        seen.stage("source:crm").detail.clone().unwrap_or_default()
    };
    let unchanged =
        "unchanged since the last import (row count, greatest updated_at and keys): not read again";
    assert_eq!(detail(), "");
    assert_eq!(detail(), unchanged);
    pg.sql("UPDATE due SET email = 'x@example.com', updated_at = '2024-02-01' WHERE id = 2");
    assert_eq!(
        detail(),
        "read by updated_at: 5 rows from 2024-01-01 00:00:00+00: 0 added, 1 changed"
    );
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        detail(),
        "read in full: one is due every 3s (full_read_every)"
    );
    assert_eq!(detail(), unchanged);
}

/// An `updated_at` whose text does not compare back (a float) reads a
/// changed table in full, saying why.
#[test]
fn an_updated_at_of_another_type_reads_in_full() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE versions (id int4 PRIMARY KEY, email text, version float8 NOT NULL);
         INSERT INTO versions VALUES (1, 'v1@example.com', 1.5), (2, 'v2@example.com', 2.5);",
    );
    let (_, _dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_FLOAT",
        "versions",
        "updated_at = \"version\"",
    );
    assert!(refresh(&engine, &Scope::Full).failed().is_empty());
    pg.sql("UPDATE versions SET email = 'v@example.com', version = 3.5 WHERE id = 1");
    let seen = refresh(&engine, &Scope::Full);
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert_eq!(
        seen.stage("source:crm").detail.as_deref(),
        Some("read in full: column 'version' is of type float8: an incremental read compares integers, numerics, text, dates, timestamps and uuids")
    );
    assert_eq!(
        engine.store().get_item("Crm", "1").unwrap().unwrap()["email"],
        "v@example.com"
    );
}

/// Malformed rows, changed or skipped by the last import, send a changed
/// table to a full read, which counts them against the tolerance.
#[test]
fn malformed_rows_read_a_changed_table_in_full() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        "CREATE TABLE tagged (id int8 PRIMARY KEY, email text, n text, updated_at date NOT NULL);
         INSERT INTO tagged SELECT k, 'p' || k || '@example.com', k::text, date '2024-01-01' + k
         FROM generate_series(1, 100) AS k;
         UPDATE tagged SET n = 'x' WHERE id = 50;",
    );
    let (_, _dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_DELTA_BAD",
        "tagged",
        "updated_at = \"updated_at\"\ntolerance = 1\ntypes = { n = \"integer\" }",
    );
    let detail = |change: &str| {
        pg.sql(change);
        let seen = refresh(&engine, &Scope::Source("crm".into()));
        assert!(seen.failed().is_empty(), "{change}: {:?}", seen.failed());
        let detail = seen.stage("source:crm").detail.clone().unwrap_or_default();
        // The rejected row's message is the file's; only how it was read matters.
        detail.split(';').next().unwrap_or_default().to_owned()
    };
    assert_eq!(
        detail("SELECT 1"),
        "1 malformed rows skipped: row 50 (key 50), field 'n': 'x' is not an integer"
    );
    assert_eq!(
        detail("UPDATE tagged SET n = '7', updated_at = date '2025-01-01' WHERE id = 7"),
        "read in full: the last import skipped malformed rows"
    );
    assert_eq!(
        detail("UPDATE tagged SET n = '50', updated_at = date '2025-01-02' WHERE id = 50"),
        "read in full: the last import skipped malformed rows"
    );
    assert_eq!(
        detail("UPDATE tagged SET n = 'y', updated_at = date '2025-01-03' WHERE id = 9"),
        "read in full: a changed row is malformed"
    );
    assert_eq!(
        detail("UPDATE tagged SET n = '9', updated_at = date '2025-01-04' WHERE id = 9"),
        "read in full: the last import skipped malformed rows"
    );
    assert_eq!(
        detail("UPDATE tagged SET email = 'z@example.com', updated_at = date '2025-01-05' WHERE id = 1"),
        "read by updated_at: 2 rows from 2025-01-04: 0 added, 1 changed"
    );
}

/// Keys in a collation other than the store's byte order (ICU's, where
/// `A00003` comes after `a00002`) are stored in the database's order, their
/// index built after the last row; a later change is tracked to its key.
#[test]
fn keys_in_another_collation_keep_its_order_and_changes_are_tracked() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(
        r#"CREATE TABLE people (id text COLLATE "und-x-icu" PRIMARY KEY, email text,
                                updated_at timestamptz NOT NULL);
           INSERT INTO people
           SELECT CASE WHEN n % 2 = 1 THEN 'A' ELSE 'a' END || lpad(n::text, 5, '0'),
                  'p' || n || '@example.com', '2024-01-01'
           FROM generate_series(1, 5000) AS n;"#,
    );
    let (_, dir, engine) = keyed_by_id(
        &pg,
        "TF_TEST_PG_COLLATION",
        "people",
        "updated_at = \"updated_at\"",
    );
    let seen = refresh(&engine, &Scope::Source("crm".into()));
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert_eq!(seen.succeeded()[0].rows_read, 5000);
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
    let first: Vec<String> = conn
        .prepare("SELECT id FROM ent_Crm ORDER BY rowid LIMIT 4")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, ["A00001", "a00002", "A00003", "a00004"]);
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT * FROM ent_Crm WHERE id = 'a04000'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("USING INDEX"), "{plan}");
    let store = EntityDb::open(&dir.path().join("store.sqlite"), Default::default()).unwrap();
    let generation = store.meta("Crm").unwrap().generation;

    pg.sql("UPDATE people SET email = 'new@example.com', updated_at = now() WHERE id = 'a04000'");
    let seen = refresh(&engine, &Scope::Source("crm".into()));
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    let store = EntityDb::open(&dir.path().join("store.sqlite"), Default::default()).unwrap();
    assert_eq!(
        store.changed_keys("Crm", generation).unwrap(),
        Some(vec![rusqlite::types::Value::Text("a04000".into())])
    );
    assert_eq!(
        store.get_item("Crm", "a04000").unwrap().unwrap()["email"],
        "new@example.com"
    );
}

/// A test authority.
fn test_authority() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Triggerfish test authority");
    CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate from `ca` for the names `sans` (none: `common_name` only),
/// and its key, both PEM.
fn signed(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    sans: &[&str],
    common_name: &str,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    (
        params.signed_by(&key, ca).unwrap().pem(),
        key.serialize_pem(),
    )
}

/// A test authority, and a server certificate it signed for `localhost`
/// only: (the authority's PEM, the server's PEM, the server's key PEM).
fn test_certificates() -> (String, String, String) {
    let ca = test_authority();
    let (cert, key) = signed(&ca, &["localhost"], "localhost");
    (ca.pem(), cert, key)
}

/// TLS as libpq's `sslmode` asks, against a real server offering a
/// certificate for `localhost` from a test authority: encrypted by default
/// and with `require`; `verify-ca` and `verify-full` check the chain (and
/// the name) against `ssl_root_cert`; a refused certificate is a permanent
/// failure that names why, and `disable` stays in plain text.
#[test]
fn tls_is_used_as_sslmode_asks_and_certificates_are_checked() {
    let (ca, cert, key) = test_certificates();
    let Some(pg) = Postgres::start_tls(&cert, &key, None) else {
        return;
    };
    // The stored row says whether this session is encrypted.
    let query = r#"query = "SELECT 1 AS id, ssl::text AS email FROM pg_stat_ssl WHERE pid = pg_backend_pid()""#;
    let by_name = pg.url().replace("host=127.0.0.1", "host=localhost");
    let (ip, same, other) = (pg.url(), Some("ca.pem"), Some("other.pem"));
    let cases = [
        ("TF_TEST_TLS_DEFAULT", ip.clone(), None, Ok("true")),
        ("TF_TEST_TLS_DISABLE", format!("{ip} sslmode=disable"), None, Ok("false")),
        ("TF_TEST_TLS_REQUIRE", format!("{ip} sslmode=require"), None, Ok("true")),
        ("TF_TEST_TLS_FULL", format!("{by_name} sslmode=verify-full"), same, Ok("true")),
        ("TF_TEST_TLS_CA_BY_IP", format!("{ip} sslmode=verify-ca"), same, Ok("true")),
        (
            "TF_TEST_TLS_FULL_BY_IP",
            format!("{ip} sslmode=verify-full"),
            same,
            Err("invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"localhost\")"),
        ),
        (
            "TF_TEST_TLS_FULL_NO_ROOT",
            format!("{by_name} sslmode=verify-full"),
            None,
            Err("invalid peer certificate: UnknownIssuer"),
        ),
        (
            // A root file given, `require` checks the chain, as libpq does;
            // this one is another authority's (same name, another key).
            "TF_TEST_TLS_REQUIRE_OTHER_ROOT",
            format!("{ip} sslmode=require"),
            other,
            Err("invalid peer certificate: BadSignature"),
        ),
    ];
    for (env, url, root, outcome) in cases {
        set_env(env, &url);
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("ca.pem"), &ca).unwrap();
        std::fs::write(work.path().join("other.pem"), test_certificates().0).unwrap();
        let root_line = root.map_or(String::new(), |f| format!("ssl_root_cert = \"{f}\"\n"));
        let ws = workspace(
            env,
            query,
            &format!("{root_line}key = \"id\""),
            "Email = \"email\"",
        );
        let engine = engine(work.path(), &ws);
        let seen = refresh(&engine, &Scope::Source("crm".into()));
        match outcome {
            Ok(ssl) => {
                assert!(seen.failed().is_empty(), "{env}: {:?}", seen.failed());
                let store =
                    EntityDb::open(&work.path().join("store.sqlite"), Default::default()).unwrap();
                let row = store.get_item("Crm", "1").unwrap().unwrap();
                assert_eq!(row["email"], ssl, "{env}: encrypted?");
            }
            Err(why) => {
                let failed = seen.failed();
                assert_eq!(failed.len(), 1, "{env}");
                assert!(failed[0].permanent, "{env}: {}", failed[0].error);
                assert_eq!(failed[0].attempts, 1, "{env}");
                assert!(
                    failed[0].error.starts_with(
                        "postgres source 'crm' (query): cannot connect: error performing TLS handshake: "
                    ) && failed[0].error.ends_with(why),
                    "{env}: {}",
                    failed[0].error
                );
                assert!(!failed[0].error.contains(PASSWORD), "{env}");
            }
        }
    }
}

/// A role that must log in with a client certificate does so with
/// `ssl_cert` and `ssl_key`; without them the server refuses it for good,
/// and one without the other is a configuration error naming the key.
#[test]
fn a_client_certificate_logs_in_where_the_server_asks_for_one() {
    let ca = test_authority();
    let (server_cert, server_key) = signed(&ca, &["localhost"], "localhost");
    let Some(pg) = Postgres::start_tls(&server_cert, &server_key, Some(&ca.pem())) else {
        return;
    };
    pg.sql(&format!("CREATE ROLE {} LOGIN", pg::CERT_USER));
    let (client_cert, client_key) = signed(&ca, &[], pg::CERT_USER);
    let url = format!(
        "host=localhost port={} user={} dbname=postgres sslmode=verify-full",
        pg.port,
        pg::CERT_USER
    );
    set_env("TF_TEST_TLS_CLIENT", &url);
    let query = r#"query = "SELECT 1 AS id, client_dn AS email FROM pg_stat_ssl WHERE pid = pg_backend_pid()""#;
    let work = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("client.crt", client_cert),
        ("client.key", client_key),
    ] {
        std::fs::write(work.path().join(name), text).unwrap();
    }
    let roots = "ssl_root_cert = \"ca.pem\"\n";
    let with_cert =
        format!("{roots}ssl_cert = \"client.crt\"\nssl_key = \"client.key\"\nkey = \"id\"");
    let ws = workspace("TF_TEST_TLS_CLIENT", query, &with_cert, "Email = \"email\"");
    let seen = refresh(&engine(work.path(), &ws), &Scope::Source("crm".into()));
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    let store = EntityDb::open(&work.path().join("store.sqlite"), Default::default()).unwrap();
    let row = store.get_item("Crm", "1").unwrap().unwrap();
    assert_eq!(row["email"], format!("/CN={}", pg::CERT_USER));

    let without = tempfile::tempdir().unwrap();
    std::fs::write(without.path().join("ca.pem"), ca.pem()).unwrap();
    let ws = workspace(
        "TF_TEST_TLS_CLIENT",
        query,
        &format!("{roots}key = \"id\""),
        "Email = \"email\"",
    );
    let seen = refresh(&engine(without.path(), &ws), &Scope::Source("crm".into()));
    let failed = seen.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].permanent, "{}", failed[0].error);
    assert_eq!(
        failed[0].error,
        "postgres source 'crm' (query): cannot connect: connection requires a valid client certificate (SQLSTATE 28000)"
    );

    let half = format!("{roots}ssl_cert = \"client.crt\"\nkey = \"id\"");
    let ws = workspace("TF_TEST_TLS_CLIENT", query, &half, "Email = \"email\"");
    let err = parse_workspace_file(&work.path().join("workspace.toml"), &ws).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "key `insights.sources[0].ssl_key`: ssl_cert needs ssl_key, the file of its private key"
        ),
        "{err}"
    );
}

/// The connection string may come from a file (a mounted secret, ending in
/// a newline), read at each refresh; a missing, empty or odd one fails for
/// good, naming the file and never what it holds.
#[test]
fn a_connection_file_holds_the_connection_string() {
    let Some(pg) = Postgres::start() else { return };
    pg.sql(CONTACTS);
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("crm"), format!("{}\n", pg.url())).unwrap();
    std::fs::write(secrets.join("empty"), "\n").unwrap();
    std::fs::write(
        secrets.join("bad"),
        format!("host=127.0.0.1 port=five password={PASSWORD}"),
    )
    .unwrap();
    let run = |file: &str| {
        let ws = workspace(
            "UNUSED",
            r#"table = "public.contacts""#,
            "key = \"id\"",
            "Email = \"email\"",
        )
        .replace(
            "connection_env = \"UNUSED\"",
            &format!("connection_file = \"secrets/{file}\""),
        );
        let work = tempfile::tempdir().unwrap();
        let link = work.path().join("secrets");
        std::os::unix::fs::symlink(&secrets, &link).unwrap();
        let seen = refresh(&engine(work.path(), &ws), &Scope::Source("crm".into()));
        (seen, link)
    };
    let (seen, _) = run("crm");
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert_eq!(seen.succeeded()[0].rows_read, 3);

    let prefix = "postgres source 'crm' (table public.contacts): ";
    for (file, why) in [
        ("missing", "(its connection_file) cannot be read: No such file or directory (os error 2): put the connection string in it"),
        ("empty", "(its connection_file) is empty: put the connection string in it"),
        (".", "(its connection_file) is not a regular file: put the connection string in it"),
    ] {
        let (seen, link) = run(file);
        let failed = seen.failed();
        assert_eq!(failed.len(), 1, "{file}");
        assert!(failed[0].permanent, "{file}");
        let path = if file == "." { link.clone() } else { link.join(file) };
        assert_eq!(
            failed[0].error,
            format!("{prefix}the file {} {why}", path.display()),
            "{file}"
        );
    }
    let (seen, link) = run("bad");
    let failed = seen.failed();
    assert_eq!(
        failed[0].error,
        format!(
            "{prefix}the connection string in the file {} is not valid: invalid connection string: invalid value for option `port`",
            link.join("bad").display()
        )
    );
    assert!(!failed[0].error.contains(PASSWORD));
}
