//! Per guest language: component size, first load (compile), cached load,
//! and per-event cost through the host and through bare wasmtime (a fresh
//! instance per event, and one instance reused), against the Rust no-op in
//! the same run. The component is each language's `teams-on-refresh-failure`
//! port, built with `triggerfish plugin build`'s code; the event is one it
//! ignores, so the figure is the cost of running the guest at all.
//!
//! `cargo bench -p triggerfish-tests --bench languages [-- EVENTS]`

mod bare;
#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use triggerfish::config_file::Config;
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_runtime::engine::{Runtime, RuntimeOptions};
use triggerfish_runtime::{Host, Select};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn runtime(cache: Option<&Path>) -> Runtime {
    Runtime::new(&RuntimeOptions {
        max_memory_bytes: 256 << 20,
        cache_dir: cache.map(Path::to_owned),
    })
    .expect("runtime")
}

struct Row {
    name: String,
    bytes: u64,
    compile: Duration,
    cached: Duration,
    host: Duration,
    bare_fresh: Duration,
    bare_reused: Duration,
}

fn measure(name: &str, component: &Path, events: u32, rt: &tokio::runtime::Runtime) -> Row {
    let bytes = std::fs::metadata(component).expect("component").len();
    // First load: compile into an empty cache (twice; the smaller time).
    let mut compiles = Vec::new();
    let cache = support::tempdir();
    for i in 0..2 {
        let dir = cache.path().join(format!("cold{i}"));
        let r = runtime(Some(&dir));
        let t = Instant::now();
        let loaded = r.load(component).expect("load");
        compiles.push(t.elapsed());
        assert!(!loaded.from_cache);
    }
    // Cached load: a new runtime on a warm cache, as a restarted daemon.
    let mut cached = Vec::new();
    for _ in 0..5 {
        let r = runtime(Some(&cache.path().join("cold0")));
        let t = Instant::now();
        let loaded = r.load(component).expect("load");
        cached.push(t.elapsed());
        assert!(loaded.from_cache);
    }

    let dir = support::tempdir();
    let path = dir.path().join("triggerfish.toml");
    std::fs::write(
        &path,
        format!(
            "[host]\nstate_dir = {}\ncache_dir = {}\n[teams.channels.ops]\nmode = \"outbox\"\n\
             [[plugins]]\nname = \"p\"\ncomponent = {}\n[plugins.grants]\nteams = [\"ops\"]\n\
             [plugins.limits]\nmemory_mib = 256\n[plugins.config]\nmode = \"noop\"\n",
            support::lit(&dir.path().join("state")),
            support::lit(&cache.path().join("cold0")),
            support::lit(component)
        ),
    )
    .expect("config");
    let config = Config::load(&path).expect("config");
    let host = Host::new(&config.settings, Select::All).expect("host");
    let event = build_event(TriggerKind::FullRefreshCompleted, None).expect("event");
    let wit_event = triggerfish_runtime::bindings::Event::from(&event);
    let engine = host.runtime().engine().clone();
    let pre = bare::pre(&engine, component);

    let per = |t: Instant| t.elapsed() / events;
    let (host_cost, fresh, reused) = rt.block_on(async {
        for _ in 0..3 {
            host.deliver("p", &event).await.expect("warm-up");
        }
        let t = Instant::now();
        for _ in 0..events {
            let o = host.deliver("p", &event).await.expect("deliver");
            assert!(o.result.is_ok(), "{name}: {:?}", o.result);
        }
        let host_cost = per(t);
        let t = Instant::now();
        for _ in 0..events {
            bare::deliver(&engine, &pre, &wit_event).await;
        }
        let fresh = per(t);
        let t = Instant::now();
        bare::deliver_reused(&engine, &pre, &wit_event, events).await;
        (host_cost, fresh, per(t))
    });
    Row {
        name: name.to_owned(),
        bytes,
        compile: median(compiles),
        cached: median(cached),
        host: host_cost,
        bare_fresh: fresh,
        bare_reused: reused,
    }
}

fn main() {
    let events: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let root = support::root();
    let mut components: Vec<(String, PathBuf)> = vec![
        ("rust no-op".into(), support::guest("noop")),
        ("rust".into(), support::guest("teams-on-refresh-failure")),
    ];
    for lang in ["c", "js", "python"] {
        let dir = root
            .join("plugins")
            .join(lang)
            .join("teams-on-refresh-failure");
        let built = triggerfish_package::build::build(&dir)
            .unwrap_or_else(|e| panic!("building {}: {e}", dir.display()));
        eprintln!("built {lang} in {:.1} s", built.took.as_secs_f64());
        components.push((lang.into(), built.component));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    let rows: Vec<Row> = components
        .iter()
        .map(|(name, c)| {
            eprintln!("measuring {name}…");
            measure(name, c, events, &rt)
        })
        .collect();
    let base = rows[0].host.as_secs_f64();
    println!("{events} events per figure; per-event cost is the mean.\n");
    println!("| component | size | first load (compile) | cached load | per event, host | × Rust no-op | bare, fresh instance | bare, reused instance |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2} MB | {:.2} s | {:.1} ms | {:.0} µs | {:.1} | {:.0} µs | {:.1} µs |",
            r.name,
            r.bytes as f64 / 1e6,
            r.compile.as_secs_f64(),
            r.cached.as_secs_f64() * 1e3,
            r.host.as_secs_f64() * 1e6,
            r.host.as_secs_f64() / base,
            r.bare_fresh.as_secs_f64() * 1e6,
            r.bare_reused.as_secs_f64() * 1e6,
        );
    }
}
