//! The connector's other actions, end to end with guests built from source:
//! create and update items of a writable entity (typed errors, engine-owned
//! entities, grants, the call budget), a killed and redelivered run that
//! does not write twice, partitions that list one per imported file and
//! page, and status reports kept with the run.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{arg, guest, lit, shared_cache, tempdir, triggerfish, Daemon, Run};

/// The writable entity every test declares, writable by `writers`.
fn follow_up(writers: &[&str]) -> String {
    format!(
        r#"
[[entities]]
name = "FollowUp"
key = "Id"
fields = {{ Id = "string", CustomerId = "string", Segment = "string", Reason = "string", Status = "string", Score = "decimal" }}
required = ["CustomerId"]
writable_by = {writers:?}
"#
    )
}

/// A misbehaving-guest plugin in `mode`, with extra lines (grants, config).
fn plugin(name: &str, trigger: &str, mode: &str, extra: &str) -> String {
    format!(
        "\n[[plugins]]\nname = \"{name}\"\ncomponent = {}\ntriggers = [\"{trigger}\"]\n{extra}\n[plugins.config]\nmode = \"{mode}\"\n",
        lit(&guest("misbehaving"))
    )
}

fn write_config(dir: &Path, writers: &[&str], body: &str) -> PathBuf {
    let path = dir.join("triggerfish.toml");
    std::fs::write(
        &path,
        format!(
            "[host]\ncache_dir = {}\n[api]\nlisten = \"127.0.0.1:0\"\n{}{body}",
            lit(&shared_cache()),
            follow_up(writers)
        ),
    )
    .unwrap();
    path
}

fn fire(config: &Path, plugin: &str, trigger: &str) -> Run {
    triggerfish(
        &[
            "fire",
            "--config",
            arg(config),
            "--plugin",
            plugin,
            "--event",
            trigger,
            "--json",
        ],
        &[],
    )
}

fn follow_ups(config: &Path) -> Vec<Value> {
    let out = triggerfish(
        &[
            "entities",
            "get",
            "--config",
            arg(config),
            "--entity",
            "FollowUp",
            "--all",
        ],
        &[],
    );
    out.assert_ok("entities get FollowUp");
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn plugins_create_and_update_items_within_types_grants_and_budget() {
    let dir = tempdir();
    let t = "full-refresh-completed";
    let item = |text: &str| format!("item = '{text}'");
    let body = [
        plugin(
            "writer",
            t,
            "write",
            "[plugins.grants]\nentities_write = [\"FollowUp\"]",
        ) + &item(r#"{"Id":"f-1","CustomerId":"c1","Reason":"left segment"}"#),
        plugin("stranger", t, "write", "") + &item(r#"{"Id":"f-2","CustomerId":"c2"}"#),
        plugin("engine", t, "write", "") + "entity = \"Customer\"\n" + &item(r#"{"Id":"x"}"#),
        plugin("ungranted", t, "write", "") + &item(r#"{"Id":"f-3","CustomerId":"c3"}"#),
        plugin(
            "limited",
            t,
            "write-burst",
            "[plugins.grants]\nentities_write = [\"FollowUp\"]\n[plugins.limits]\nentity_calls_per_minute = 3\ntimeout_ms = 2000",
        ) + "count = \"10\"\n",
    ]
    .concat();
    // `stranger` is not in `writable_by`; `ungranted` is, without a grant.
    let config = write_config(dir.path(), &["writer", "ungranted", "limited"], &body);

    // Customer: an entity the engine owns (imported here as a source would be).
    let customers = dir.path().join("customers.csv");
    std::fs::write(&customers, "Id,Name\nx,Ann\n").unwrap();
    triggerfish(
        &[
            "entities",
            "import",
            "--config",
            arg(&config),
            "--entity",
            "Customer",
            "--key",
            "Id",
            arg(&customers),
        ],
        &[],
    )
    .assert_ok("import Customer");

    let run = fire(&config, "writer", t);
    run.assert_ok("writer");
    let out = run.json();
    assert_eq!(
        out["writes"],
        json!([{"entity": "FollowUp", "op": "create", "key": "f-1", "repeated": false}])
    );
    let logged = out["logs"][0]["message"].as_str().unwrap();
    assert_eq!(
        logged,
        r#"created {"Id":"f-1","CustomerId":"c1","Reason":"left segment","Score":null,"Segment":null,"Status":null}"#
    );

    let refused = |name: &str| {
        let run = fire(&config, name, t);
        assert_ne!(run.code, 0, "{name} should fail: {}", run.stdout);
        run.json()["error"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        refused("stranger"),
        "plugin returned an error: denied: entity 'FollowUp' is not writable by this plugin (its writable_by does not list it)"
    );
    assert_eq!(
        refused("engine"),
        "plugin returned an error: denied: entity 'Customer' is owned by the insights engine (a source, profile, segment or measure entity); plugins cannot write it"
    );
    assert_eq!(
        refused("ungranted"),
        "plugin returned an error: denied: writing entity 'FollowUp' is not granted to this plugin"
    );
    let limited = refused("limited");
    assert!(
        limited.starts_with("plugin returned an error: after 3 writes: rate limited: retry after "),
        "{limited}"
    );

    // Typed errors, named by field, through a plugin allowed to write.
    let granted = |mode: &str, extra: &str| {
        let body = format!(
            "{body}{}{extra}",
            plugin(
                "hang",
                t,
                mode,
                "[plugins.grants]\nentities_write = [\"FollowUp\"]"
            )
        );
        write_config(
            dir.path(),
            &["writer", "ungranted", "limited", "hang"],
            &body,
        );
        fire(&config, "hang", t)
    };
    let update = granted(
        "update",
        "id = \"f-1\"\nchanges = '{\"Status\":\"done\",\"Score\":4.5}'\n",
    );
    update.assert_ok("update");
    assert_eq!(update.json()["writes"][0]["op"], "update");
    let refusals = [
        (
            "write",
            item(r#"{"Id":"f-2","CustomerId":"c2","Score":"high"}"#),
            "invalid argument: field 'Score': expected a decimal number, got 'high'",
        ),
        (
            "write",
            item(r#"{"Id":"f-2","CustomerId":"c2","Colour":"red"}"#),
            "invalid argument: field 'Colour' is not a field of entity 'FollowUp' (fields: Id, CustomerId, Reason, Score, Segment, Status)",
        ),
        (
            "update",
            "id = \"nope\"\nchanges = '{\"Status\":\"done\"}'\n".to_owned(),
            "not found: entity 'FollowUp' has no item with key 'nope'",
        ),
        (
            "update",
            "id = \"f-1\"\nchanges = '{\"Id\":\"f-9\"}'\n".to_owned(),
            "invalid argument: field 'Id' is the key and cannot be changed",
        ),
    ];
    for (mode, extra, want) in refusals {
        let run = granted(mode, &extra);
        assert_eq!(
            run.json()["error"],
            format!("plugin returned an error: {want}")
        );
    }

    let items = follow_ups(&config);
    let ids: Vec<&str> = items.iter().map(|i| i["Id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["burst-0", "burst-1", "burst-2", "f-1"]);
    let f1 = items.iter().find(|i| i["Id"] == "f-1").unwrap();
    assert_eq!(
        (f1["Status"].clone(), f1["Score"].clone()),
        (json!("done"), json!(4.5))
    );

    // The journal keeps each write with its before and after.
    let runs = triggerfish(
        &[
            "runs",
            "list",
            "--config",
            arg(&config),
            "--plugin",
            "hang",
            "--json",
        ],
        &[],
    );
    runs.assert_ok("runs list");
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    let updated = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "succeeded")
        .expect("the update's run");
    let show = triggerfish(
        &[
            "runs",
            "show",
            "--config",
            arg(&config),
            &updated["id"].as_i64().unwrap().to_string(),
        ],
        &[],
    );
    show.assert_ok("runs show");
    let line = format!(
        r#"write update FollowUp "f-1" (run {}): Score: null -> 4.5, Status: null -> "done""#,
        updated["id"]
    );
    assert!(show.stdout.contains(&line), "{line}\n{}", show.stdout);
}

#[test]
fn a_killed_run_redelivered_does_not_write_twice() {
    let dir = tempdir();
    let t = "full-refresh-completed";
    let hang = |mode: &str| {
        plugin(
            "hang",
            t,
            mode,
            "[plugins.grants]\nentities_write = [\"FollowUp\"]\n[plugins.limits]\ntimeout_ms = 120000",
        ) + "item = '{\"Id\":\"once\",\"CustomerId\":\"c1\"}'\n"
    };
    let config = write_config(dir.path(), &["hang"], &hang("create-then-hang"));
    let d = Daemon::start(&config, &[]);
    let c = reqwest::blocking::Client::new();
    let posted = c
        .post(d.url("/v1/events"))
        .body(r#"{"trigger":"full-refresh-completed","id":"kill-1"}"#)
        .send()
        .unwrap();
    assert_eq!(posted.status(), 202);
    // The first attempt created its item and hangs: kill the daemon.
    let db = dir.path().join(".triggerfish/store.sqlite");
    let count = || -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT count(*) FROM \"ent_FollowUp\"", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let give_up = Instant::now() + Duration::from_secs(60);
    while count() == 0 {
        assert!(Instant::now() < give_up, "the first attempt never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill9();

    // Redelivered after the restart: the same create comes back as the
    // first attempt stored it (without the ledger it would fail: the key
    // exists), and the run succeeds at its next attempt.
    write_config(dir.path(), &["hang"], &hang("write"));
    let d = Daemon::start(&config, &[]);
    let give_up = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let runs: Value = c
            .get(d.url("/v1/runs?event=kill-1"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if runs["runs"][0]["status"] == "succeeded" {
            break runs["runs"][0].clone();
        }
        assert!(Instant::now() < give_up, "{runs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let detail: Value = c
        .get(d.url(&format!("/v1/runs/{}", run["id"])))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(d.stop(), 0);
    assert_eq!(count(), 1);
    assert_eq!(detail["attempts"], 1, "{detail}");
    assert_eq!(detail["error"], Value::Null, "{detail}");
    let writes = detail["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 1, "{detail}");
    assert_eq!(
        (&writes[0]["op"], &writes[0]["key"], &writes[0]["run"]),
        (&json!("create"), &json!("once"), &run["id"])
    );
    let logs = detail["logs"].to_string();
    assert!(logs.contains(r#"created {\"Id\":\"once\""#), "{logs}");
}

#[test]
fn partitions_list_one_per_imported_file_and_page() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let mut next = 0;
    for (file, rows) in [
        ("orders-1.csv", 3),
        ("orders-2.csv", 5),
        ("orders-3.csv", 1),
    ] {
        let mut text = "OrderId,Email\n".to_owned();
        for _ in 0..rows {
            next += 1;
            text.push_str(&format!("{next},p{next}@example.com\n"));
        }
        std::fs::write(dir.path().join("data").join(file), text).unwrap();
    }
    let body = plugin(
        "parts",
        "full-refresh-completed",
        "partitions",
        "[plugins.grants]\nentities = [\"Orders\", \"Customer\"]",
    ) + "entity = \"Orders\"\ntop = \"2\"\n"
        + r#"
[insights]
retries = 0
[[insights.sources]]
name = "orders"
entity = "Orders"
path = "data/orders-*.csv"
key = "OrderId"
[insights.sources.map]
Email = "Email"
[[insights.unification.rules]]
name = "email"
fields = ["Email"]
"#;
    let config = write_config(dir.path(), &[], &body);
    triggerfish(&["refresh", "--config", arg(&config)], &[]).assert_ok("refresh");

    let run = fire(&config, "parts", "full-refresh-completed");
    run.assert_ok("parts");
    let out = run.json();
    let report = &out["reports"][0];
    assert_eq!(report["message"], "3 partitions");
    let parts: Value = serde_json::from_str(report["details"].as_str().unwrap()).unwrap();
    let seen: Vec<(String, u64, u64, u64)> = parts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["origin"].as_str().unwrap().to_owned(),
                p["rows"].as_u64().unwrap(),
                p["paged"].as_u64().unwrap(),
                p["pages"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("data/orders-1.csv".to_owned(), 3, 3, 2),
            ("data/orders-2.csv".to_owned(), 5, 5, 3),
            ("data/orders-3.csv".to_owned(), 1, 1, 1),
        ]
    );
    let logs = out["logs"].to_string();
    assert!(
        logs.contains("unknown partition: entity 'Orders' has no partition 'no-such-partition' (partitions change with each import; list them again)"),
        "{logs}"
    );

    // The command line lists the same; an engine entity is one partition.
    let listed = |entity: &str| -> Value {
        let out = triggerfish(
            &[
                "entities",
                "partitions",
                "--config",
                arg(&config),
                "--entity",
                entity,
                "--json",
            ],
            &[],
        );
        out.assert_ok("entities partitions");
        serde_json::from_str(&out.stdout).unwrap()
    };
    assert_eq!(listed("Orders").as_array().unwrap().len(), 3);
    let customer = listed("Customer");
    assert_eq!(customer[0]["id"], "all");
    assert_eq!(customer[0]["origin"], "entity");
    assert_eq!(customer[0]["rows"], 9);
}

/// The README's flow: a segment crosses its threshold; the plugin reads its
/// members, writes one follow-up per member and reports it. The run shows
/// the report and the writes in the API and `runs show`.
#[test]
fn the_follow_up_flow_writes_one_item_per_member_and_reports_it() {
    let dir = tempdir();
    let workspace = support::france_workspace(dir.path());
    let body = format!(
        r#"
[[plugins]]
name = "segment-follow-ups"
component = {}
triggers = ["segment-threshold-crossed"]
[plugins.grants]
entities = ["SegmentMember"]
entities_write = ["FollowUp"]
{workspace}"#,
        lit(&guest("segment-follow-ups"))
    );
    let config = write_config(dir.path(), &["segment-follow-ups"], &body);
    let d = Daemon::start(&config, &[]);
    let c = reqwest::blocking::Client::new();
    let give_up = Instant::now() + Duration::from_secs(90);
    let run = loop {
        let runs: Value = c
            .get(d.url("/v1/runs?plugin=segment-follow-ups"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        match runs["runs"][0]["status"].as_str() {
            Some("succeeded") => break runs["runs"][0].clone(),
            Some("dead") => panic!("{runs}"),
            _ => {}
        }
        assert!(Instant::now() < give_up, "{runs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = run["id"].as_i64().unwrap();
    let detail: Value = c
        .get(d.url(&format!("/v1/runs/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let page = c
        .get(d.url(&format!("/runs/{id}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(d.stop(), 0);

    let event = run["event_id"].as_str().unwrap();
    let report = &detail["reports"][0];
    assert_eq!(report[0], 1);
    assert_eq!(report[1]["level"], "success");
    assert_eq!(report[1]["message"], "wrote 2 follow-ups to FollowUp");
    let details: Value = serde_json::from_str(report[1]["details"].as_str().unwrap()).unwrap();
    assert_eq!(
        details,
        json!({"entity": "FollowUp", "segment": "france", "written": 2})
    );
    let writes = detail["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 2, "{detail}");
    assert!(writes
        .iter()
        .all(|w| w["op"] == "create" && w["before"].is_null() && w["run"] == id));

    let items = follow_ups(&config);
    assert_eq!(items.len(), 2);
    for item in &items {
        let customer = item["CustomerId"].as_str().unwrap();
        assert_eq!(item["Id"], format!("{event}:{customer}"));
        assert_eq!(item["Segment"], "france");
        assert_eq!(item["Status"], "open");
        assert_eq!(
            item["Reason"],
            "segment 'france' went up through 2 (0 -> 2)"
        );
    }
    // The console's run page shows both.
    assert!(page.contains("wrote 2 follow-ups to FollowUp"), "{page}");
    assert!(page.contains(r#"<table id="writes">"#), "{page}");

    let show = triggerfish(
        &["runs", "show", "--config", arg(&config), &id.to_string()],
        &[],
    );
    show.assert_ok("runs show");
    assert!(
        show.stdout.contains(
            r#"[1] report success: wrote 2 follow-ups to FollowUp  {"entity":"FollowUp","segment":"france","written":2}"#
        ),
        "{}",
        show.stdout
    );
    assert_eq!(
        show.stdout
            .matches(&format!(" (run {id}): {{\"Id\":"))
            .count(),
        2,
        "{}",
        show.stdout
    );
}
