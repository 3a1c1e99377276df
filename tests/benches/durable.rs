//! The durable path, end to end, in one process: events ingested the way
//! `POST /v1/events` does (journaled, group commit, `synchronous = FULL`),
//! runs taken by the daemon's scheduler and attempted on a no-op plugin,
//! attempts recorded. Compared, in the same run, with the same events
//! dispatched with no journal (host) and with bare wasmtime (the ceiling).
//! Also: latency from accepted to plugin start at a paced 1,000 events/s,
//! and the daemon's RSS with 50 plugins loaded and idle.
//!
//! `cargo bench -p triggerfish-tests --bench durable`; see BENCHMARKS.md.

mod bare;
#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use triggerfish::config_file::Config;
use triggerfish::daemon::metrics::Metrics;
use triggerfish::daemon::scheduler::Scheduler;
use triggerfish::daemon::Shared;
use triggerfish_data::event::{build_event, Event, TriggerKind};
use triggerfish_data::journal::Journal;
use triggerfish_runtime::routing::Routes;
use triggerfish_runtime::{Host, Select};

const EVENTS: usize = 20_000;
const PRODUCERS: usize = 256;
const CONCURRENCY: usize = 64;

fn events(n: usize, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| {
            build_event(
                TriggerKind::FullRefreshCompleted,
                Some(&format!(r#"{{"id":"{tag}-{i}"}}"#)),
            )
            .expect("event")
        })
        .collect()
}

fn config(dir: &std::path::Path, plugins: usize) -> Config {
    let component = support::lit(&support::guest("noop"));
    let mut text = format!(
        "[host]\ncache_dir = {}\nconcurrency = {CONCURRENCY}\n",
        support::lit(&support::root().join("target/tf-test-cache"))
    );
    for p in 0..plugins {
        text.push_str(&format!(
            "[[plugins]]\nname = \"noop-{p}\"\ncomponent = {component}\ntriggers = [\"full-refresh-completed\"]\nconcurrency = {CONCURRENCY}\n"
        ));
    }
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, text).expect("write config");
    Config::load(&path).expect("config")
}

/// Events/s through journal + scheduler + noop plugin, and the latency
/// samples (ms) from accepted to start.
async fn durable(config: &Config, n: usize, pace: Option<Duration>) -> (f64, Vec<i64>) {
    let journal = Arc::new(Journal::open(&config.store_path()).expect("journal"));
    let mut host = Host::new(&config.settings, Select::All).expect("host");
    host.set_journal(journal.clone());
    let host = Arc::new(host);
    let (_h, host_rx) = watch::channel(host.clone());
    let (_r, routes_rx) = watch::channel(Arc::new(Routes::new(&config.settings.plugins)));
    let metrics = Arc::new(Metrics::new());
    let scheduler = Scheduler::new(
        journal.clone(),
        host_rx.clone(),
        metrics.clone(),
        CONCURRENCY as u32,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.clone().run(stop_rx));
    let shared = Arc::new(Shared {
        journal: journal.clone(),
        host: host_rx,
        routes: routes_rx,
        scheduler,
        metrics,
        token: None,
        stopping: AtomicBool::new(false),
        refresh: None,
        sources: Vec::new(),
        intake: tokio::sync::Semaphore::new(triggerfish::daemon::MAX_INTAKE_IN_FLIGHT),
        console: Default::default(),
        cluster: None,
    });
    let evs = events(n, if pace.is_some() { "paced" } else { "burst" });
    let started = Instant::now();
    let chunks: Vec<Vec<Event>> = evs
        .chunks(n.div_ceil(PRODUCERS))
        .map(|c| c.to_vec())
        .collect();
    let producers = chunks.len();
    let mut tasks = Vec::new();
    for (k, chunk) in chunks.into_iter().enumerate() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            for (i, e) in chunk.into_iter().enumerate() {
                if let Some(p) = pace {
                    // Producer k sends its i-th event at (i * producers + k) * pace.
                    let at = started + p * (i * producers + k) as u32;
                    tokio::time::sleep_until(at.into()).await;
                }
                shared.ingest(e, "bench").await.expect("ingest");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    // Poll on a connection of our own, so the bench does not hold the
    // journal's reader while the scheduler needs it.
    let poll = rusqlite::Connection::open(config.store_path()).expect("poll connection");
    loop {
        let done: i64 = poll
            .query_row(
                "SELECT COUNT(*) FROM _tf_runs WHERE status = 'succeeded'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        if done as usize == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = task.await;
    let db = rusqlite::Connection::open(config.store_path()).expect("db");
    let mut stmt = db
        .prepare("SELECT r.started_ms - e.accepted_ms FROM _tf_runs r JOIN _tf_events e ON e.id = r.event_id")
        .expect("latency query");
    let mut samples: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .expect("latency")
        .map(|r| r.expect("row"))
        .collect();
    samples.sort_unstable();
    (rate, samples)
}

/// Events/s through `Host::deliver`, no journal.
async fn host_only(config: &Config, n: usize) -> f64 {
    let host = Arc::new(Host::new(&config.settings, Select::All).expect("host"));
    let evs = Arc::new(events(n, "host"));
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (host, evs, next) = (host.clone(), evs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(e) = evs.get(i) else { break };
                let o = host.deliver("noop-0", e).await.expect("deliver");
                assert!(o.result.is_ok());
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Events/s through bare wasmtime on the host's engine, no journal.
async fn bare(config: &Config, n: usize) -> f64 {
    let host = Host::new(&config.settings, Select::All).expect("host");
    let engine = host.runtime().engine().clone();
    let pre = bare::pre(&engine, &support::guest("noop"));
    let evs = Arc::new(events(n, "bare"));
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (pre, evs, next, engine) = (pre.clone(), evs.clone(), next.clone(), engine.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(e) = evs.get(i) else { break };
                let wit = triggerfish_runtime::bindings::Event::from(e);
                bare::deliver(&engine, &pre, &wit).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// RSS of `triggerfish run` with 50 plugins, idle, in MiB.
fn idle_rss_mib() -> f64 {
    let dir = support::tempdir();
    let cfg = config(dir.path(), 50);
    let mut text = std::fs::read_to_string(&cfg.path).expect("config");
    text.push_str("[api]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&cfg.path, text).expect("config");
    let d = support::Daemon::start(&cfg.path, &[]);
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    d.stop();
    kib / 1024.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks; nothing to list.
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let dir = support::tempdir();
        let cfg = config(dir.path(), 1);
        // Warm up: compile, fill the cache, touch the pool.
        let _ = host_only(&cfg, 500).await;
        let bare_rate = bare(&cfg, EVENTS).await;
        let host_rate = host_only(&cfg, EVENTS).await;
        let (durable_rate, samples) = durable(&cfg, EVENTS, None).await;
        println!("durable throughput, {EVENTS} events, no-op plugin, {PRODUCERS} producers, concurrency {CONCURRENCY}:");
        println!("  bare wasmtime, no journal   {bare_rate:>9.0} events/s");
        println!("  host dispatch, no journal   {host_rate:>9.0} events/s");
        println!(
            "  durable (journal + runs)    {durable_rate:>9.0} events/s   ({:.2} of bare, {:.2} of host)",
            durable_rate / bare_rate,
            durable_rate / host_rate
        );
        println!(
            "  accepted -> start under burst: p50 {} ms, p99 {} ms",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
        let dir2 = support::tempdir();
        let cfg2 = config(dir2.path(), 1);
        let paced_n = 10_000;
        let (_, samples) = durable(&cfg2, paced_n, Some(Duration::from_millis(1))).await;
        println!(
            "latency at 1,000 events/s ({paced_n} events): accepted -> plugin start p50 {} ms, p99 {} ms, max {} ms",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples.last().copied().unwrap_or(0)
        );
    });
    println!(
        "daemon RSS, 50 plugins loaded, idle: {:.1} MiB",
        idle_rss_mib()
    );
}
