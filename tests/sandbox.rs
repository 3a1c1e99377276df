//! The sandbox: grants, deadlines, memory caps, WASI isolation, traps, stdio
//! capture; one misbehaving plugin never disturbs the host or the next event.

use crate::support;

use std::path::Path;

use support::{guest, lit, root, tempdir};
use triggerfish::config_file::Config;
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_runtime::context::{DeliveryStatus, LogSource};
use triggerfish_runtime::{Failure, Host, Outcome, Select};

/// One `[[plugins]]` entry running the misbehaving guest in `mode`.
fn plugin(name: &str, mode: &str, extra: &str) -> String {
    format!(
        r#"
[[plugins]]
name = "{name}"
component = {component}
triggers = ["full-refresh-completed"]
{extra}
[plugins.config]
mode = "{mode}"
"#,
        component = lit(&guest("misbehaving")),
    )
}

fn host(dir: &Path, plugins: &str, extra_top: &str) -> Host {
    let text = format!(
        r#"
[host]
state_dir = {state}
cache_dir = {cache}

[teams.channels.ops]
mode = "outbox"

[email]
mode = "outbox"
from = "bot@example.com"
[email.groups]
data-owners = ["ann@example.com"]
{extra_top}
{plugins}
"#,
        state = lit(&dir.join("state")),
        cache = lit(&root().join("target/tf-test-cache")),
    );
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Host::new(&config.settings, Select::All).unwrap_or_else(|e| panic!("{e}"))
}

async fn fire(host: &Host, plugin: &str, id: &str) -> Outcome {
    let event = build_event(
        TriggerKind::FullRefreshCompleted,
        Some(&format!(r#"{{"id":"{id}"}}"#)),
    )
    .unwrap();
    host.deliver(plugin, &event).await.unwrap()
}

fn plugin_error(o: &Outcome) -> String {
    match &o.result {
        Err(Failure::Plugin(m)) => m.clone(),
        other => panic!(
            "expected a plugin error, got {other:?}; logs {:?}",
            o.record.logs
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_not_granted_are_denied() {
    let dir = tempdir();
    let plugins = [
        plugin("teams-nogrant", "teams", "")
            .replace("mode = \"teams\"", "mode = \"teams\"\nchannel = \"ops\""),
        plugin("email-nogrant", "email", "")
            .replace("mode = \"email\"", "mode = \"email\"\nto = \"data-owners\""),
        plugin(
            "email-otherdomain",
            "email",
            "[plugins.grants]\nemail_groups = [\"data-owners\"]\nemail_domains = [\"example.org\"]",
        )
        .replace(
            "mode = \"email\"",
            "mode = \"email\"\nto = \"mallory@evil.test\"",
        ),
        plugin("entities-nogrant", "entities", ""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");

    let o = fire(&host, "teams-nogrant", "e1").await;
    let msg = plugin_error(&o);
    assert!(msg.contains("denied"), "{msg}");
    assert!(
        msg.contains("teams channel 'ops' is not granted to this plugin"),
        "{msg}"
    );
    assert!(
        o.record.deliveries.is_empty(),
        "a denied call delivers nothing"
    );

    let msg = plugin_error(&fire(&host, "email-nogrant", "e2").await);
    assert!(
        msg.contains("email group 'data-owners' is not granted to this plugin"),
        "{msg}"
    );

    let msg = plugin_error(&fire(&host, "email-otherdomain", "e3").await);
    assert!(
        msg.contains(
            "email address 'mallory@evil.test' is outside the domains granted to this plugin"
        ),
        "{msg}"
    );

    let msg = plugin_error(&fire(&host, "entities-nogrant", "e4").await);
    assert!(msg.contains("no entity is granted to this plugin"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn granted_teams_goes_to_the_outbox() {
    let dir = tempdir();
    let p = plugin("poster", "teams", "[plugins.grants]\nteams = [\"ops\"]").replace(
        "mode = \"teams\"",
        "mode = \"teams\"\nchannel = \"ops\"\ntext = \"refresh failed\"",
    );
    let host = host(dir.path(), &p, "");
    let o = fire(&host, "poster", "evt-1").await;
    assert_eq!(o.result, Ok(()), "{:?}", o.record);
    let d = &o.record.deliveries[0];
    assert_eq!(d.capability, "teams");
    let DeliveryStatus::Outbox(path) = &d.status else {
        panic!("{d:?}")
    };
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        body["attachments"][0]["content"]["body"][0]["text"],
        "refresh failed"
    );
    assert!(path.starts_with(dir.path().join("state/outbox/teams/ops")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_looping_forever_is_stopped_and_the_next_event_runs() {
    let dir = tempdir();
    let plugins = [
        plugin("looper", "loop", "[plugins.limits]\ntimeout_ms = 300"),
        plugin("fine", "noop", ""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");
    let o = fire(&host, "looper", "evt-loop").await;
    assert_eq!(o.result, Err(Failure::Deadline { ms: 300 }));
    assert_eq!(
        o.error_text().unwrap(),
        "plugin 'looper' failed on event evt-loop: deadline 300 ms exceeded"
    );
    // The host goes on: the next event, to another plugin and to the same one.
    assert_eq!(fire(&host, "fine", "evt-next").await.result, Ok(()));
    assert_eq!(
        fire(&host, "looper", "evt-again").await.result,
        Err(Failure::Deadline { ms: 300 })
    );
    assert_eq!(fire(&host, "fine", "evt-last").await.result, Ok(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_dispatch_isolates_a_looping_plugin() {
    let dir = tempdir();
    let plugins = [
        plugin("looper", "loop", "[plugins.limits]\ntimeout_ms = 300"),
        plugin("fine", "noop", ""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");
    let event = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
    let mut outcomes = host.dispatch(&event).await;
    outcomes.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].plugin, "fine");
    assert_eq!(outcomes[0].result, Ok(()));
    assert_eq!(outcomes[1].result, Err(Failure::Deadline { ms: 300 }));
}

#[tokio::test(flavor = "multi_thread")]
async fn allocating_past_the_cap_fails_with_the_memory_cause() {
    let dir = tempdir();
    let p = plugin("hog", "alloc", "[plugins.limits]\nmemory_mib = 16");
    let host = host(dir.path(), &[p, plugin("fine", "noop", "")].concat(), "");
    let o = fire(&host, "hog", "evt-mem").await;
    assert_eq!(
        o.result,
        Err(Failure::Memory { mib: 16 }),
        "{:?}",
        o.record.logs
    );
    assert_eq!(
        o.error_text().unwrap(),
        "plugin 'hog' failed on event evt-mem: memory limit 16 MiB exceeded"
    );
    assert_eq!(fire(&host, "fine", "evt-after").await.result, Ok(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn files_environment_and_sockets_are_out_of_reach() {
    // A real listener, so a connect would succeed if sockets were allowed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempdir();
    let p = plugin("prober", "sandbox", "").replace(
        "mode = \"sandbox\"",
        &format!("mode = \"sandbox\"\nprobe_addr = \"{addr}\""),
    );
    let host = host(dir.path(), &p, "");
    let o = fire(&host, "prober", "evt-probe").await;
    let logs: Vec<&str> = o.record.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(o.result, Ok(()), "{logs:#?}");
    for probe in ["fs-read", "read-dir", "env", "tcp"] {
        assert!(
            logs.iter()
                .any(|l| l.contains(probe) && l.contains("denied")),
            "no denied line for {probe}: {logs:#?}"
        );
    }
    assert!(!logs.iter().any(|l| l.contains("ALLOWED")), "{logs:#?}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the guest reached the listener");
}

#[tokio::test(flavor = "multi_thread")]
async fn traps_and_errors_are_reported_with_their_cause() {
    let dir = tempdir();
    let plugins = [
        plugin("panics", "trap", ""),
        plugin("fails", "fail", ""),
        plugin("talks", "stdout", ""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");

    let o = fire(&host, "panics", "evt-trap").await;
    let Err(Failure::Trap(cause)) = &o.result else {
        panic!("{:?}", o.result)
    };
    assert!(
        cause.contains("unreachable") || cause.contains("wasm trap"),
        "{cause}"
    );
    assert!(
        o.record
            .logs
            .iter()
            .any(|l| l.source == LogSource::Stderr && l.message.contains("deliberate trap")),
        "{:?}",
        o.record.logs
    );
    assert!(o
        .error_text()
        .unwrap()
        .starts_with("plugin 'panics' failed on event evt-trap: trap: "));

    let o = fire(&host, "fails", "evt-fail").await;
    assert_eq!(o.result, Err(Failure::Plugin("deliberate failure".into())));

    let o = fire(&host, "talks", "evt-talk").await;
    assert_eq!(o.result, Ok(()));
    assert!(o
        .record
        .logs
        .iter()
        .any(|l| l.source == LogSource::Stdout && l.message == "hello from stdout"));
    assert!(o
        .record
        .logs
        .iter()
        .any(|l| l.source == LogSource::Stderr && l.message == "hello from stderr"));
}

#[tokio::test(flavor = "multi_thread")]
async fn output_past_the_cap_is_truncated_and_the_plugin_keeps_running() {
    let dir = tempdir();
    let host = host(dir.path(), &plugin("chatty", "flood-stdout", ""), "");
    let o = fire(&host, "chatty", "evt-flood").await;
    assert_eq!(o.result, Ok(()), "{:?}", o.record.logs);
    let logs = &o.record.logs;
    assert!(
        logs.iter()
            .any(|l| l.source == LogSource::Log && l.message == "still running after the flood"),
        "{logs:?}"
    );
    let marker = logs
        .iter()
        .find(|l| l.source == LogSource::Stdout && l.message.starts_with("[output truncated: "))
        .unwrap_or_else(|| panic!("no truncation marker in {logs:?}"));
    // 256 lines of 1024 bytes, 64 KiB kept.
    assert_eq!(
        marker.message,
        format!(
            "[output truncated: {} more bytes past the 64 KiB cap were dropped]",
            256 * 1024 - 64 * 1024
        )
    );
}

/// One worker thread: a guest that never returns must still not starve a
/// neighbour on the same event (it yields at every epoch tick).
#[tokio::test(flavor = "current_thread")]
async fn a_looping_plugin_does_not_starve_its_neighbour_on_one_thread() {
    let dir = tempdir();
    let plugins = [
        plugin("looper", "loop", "[plugins.limits]\ntimeout_ms = 3000"),
        // Sleeping hands the thread over mid-delivery: before epoch yields,
        // the looper then held it past this plugin's deadline.
        plugin("fine", "sleep", "[plugins.limits]\ntimeout_ms = 1000")
            .replace("mode = \"sleep\"", "mode = \"sleep\"\nms = \"50\""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");
    let event = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
    let outcomes = host.dispatch(&event).await;
    let by = |name: &str| outcomes.iter().find(|o| o.plugin == name).unwrap();
    assert_eq!(by("fine").result, Ok(()), "{:?}", by("fine").record.logs);
    assert_eq!(by("looper").result, Err(Failure::Deadline { ms: 3000 }));
}

/// More deliveries at once than the pool has instance slots: they queue for
/// a slot, and none fails for want of one.
#[tokio::test(flavor = "multi_thread")]
async fn more_deliveries_than_instance_slots_queue_instead_of_failing() {
    let dir = tempdir();
    let plugins = [
        plugin("slow", "sleep", "").replace("mode = \"sleep\"", "mode = \"sleep\"\nms = \"150\""),
        plugin("fine", "noop", ""),
    ]
    .concat();
    let host = std::sync::Arc::new(host(dir.path(), &plugins, ""));
    let mut tasks = Vec::new();
    for _ in 0..80 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let event = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
            host.dispatch(&event).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        for o in t.await.unwrap() {
            assert_eq!(o.result, Ok(()), "{}: {:?}", o.plugin, o.result);
            ok += 1;
        }
    }
    assert_eq!(ok, 160);
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / (1024 * 1024)
}

/// Host resources a guest creates (here wasi:http header maps, with no HTTP
/// grant) are capped per instance: the guest traps, the host's memory stays
/// bounded, and a neighbour on the same event is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn host_resources_a_guest_creates_are_capped() {
    let dir = tempdir();
    let plugins = [
        plugin("flooder", "fields-flood", ""),
        plugin("fine", "noop", ""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");
    let before = rss_mib();
    let event = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
    let outcomes = host.dispatch(&event).await;
    let grown = rss_mib().saturating_sub(before);
    let by = |name: &str| outcomes.iter().find(|o| o.plugin == name).unwrap();
    assert_eq!(by("fine").result, Ok(()));
    let Err(Failure::Trap(cause)) = &by("flooder").result else {
        panic!("expected a trap, got {:?}", by("flooder").result)
    };
    assert!(cause.contains("resource table has no free keys"), "{cause}");
    // 1,024 resources of at most 32 KiB each: well under 100 MiB.
    assert!(grown < 100, "host memory grew by {grown} MiB");
}

/// wasi:http reaches only granted origins, and a granted *name* that
/// resolves to an internal address is refused unless that address itself is
/// granted.
#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_is_limited_to_granted_origins_and_public_addresses() {
    let server = support::TeamsStub::start();
    let port = server.addr.port();
    let get = |name: &str, grant: &str, host: &str| {
        plugin(
            name,
            "http-get",
            &format!("[plugins.grants]\noutbound_hosts = [\"{grant}\"]"),
        )
        .replace(
            "mode = \"http-get\"",
            &format!("mode = \"http-get\"\nurl = \"http://{host}:{port}/probe\""),
        )
    };
    let plugins = [
        get("by-address", &format!("127.0.0.1:{port}"), "127.0.0.1"),
        get("by-name", &format!("localhost:{port}"), "localhost"),
        get("elsewhere", "https://api.example.com", "127.0.0.1"),
    ]
    .concat();
    let dir = tempdir();
    let host = host(dir.path(), &plugins, "");

    let o = fire(&host, "by-address", "evt-http-1").await;
    assert_eq!(o.result, Ok(()), "{:?}", o.record.logs);
    assert!(
        o.record
            .logs
            .iter()
            .any(|l| l.message.starts_with("http status ")),
        "{:?}",
        o.record.logs
    );

    let o = fire(&host, "by-name", "evt-http-2").await;
    let err = plugin_error(&o);
    assert!(err.contains("DestinationIpProhibited"), "{err}");
    assert!(
        o.record.logs.iter().any(|l| l.message
            == format!("outbound request to http://localhost:{port} denied: 'localhost' resolves to 127.0.0.1, an internal address (loopback, private, link-local or metadata); grant that address itself to allow it")
            || l.message.contains("resolves to ::1, an internal address")),
        "{:?}",
        o.record.logs
    );

    let o = fire(&host, "elsewhere", "evt-http-3").await;
    let err = plugin_error(&o);
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert!(
        o.record.logs.iter().any(|l| l.message
            == format!(
                "outbound request to http://127.0.0.1:{port} denied: not in outbound_hosts"
            )),
        "{:?}",
        o.record.logs
    );
}

/// Each hostile guest fails with its cause named, while a well-behaved
/// plugin on the same event succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_guests_fail_with_their_cause_and_neighbours_succeed() {
    let dir = tempdir();
    let plugins = [
        plugin("deep", "stack-overflow", ""),
        plugin("chatty", "log-flood", "[plugins.limits]\ntimeout_ms = 500"),
        plugin(
            "spammer",
            "teams-flood",
            "[plugins.limits]\ntimeout_ms = 500\n[plugins.grants]\nteams = [\"ops\"]",
        ),
        plugin("fine", "noop", ""),
    ]
    .concat();
    let host = host(dir.path(), &plugins, "");
    let before = rss_mib();
    let event = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
    let outcomes = host.dispatch(&event).await;
    let by = |name: &str| outcomes.iter().find(|o| o.plugin == name).unwrap();
    assert_eq!(by("fine").result, Ok(()));

    let Err(Failure::Trap(cause)) = &by("deep").result else {
        panic!("{:?}", by("deep").result)
    };
    // Rust's shadow stack runs out of linear memory, or the wasm stack does.
    assert!(
        cause.starts_with("wasm trap: out of bounds memory access")
            || cause.starts_with("wasm trap: call stack exhausted"),
        "{cause}"
    );

    let chatty = by("chatty");
    assert_eq!(chatty.result, Err(Failure::Deadline { ms: 500 }));
    assert_eq!(chatty.record.logs.len(), 1_000, "kept lines are capped");
    assert!(chatty.record.dropped_logs > 0);

    let spammer = by("spammer");
    assert_eq!(spammer.result, Err(Failure::Deadline { ms: 500 }));
    assert!(!spammer.record.deliveries.is_empty());
    let grown = rss_mib().saturating_sub(before);
    assert!(grown < 200, "host memory grew by {grown} MiB");
}

/// A sink slower than the deadline: the delivery ends at the deadline with
/// the cause named, and the host is free for the next event at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_sink_slower_than_the_deadline_ends_the_delivery_at_the_deadline() {
    let teams = support::TeamsStub::start();
    let dir = tempdir();
    let slow = format!("http://{}/slow", teams.addr);
    let plugins = plugin(
        "poster",
        "teams",
        "[plugins.limits]\ntimeout_ms = 700\n[plugins.grants]\nteams = [\"slow\"]",
    )
    .replace("mode = \"teams\"", "mode = \"teams\"\nchannel = \"slow\"");
    let host = host(
        dir.path(),
        &plugins,
        &format!("[teams.channels.slow]\nwebhook_url = \"{slow}\"\n"),
    );
    let o = fire(&host, "poster", "evt-slow").await;
    let text = format!("{:?}", o.result);
    assert!(
        text.contains("teams channel 'slow' did not answer before the deadline")
            || text == "Err(Deadline { ms: 700 })",
        "{text}"
    );
}
