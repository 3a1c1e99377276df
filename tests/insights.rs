//! The insights engine end to end through the CLI: source files change between
//! refreshes, the six triggers fire, and real plugins receive them — a
//! recorder posting every field to a loopback Teams stand-in, and the email
//! flow delivering to a real SMTP server.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{guest, lit, root, tempdir, triggerfish, triggerfish_bin, SmtpServer, TeamsStub};

const CRM: &str = "\
ContactId,FirstName,LastName,Email,Phone,PostalCode,Country,Tier,ModifiedOn
c1,Ann,Smith,ann.smith@example.com,+33 6 12 34 56 78,75001,FR,gold,2024-01-01
c2,Bob,Jones,bob@example.com,0611111111,69002,FR,silver,2024-01-02
c3,Carla,Diaz,carla@example.es,,28001,ES,gold,2024-01-03
c4,Dan,Brown,,,SW1A 1AA,UK,bronze,2024-01-04
";

const SHOP: &str = r#"{"OrderId":"o1","Email":"ANN.SMITH+shop@Example.com","First":"ann","Last":"SMITH","Amount":120.5}
{"OrderId":"o2","Email":" bob@example.com","First":"Robert","Last":"Jones","Amount":30}
{"OrderId":"o3","Email":"erin@example.com","First":"Erin","Last":"Lee","Amount":15}
"#;

const LOYALTY: &str = "\
MemberId,Given,Family,Mobile,PostCode,Tier
m1,Bob,Jones,06 11 11 11 11,69002,gold
m2,Dan,Brown,,sw1a1aa,silver
m3,Fay,Wong,0799999999,10001,gold
";

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replace `from` with `to` in the configuration file.
    fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "no {from:?} in the configuration");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    /// The one customer with this e-mail, through `entities get`.
    fn customer_by_email(&self, email: &str) -> Value {
        let filter = format!("Email eq '{email}'");
        let run = triggerfish(
            &[
                "entities",
                "get",
                "--config",
                self.config.to_str().unwrap(),
                "--entity",
                "Customer",
                "--filter",
                &filter,
            ],
            &[],
        );
        serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr))
    }

    fn refresh(&self, extra: &[&str]) -> support::Run {
        let mut args = vec!["refresh", "--config", self.config.to_str().unwrap()];
        args.extend_from_slice(extra);
        triggerfish(&args, &[])
    }
}

/// A workspace of three sources, two segments and two measures; the recorder
/// hears every trigger, the email flow hears segment crossings.
fn fixture(teams: &TeamsStub, smtp_port: u16, insights_extra: &str) -> Fixture {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    let text = format!(
        r#"
[host]
state_dir = "state"
cache_dir = {cache}

[teams.channels.events]
webhook_url = "{events}"

[email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
from = "Triggerfish <bot@example.com>"
[email.groups]
data-owners = ["owner@example.com"]

[[plugins]]
name = "recorder"
component = {recorder}
triggers = ["data-source-refresh-failed", "data-source-refresh-succeeded", "segment-threshold-crossed",
            "measure-threshold-crossed", "full-refresh-completed", "unification-refresh-completed"]
[plugins.grants]
teams = ["events"]
entities = ["Customer"]
[plugins.limits]
timeout_ms = 20000

[[plugins]]
name = "email-segment-owners"
component = {email}
triggers = ["segment-threshold-crossed"]
[plugins.grants]
email_groups = ["data-owners"]

[insights]
retries = 0
{insights_extra}

[[insights.sources]]
name = "crm"
path = "data/crm.csv"
key = "ContactId"
updated_at = "ModifiedOn"
types = {{ Phone = "string", PostalCode = "string" }}
[insights.sources.map]
FirstName = "FirstName"
LastName = "LastName"
Email = "Email"
Phone = "Phone"
PostalCode = "PostalCode"
Country = "Country"
LoyaltyTier = "Tier"

[[insights.sources]]
name = "shop-orders"
path = "data/shop.ndjson"
key = "OrderId"
types = {{ Amount = "decimal" }}
[insights.sources.map]
Email = "Email"
FirstName = "First"
LastName = "Last"

[[insights.sources]]
name = "loyalty"
path = "data/loyalty.csv"
key = "MemberId"
types = {{ Mobile = "string", PostCode = "string" }}
[insights.sources.map]
FirstName = "Given"
LastName = "Family"
Phone = "Mobile"
PostalCode = "PostCode"
LoyaltyTier = "Tier"

[insights.unification]
priority = ["crm", "loyalty", "shop-orders"]
[[insights.unification.rules]]
name = "email"
fields = ["Email"]
[[insights.unification.rules]]
name = "phone"
fields = ["Phone"]
[[insights.unification.rules]]
name = "name-and-postcode"
fields = ["FirstName", "LastName", "PostalCode"]

[[insights.segments]]
name = "gold"
filter = "LoyaltyTier eq 'gold'"
thresholds = [{{ value = 3, direction = "both" }}]

[[insights.segments]]
name = "france"
filter = "Country eq 'FR'"
thresholds = [{{ value = 2 }}]

[[insights.measures]]
name = "revenue"
aggregate = "sum"
entity = "ShopOrders"
field = "Amount"
thresholds = [{{ value = 100 }}, {{ value = 500 }}]

[[insights.measures]]
name = "customers"
aggregate = "count"
thresholds = [{{ value = 10 }}]
"#,
        cache = lit(&root().join("target/tf-test-cache")),
        events = teams.url("/workflows"),
        recorder = lit(&guest("recorder")),
        email = lit(&guest("email-segment-owners")),
    );
    std::fs::write(&config, text).unwrap();
    let f = Fixture { dir, config };
    f.write("data/crm.csv", CRM);
    f.write("data/shop.ndjson", SHOP);
    f.write("data/loyalty.csv", LOYALTY);
    f
}

/// The events the recorder posted since request `from`, as (kind, fields).
fn recorded(teams: &TeamsStub, from: usize) -> Vec<(String, Value)> {
    teams
        .received()
        .into_iter()
        .skip(from)
        .map(|r| {
            let text = r.body["attachments"][0]["content"]["body"][0]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("not a text card: {}", r.body))
                .to_owned();
            let v: Value = serde_json::from_str(&text).unwrap();
            (v["kind"].as_str().unwrap().to_owned(), v["fields"].clone())
        })
        .collect()
}

fn of_kind<'a>(events: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect()
}

fn by_source<'a>(events: &'a [(String, Value)], kind: &str, source: &str) -> &'a Value {
    of_kind(events, kind)
        .into_iter()
        .find(|v| v["source"] == source)
        .unwrap_or_else(|| panic!("no {kind} for {source} in {events:#?}"))
}

fn assert_ok(run: &support::Run) {
    assert_eq!(
        run.code, 0,
        "refresh failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

#[test]
fn six_triggers_fire_as_the_source_files_change() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = fixture(&teams, smtp.port, "");

    // Refresh 1: everything from nothing.
    let run = f.refresh(&[]);
    assert_ok(&run);
    let ev = recorded(&teams, 0);
    // Every event was journaled, each delivery recorded as its run's attempt.
    let cfg = f.config.to_str().unwrap();
    let runs = triggerfish(
        &["runs", "list", "--config", cfg, "--json", "--limit", "1000"],
        &[],
    );
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(
        runs.len(),
        ev.len() + 2,
        "recorder's runs plus email-segment-owners' two"
    );
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    for (source, rows) in [("crm", 4), ("shop-orders", 3), ("loyalty", 3)] {
        let s = by_source(&ev, "data-source-refresh-succeeded", source);
        assert_eq!(s["rows_read"], rows, "{source}");
        assert_eq!(s["rows_rejected"], 0, "{source}");
    }
    let u = of_kind(&ev, "unification-refresh-completed");
    assert_eq!(u.len(), 1);
    // {c1,o1} by e-mail, {c2,o2,m1} by e-mail and phone, {c4,m2} by name and
    // postcode; c3, o3 and m3 stand alone.
    assert_eq!(u[0]["source_rows"], 10);
    assert_eq!(u[0]["profiles"], 6);
    assert_eq!(u[0]["matched_records"], 7);
    assert_eq!(u[0]["merges"], 3);
    // The plugin reads the new profiles while the refresh goes on.
    assert_eq!(u[0]["customers_seen"], 6);

    let seg = of_kind(&ev, "segment-threshold-crossed");
    assert_eq!(seg.len(), 2, "{seg:#?}");
    let gold = seg.iter().find(|v| v["segment"] == "gold").unwrap();
    assert_eq!(
        (
            gold["threshold"].clone(),
            gold["previous"].clone(),
            gold["current"].clone()
        ),
        (3.into(), 0.into(), 3.into())
    );
    assert_eq!(gold["direction"], "up");
    let meas = of_kind(&ev, "measure-threshold-crossed");
    assert_eq!(meas.len(), 1, "{meas:#?}");
    assert_eq!(meas[0]["measure"], "revenue");
    assert_eq!(meas[0]["threshold"], 100.0);
    assert_eq!(meas[0]["previous"], 0.0);
    assert_eq!(meas[0]["current"], 165.5);
    let full = of_kind(&ev, "full-refresh-completed");
    assert_eq!(full.len(), 1);
    assert_eq!(full[0]["succeeded"], true);
    let stages: Vec<&str> = full[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "source:crm",
            "source:shop-orders",
            "source:loyalty",
            "unification",
            "segments",
            "measures",
            "publish"
        ]
    );
    // Each source after the first was imported while the one before loaded.
    let details: Vec<&str> = full[0]["stages"].as_array().unwrap()[..3]
        .iter()
        .map(|s| s["detail"].as_str().unwrap_or(""))
        .collect();
    assert!(!details[0].contains("started while"), "{details:?}");
    assert!(
        details[1..].iter().all(
            |d| d.starts_with("started while the source before loaded, ")
                && d.ends_with(" ms in all")
        ),
        "{details:?}"
    );
    // The email flow got both segment crossings through a real SMTP server.
    let mails = smtp.wait_for(2);
    assert!(mails
        .iter()
        .any(|m| m.data.contains("Segment \"gold\" crossed 3 (up): 0 -> 3")));
    // The terminal shows the stages and what each plugin did.
    assert!(
        run.stdout.contains("full refresh succeeded"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("email -> owner@example.com: sent"),
        "{}",
        run.stdout
    );

    // Merged profile: Bob's CRM tier wins over loyalty by source priority.
    let bob = f.customer_by_email("bob@example.com");
    assert_eq!(bob["LoyaltyTier"], "silver");
    assert_eq!(bob["Phone"], "0611111111");
    let bob_id = bob["CustomerId"].clone();

    // Refresh 2, same data, a new process: nothing crosses again.
    let n = teams.received().len();
    assert_ok(&f.refresh(&[]));
    let ev = recorded(&teams, n);
    assert!(
        of_kind(&ev, "segment-threshold-crossed").is_empty(),
        "{ev:#?}"
    );
    assert!(
        of_kind(&ev, "measure-threshold-crossed").is_empty(),
        "{ev:#?}"
    );

    // Refresh 3: Carla leaves gold (down through 3), a big order arrives
    // (revenue through 500), France stays at 2 (no re-fire).
    f.write(
        "data/crm.csv",
        &CRM.replace("28001,ES,gold", "28001,ES,silver"),
    );
    f.write(
        "data/shop.ndjson",
        &format!("{SHOP}{}\n", r#"{"OrderId":"o4","Email":"erin@example.com","First":"Erin","Last":"Lee","Amount":400}"#),
    );
    let n = teams.received().len();
    assert_ok(&f.refresh(&[]));
    let ev = recorded(&teams, n);
    let seg = of_kind(&ev, "segment-threshold-crossed");
    assert_eq!(seg.len(), 1, "{seg:#?}");
    assert_eq!(seg[0]["segment"], "gold");
    assert_eq!(seg[0]["direction"], "down");
    assert_eq!(
        (seg[0]["previous"].clone(), seg[0]["current"].clone()),
        (3.into(), 2.into())
    );
    let meas = of_kind(&ev, "measure-threshold-crossed");
    assert_eq!(meas.len(), 1, "{meas:#?}");
    assert_eq!(meas[0]["threshold"], 500.0);
    assert_eq!(meas[0]["previous"], 165.5);
    assert_eq!(meas[0]["current"], 565.5);
    // The same records keep the same CustomerId.
    let again = f.customer_by_email("bob@example.com");
    assert_eq!(again["CustomerId"], bob_id);

    // Refresh 4: the CRM file is gone. One permanent failure; the other
    // sources refresh; later stages are skipped; the old data stays.
    std::fs::remove_file(f.path("data/crm.csv")).unwrap();
    let n = teams.received().len();
    let run = f.refresh(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let ev = recorded(&teams, n);
    let failed = of_kind(&ev, "data-source-refresh-failed");
    assert_eq!(failed.len(), 1, "{ev:#?}");
    assert_eq!(failed[0]["source"], "crm");
    assert_eq!(failed[0]["permanent"], true);
    assert_eq!(failed[0]["attempts"], 1);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .ends_with("crm.csv: file not found"),
        "{failed:?}"
    );
    assert_eq!(of_kind(&ev, "data-source-refresh-succeeded").len(), 2);
    assert!(of_kind(&ev, "unification-refresh-completed").is_empty());
    let full = of_kind(&ev, "full-refresh-completed");
    assert_eq!(full[0]["succeeded"], false);
    let statuses: Vec<(&str, &str)> = full[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("source:crm", "failed"),
            ("source:shop-orders", "ok"),
            ("source:loyalty", "ok"),
            ("unification", "skipped"),
            ("segments", "skipped"),
            ("measures", "skipped"),
            ("publish", "skipped")
        ]
    );
    let crm = triggerfish(
        &["entities", "list", "--config", f.config.to_str().unwrap()],
        &[],
    );
    assert!(crm.stdout.contains("Crm"), "{}", crm.stdout);
}

#[test]
fn one_source_or_unification_alone() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = fixture(&teams, smtp.port, "");
    // Unification before any source was loaded fails, naming the source.
    let run = f.refresh(&["--unification"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("source 'crm' has no data yet (entity 'Crm'): refresh it first"),
        "{}",
        run.stdout
    );
    for s in ["crm", "shop-orders", "loyalty"] {
        assert_ok(&f.refresh(&["--source", s]));
    }
    let ev = recorded(&teams, 0);
    assert_eq!(of_kind(&ev, "data-source-refresh-succeeded").len(), 3);
    assert!(of_kind(&ev, "unification-refresh-completed").is_empty());
    let n = teams.received().len();
    assert_ok(&f.refresh(&["--unification"]));
    let ev = recorded(&teams, n);
    assert_eq!(of_kind(&ev, "unification-refresh-completed").len(), 1);
    assert!(of_kind(&ev, "full-refresh-completed").is_empty());
    assert!(of_kind(&ev, "data-source-refresh-succeeded").is_empty());

    let run = f.refresh(&["--source", "nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("no data source named 'nope' (sources: crm, shop-orders, loyalty)"),
        "{}",
        run.stderr
    );
}

#[test]
fn malformed_rows_within_tolerance_pass_and_past_it_fail() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = fixture(&teams, smtp.port, "");
    f.edit_config("key = \"OrderId\"\n", "key = \"OrderId\"\ntolerance = 1\n");
    let one_bad = SHOP.replace("\"Amount\":30}", "\"Amount\":\"thirty\"}");
    f.write("data/shop.ndjson", &one_bad);
    assert_ok(&f.refresh(&["--source", "shop-orders"]));
    let ev = recorded(&teams, 0);
    let s = by_source(&ev, "data-source-refresh-succeeded", "shop-orders");
    assert_eq!(
        (s["rows_read"].clone(), s["rows_rejected"].clone()),
        (2.into(), 1.into())
    );

    let two_bad = one_bad.replace("\"Amount\":15}", "\"Amount\":true}");
    f.write("data/shop.ndjson", &two_bad);
    let n = teams.received().len();
    let run = f.refresh(&["--source", "shop-orders"]);
    assert_eq!(run.code, 1);
    let ev = recorded(&teams, n);
    let fail = by_source(&ev, "data-source-refresh-failed", "shop-orders");
    assert_eq!(fail["permanent"], true);
    assert_eq!(fail["row"], 3);
    assert_eq!(fail["field"], "Amount");
    assert!(
        fail["error"]
            .as_str()
            .unwrap()
            .contains("(more than 1 malformed rows)"),
        "{fail}"
    );
    // The previous data stays: two rows from the first import.
    let rows = triggerfish(
        &[
            "entities",
            "get",
            "--config",
            f.config.to_str().unwrap(),
            "--entity",
            "ShopOrders",
        ],
        &[],
    );
    assert_eq!(rows.stdout.lines().count(), 2, "{}", rows.stdout);
}

#[test]
fn a_schema_mismatch_is_a_permanent_failure_naming_the_column() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = fixture(&teams, smtp.port, "");
    f.write("data/loyalty.csv", &LOYALTY.replace("Mobile", "Cell"));
    let run = f.refresh(&["--source", "loyalty"]);
    assert_eq!(run.code, 1);
    let ev = recorded(&teams, 0);
    let fail = by_source(&ev, "data-source-refresh-failed", "loyalty");
    assert_eq!(fail["permanent"], true);
    assert_eq!(fail["field"], "Mobile");
    assert!(
        fail["error"]
            .as_str()
            .unwrap()
            .contains("column 'Mobile' is used by the configuration but is not in the data"),
        "{fail}"
    );
}

/// Spawn `refresh`, and when it says it will retry, run `on_retry`.
fn refresh_with_retry_hook(config: &Path, args: &[&str], on_retry: impl FnOnce()) -> (i32, String) {
    let mut child = Command::new(triggerfish_bin())
        .args(["refresh", "--config", config.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut out = String::new();
    let mut hook = Some(on_retry);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("retrying in") {
            if let Some(h) = hook.take() {
                h();
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, out)
}

/// The fixture with the shop's orders arriving as drops matching a glob (none
/// there yet), retried `retries` times after `backoff_ms`.
fn drop_fixture(teams: &TeamsStub, smtp_port: u16, retries: u32, backoff_ms: u64) -> Fixture {
    let f = fixture(teams, smtp_port, "");
    f.edit_config(
        "retries = 0\n",
        &format!("retries = {retries}\nretry_backoff_ms = {backoff_ms}\n"),
    );
    f.edit_config("data/shop.ndjson", "drops/shop-*.ndjson");
    f
}

#[test]
fn a_transient_failure_that_recovers_raises_no_failed_event() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = drop_fixture(&teams, smtp.port, 3, 1500);
    let (code, out) = refresh_with_retry_hook(&f.config, &["--source", "shop-orders"], || {
        f.write("drops/shop-2024-06-01.ndjson", SHOP)
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no file matches"), "{out}");
    let ev = recorded(&teams, 0);
    assert!(
        of_kind(&ev, "data-source-refresh-failed").is_empty(),
        "{ev:#?}"
    );
    let s = by_source(&ev, "data-source-refresh-succeeded", "shop-orders");
    assert_eq!(s["rows_read"], 3);
}

#[test]
fn a_transient_failure_past_its_retries_fails_once_as_not_permanent() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = drop_fixture(&teams, smtp.port, 2, 10);
    let run = f.refresh(&["--source", "shop-orders"]);
    assert_eq!(run.code, 1);
    let ev = recorded(&teams, 0);
    let failed = of_kind(&ev, "data-source-refresh-failed");
    assert_eq!(failed.len(), 1, "{ev:#?}");
    assert_eq!(failed[0]["permanent"], false);
    assert_eq!(failed[0]["attempts"], 3);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("no file matches"),
        "{failed:?}"
    );
}

#[test]
fn a_workspace_error_names_file_line_and_key() {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        "[[insights.sources]]\nname = \"crm\"\npath = \"crm.csv\"\nkey = \"Id\"\n[insights.sources.map]\nEmail = \"Mail\"\n\n[[insights.segments]]\nname = \"vip\"\nfilter = \"Spend gt 10\"\n",
    )
    .unwrap();
    let run = triggerfish(&["refresh", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!(
            "{}:10: key `insights.segments[0].filter`: $filter at 0: unknown field 'Spend' (Customer fields: CustomerId, Email)",
            config.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn run_refreshes_on_its_schedule_and_stops_on_sigterm() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = fixture(&teams, smtp.port, "schedule = \"1s\"");
    // The daemon's API on a free loopback port.
    let text = std::fs::read_to_string(&f.config).unwrap();
    std::fs::write(
        &f.config,
        format!("{text}\n[api]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let mut child = Command::new(triggerfish_bin())
        .args(["run", "--config", f.config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    let mut refreshes = 0;
    while refreshes < 2 {
        let Some(Ok(line)) = lines.next() else {
            panic!("run ended early:\n{out}");
        };
        if line.starts_with("full refresh succeeded") {
            refreshes += 1;
        }
        out.push_str(&line);
        out.push('\n');
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for line in lines {
        out.push_str(&line.unwrap());
        out.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("scheduled: full refresh every 1s"), "{out}");
    assert!(out.contains("stopping: intake closed"), "{out}");
    // Two full refreshes; only the first crossed thresholds.
    let ev = recorded(&teams, 0);
    assert!(of_kind(&ev, "full-refresh-completed").len() >= 2, "{ev:#?}");
    assert_eq!(
        of_kind(&ev, "segment-threshold-crossed").len(),
        2,
        "{ev:#?}"
    );
}

#[test]
fn generated_duplicates_are_unified_with_precision_and_recall_of_099() {
    let dir = tempdir();
    let out = dir.path().join("gen");
    let run = triggerfish(
        &[
            "demo",
            "generate",
            "--rows",
            "20000",
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "7",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let config = out.join("triggerfish.toml");
    let run = triggerfish(&["refresh", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The generated thresholds sit below what a correct refresh finds: all
    // five segments and five measures cross upward.
    assert_eq!(
        run.stdout
            .matches("event segment-threshold-crossed")
            .count(),
        5,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout
            .matches("event measure-threshold-crossed")
            .count(),
        5,
        "{}",
        run.stdout
    );
    let (precision, recall) = scores(&config);
    assert!(precision >= 0.99, "precision {precision}");
    assert!(recall >= 0.99, "recall {recall}");
}

/// `demo score` of the store `config` names: (precision, recall).
fn scores(config: &std::path::Path) -> (f64, f64) {
    let score = triggerfish(
        &["demo", "score", "--config", config.to_str().unwrap()],
        &[],
    );
    score.assert_ok("demo score");
    let value = |label: &str| -> f64 {
        score
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in {}", score.stdout))
    };
    (value("pairwise precision"), value("pairwise recall"))
}

/// Generate `rows` with typo noise, refresh, and score: (precision, recall).
fn typo_scores(dir: &std::path::Path, rows: &str, fuzzy: bool) -> (f64, f64) {
    let out = dir.join(if fuzzy { "fuzzy" } else { "exact" });
    let mut args = vec![
        "demo", "generate", "--rows", rows, "--typos", "0.05", "--seed", "3", "--out",
    ];
    args.push(out.to_str().unwrap());
    if fuzzy {
        args.push("--fuzzy");
    }
    triggerfish(&args, &[]).assert_ok("demo generate");
    let config = out.join("triggerfish.toml");
    triggerfish(&["refresh", "--config", config.to_str().unwrap()], &[]).assert_ok("refresh");
    scores(&config)
}

/// Typo noise leaves records that only a fuzzy name rule links: exact rules
/// miss them, the generated fuzzy rule (guarded by e-mail and phone) finds
/// them without false merges.
#[test]
fn fuzzy_rules_find_the_misspelt_duplicates_exact_rules_miss() {
    let dir = tempdir();
    let (exact_p, exact_r) = typo_scores(dir.path(), "20000", false);
    let (fuzzy_p, fuzzy_r) = typo_scores(dir.path(), "20000", true);
    assert!(
        exact_r < 0.98,
        "exact rules should miss the typos: recall {exact_r}"
    );
    assert!(exact_p >= 0.99, "exact precision {exact_p}");
    assert!(fuzzy_r >= 0.99, "fuzzy recall {fuzzy_r} (exact {exact_r})");
    assert!(fuzzy_p >= 0.99, "fuzzy precision {fuzzy_p}");
}

/// A glob that matches a symlink to a file outside the workspace, and a FIFO
/// where a file should be: both fail at once as permanent, and no byte of the
/// outside file reaches the failed event (which plugins see).
#[test]
fn sources_are_read_only_inside_their_folder_and_only_from_regular_files() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = drop_fixture(&teams, smtp.port, 0, 10);
    let outside = tempdir();
    let secret = outside.path().join("shadow.ndjson");
    std::fs::write(&secret, "root:TOP-SECRET-HASH:19000:0:99999:7:::\n").unwrap();
    std::fs::create_dir_all(f.path("drops")).unwrap();
    std::os::unix::fs::symlink(&secret, f.path("drops/shop-1.ndjson")).unwrap();
    let run = f.refresh(&["--source", "shop-orders"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let ev = recorded(&teams, 0);
    let fail = by_source(&ev, "data-source-refresh-failed", "shop-orders");
    assert_eq!(fail["permanent"], true);
    let error = fail["error"].as_str().unwrap();
    assert!(
        error.contains("is outside the source's folder")
            && error.contains("a symlink leaving it is refused"),
        "{error}"
    );
    for text in [error, run.stdout.as_str(), run.stderr.as_str()] {
        assert!(!text.contains("TOP-SECRET"), "{text}");
    }

    // A FIFO where a named file should be: refused, not read (which would
    // hang). (A glob only matches regular files.)
    std::fs::remove_file(f.path("data/loyalty.csv")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(f.path("data/loyalty.csv"))
        .status()
        .unwrap();
    assert!(made.success());
    let run = f.refresh(&["--source", "loyalty"]);
    assert_eq!(run.code, 1);
    let ev = recorded(&teams, 0);
    let fails = of_kind(&ev, "data-source-refresh-failed");
    let last = fails.last().unwrap();
    assert_eq!(last["permanent"], true);
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .ends_with("is not a regular file (devices, FIFOs and folders are refused)"),
        "{last}"
    );
}

/// A source path that climbs out of the workspace folder is a config error;
/// a bad value is quoted in the failed event at most 32 characters long.
#[test]
fn source_paths_stay_in_the_workspace_and_quoted_values_are_short() {
    let teams = TeamsStub::start();
    let smtp = SmtpServer::start();
    let f = fixture(&teams, smtp.port, "");
    f.edit_config("data/shop.ndjson", "../../etc/shop.ndjson");
    let run = f.refresh(&["--source", "shop-orders"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("key `insights.sources[1].path`: '../../etc/shop.ndjson' is outside the workspace folder"),
        "{}",
        run.stderr
    );
    f.edit_config("../../etc/shop.ndjson", "data/shop.ndjson");

    // Amount is typed decimal: a 10,000-character value cannot be one.
    let long = "9".repeat(30) + &"x".repeat(10_000);
    f.write(
        "data/shop.ndjson",
        &SHOP.replace("120.5", &format!("\"{long}\"")),
    );
    let run = f.refresh(&["--source", "shop-orders"]);
    assert_eq!(run.code, 1);
    let ev = recorded(&teams, 0);
    let fail = by_source(&ev, "data-source-refresh-failed", "shop-orders");
    let error = fail["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("'{}…' is not", &long[..32])),
        "{error}"
    );
    assert!(error.len() < 400, "{error}");
}

#[test]
fn a_config_named_without_a_folder_finds_its_sources_and_json_arrays_stream() {
    let dir = support::tempdir();
    let gen = support::triggerfish(
        &[
            "demo",
            "generate",
            "--rows",
            "2000",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_ok(&gen);
    // The loyalty source as a JSON array, one object per member.
    let csv = std::fs::read_to_string(dir.path().join("loyalty-members.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let items: Vec<String> = lines
        .map(|l| {
            let obj: serde_json::Map<String, Value> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        if v.is_empty() {
                            Value::Null
                        } else {
                            Value::from(v)
                        },
                    )
                })
                .collect();
            Value::Object(obj).to_string()
        })
        .collect();
    assert!(
        csv.lines().all(|l| !l.contains('"')),
        "the generated CSV needs no quoting"
    );
    std::fs::write(
        dir.path().join("loyalty-members.json"),
        format!("[{}]", items.join(",\n")),
    )
    .unwrap();
    let config = dir.path().join("triggerfish.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("loyalty-members.csv", "loyalty-members.json");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(support::triggerfish_bin())
        .current_dir(dir.path())
        .args(["refresh", "--config", "triggerfish.toml"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loyalty = stdout
        .lines()
        .find(|l| l.contains("source:loyalty-members"))
        .unwrap_or_default();
    assert!(
        loyalty.contains(" ok ") && loyalty.contains(&format!("{} rows", items.len())),
        "{stdout}"
    );
}

#[test]
fn an_unchanged_refresh_skips_imports_and_unification_until_data_changes_or_force() {
    let dir = support::tempdir();
    let gen = support::triggerfish(
        &[
            "demo",
            "generate",
            "--rows",
            "3000",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_ok(&gen);
    let config = dir.path().join("triggerfish.toml");
    let refresh = |extra: &[&str]| {
        let mut args = vec!["refresh", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = support::triggerfish(&args, &[]);
        assert_ok(&run);
        run.stdout
    };
    let line = |out: &str, stage: &str| {
        out.lines()
            .rev()
            .find(|l| l.trim_start().starts_with(stage))
            .unwrap_or_default()
            .to_owned()
    };
    let first = refresh(&[]);
    assert!(!first.contains("unchanged"), "{first}");
    let customers = |out: &str| {
        line(out, "unification")
            .split_whitespace()
            .nth(2)
            .map(str::to_owned)
    };

    let second = refresh(&[]);
    for source in [
        "source:crm-contacts",
        "source:web-shop-orders",
        "source:loyalty-members",
    ] {
        assert!(
            line(&second, source).contains("unchanged since the last import"),
            "{second}"
        );
    }
    assert!(
        line(&second, "unification").contains("not recomputed"),
        "{second}"
    );
    assert_eq!(customers(&second), customers(&first), "{second}");
    assert!(
        !second.contains("threshold-crossed"),
        "nothing crossed: {second}"
    );

    // One source changes: it alone is read again, and unification runs.
    let crm = dir.path().join("crm-contacts.csv");
    let text = std::fs::read_to_string(&crm).unwrap();
    let last = text.lines().last().unwrap().to_owned();
    std::fs::write(
        &crm,
        text.replacen(&last, &last.replace('@', "+changed@"), 1),
    )
    .unwrap();
    let third = refresh(&[]);
    assert!(
        !line(&third, "source:crm-contacts").contains("unchanged"),
        "{third}"
    );
    assert!(
        line(&third, "source:web-shop-orders").contains("unchanged"),
        "{third}"
    );
    assert!(
        !line(&third, "unification").contains("not recomputed"),
        "{third}"
    );

    // --force reads and recomputes everything.
    let forced = refresh(&["--full", "--force"]);
    assert!(
        !forced.contains("unchanged") && !forced.contains("not recomputed"),
        "{forced}"
    );
}

/// `text` with every generated source key (`C`, `O` or `L` and 7 digits)
/// replaced by a 16-digit hex key in no order, the same one everywhere.
fn scatter_keys(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut i = 0;
    while i < b.len() {
        let is_key = matches!(b[i], b'C' | b'O' | b'L')
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b.len() >= i + 8
            && b[i + 1..i + 8].iter().all(u8::is_ascii_digit)
            && b.get(i + 8).is_none_or(|c| !c.is_ascii_alphanumeric());
        if is_key {
            let n: u64 = text[i + 1..i + 8].parse().unwrap();
            // SplitMix64's finaliser: as scattered as random GUIDs.
            let mut z = (n | u64::from(b[i]) << 40).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            out.push_str(&format!("{:016x}", z ^ (z >> 31)));
            i += 8;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Keys in no order (GUIDs, as CRM systems give) take other paths than
/// ascending ones: the key index built after the rows, links sorted by id,
/// previous customers read in key order, changes found by hashing. The same
/// people must come out: the same clusters, customers kept by a forced
/// refresh, and exactly the rows edited counted as changed.
#[test]
fn keys_in_no_order_unify_as_ascending_keys_do() {
    let dir = tempdir();
    let (ordered, scattered) = (dir.path().join("ordered"), dir.path().join("scattered"));
    triggerfish(
        &[
            "demo",
            "generate",
            "--rows",
            "10000",
            "--seed",
            "5",
            "--out",
            ordered.to_str().unwrap(),
        ],
        &[],
    )
    .assert_ok("demo generate");
    std::fs::create_dir(&scattered).unwrap();
    for entry in std::fs::read_dir(&ordered).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            scattered.join(path.file_name().unwrap()),
            scatter_keys(&text),
        )
        .unwrap();
    }
    let crm = std::fs::read_to_string(scattered.join("crm-contacts.csv")).unwrap();
    assert!(crm.lines().nth(1).unwrap().len() > 16 && !crm.contains(",C0000"));

    let refresh = |dir: &Path, extra: &[&str]| {
        let config = dir.join("triggerfish.toml");
        let mut args = vec!["refresh", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = triggerfish(&args, &[]);
        assert_ok(&run);
        run.stdout
    };
    let unification = |out: &str| {
        out.lines()
            .rev()
            .find(|l| l.trim_start().starts_with("unification "))
            .unwrap_or_default()
            .to_owned()
    };
    let customers = |out: &str| {
        unification(out)
            .split_whitespace()
            .nth(2)
            .map(str::to_owned)
    };
    let links = |dir: &Path| {
        let config = dir.join("triggerfish.toml");
        let run = triggerfish(
            &[
                "entities",
                "get",
                "--config",
                config.to_str().unwrap(),
                "--entity",
                "CustomerSourceLink",
                "--select",
                "LinkId,CustomerId",
                "--all",
            ],
            &[],
        );
        run.assert_ok("entities get");
        let mut pairs: Vec<(String, String)> = run
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                Some((
                    v.get("LinkId")?.as_str()?.to_owned(),
                    v.get("CustomerId")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        pairs.sort();
        pairs
    };

    let a = refresh(&ordered, &[]);
    let b = refresh(&scattered, &[]);
    assert_eq!(customers(&b), customers(&a), "{a}\n{b}");
    assert_eq!(
        scores(&scattered.join("triggerfish.toml")),
        scores(&ordered.join("triggerfish.toml"))
    );
    let before = links(&scattered);
    assert_eq!(before.len(), 10_000);

    // A forced refresh re-imports and re-unifies everything: every record
    // keeps its customer.
    refresh(&scattered, &["--full", "--force"]);
    assert_eq!(links(&scattered), before);

    // 37 CRM rows edited: exactly those are found changed.
    let text = std::fs::read_to_string(scattered.join("crm-contacts.csv")).unwrap();
    let edited: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| match i > 0 && i % 97 == 0 && i / 97 <= 37 {
            true => format!(
                "{}\n",
                l.replacen(",GB,", ",IE,", 1)
                    .replacen(",FR,", ",IE,", 1)
                    .replacen(",DE,", ",IE,", 1)
                    .replacen(",NL,", ",IE,", 1)
            ),
            false => format!("{l}\n"),
        })
        .collect();
    let changed = text
        .lines()
        .zip(edited.lines())
        .filter(|(x, y)| x != y)
        .count();
    assert!(changed > 20, "{changed} rows edited");
    std::fs::write(scattered.join("crm-contacts.csv"), edited).unwrap();
    let c = refresh(&scattered, &[]);
    assert!(
        unification(&c).contains(&format!(" {changed} changed source rows")),
        "{changed} edited: {c}"
    );
}

/// The generated sources gzipped (`*.csv.gz`, `*.ndjson.gz`, `*.json.gz`)
/// refresh to the same customers and scores as the plain files, and are
/// recognised as unchanged on the next refresh.
#[test]
fn gzipped_sources_unify_as_the_plain_files_do() {
    use std::io::Write as _;
    let dir = tempdir();
    let (plain, packed) = (dir.path().join("plain"), dir.path().join("packed"));
    triggerfish(
        &[
            "demo",
            "generate",
            "--rows",
            "6000",
            "--seed",
            "11",
            "--out",
            plain.to_str().unwrap(),
        ],
        &[],
    )
    .assert_ok("demo generate");
    std::fs::create_dir(&packed).unwrap();
    let mut config = std::fs::read_to_string(plain.join("triggerfish.toml")).unwrap();
    let mut gzipped = 0;
    for entry in std::fs::read_dir(&plain).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let quoted = format!("path = \"{name}\"");
        if config.contains(&quoted) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&bytes).unwrap();
            std::fs::write(packed.join(format!("{name}.gz")), gz.finish().unwrap()).unwrap();
            config = config.replace(&quoted, &format!("path = \"{name}.gz\""));
            gzipped += 1;
        } else if name != "triggerfish.toml" {
            std::fs::write(packed.join(&name), bytes).unwrap();
        }
    }
    assert_eq!(gzipped, 3, "{config}");
    std::fs::write(packed.join("triggerfish.toml"), config).unwrap();

    let summary = |dir: &Path| {
        let config = dir.join("triggerfish.toml");
        let run = triggerfish(&["refresh", "--config", config.to_str().unwrap()], &[]);
        assert_ok(&run);
        // "6000 source rows -> N profiles (…)", without the event id and time.
        let unification = run
            .stdout
            .lines()
            .find_map(|l| l.split("unification: ").nth(1))
            .unwrap_or_default()
            .to_owned();
        (
            unification
                .split(" in ")
                .next()
                .unwrap_or_default()
                .to_owned(),
            scores(&config),
        )
    };
    let (plain_unified, plain_scores) = summary(&plain);
    let (packed_unified, packed_scores) = summary(&packed);
    assert!(
        plain_unified.contains("6000 source rows"),
        "{plain_unified}"
    );
    assert_eq!(packed_unified, plain_unified);
    assert_eq!(packed_scores, plain_scores);

    let config = packed.join("triggerfish.toml");
    let again = triggerfish(&["refresh", "--config", config.to_str().unwrap()], &[]);
    assert_ok(&again);
    for source in ["crm-contacts", "web-shop-orders", "loyalty-members"] {
        let line = again
            .stdout
            .lines()
            .find(|l| l.contains(&format!("source:{source}")))
            .unwrap_or_default();
        assert!(line.contains("unchanged since the last import"), "{line}");
    }
}
