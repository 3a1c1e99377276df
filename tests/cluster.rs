//! Several daemons sharing the work over a real `nats-server` (JetStream)
//! on loopback: 10,000 events through a kill -9 of a member and a restart of
//! NATS; a refresher killed twice (once between journaling a crossing and
//! publishing it); members running different plugin versions.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{guest, lit, root, tempdir, triggerfish, Daemon, NatsServer, TeamsStub};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A member's configuration: `plugins` are (name, label) pairs of the
/// recorder guest, posting to the Teams stand-in at `/workflows`, granted
/// the `Customer` entity.
fn member_config(
    dir: &Path,
    nats: &NatsServer,
    teams: &TeamsStub,
    member: &str,
    triggers: &str,
    plugins: &[(&str, &str)],
) -> PathBuf {
    member_config_at(dir, nats, teams, "/workflows", member, triggers, plugins)
}

/// [`member_config`] posting to `hook` on the stand-in.
fn member_config_at(
    dir: &Path,
    nats: &NatsServer,
    teams: &TeamsStub,
    hook: &str,
    member: &str,
    triggers: &str,
    plugins: &[(&str, &str)],
) -> PathBuf {
    let mut text = format!(
        "[host]\nstate_dir = {state}\ncache_dir = {cache}\n[api]\nlisten = \"127.0.0.1:0\"\n[cluster]\nnats_url = \"{url}\"\nmember = \"{member}\"\nlease_ttl = \"5s\"\n[teams.channels.events]\nwebhook_url = \"{hook}\"\n",
        state = lit(&dir.join("state")),
        cache = lit(&root().join("target/tf-test-cache")),
        url = nats.url(),
        hook = teams.url(hook),
    );
    for (name, label) in plugins {
        text.push_str(&format!(
            "[[plugins]]\nname = \"{name}\"\ncomponent = {}\ntriggers = [{triggers}]\nconcurrency = 8\n[plugins.grants]\nteams = [\"events\"]\nentities = [\"Customer\"]\n[plugins.config]\nlabel = \"{label}\"\n[plugins.retry]\nattempts = 6\nfirst_wait = \"200ms\"\nmax_wait = \"1s\"\n",
            lit(&guest("recorder")),
        ));
    }
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `n` members named `<prefix>0`… with the recorder as `plugins`, each in
/// its own folder.
fn members_configs(
    n: usize,
    nats: &NatsServer,
    teams: &TeamsStub,
    prefix: &str,
    triggers: &str,
    plugins: &[(&str, &str)],
) -> (Vec<tempfile::TempDir>, Vec<PathBuf>) {
    let dirs: Vec<_> = (0..n).map(|_| tempdir()).collect();
    let configs = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            member_config(
                d.path(),
                nats,
                teams,
                &format!("{prefix}{i}"),
                triggers,
                plugins,
            )
        })
        .collect();
    (dirs, configs)
}

/// `triggerfish cluster status --json`.
fn status(config: &Path) -> Value {
    let r = triggerfish(
        &[
            "cluster",
            "status",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_ok("cluster status");
    r.json()
}

/// What the recorder posted: (event id, kind, label) per request.
fn posted(teams: &TeamsStub) -> Vec<(String, String, String)> {
    teams
        .received()
        .iter()
        .filter_map(|r| {
            let text = r
                .body
                .pointer("/attachments/0/content/body/0/text")?
                .as_str()?;
            let v: Value = serde_json::from_str(text).ok()?;
            Some((
                v["id"].as_str()?.to_owned(),
                v["kind"].as_str()?.to_owned(),
                v["label"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// Every run status in the cluster's bucket, read with a real client.
async fn run_states(url: &str) -> Vec<Value> {
    use futures::StreamExt as _;
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let kv = js.get_key_value("tf_runs").await.unwrap();
    let keys: Vec<String> = kv
        .keys()
        .await
        .unwrap()
        .filter_map(|k| async { k.ok() })
        .collect()
        .await;
    let mut out = Vec::new();
    for k in keys {
        if let Some(v) = kv.get(&k).await.unwrap() {
            out.push(serde_json::from_slice(&v).unwrap());
        }
    }
    out
}

/// One HTTP call to a member: (status, body text).
fn call(
    rt: &tokio::runtime::Runtime,
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, String) {
    rt.block_on(async {
        let mut req = c.request(method, url);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < give_up, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ten_thousand_events_through_a_kill_9_and_a_nats_restart() {
    const EVENTS: usize = 10_000;
    const PLUGINS: [(&str, &str); 2] = [("rec-a", "a"), ("rec-b", "b")];
    // At most this many runs are in flight on one member (2 plugins × 8).
    const IN_FLIGHT_PER_MEMBER: usize = 16;
    let mut nats = NatsServer::start();
    let teams = TeamsStub::start();
    let (_dirs, configs) = members_configs(
        3,
        &nats,
        &teams,
        "m",
        "\"data-source-refresh-failed\"",
        &PLUGINS,
    );
    let mut members: Vec<Option<Daemon>> = configs
        .iter()
        .map(|c| Some(Daemon::start(c, &[])))
        .collect();
    let rt = rt();
    let c = reqwest::Client::new();
    let mut accepted = vec![false; EVENTS];
    let mut count = 0;
    // (accepted so far, what to do)
    let mut plan = vec![
        (2_500, "kill m0"),
        (4_500, "restart m0"),
        (6_500, "restart NATS"),
    ];
    plan.reverse();
    let started = Instant::now();
    while count < EVENTS {
        let urls: Vec<String> = members
            .iter()
            .flatten()
            .map(|d| d.url("/v1/events"))
            .collect();
        let todo: Vec<usize> = (0..EVENTS).filter(|i| !accepted[*i]).take(48).collect();
        let results = rt.block_on(futures::future::join_all(todo.iter().map(|&i| {
            let c = c.clone();
            let url = urls[i % urls.len()].clone();
            async move {
                let body = json!({"trigger": "data-source-refresh-failed", "id": format!("ev-{i:05}"), "source": "crm"});
                let ok = c
                    .post(&url)
                    .timeout(Duration::from_secs(20))
                    .body(body.to_string())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                (i, ok)
            }
        })));
        let before = count;
        for (i, ok) in results {
            if ok && !accepted[i] {
                accepted[i] = true;
                count += 1;
            }
        }
        if count == before {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "posting stalled at {count}"
        );
        if plan.last().is_some_and(|(at, _)| count >= *at) {
            let (_, action) = plan.pop().unwrap();
            eprintln!("{action} at {count} events accepted");
            match action {
                "kill m0" => members[0].take().unwrap().kill9(),
                "restart m0" => members[0] = Some(Daemon::start(&configs[0], &[])),
                _ => nats.restart(),
            }
        }
    }
    eprintln!(
        "10,000 events accepted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every run reaches the sink.
    let expected: HashSet<(String, String)> = (0..EVENTS)
        .flat_map(|i| {
            PLUGINS
                .iter()
                .map(move |(_, l)| (format!("ev-{i:05}"), l.to_string()))
        })
        .collect();
    wait_for("every run at the sink", Duration::from_secs(600), || {
        let seen: HashSet<(String, String)> = posted(&teams)
            .into_iter()
            .map(|(id, _, l)| (id, l))
            .collect();
        expected.is_subset(&seen)
    });
    eprintln!(
        "every run delivered {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    wait_for("the runs stream to empty", Duration::from_secs(120), || {
        let s = status(&configs[1]);
        s["runs_waiting"] == 0
            && s["consumers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["ack_pending"] == 0)
    });
    let s = status(&configs[1]);
    assert_eq!(s["events"], EVENTS, "each event stored once: {s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    assert_eq!(s["members"].as_array().unwrap().len(), 3, "{s}");

    // Exactly one succeeded run per (event, plugin).
    let states = rt.block_on(run_states(&nats.url()));
    let mut by_status: HashMap<String, usize> = HashMap::new();
    let mut runs: HashSet<(String, String)> = HashSet::new();
    for st in &states {
        *by_status
            .entry(st["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert!(runs.insert((
            st["event_id"].as_str().unwrap().to_owned(),
            st["plugin"].as_str().unwrap().to_owned()
        )));
    }
    assert_eq!(
        by_status.get("succeeded"),
        Some(&(EVENTS * PLUGINS.len())),
        "{by_status:?}"
    );
    assert_eq!(states.len(), EVENTS * PLUGINS.len());
    let workers: HashSet<&str> = states
        .iter()
        .map(|s| s["member"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 3, "every member took runs: {workers:?}");

    // Duplicates only from sends in flight at the kill and at the restart.
    let mut sent: HashMap<(String, String), usize> = HashMap::new();
    for (id, _, label) in posted(&teams) {
        *sent.entry((id, label)).or_default() += 1;
    }
    let duplicates: usize = sent.values().map(|n| n - 1).sum();
    let bound = IN_FLIGHT_PER_MEMBER + 3 * IN_FLIGHT_PER_MEMBER;
    eprintln!("duplicates at the sink: {duplicates} (bound {bound})");
    assert!(duplicates <= bound, "{duplicates} duplicates > {bound}");
    for m in members.into_iter().flatten() {
        assert_eq!(m.stop(), 0);
    }
}

const CRM_BELOW: &str = "ContactId,FirstName,LastName,Email,Tier\n1,Ann,Lee,ann@example.com,gold\n2,Bob,Ray,bob@example.com,gold\n3,Cy,Day,cy@example.com,silver\n";
const CRM_ABOVE: &str = "ContactId,FirstName,LastName,Email,Tier\n1,Ann,Lee,ann@example.com,gold\n2,Bob,Ray,bob@example.com,gold\n3,Cy,Day,cy@example.com,gold\n4,Di,Fox,di@example.com,gold\n";

fn workspace(data: &Path) -> String {
    format!(
        r#"
[insights]
retries = 0
roots = [{root}]
[[insights.sources]]
name = "crm"
path = {crm}
key = "ContactId"
[insights.sources.map]
FirstName = "FirstName"
LastName = "LastName"
Email = "Email"
LoyaltyTier = "Tier"
[insights.unification]
priority = ["crm"]
[[insights.unification.rules]]
name = "email"
fields = ["Email"]
[[insights.segments]]
name = "gold"
filter = "LoyaltyTier eq 'gold'"
thresholds = [{{ value = 3, direction = "both" }}]
"#,
        crm = lit(&data.join("crm.csv")),
        root = lit(data),
    )
}

fn crossings(teams: &TeamsStub) -> Vec<String> {
    posted(teams)
        .into_iter()
        .filter(|(_, kind, _)| kind == "segment-threshold-crossed")
        .map(|(id, _, _)| id)
        .collect()
}

/// The member holding the lease, and the current generation's number and author.
fn leader_and_generation(config: &Path) -> (Option<String>, u64, String) {
    let s = status(config);
    (
        s["refresher"].as_str().map(str::to_owned),
        s["generation"]["number"].as_u64().unwrap_or(0),
        s["generation"]["member"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn a_killed_refresher_is_replaced_and_no_crossing_is_lost_or_raised_twice() {
    let nats = NatsServer::start();
    let teams = TeamsStub::start();
    let data = tempdir();
    std::fs::write(data.path().join("crm.csv"), CRM_BELOW).unwrap();
    let ws = workspace(data.path());
    let (_dirs, configs) = members_configs(
        3,
        &nats,
        &teams,
        "r",
        "\"segment-threshold-crossed\", \"unification-refresh-completed\"",
        &[("rec", "")],
    );
    for p in &configs {
        let text = std::fs::read_to_string(p).unwrap();
        std::fs::write(p, format!("{text}{ws}")).unwrap();
    }
    // r0 refreshes first, and dies right after journaling a crossing:
    // before its generation or the crossing leaves the machine.
    let mut r0 = Daemon::start(
        &configs[0],
        &[(
            "TRIGGERFISH_TEST_ABORT_AFTER_JOURNAL",
            "segment-threshold-crossed",
        )],
    );
    wait_for(
        "r0 to publish generation 1",
        Duration::from_secs(120),
        || leader_and_generation(&configs[0]) == (Some("r0".into()), 1, "r0".into()),
    );
    let mut others: Vec<Option<Daemon>> = vec![
        Some(Daemon::start(&configs[1], &[])),
        Some(Daemon::start(&configs[2], &[])),
    ];
    assert!(
        crossings(&teams).is_empty(),
        "2 gold customers: below the threshold"
    );

    std::fs::write(data.path().join("crm.csv"), CRM_ABOVE).unwrap();
    let rt = rt();
    let c = reqwest::Client::new();
    let url = others[0].as_ref().unwrap().url("/v1/refresh");
    let (code, body) = call(&rt, &c, reqwest::Method::POST, &url, None);
    assert_eq!(code, 202, "a member asks the refresher: {body}");
    assert!(body.contains("\"refresher\":\"r0\""), "{body}");
    let exited = Instant::now();
    let status0 = r0.child.wait().unwrap();
    assert!(
        !status0.success(),
        "r0 aborted after journaling the crossing"
    );
    // Another member takes the lease (5 s) and refreshes from generation 1.
    let mut took_over = None;
    wait_for("a new refresher", Duration::from_secs(60), || {
        let (leader, _, _) = leader_and_generation(&configs[1]);
        if leader.as_deref().is_some_and(|l| l != "r0") {
            took_over = Some((leader.unwrap(), exited.elapsed()));
            true
        } else {
            false
        }
    });
    let (second, took) = took_over.unwrap();
    eprintln!(
        "{second} took over {:.1} s after the refresher died",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(30),
        "takeover within the lease's bound: {took:?}"
    );
    wait_for(
        "the crossing r0 never published",
        Duration::from_secs(120),
        || crossings(&teams).len() == 1,
    );
    wait_for(
        "the new refresher's generation",
        Duration::from_secs(60),
        || {
            let (_, n, by) = leader_and_generation(&configs[1]);
            n >= 2 && by == second
        },
    );

    // Kill the second refresher too: the third refreshes from its
    // generation, where the crossing already happened.
    let idx = if second == "r1" { 0 } else { 1 };
    others[idx].take().unwrap().kill9();
    let third = if second == "r1" { "r2" } else { "r1" };
    let third_config = &configs[if third == "r1" { 1 } else { 2 }];
    wait_for(
        "the third refresher's generation",
        Duration::from_secs(60),
        || {
            let (leader, _, by) = leader_and_generation(third_config);
            leader.as_deref() == Some(third) && by == third
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        crossings(&teams).len(),
        1,
        "the crossing is raised once: {:?}",
        crossings(&teams)
    );

    // And a crossing back down is raised once more.
    std::fs::write(data.path().join("crm.csv"), CRM_BELOW).unwrap();
    let live = others.iter().flatten().next().unwrap();
    let (code, _) = call(
        &rt,
        &c,
        reqwest::Method::POST,
        &live.url("/v1/refresh"),
        None,
    );
    assert_eq!(code, 202);
    wait_for("the crossing back down", Duration::from_secs(60), || {
        crossings(&teams).len() == 2
    });
    let ids = crossings(&teams);
    assert_ne!(ids[0], ids[1]);
    // Runs of a refresh's events read its generation, on whichever member.
    let unified: Vec<Value> = teams
        .received()
        .iter()
        .filter_map(|r| {
            serde_json::from_str::<Value>(
                r.body
                    .pointer("/attachments/0/content/body/0/text")?
                    .as_str()?,
            )
            .ok()
        })
        .filter(|v| v["kind"] == "unification-refresh-completed")
        .collect();
    assert!(
        unified.len() >= 4,
        "{unified:?} {:?}",
        rt.block_on(run_states(&nats.url()))
    );
    for u in &unified {
        assert_eq!(
            u["fields"]["customers_seen"], u["fields"]["profiles"],
            "{u}"
        );
    }
    for m in others.into_iter().flatten() {
        assert_eq!(m.stop(), 0);
    }
}

#[test]
fn members_running_different_plugin_versions_share_the_runs() {
    const EVENTS: usize = 200;
    let nats = NatsServer::start();
    let teams = TeamsStub::start();
    let (a, b) = (tempdir(), tempdir());
    let trig = "\"data-source-refresh-failed\"";
    // Mid-upgrade: "old" runs `rec` as the recorder component; "new" runs
    // `rec` as another component (teams-on-refresh-failure: a card), and a
    // plugin the old member does not have yet.
    let old = member_config(a.path(), &nats, &teams, "old", trig, &[("rec", "v1")]);
    let new = member_config(
        b.path(),
        &nats,
        &teams,
        "new",
        trig,
        &[("rec", "v2"), ("added", "added")],
    );
    let text = std::fs::read_to_string(&new).unwrap();
    let recorder = lit(&guest("recorder"));
    let at = text.find(&recorder).unwrap();
    let text = format!(
        "{}{}{}",
        &text[..at],
        lit(&guest("teams-on-refresh-failure")),
        &text[at + recorder.len()..]
    )
    .replacen("label = \"v2\"", "label = \"v2\"\nchannel = \"events\"", 1);
    std::fs::write(&new, text).unwrap();
    let d_old = Daemon::start(&old, &[]);
    let d_new = Daemon::start(&new, &[]);
    let rt = rt();
    let c = reqwest::Client::new();
    rt.block_on(async {
        for i in 0..EVENTS {
            // Events enter on the new member: it routes to both plugins.
            let body = json!({"trigger": "data-source-refresh-failed", "id": format!("up-{i:03}"), "source": format!("up-{i:03}")});
            let r = c.post(d_new.url("/v1/events")).body(body.to_string()).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    });
    // v1 posts the recorder's JSON (by event id); v2 a card naming the source.
    let cards = |teams: &TeamsStub| -> Vec<String> {
        teams
            .received()
            .iter()
            .filter_map(|r| {
                let text = r.body.to_string();
                let at = text.find("Data source refresh failed: up-")?;
                Some(text[at + "Data source refresh failed: ".len()..][..6].to_owned())
            })
            .collect()
    };
    wait_for("every run at the sink", Duration::from_secs(180), || {
        let p = posted(&teams);
        let mut rec: HashSet<String> = p
            .iter()
            .filter(|(_, _, l)| l == "v1")
            .map(|(id, _, _)| id.clone())
            .collect();
        rec.extend(cards(&teams));
        let added: HashSet<&String> = p
            .iter()
            .filter(|(_, _, l)| l == "added")
            .map(|(id, _, _)| id)
            .collect();
        rec.len() == EVENTS && added.len() == EVENTS
    });
    let v1 = posted(&teams).iter().filter(|(_, _, l)| l == "v1").count();
    let v2 = cards(&teams).len();
    eprintln!("rec runs by version: v1 {v1}, v2 {v2}");
    assert!(
        v1 > 0 && v2 > 0,
        "both versions took runs: v1 {v1}, v2 {v2}"
    );
    assert_eq!(v1 + v2, EVENTS, "each event handled by one version, once");
    let s = status(&old);
    let digests: HashSet<&str> = s["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["plugins"].as_array().unwrap())
        .filter(|p| p["name"] == "rec")
        .map(|p| p["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 2, "the status shows both versions: {s}");
    let states = rt.block_on(run_states(&nats.url()));
    assert_eq!(states.len(), 2 * EVENTS);
    assert!(
        states.iter().all(|s| s["status"] == "succeeded"),
        "no run lost or dead-lettered"
    );
    assert!(
        states
            .iter()
            .filter(|s| s["plugin"] == "added")
            .all(|s| s["member"] == "new"),
        "only the member that has a plugin runs it"
    );
    assert_eq!(d_old.stop(), 0);
    assert_eq!(d_new.stop(), 0);
}

#[test]
fn dead_letters_are_replayed_and_the_cluster_is_visible() {
    let nats = NatsServer::start();
    let teams = TeamsStub::start();
    let dirs: Vec<_> = (0..2).map(|_| tempdir()).collect();
    let configs: Vec<PathBuf> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let c = member_config_at(
                d.path(),
                &nats,
                &teams,
                "/switch",
                &format!("v{i}"),
                "\"data-source-refresh-failed\"",
                &[("rec", "")],
            );
            let text = std::fs::read_to_string(&c)
                .unwrap()
                .replace("attempts = 6", "attempts = 2");
            std::fs::write(&c, text).unwrap();
            c
        })
        .collect();
    let members: Vec<Daemon> = configs.iter().map(|c| Daemon::start(c, &[])).collect();
    teams.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let rt = rt();
    let c = reqwest::Client::new();
    let doomed =
        json!({"trigger": "data-source-refresh-failed", "id": "doomed-1", "source": "crm"});
    let post = reqwest::Method::POST;
    let (code, body) = call(
        &rt,
        &c,
        post.clone(),
        &members[0].url("/v1/events"),
        Some(doomed.clone()),
    );
    assert_eq!(code, 202, "{body}");
    let (_, again) = call(&rt, &c, post, &members[1].url("/v1/events"), Some(doomed));
    assert!(
        again.contains("\"duplicate\":true"),
        "the same id through another member: {again}"
    );
    wait_for("the dead letter", Duration::from_secs(60), || {
        status(&configs[0])["dead_letters"] == 1
    });
    let state = rt.block_on(run_states(&nats.url()));
    assert_eq!(state.len(), 1);
    assert_eq!(state[0]["status"], "dead");
    assert_eq!(
        state[0]["attempts"], 3,
        "a first attempt and 2 retries: {}",
        state[0]
    );
    assert!(
        state[0]["error"].as_str().unwrap().contains("503"),
        "{}",
        state[0]
    );

    // The text status names members, the refresher and the dead letter.
    let text = triggerfish(
        &[
            "cluster",
            "status",
            "--config",
            configs[1].to_str().unwrap(),
        ],
        &[],
    );
    text.assert_ok("cluster status");
    for want in [
        "members:     2",
        "  v0 ",
        "  v1 ",
        "1 dead letter(s)",
        "refresher:   v",
    ] {
        assert!(text.stdout.contains(want), "'{want}' in:\n{}", text.stdout);
    }
    // Per-member metrics carry the cluster series; the console shows it.
    wait_for(
        "both members in the metrics",
        Duration::from_secs(30),
        || {
            let (_, m) = call(
                &rt,
                &c,
                reqwest::Method::GET,
                &members[1].url("/metrics"),
                None,
            );
            m.contains("triggerfish_cluster_members 2")
                && m.contains("triggerfish_cluster_dead_letters 1")
        },
    );
    let (_, page) = call(
        &rt,
        &c,
        reqwest::Method::GET,
        &members[0].url("/cluster"),
        None,
    );
    for want in ["Members (2)", ">v0<", ">v1<", "dead letters"] {
        assert!(
            page.contains(want),
            "'{want}' in the console's cluster page"
        );
    }
    // A second daemon under a live member's name is refused.
    let twin_dir = tempdir();
    let twin = member_config_at(
        twin_dir.path(),
        &nats,
        &teams,
        "/switch",
        "v0",
        "\"data-source-refresh-failed\"",
        &[("rec", "")],
    );
    let r = triggerfish(&["run", "--config", twin.to_str().unwrap()], &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&format!(
            "member name 'v0' is in use by the live daemon at http://{}",
            members[0].addr
        )),
        "{}",
        r.stderr
    );
    // Ids are the journal's: a cluster replays its dead letters.
    let refused = triggerfish(
        &[
            "runs",
            "replay",
            "7",
            "--config",
            configs[0].to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("use `runs replay --dead [--plugin NAME]`"),
        "{}",
        refused.stderr
    );

    teams.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let replay = triggerfish(
        &[
            "runs",
            "replay",
            "--dead",
            "--plugin",
            "rec",
            "--config",
            configs[0].to_str().unwrap(),
        ],
        &[],
    );
    replay.assert_ok("runs replay --dead");
    assert!(
        replay
            .stdout
            .contains("event doomed-1 / plugin rec: republished (replay 1)"),
        "{}",
        replay.stdout
    );
    wait_for(
        "the replayed run to succeed",
        Duration::from_secs(60),
        || {
            let s = rt.block_on(run_states(&nats.url()));
            s.len() == 1 && s[0]["status"] == "succeeded" && s[0]["replay"] == 1
        },
    );
    assert_eq!(status(&configs[0])["dead_letters"], 0);
    assert!(posted(&teams).iter().any(|(id, _, _)| id == "doomed-1"));
    for m in members {
        assert_eq!(m.stop(), 0);
    }
    // A changed lease_ttl reaches the bucket at the next start.
    let text = std::fs::read_to_string(&configs[0]).unwrap();
    std::fs::write(
        &configs[0],
        text.replace("lease_ttl = \"5s\"", "lease_ttl = \"7s\""),
    )
    .unwrap();
    assert_eq!(Daemon::start(&configs[0], &[]).stop(), 0);
    let max_age = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        js.get_stream("KV_tf_lease")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .config
            .max_age
    });
    assert_eq!(max_age, Duration::from_secs(7));
}
