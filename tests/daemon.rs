//! `triggerfish run` as a child process: the admin API, retries and dead
//! letters against a loopback Teams stand-in, and kill -9 rounds that must
//! lose no event.

use crate::support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{guest, lit, root, tempdir, triggerfish, Daemon, TeamsStub};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn cache() -> String {
    lit(&root().join("target/tf-test-cache"))
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<String>,
) -> (u16, Value) {
    let mut req = c.request(method, url);
    if let Some(b) = body {
        req = req.body(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    call(c, reqwest::Method::GET, url, None).await
}

async fn post(c: &reqwest::Client, url: &str, body: &str) -> (u16, Value) {
    call(c, reqwest::Method::POST, url, Some(body.to_owned())).await
}

/// Poll `GET url` until `done` holds (at most two minutes).
async fn until(c: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, v) = get(c, url).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < give_up, "gave up waiting on {url}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_api_serves_every_endpoint_and_names_bad_input() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        &format!(
            "[host]\ncache_dir = {}\n[api]\nlisten = \"127.0.0.1:0\"\n[[plugins]]\nname = \"noop\"\ncomponent = {}\ntriggers = [\"data-source-refresh-failed\"]\n",
            cache(),
            lit(&guest("noop"))
        ),
    );
    let d = Daemon::start(&config, &[]);
    rt().block_on(async {
        let c = reqwest::Client::new();
        assert_eq!(get(&c, &d.url("/healthz")).await.0, 200);
        assert_eq!(get(&c, &d.url("/readyz")).await.0, 200);
        let event = r#"{"trigger":"data-source-refresh-failed","id":"api-1","source":"crm"}"#;
        let (s, v) = post(&c, &d.url("/v1/events"), event).await;
        assert_eq!((s, &v), (202, &json!({"id": "api-1", "runs": 1, "duplicate": false})));
        let (s, v) = post(&c, &d.url("/v1/events"), event).await;
        assert_eq!((s, &v), (202, &json!({"id": "api-1", "runs": 0, "duplicate": true})));

        let runs = until(&c, &d.url("/v1/runs?event=api-1"), |v| {
            v["runs"][0]["status"] == "succeeded"
        })
        .await;
        let id = runs["runs"][0]["id"].as_i64().unwrap();
        assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
        let (s, run) = get(&c, &d.url(&format!("/v1/runs/{id}"))).await;
        assert_eq!(s, 200);
        assert_eq!(run["plugin"], "noop");
        assert_eq!(run["attempts"], 1);
        assert!(run["logs"].is_array() && run["sent"].is_array(), "{run}");
        assert_eq!(run["history"][0]["outcome"], "succeeded");
        assert_eq!(run["event"]["id"], "api-1");
        let (_, by_trigger) = get(&c, &d.url("/v1/runs?trigger=data-source-refresh-failed")).await;
        assert_eq!(by_trigger["runs"][0]["id"], id);
        assert_eq!(by_trigger["runs"][0]["trigger"], "data-source-refresh-failed");
        let (_, other) = get(&c, &d.url("/v1/runs?trigger=full-refresh-completed")).await;
        assert_eq!(other["runs"], serde_json::json!([]));

        let (s, events) = get(&c, &d.url("/v1/events?trigger=data-source-refresh-failed")).await;
        assert_eq!(s, 200);
        assert_eq!(events["events"][0]["id"], "api-1");
        assert_eq!(events["events"][0]["origin"], "api");
        let (_, plugins) = get(&c, &d.url("/v1/plugins")).await;
        assert_eq!(plugins["plugins"][0]["name"], "noop");
        assert_eq!(plugins["plugins"][0]["concurrency"], 25);
        assert_eq!(plugins["plugins"][0]["retry"]["attempts"], 4);

        // A replay is a new run of the same event and plugin; the old one is retired.
        let (s, v) = post(&c, &d.url(&format!("/v1/runs/{id}/replay")), "").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["replayed"], json!([id]));
        let new_run = v["runs"][0].as_i64().unwrap();
        assert_ne!(new_run, id);
        let replay = until(&c, &d.url(&format!("/v1/runs/{new_run}")), |v| {
            v["attempts"] == 1 && v["status"] == "succeeded"
        })
        .await;
        assert_eq!(replay["replay_of"], id);
        assert_eq!(replay["event_id"], "api-1");
        let (_, old) = get(&c, &d.url(&format!("/v1/runs/{id}"))).await;
        assert_eq!((&old["status"], &old["replayed_by"]), (&json!("replayed"), &json!(new_run)));
        let (s, v) = post(&c, &d.url(&format!("/v1/runs/{id}/replay")), "").await;
        assert_eq!(s, 409, "a run is replayed once: {v}");

        let (_, metrics) = get(&c, &d.url("/metrics")).await;
        let metrics = metrics.as_str().unwrap().to_owned();
        for line in [
            "triggerfish_events_accepted_total{trigger=\"data-source-refresh-failed\"} 1",
            "triggerfish_run_attempts_total{plugin=\"noop\",trigger=\"data-source-refresh-failed\",outcome=\"succeeded\"} 2",
            "triggerfish_runs{status=\"succeeded\"} 1",
            "triggerfish_runs{status=\"replayed\"} 1",
            // Statuses with no runs read 0 rather than vanishing or going stale.
            "triggerfish_runs{status=\"dead\"} 0",
            "triggerfish_runs{status=\"queued\"} 0",
            "triggerfish_journal_events{trigger=\"data-source-refresh-failed\"} 1",
            "triggerfish_dispatch_latency_seconds_count 2",
            "triggerfish_entity_calls_throttled{plugin=\"noop\"} 0",
        ] {
            assert!(metrics.contains(line), "{line} not in:\n{metrics}");
        }

        // Bad input: a 4xx with a JSON message naming the field.
        let cases: [(&str, &str, Option<&str>, u16, &str); 10] = [
            ("POST", "/v1/events", Some("not json"), 400, "body is not valid JSON"),
            ("POST", "/v1/events", Some("[1]"), 400, "body must be a JSON object"),
            ("POST", "/v1/events", Some(r#"{"source":"x"}"#), 400, "field 'trigger' is missing"),
            ("POST", "/v1/events", Some(r#"{"trigger":"nope"}"#), 400, "field 'trigger': unknown trigger 'nope'"),
            ("POST", "/v1/events", Some(r#"{"trigger":"data-source-refresh-failed","bogus":1}"#), 400, "payload key 'bogus' is not a field of data-source-refresh-failed"),
            ("POST", "/v1/events", Some(r#"{"trigger":"full-refresh-completed","id":"a b"}"#), 400, "field 'id': expected 1 to 128"),
            ("GET", "/v1/runs?status=nope", None, 400, "query parameter 'status': expected queued, retrying, succeeded, dead or replayed, found 'nope'"),
            ("GET", "/v1/runs/abc", None, 400, "run id: expected a whole number, found 'abc'"),
            ("GET", "/v1/runs?trigger=nope", None, 400, "query parameter 'trigger': unknown trigger 'nope'"),
            ("GET", "/v1/runs/999999", None, 404, "no run 999999"),
        ];
        for (method, path, body, status, message) in cases {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let (s, v) = call(&c, m, &d.url(path), body.map(str::to_owned)).await;
            assert_eq!(s, status, "{method} {path}: {v}");
            let text = v["error"].as_str().unwrap_or_default();
            assert!(text.starts_with(message), "{method} {path}: {text}");
        }
        let (s, v) = get(&c, &d.url("/v1/events?limit=0")).await;
        assert_eq!(s, 400, "{v}");
        let (s, v) = get(&c, &d.url("/v1/runs?colour=red")).await;
        assert_eq!(s, 400, "{v}");
        let (s, v) = post(&c, &d.url("/v1/refresh"), "").await;
        assert_eq!(s, 409, "{v}");
        let (s, _) = post(&c, &d.url("/v1/events"), &"x".repeat(100_000)).await;
        assert_eq!(s, 413);
        let (s, v) = get(&c, &d.url("/v2/nothing")).await;
        assert_eq!((s, v["error"].as_str()), (404, Some("no such endpoint")));
    });
    assert_eq!(d.stop(), 0);
}

#[test]
fn a_token_is_required_off_loopback() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        &format!(
            "[host]\ncache_dir = {}\n[api]\nlisten = \"0.0.0.0:0\"\ntoken_env = \"TF_TEST_API_TOKEN\"\n",
            cache()
        ),
    );
    let refused = triggerfish(&["run", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("[api] listen = \"0.0.0.0:0\" is beyond loopback, so a bearer token is required: set the environment variable TF_TEST_API_TOKEN"),
        "{}",
        refused.stderr
    );
    let d = Daemon::start(&config, &[("TF_TEST_API_TOKEN", "s3cret-token")]);
    // Only loopback traffic: talk to 127.0.0.1 on the port it bound.
    let base = format!("http://127.0.0.1:{}", d.addr.port());
    rt().block_on(async {
        let c = reqwest::Client::new();
        let (s, v) = get(&c, &format!("{base}/v1/runs")).await;
        assert_eq!(s, 401, "{v}");
        assert_eq!(
            v["error"],
            "missing or wrong bearer token (Authorization: Bearer <token>)"
        );
        let wrong = c
            .get(format!("{base}/v1/runs"))
            .bearer_auth("s3cret-tokeX")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let right = c
            .get(format!("{base}/v1/runs"))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200);
        assert_eq!(get(&c, &format!("{base}/healthz")).await.0, 200);
    });
    assert_eq!(d.stop(), 0);
}

/// One teams plugin per channel, each taking only its own source.
fn teams_config(
    dir: &Path,
    teams: &TeamsStub,
    channels: &[(&str, &str)],
    retries: u32,
) -> std::path::PathBuf {
    let mut text = format!(
        "[host]\ncache_dir = {}\n[api]\nlisten = \"127.0.0.1:0\"\n",
        cache()
    );
    for (name, path) in channels {
        text.push_str(&format!(
            "[teams.channels.{name}]\nwebhook_url = \"{}\"\n",
            teams.url(path)
        ));
    }
    for (name, _) in channels {
        text.push_str(&format!(
            "[[plugins]]\nname = \"to-{name}\"\ncomponent = {}\ntriggers = [\"data-source-refresh-failed\"]\n[plugins.grants]\nteams = [\"{name}\"]\n[plugins.config]\nchannel = \"{name}\"\n[plugins.when]\nsource = [\"{name}*\"]\n[plugins.retry]\nattempts = {retries}\nfirst_wait = \"100ms\"\nmax_wait = \"200ms\"\n",
            lit(&guest("teams-on-refresh-failure")),
        ));
    }
    write_config(dir, &text)
}

#[test]
fn failed_runs_are_retried_dead_lettered_and_replayed() {
    let teams = TeamsStub::start();
    teams.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let dir = tempdir();
    let config = teams_config(
        dir.path(),
        &teams,
        &[
            ("flaky", "/fails/6"),
            ("throttled", "/throttled-once"),
            ("dead", "/switch"),
        ],
        3,
    );
    let d = Daemon::start(&config, &[]);
    rt().block_on(async {
        let c = reqwest::Client::new();
        for source in ["flaky-1", "throttled-1", "dead-1"] {
            let body =
                json!({"trigger": "data-source-refresh-failed", "id": source, "source": source});
            let (s, v) = post(&c, &d.url("/v1/events"), &body.to_string()).await;
            // `[plugins.when] source` routes each event to one plugin only.
            assert_eq!((s, &v["runs"]), (202, &json!(1)), "{v}");
        }
        let run_of = |event: &str| d.url(&format!("/v1/runs?event={event}"));
        let flaky = until(&c, &run_of("flaky-1"), |v| {
            v["runs"][0]["status"] == "succeeded"
        })
        .await;
        // The Teams capability itself tries 4 times within an attempt
        // (teams::MAX_ATTEMPTS): 4 failures, then 2 more and a success.
        assert_eq!(flaky["runs"][0]["plugin"], "to-flaky");
        assert_eq!(flaky["runs"][0]["attempts"], 2);
        let throttled = until(&c, &run_of("throttled-1"), |v| {
            v["runs"][0]["status"] == "succeeded"
        })
        .await;
        // A 429 with Retry-After is waited out inside the attempt.
        assert_eq!(throttled["runs"][0]["attempts"], 1);
        let dead = until(&c, &run_of("dead-1"), |v| v["runs"][0]["status"] == "dead").await;
        let run = &dead["runs"][0];
        assert_eq!(run["attempts"], 4, "{run}");
        let error = run["error"].as_str().unwrap();
        assert!(
            error.contains("posting to 'dead'") && error.contains("503"),
            "{error}"
        );
        let (_, listed) = get(&c, &d.url("/v1/runs?status=dead")).await;
        assert_eq!(listed["runs"].as_array().unwrap().len(), 1);

        // The CLI reads the same journal while the daemon runs.
        let cfg = config.to_str().unwrap();
        let id = run["id"].as_i64().unwrap();
        let listed = triggerfish(&["runs", "list", "--config", cfg, "--status", "dead"], &[]);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        let lines: Vec<&str> = listed.stdout.lines().skip(1).collect();
        assert_eq!(lines.len(), 1, "{}", listed.stdout);
        assert!(
            lines[0].contains(&format!("{id}  dead")) && lines[0].contains("to-dead"),
            "{}",
            lines[0]
        );
        let shown = triggerfish(&["runs", "show", "--config", cfg, &id.to_string()], &[]);
        assert!(
            shown.stdout.contains("status     dead after 4 attempt(s)"),
            "{}",
            shown.stdout
        );
        let events = triggerfish(&["events", "list", "--config", cfg, "--json"], &[]);
        let events: Value = serde_json::from_str(&events.stdout).unwrap();
        assert_eq!(events.as_array().unwrap().len(), 3);
        let bad = triggerfish(&["runs", "list", "--config", cfg, "--status", "lost"], &[]);
        assert!(
            bad.stderr.contains(
                "--status: expected queued, retrying, succeeded, dead or replayed, found 'lost'"
            ),
            "{}",
            bad.stderr
        );

        // The sink recovers; the dead letter is replayed from the CLI.
        teams.down.store(false, std::sync::atomic::Ordering::SeqCst);
        let replayed = triggerfish(&["runs", "replay", "--config", cfg, "--dead"], &[]);
        assert_eq!(replayed.code, 0, "{}{}", replayed.stdout, replayed.stderr);
        assert!(
            replayed.stdout.contains("1 run(s) queued again"),
            "{}",
            replayed.stdout
        );
        assert!(
            replayed
                .stdout
                .contains(&format!("run {id}: replayed as run ")),
            "{}",
            replayed.stdout
        );
        let (_, old) = get(&c, &d.url(&format!("/v1/runs/{id}"))).await;
        assert_eq!(old["status"], "replayed");
        let new_run = old["replayed_by"].as_i64().unwrap();
        let replay = until(&c, &d.url(&format!("/v1/runs/{new_run}")), |v| {
            v["status"] == "succeeded"
        })
        .await;
        assert_eq!(
            (&replay["attempts"], &replay["replay_of"]),
            (&json!(1), &json!(id))
        );
        // The dead run keeps its own four attempts.
        let done = old;
        assert_eq!(done["attempts"], 4);
        let outcomes: Vec<&str> = done["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                "failed, retrying",
                "failed, retrying",
                "failed, retrying",
                "failed, dead-lettered",
            ]
        );
        assert!(done["history"][3]["error"]
            .as_str()
            .unwrap()
            .contains("teams channel 'dead' answered 503: maintenance"));
        assert_eq!(done["trigger"], "data-source-refresh-failed");
        let (_, metrics) = get(&c, &d.url("/metrics")).await;
        let metrics = metrics.as_str().unwrap().to_owned();
        assert!(
            metrics.contains("triggerfish_dead_letters_total{plugin=\"to-dead\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("triggerfish_retries_total{plugin=\"to-flaky\"} 1"),
            "{metrics}"
        );
    });
    assert_eq!(d.stop(), 0);
    let by_path = |p: &str| teams.received().iter().filter(|r| r.path == p).count();
    assert_eq!(by_path("/fails/6"), 7);
    assert_eq!(by_path("/throttled-once"), 2);
    // Four attempts of four tries each, then the replay's one.
    assert_eq!(by_path("/switch"), 17);
}

/// Events posted through the API while the daemon is killed with SIGKILL at
/// random moments: afterwards every event has exactly one succeeded run,
/// the sink has every message, and duplicates are bounded by what was in
/// flight at each kill.
#[test]
fn kill_9_rounds_lose_no_event() {
    const EVENTS: usize = 10_000;
    const KILLS: usize = 3;
    const CONCURRENCY: usize = 25;
    let teams = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), &teams, &[("ops", "/workflows")], 4);
    let rt = rt();
    let mut accepted = vec![false; EVENTS];
    let mut round = 0;
    let d = loop {
        let d = Daemon::start(&config, &[]);
        let last = round == KILLS;
        let kill_after = if last {
            None
        } else {
            Some(Duration::from_millis(fastrand::u64(300..1500)))
        };
        let url = d.url("/v1/events");
        let todo: Vec<usize> = (0..EVENTS).filter(|i| !accepted[*i]).collect();
        let results = rt.block_on(async {
            let c = reqwest::Client::new();
            let started = Instant::now();
            let mut out = Vec::new();
            for chunk in todo.chunks(32) {
                if kill_after.is_some_and(|k| started.elapsed() >= k) {
                    break;
                }
                let posts = chunk.iter().map(|&i| {
                    let c = c.clone();
                    let url = url.clone();
                    async move {
                        let body = json!({"trigger": "data-source-refresh-failed", "id": format!("ev-{i:05}"), "source": format!("ops-{i:05}")});
                        let ok = c.post(&url).body(body.to_string()).send().await.is_ok_and(|r| r.status().as_u16() == 202);
                        (i, ok)
                    }
                });
                out.extend(futures::future::join_all(posts).await);
            }
            out
        });
        for (i, ok) in results {
            accepted[i] |= ok;
        }
        if last {
            break d;
        }
        d.kill9();
        round += 1;
    };
    assert!(
        accepted.iter().all(|a| *a),
        "every event was accepted by the last round"
    );
    // The last daemon keeps running: wait for every run to succeed.
    rt.block_on(async {
        let c = reqwest::Client::new();
        until(&c, &d.url("/metrics"), |m| {
            let m = m.as_str().unwrap_or_default();
            m.contains(&format!(
                "triggerfish_runs{{status=\"succeeded\"}} {EVENTS}"
            ))
        })
        .await;
    });
    assert_eq!(d.stop(), 0);

    let db = rusqlite::Connection::open(dir.path().join(".triggerfish/store.sqlite")).unwrap();
    let (runs, events): (i64, i64) = db
        .query_row(
            "SELECT (SELECT COUNT(*) FROM _tf_runs WHERE status = 'succeeded'), (SELECT COUNT(DISTINCT event_id) FROM _tf_runs)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((runs, events), (EVENTS as i64, EVENTS as i64));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in teams.received() {
        let text = r.body.to_string();
        let at = text
            .find("Data source refresh failed: ops-")
            .expect("card title");
        let source = text[at + "Data source refresh failed: ".len()..][..9].to_owned();
        *seen.entry(source).or_default() += 1;
    }
    assert_eq!(seen.len(), EVENTS, "every event reached the sink");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("duplicates at the sink after {KILLS} kills: {duplicates}");
    assert!(
        duplicates <= KILLS * CONCURRENCY,
        "{duplicates} duplicates; at most {CONCURRENCY} runs are in flight at each of {KILLS} kills"
    );
}

/// A crash after a threshold crossing is journaled and before any plugin
/// sees it: the next start delivers that crossing, once, and the refresh it
/// runs does not raise it again.
#[test]
fn a_crossing_journaled_before_a_crash_is_delivered_once_after_restart() {
    let dir = tempdir();
    let workspace = support::france_workspace(dir.path());
    let config = write_config(
        dir.path(),
        &format!(
            r#"[host]
cache_dir = {cache}
[api]
listen = "127.0.0.1:0"
[[plugins]]
name = "noop"
component = {noop}
triggers = ["segment-threshold-crossed"]
{workspace}"#,
            cache = cache(),
            noop = lit(&guest("noop")),
        ),
    );
    // First start: the crossing is journaled, then the process aborts.
    let crashed = std::process::Command::new(support::triggerfish_bin())
        .args(["run", "--config", config.to_str().unwrap()])
        .env(
            "TRIGGERFISH_TEST_ABORT_AFTER_JOURNAL",
            "segment-threshold-crossed",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert!(
        stderr.contains("test hook: aborting after journaling event"),
        "{stderr}"
    );
    let db = || rusqlite::Connection::open(dir.path().join(".triggerfish/store.sqlite")).unwrap();
    let crossings = |c: &rusqlite::Connection| -> Vec<(String, String, i64)> {
        let mut stmt = c
            .prepare(
                "SELECT e.id, r.status, r.attempts FROM _tf_events e JOIN _tf_runs r ON r.event_id = e.id
                 WHERE e.kind = 'segment-threshold-crossed'",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = crossings(&db());
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!((before[0].1.as_str(), before[0].2), ("queued", 0));

    // Restart: the journaled run is delivered; the new refresh finds the
    // value already recorded, so it raises nothing.
    let d = Daemon::start(&config, &[]);
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let now = crossings(&db());
        if now.iter().all(|c| c.1 == "succeeded")
            && d.stdout.lock().unwrap().contains("full refresh")
        {
            break;
        }
        assert!(Instant::now() < give_up, "{now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refreshes through the API.
    rt().block_on(async {
        let c = reqwest::Client::new();
        let (s, v) = post(&c, &d.url("/v1/refresh"), r#"{"source":"crm"}"#).await;
        assert_eq!(
            (s, &v),
            (202, &json!({"queued": "refresh of source 'crm'"}))
        );
        let (s, v) = post(&c, &d.url("/v1/refresh"), r#"{"source":"erp"}"#).await;
        assert_eq!(s, 400);
        assert_eq!(
            v["error"],
            "field 'source': no data source named 'erp' (sources: crm)"
        );
        let (s, v) = post(&c, &d.url("/v1/refresh"), "").await;
        assert_eq!((s, &v), (202, &json!({"queued": "full refresh"})));
        until(&c, &d.url("/metrics"), |m| {
            let m = m.as_str().unwrap_or_default();
            m.contains("triggerfish_refresh_duration_seconds_count{scope=\"source\"} 1")
                && m.contains("triggerfish_refresh_duration_seconds_count{scope=\"full\"} 2")
        })
        .await;
    });
    assert_eq!(d.stop(), 0);
    let after = crossings(&db());
    assert_eq!(after, [(before[0].0.clone(), "succeeded".to_owned(), 1)]);
}

/// A run that posted once and then failed is retried; the retry gets the
/// first post's recorded result back instead of posting it again.
#[test]
fn the_sent_ledger_keeps_a_retry_from_sending_twice() {
    let teams = TeamsStub::start();
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        &format!(
            r#"[host]
cache_dir = {cache}
[api]
listen = "127.0.0.1:0"
[teams.channels.first]
webhook_url = "{first}"
[teams.channels.second]
webhook_url = "{second}"
[[plugins]]
name = "two-posts"
component = {guest}
triggers = ["full-refresh-completed"]
[plugins.grants]
teams = ["first", "second"]
[plugins.config]
mode = "two-posts"
[plugins.retry]
attempts = 2
first_wait = "100ms"
"#,
            cache = cache(),
            first = teams.url("/workflows"),
            second = teams.url("/fails/4"),
            guest = lit(&guest("misbehaving")),
        ),
    );
    let d = Daemon::start(&config, &[]);
    rt().block_on(async {
        let c = reqwest::Client::new();
        let (s, _) = post(
            &c,
            &d.url("/v1/events"),
            r#"{"trigger":"full-refresh-completed","id":"ledger-1"}"#,
        )
        .await;
        assert_eq!(s, 202);
        let runs = until(&c, &d.url("/v1/runs?event=ledger-1"), |v| {
            v["runs"][0]["status"] == "succeeded"
        })
        .await;
        assert_eq!(runs["runs"][0]["attempts"], 2);
        let id = runs["runs"][0]["id"].as_i64().unwrap();
        let (_, run) = get(&c, &d.url(&format!("/v1/runs/{id}"))).await;
        let sent: Vec<(i64, String)> = run["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["call"].as_i64().unwrap(),
                    s["result"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            sent,
            [
                (0, "posted to channel 'first'".to_owned()),
                (1, "posted to channel 'second'".to_owned())
            ]
        );
    });
    assert_eq!(d.stop(), 0);
    let by_path = |p: &str| teams.received().iter().filter(|r| r.path == p).count();
    assert_eq!(
        by_path("/workflows"),
        1,
        "the first post was not sent again"
    );
    assert_eq!(by_path("/fails/4"), 5);
}

/// Hot reload with events flowing: none lost, the new version used after
/// the swap, a broken component refused while the old one keeps serving.
#[test]
fn hot_reload_swaps_versions_without_losing_events() {
    const EVENTS: usize = 400;
    let teams = TeamsStub::start();
    let dir = tempdir();
    let component = dir.path().join("plugin.wasm");
    std::fs::copy(guest("misbehaving"), &component).unwrap();
    let text = |version: &str| {
        format!(
            "[host]\ncache_dir = {}\n[api]\nlisten = \"127.0.0.1:0\"\n[teams.channels.ops]\nwebhook_url = \"{}\"\n[[plugins]]\nname = \"poster\"\ncomponent = \"plugin.wasm\"\ntriggers = [\"full-refresh-completed\"]\n[plugins.grants]\nteams = [\"ops\"]\n[plugins.config]\nmode = \"teams\"\ntext = \"{version}\"\n",
            cache(),
            teams.url("/workflows")
        )
    };
    let config = write_config(dir.path(), &text("version-1"));
    let d = Daemon::start(&config, &[]);
    let wait_stdout = |needle: &str| {
        let give_up = Instant::now() + Duration::from_secs(60);
        while !d.stdout.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < give_up,
                "no '{needle}' in:\n{}",
                d.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let url = d.url("/v1/events");
    let producer = std::thread::spawn(move || {
        rt().block_on(async {
            let c = reqwest::Client::new();
            for i in 0..EVENTS {
                let body = format!(r#"{{"trigger":"full-refresh-completed","id":"hr-{i}"}}"#);
                let (s, v) = post(&c, &url, &body).await;
                assert_eq!(s, 202, "{v}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    });
    std::thread::sleep(Duration::from_millis(1000));
    write_config(dir.path(), &text("version-2"));
    wait_stdout("reloaded (a file changed): poster");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&component, b"\0asm\x0d\0\x01\0 not a component").unwrap();
    wait_stdout("reload refused (a file changed)");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    wait_stdout("reload refused (SIGHUP)");
    producer.join().unwrap();
    rt().block_on(async {
        let c = reqwest::Client::new();
        until(&c, &d.url("/metrics"), |m| {
            m.as_str().unwrap_or_default().contains(&format!(
                "triggerfish_runs{{status=\"succeeded\"}} {EVENTS}"
            ))
        })
        .await;
    });
    let out = d.stdout.lock().unwrap().clone();
    assert!(
        out.contains("plugin.wasm"),
        "the refusal names the component:\n{out}"
    );
    assert_eq!(d.stop(), 0);
    let texts: Vec<String> = teams
        .received()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert_eq!(texts.len(), EVENTS);
    let v1 = texts.iter().filter(|t| t.contains("version-1")).count();
    let v2 = texts.iter().filter(|t| t.contains("version-2")).count();
    assert!(v1 > 0 && v2 > 0 && v1 + v2 == EVENTS, "v1 {v1}, v2 {v2}");
    assert!(texts.last().unwrap().contains("version-2"));
}

/// `fire` journals its event and records its one attempt: a success, or a
/// dead letter that `runs replay` can queue for the daemon.
#[test]
fn fire_journals_its_event_and_attempt() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        &format!(
            "[host]\ncache_dir = {}\n[[plugins]]\nname = \"ok\"\ncomponent = {}\n[[plugins]]\nname = \"failing\"\ncomponent = {}\n[plugins.config]\nmode = \"fail\"\n",
            cache(),
            lit(&guest("noop")),
            lit(&guest("misbehaving")),
        ),
    );
    let cfg = config.to_str().unwrap();
    let fire = |plugin: &str, id: &str| {
        triggerfish(
            &[
                "fire",
                "--config",
                cfg,
                "--plugin",
                plugin,
                "--event",
                "full-refresh-completed",
                "--payload",
                &format!(r#"{{"id":"{id}"}}"#),
            ],
            &[],
        )
    };
    assert_eq!(fire("ok", "fired-ok").code, 0);
    assert_ne!(fire("failing", "fired-bad").code, 0);
    let runs = triggerfish(&["runs", "list", "--config", cfg, "--json"], &[]);
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    let got: Vec<(String, String, String)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["event_id"].as_str().unwrap().to_owned(),
                r["plugin"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("fired-bad".into(), "failing".into(), "dead".into()),
            ("fired-ok".into(), "ok".into(), "succeeded".into())
        ]
    );
    let events = triggerfish(&["events", "list", "--config", cfg], &[]);
    assert_eq!(
        events.stdout.matches(" fire ").count(),
        2,
        "{}",
        events.stdout
    );
}
