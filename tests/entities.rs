//! Entity access end to end: paging with `$skip` returns every row once,
//! deep pages are served by keyset seeks, grants gate entities, and the
//! per-plugin and host-wide call budgets wait or refuse as they should.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::types::Value;
use support::{guest, lit, root, tempdir, triggerfish, TeamsStub};
use triggerfish::config_file::Config;
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_data::odata::ColumnType;
use triggerfish_data::store::{EntityDb, PageLimits, PageRequest, StoreError};
use triggerfish_runtime::{Host, Outcome, Select};

const ROWS: usize = 2_345;

fn customers() -> Vec<(String, ColumnType)> {
    vec![
        ("CustomerId".into(), ColumnType::String),
        ("Segment".into(), ColumnType::Integer),
        ("Name".into(), ColumnType::String),
        ("Score".into(), ColumnType::Decimal),
    ]
}

/// Rows with duplicate and NULL sort values, so order ties are exercised.
fn fill(store: &EntityDb, rows: usize) {
    let data = (0..rows).map(|i| {
        Ok::<_, StoreError>(vec![
            Value::Text(format!("C{i:06}")),
            if i % 7 == 0 {
                Value::Null
            } else {
                Value::Integer((i % 5) as i64)
            },
            Value::Text(format!("name-{}", i % 13)),
            Value::Real((i % 11) as f64 / 2.0),
        ])
    });
    store
        .replace_entity("Customer", "CustomerId", &customers(), data)
        .unwrap();
}

fn walk(store: &EntityDb, caller: &str, base: PageRequest) -> (Vec<String>, usize, usize) {
    let mut req = base;
    let mut keys = Vec::new();
    let (mut pages, mut seeks) = (0, 0);
    loop {
        let page = store.get_page(caller, "Customer", &req).unwrap();
        pages += 1;
        seeks += usize::from(page.seek);
        for item in &page.items {
            keys.push(item["CustomerId"].as_str().unwrap().to_owned());
        }
        match page.next_skip {
            Some(n) => req.skip = Some(n),
            None => break,
        }
    }
    (keys, pages, seeks)
}

fn assert_once(keys: &[String], expected: usize) {
    let set: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), expected, "rows returned");
    assert_eq!(set.len(), expected, "each row exactly once");
}

#[test]
fn skip_paging_returns_every_row_once_with_keyset_seeks() {
    let dir = tempdir();
    let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
    fill(&store, ROWS);

    let (keys, pages, seeks) = walk(
        &store,
        "a",
        PageRequest {
            top: Some(100),
            ..Default::default()
        },
    );
    assert_once(&keys, ROWS);
    assert_eq!(pages, 24);
    assert_eq!(seeks, 23, "every page after the first is a seek");
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "primary-key order without $orderby");

    for orderby in [
        "Segment desc",
        "Segment, Score desc",
        "Name asc, Segment desc, Score",
    ] {
        let (keys, _, seeks) = walk(
            &store,
            "a",
            PageRequest {
                orderby: Some(orderby.into()),
                top: Some(97),
                ..Default::default()
            },
        );
        assert_once(&keys, ROWS);
        assert!(seeks > 0, "{orderby}");
    }

    let (keys, _, _) = walk(
        &store,
        "a",
        PageRequest {
            filter: Some("Segment ge 2 or Segment eq null".into()),
            select: Some(vec!["CustomerId".into(), "Segment".into()]),
            orderby: Some("Segment desc".into()),
            top: Some(50),
            ..Default::default()
        },
    );
    let expected = (0..ROWS).filter(|i| i % 7 == 0 || i % 5 >= 2).count();
    assert_once(&keys, expected);
}

#[test]
fn select_returns_only_the_fields_asked_for() {
    let dir = tempdir();
    let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
    fill(&store, 10);
    let page = store
        .get_page(
            "a",
            "Customer",
            &PageRequest {
                select: Some(vec!["Score".into(), "CustomerId".into()]),
                top: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let fields: Vec<&String> = page.items[0].keys().collect();
    assert_eq!(fields, ["Score", "CustomerId"]);
    assert_eq!(page.next_skip, Some(3));
}

#[test]
fn a_skip_that_does_not_continue_falls_back_and_new_data_resets_cursors() {
    let dir = tempdir();
    let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
    fill(&store, 300);
    let req = |skip| PageRequest {
        top: Some(100),
        skip: Some(skip),
        ..Default::default()
    };
    assert!(!store.get_page("a", "Customer", &req(0)).unwrap().seek);
    assert!(store.get_page("a", "Customer", &req(100)).unwrap().seek);
    // Another caller has no cursor: OFFSET, same rows.
    let other = store.get_page("b", "Customer", &req(100)).unwrap();
    assert!(!other.seek);
    // Jumping ahead is served by OFFSET.
    let jump = store.get_page("a", "Customer", &req(250)).unwrap();
    assert!(!jump.seek);
    assert_eq!(jump.items.len(), 50);
    assert_eq!(jump.next_skip, None);
    // New data: the old cursor must not be used.
    assert!(!store.get_page("a", "Customer", &req(0)).unwrap().seek);
    fill(&store, 300);
    assert!(!store.get_page("a", "Customer", &req(100)).unwrap().seek);
}

#[test]
fn top_is_bounded_and_unknown_entities_are_not_found() {
    let dir = tempdir();
    let store = EntityDb::open(
        &dir.path().join("s.sqlite"),
        PageLimits {
            default_top: 100,
            max_top: 1000,
        },
    )
    .unwrap();
    fill(&store, 150);
    let page = store
        .get_page("a", "Customer", &PageRequest::default())
        .unwrap();
    assert_eq!(page.items.len(), 100);
    let err = store
        .get_page(
            "a",
            "Customer",
            &PageRequest {
                top: Some(1001),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert_eq!(err, "$top at 0: expected 1 to 1000, got 1001");
    let err = store
        .get_page("a", "Orders", &PageRequest::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "entity 'Orders' does not exist");
}

fn write_config(dir: &Path, top: &str, plugins: &str) -> Host {
    let text = format!(
        "[host]\nstate_dir = {}\ncache_dir = {}\n{top}\n[teams.channels.ops]\nmode = \"outbox\"\n{plugins}",
        lit(&dir.join("state")),
        lit(&root().join("target/tf-test-cache")),
    );
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let store = EntityDb::open(&config.store_path(), config.page_limits()).unwrap();
    fill(&store, 20);
    Host::new(&config.settings, Select::All).unwrap()
}

fn caller(name: &str, calls: u32, limits: &str, grants: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\ncomponent = {}\n[plugins.grants]\n{grants}\n[plugins.limits]\n{limits}\n[plugins.config]\nmode = \"entity-calls\"\ncalls = \"{calls}\"\n",
        lit(&guest("misbehaving"))
    )
}

const FIVE_PER_SECOND: &str = "entity_calls_per_minute = 5\nentity_calls_window_ms = 1000";

async fn fire(host: &Host, plugin: &str) -> Outcome {
    let event = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
    host.deliver(plugin, &event).await.unwrap()
}

/// The per-call lines the guest logged: `ok` or the retry-after in ms.
fn calls(o: &Outcome) -> Vec<Result<(), u64>> {
    assert_eq!(o.result, Ok(()), "{:?}", o.record.logs);
    o.record
        .logs
        .iter()
        .filter_map(|l| l.message.split_once(": "))
        .filter(|(k, _)| k.starts_with("call "))
        .map(|(_, v)| match v.strip_prefix("rate-limited ") {
            Some(ms) => Err(ms.parse().unwrap()),
            None => Ok(()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sixth_call_waits_within_the_deadline_or_is_refused_with_retry_after() {
    let dir = tempdir();
    let plugins = [
        caller(
            "patient",
            6,
            &format!("{FIVE_PER_SECOND}\ntimeout_ms = 5000"),
            "entities = [\"Customer\"]",
        ),
        caller(
            "hurried",
            6,
            &format!("{FIVE_PER_SECOND}\ntimeout_ms = 150"),
            "entities = [\"Customer\"]",
        ),
    ]
    .concat();
    let host = write_config(dir.path(), "", &plugins);

    let o = fire(&host, "patient").await;
    assert_eq!(
        calls(&o),
        vec![Ok(()); 6],
        "the sixth call waited and was served"
    );
    assert_eq!(host.entity_throttled("patient"), Some(1));

    let o = fire(&host, "hurried").await;
    let got = calls(&o);
    assert_eq!(got[..5], vec![Ok(()); 5]);
    let Err(ms) = got[5] else { panic!("{got:?}") };
    assert!(
        (1..=200).contains(&ms),
        "retry-after {ms} ms for a 5/s budget"
    );

    // The budget lives across events: the next event finds it still spent.
    let o = fire(&host, "hurried").await;
    let got = calls(&o);
    assert!(got.iter().filter(|c| c.is_ok()).count() < 5, "{got:?}");
    assert!(got.iter().any(Result::is_err), "{got:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_have_separate_budgets_and_the_host_cap_holds_across_them() {
    let dir = tempdir();
    let plugins = [
        caller(
            "a",
            5,
            &format!("{FIVE_PER_SECOND}\ntimeout_ms = 150"),
            "entities = [\"*\"]",
        ),
        caller(
            "b",
            5,
            &format!("{FIVE_PER_SECOND}\ntimeout_ms = 150"),
            "entities = [\"*\"]",
        ),
    ]
    .concat();
    let host = write_config(dir.path(), "", &plugins);
    assert_eq!(calls(&fire(&host, "a").await), vec![Ok(()); 5]);
    assert_eq!(
        calls(&fire(&host, "b").await),
        vec![Ok(()); 5],
        "b has its own budget"
    );

    let dir = tempdir();
    let plugins = [
        caller("a", 3, "timeout_ms = 150", "entities = [\"*\"]"),
        caller("b", 3, "timeout_ms = 150", "entities = [\"*\"]"),
    ]
    .concat();
    let host = write_config(
        dir.path(),
        "entity_calls_per_minute = 5\nentity_calls_window_ms = 1000",
        &plugins,
    );
    assert_eq!(calls(&fire(&host, "a").await), vec![Ok(()); 3]);
    let b = calls(&fire(&host, "b").await);
    assert_eq!(b[..2], vec![Ok(()); 2]);
    assert!(
        b[2].is_err(),
        "the host-wide cap of 5 holds across plugins: {b:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_gate_entities_and_list_entities() {
    let dir = tempdir();
    let plugins = format!(
        "{}\n[[plugins]]\nname = \"lister\"\ncomponent = {}\n[plugins.grants]\nentities = [\"Customer\"]\n[plugins.config]\nmode = \"entities\"\n",
        caller("orders", 1, "", "entities = [\"Orders\"]").replace("calls = \"1\"", "calls = \"1\"\nentity = \"Customer\""),
        lit(&guest("misbehaving"))
    );
    let host = write_config(dir.path(), "", &plugins);
    let o = fire(&host, "orders").await;
    assert_eq!(
        o.result,
        Err(triggerfish_runtime::Failure::Plugin(
            "call 1: denied: entity 'Customer' is not granted to this plugin".into()
        ))
    );
    let o = fire(&host, "lister").await;
    assert_eq!(o.result, Ok(()));
    assert!(
        o.record
            .logs
            .iter()
            .any(|l| l.message == "entities: Customer"),
        "{:?}",
        o.record.logs
    );
}

#[test]
fn a_plugin_pages_through_customers_and_posts_the_count() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let csv = dir.path().join("customers.csv");
    let mut text = String::from("CustomerId,FirstName,Country\n");
    for i in 0..ROWS {
        text.push_str(&format!(
            "C{i:05},N{i},{}\n",
            if i % 3 == 0 { "FR" } else { "DE" }
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\ncache_dir = {}\n[teams.channels.ops]\nwebhook_url = \"{}\"\n[[plugins]]\nname = \"counter\"\ncomponent = {}\n[plugins.grants]\nteams = [\"ops\"]\nentities = [\"Customer\"]\n[plugins.config]\npage_size = \"100\"\nkey = \"CustomerId\"\n[[plugins]]\nname = \"fr-counter\"\ncomponent = {2}\n[plugins.grants]\nteams = [\"ops\"]\nentities = [\"Customer\"]\n[plugins.config]\nfilter = \"Country eq 'FR'\"\n",
            lit(&root().join("target/tf-test-cache")),
            stub.url("/workflows"),
            lit(&guest("count-customers")),
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let run = triggerfish(
        &[
            "entities",
            "import",
            "--config",
            c,
            "--entity",
            "Customer",
            "--key",
            "CustomerId",
            csv.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("imported 2345 rows into Customer"),
        "{}",
        run.stdout
    );

    for plugin in ["counter", "fr-counter"] {
        let run = triggerfish(
            &[
                "fire",
                "--config",
                c,
                "--plugin",
                plugin,
                "--event",
                "full-refresh-completed",
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    let got = stub.received();
    let texts: Vec<String> = got
        .iter()
        .map(|r| {
            r.body["attachments"][0]["content"]["body"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["Customer count: 2345", "Customer count: 782"]);
}

/// An empty config in `dir` with `csv` imported as entity `People` through
/// the CLI; the config's path.
fn import_people(dir: &Path, csv: &str) -> std::path::PathBuf {
    let file = dir.join("c.csv");
    std::fs::write(&file, csv).unwrap();
    let config = dir.join("triggerfish.toml");
    std::fs::write(&config, "").unwrap();
    import_as_people(&config, &file);
    config
}

/// `entities import` of `file` as `People`, keyed by `Id`, under `config`.
fn import_as_people(config: &Path, file: &Path) {
    let run = triggerfish(
        &[
            "entities",
            "import",
            "--config",
            config.to_str().unwrap(),
            "--entity",
            "People",
            "--key",
            "Id",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn cli_get_prints_json_lines_and_points_at_query_errors() {
    let dir = tempdir();
    let config = import_people(dir.path(), "Id,Name,Age\n1,Ann,34\n2,Bob,\n3,Cleo,51\n");
    let c = config.to_str().unwrap();
    let run = triggerfish(
        &[
            "entities",
            "get",
            "--config",
            c,
            "--entity",
            "People",
            "--filter",
            "Age ne null",
            "--orderby",
            "Age desc",
            "--select",
            "Name,Age",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "{\"Name\":\"Cleo\",\"Age\":51}\n{\"Name\":\"Ann\",\"Age\":34}\n"
    );
    let run = triggerfish(
        &[
            "entities",
            "get",
            "--config",
            c,
            "--entity",
            "People",
            "--filter",
            "Age gt 'x'",
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("  Age gt 'x'\n         ^\nerror: $filter at 7: field 'Age' is an integer: expected a whole number but found 'x'"),
        "{}",
        run.stderr
    );
    // A failed import keeps the old data.
    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "Id,Name\n1,Ann\n1,Dup\n").unwrap();
    let run = triggerfish(
        &[
            "entities",
            "import",
            "--config",
            c,
            "--entity",
            "People",
            "--key",
            "Id",
            csv.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("entity 'People', row 2: duplicate key 1 in field 'Id'"),
        "{}",
        run.stderr
    );
    let run = triggerfish(
        &[
            "entities", "get", "--config", c, "--entity", "People", "--select", "Id",
        ],
        &[],
    );
    assert_eq!(run.stdout.lines().count(), 3);
}

#[test]
fn cli_import_reads_exports_as_written_separators_and_headers() {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(&config, "").unwrap();
    let c = config.to_str().unwrap();
    let csv = dir.path().join("export.csv");
    // Windows' Western encoding: é is one byte.
    std::fs::write(
        &csv,
        b"Contact ID;First Name;Code postal;Modifi\xe9;Montant\n7;Zo\xe9;01000;28/12/2025;1.234,50\n",
    )
    .unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec!["entities", "import", "--config", c, "--entity", "People"];
        args.extend_from_slice(extra);
        args.push(csv.to_str().unwrap());
        triggerfish(&args, &[])
    };
    let run = import(&["--key", "Contact ID", "--encoding", "windows-1252"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("the header is one column, 'Contact ID;First Name;Code posta…': if its fields are separated by ';', set delimiter = \";\" (`--delimiter` for `entities import`)"),
        "{}",
        run.stderr
    );
    let run = import(&[
        "--key",
        "Contact ID",
        "--delimiter",
        ";",
        "--encoding",
        "windows-1252",
        "--type",
        "Code postal=string",
        "--type",
        "Modifié=datetime",
        "--datetime-format",
        "%d/%m/%Y %H:%M",
        "--datetime-format",
        "%d/%m/%Y",
        "--decimal-separator",
        ",",
        "--thousands-separator",
        ".",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "imported 1 rows into People (key ContactID; columns: ContactID integer, FirstName string, CodePostal string, Modifie datetime, Montant decimal)\n"
    );
    let run = triggerfish(
        &[
            "entities",
            "get",
            "--config",
            c,
            "--entity",
            "People",
            "--select",
            "FirstName,Modifie,Montant",
        ],
        &[],
    );
    assert_eq!(
        run.stdout,
        "{\"FirstName\":\"Zoé\",\"Modifie\":\"2025-12-28T00:00:00Z\",\"Montant\":1234.5}\n"
    );
    let run = import(&["--key", "Id", "--encoding", "klingon"]);
    assert!(
        run.stderr
            .contains("--encoding 'klingon': unknown encoding"),
        "{}",
        run.stderr
    );
    let run = import(&["--key", "Id", "--flatten"]);
    assert!(
        run.stderr
            .contains("--flatten `flatten` is for JSON and NDJSON files: CSV does not nest"),
        "{}",
        run.stderr
    );
    let run = import(&["--key", "Id", "--delimiter", "semicolon"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("--delimiter 'semicolon': expected one ASCII character"),
        "{}",
        run.stderr
    );
}

/// An entity store whose every call panics, as a bug in host code would.
struct PanickingStore;

use triggerfish_data::store::{WritableEntity, WriteBy, Written};
use triggerfish_runtime::bindings::triggerfish::plugin::entities as wit;
use triggerfish_runtime::bindings::Error;

impl triggerfish_runtime::caps::entities::EntityStore for PanickingStore {
    fn list(&self) -> Result<Vec<String>, Error> {
        panic!("store bug")
    }
    fn get_item(&self, _: &str, _: &str) -> Result<String, Error> {
        panic!("store bug")
    }
    fn get_items(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &wit::Query,
    ) -> Result<wit::Page, Error> {
        panic!("store bug")
    }
    fn partitions(&self, _: &str) -> Result<Vec<wit::Partition>, Error> {
        panic!("store bug")
    }
    fn create_item(&self, _: &WritableEntity, _: &str, _: WriteBy<'_>) -> Result<Written, Error> {
        panic!("store bug")
    }
    fn update_item(
        &self,
        _: &WritableEntity,
        _: &str,
        _: &str,
        _: WriteBy<'_>,
    ) -> Result<Written, Error> {
        panic!("store bug")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_fault_traps_the_instance_instead_of_reaching_the_guest() {
    let dir = tempdir();
    let plugins = caller("reader", 1, "", "entities = [\"*\"]");
    let mut host = write_config(dir.path(), "", &plugins);
    host.set_entity_store(std::sync::Arc::new(PanickingStore));
    let o = fire(&host, "reader").await;
    let Err(triggerfish_runtime::Failure::Host(message)) = &o.result else {
        panic!("expected a host fault, got {:?}", o.result);
    };
    assert!(
        message.starts_with("host fault in entities: entity store task failed"),
        "{message}"
    );
    // The guest never saw an error it could retry.
    assert!(
        !o.record.logs.iter().any(|l| l.message.contains("call 1:")),
        "{:?}",
        o.record.logs
    );
}

#[test]
fn cli_get_refuses_a_filter_past_the_nesting_limit() {
    let dir = tempdir();
    let config = import_people(dir.path(), "Id,Name,Age\n1,Ann,34\n2,Bob,\n");
    let c = config.to_str().unwrap();
    let get = |filter: &str| {
        triggerfish(
            &[
                "entities", "get", "--config", c, "--entity", "People", "--filter", filter,
            ],
            &[],
        )
    };
    let survived = |run: &support::Run| {
        !run.stderr.contains("stack overflow") && !run.stderr.contains("fatal runtime error")
    };
    // 5,000 levels overflowed the recursive parser's stack and aborted the
    // process; now the parser stops at the 33rd.
    let deep = format!("{}Age eq 34{}", "(".repeat(5_000), ")".repeat(5_000));
    let run = get(&deep);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(survived(&run), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: $filter at 32: nesting deeper than 32 levels (MAX_FILTER_DEPTH)"),
        "{}",
        run.stderr
    );
    // Longer text is refused before it is looked at.
    let longer = format!("{}Age eq 34{}", "(".repeat(50_000), ")".repeat(50_000));
    let run = get(&longer);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(survived(&run), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: $filter at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)"),
        "{}",
        run.stderr
    );
    // At the limit, the filter still works.
    let run = get(&format!("{}Age eq 34{}", "(".repeat(32), ")".repeat(32)));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "{\"Id\":1,\"Name\":\"Ann\",\"Age\":34}\n");
}

/// `host.store_page_bytes` is the page size of a store the CLI creates, and
/// a store keeps the size it was created with when the setting changes.
#[test]
fn the_store_is_created_with_the_configured_page_size() {
    let dir = tempdir();
    let file = dir.path().join("c.csv");
    std::fs::write(&file, "Id,Name\n1,Ann\n2,Bob\n").unwrap();
    let config = dir.path().join("triggerfish.toml");
    let import = |page_bytes: u32| {
        std::fs::write(
            &config,
            format!("[host]\nstore_page_bytes = {page_bytes}\n"),
        )
        .unwrap();
        import_as_people(&config, &file);
        let store = dir.path().join(".triggerfish/store.sqlite");
        rusqlite::Connection::open(store)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get::<_, u32>(0))
            .unwrap()
    };
    assert_eq!(import(16384), 16384);
    assert_eq!(import(65536), 16384);
    let run = triggerfish(
        &["entities", "list", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("store.sqlite has 16384-byte pages: host.store_page_bytes = 65536 applies only to a new store file (move the state directory aside to create one)"),
        "{}",
        run.stderr
    );
}
