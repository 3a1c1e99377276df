//! Events/s end to end through `triggerfish run` processes: the
//! single-node daemon, then clusters of 1, 2 and 3 members on one real
//! `nats-server`, all in one run on this machine. Each setup takes the
//! same events over HTTP (64 at a time, spread over its members) for a
//! no-op plugin; the clock stops when the members' metrics count every
//! run succeeded. `-- N` sets the number of events (default 5,000).

#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{guest, lit, root, tempdir, Daemon, NatsServer};

const IN_FLIGHT: usize = 64;

fn config(dir: &std::path::Path, cluster: Option<(&NatsServer, usize)>) -> PathBuf {
    let mut text = format!(
        "[host]\nstate_dir = {}\ncache_dir = {}\n[api]\nlisten = \"127.0.0.1:0\"\n",
        lit(&dir.join("state")),
        lit(&root().join("target/tf-test-cache")),
    );
    if let Some((nats, i)) = cluster {
        text.push_str(&format!(
            "[cluster]\nnats_url = \"{}\"\nmember = \"b{i}\"\n",
            nats.url()
        ));
    }
    text.push_str(&format!(
        "[[plugins]]\nname = \"noop\"\ncomponent = {}\ntriggers = [\"data-source-refresh-failed\"]\nconcurrency = 25\n",
        lit(&guest("noop"))
    ));
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Succeeded attempts in one member's metrics.
async fn succeeded(c: &reqwest::Client, d: &Daemon) -> u64 {
    let Ok(r) = c.get(d.url("/metrics")).send().await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("triggerfish_run_attempts_total{") && l.contains("outcome=\"succeeded\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// CPU seconds (user + system) a process has used, from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which ends at the last ')').
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// (accepted/s, end-to-end events/s) for `members`.
fn measure(rt: &tokio::runtime::Runtime, members: &[Daemon], n: usize, tag: &str) -> (f64, f64) {
    let c = reqwest::Client::new();
    rt.block_on(async {
        let started = Instant::now();
        let urls: Vec<String> = members.iter().map(|d| d.url("/v1/events")).collect();
        let mut next = 0usize;
        let mut pending = futures::stream::FuturesUnordered::new();
        use futures::StreamExt as _;
        while next < n || !pending.is_empty() {
            while next < n && pending.len() < IN_FLIGHT {
                let i = next;
                next += 1;
                let c = c.clone();
                let url = urls[i % urls.len()].clone();
                pending.push(async move {
                    let body = json!({"trigger": "data-source-refresh-failed", "id": format!("{tag}-{i}"), "source": "crm"});
                    loop {
                        if let Ok(r) = c.post(&url).body(body.to_string()).send().await {
                            if r.status().as_u16() == 202 {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            }
            pending.next().await;
        }
        let accepted = started.elapsed().as_secs_f64();
        loop {
            let mut total = 0;
            for d in members {
                total += succeeded(&c, d).await;
            }
            if total >= n as u64 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(900), "{tag}: {total} of {n} after 15 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = started.elapsed().as_secs_f64();
        (n as f64 / accepted, n as f64 / done)
    })
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{n} events per setup, {IN_FLIGHT} posts in flight, no-op plugin (concurrency 25 per member)");
    println!("| setup | accepted/s | end to end, events/s | CPU s: daemons | CPU s: nats-server |");
    println!("|---|---|---|---|---|");
    {
        let dir = tempdir();
        let d = Daemon::start(&config(dir.path(), None), &[]);
        let before = cpu_seconds(d.child.id());
        let (a, e) = measure(&rt, std::slice::from_ref(&d), n, "single");
        let used = cpu_seconds(d.child.id()) - before;
        println!("| single-node daemon (SQLite journal) | {a:.0} | {e:.0} | {used:.1} | – |");
        d.stop();
    }
    for size in 1..=3 {
        let nats = NatsServer::start();
        let dirs: Vec<_> = (0..size).map(|_| tempdir()).collect();
        let members: Vec<Daemon> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| Daemon::start(&config(dir.path(), Some((&nats, i))), &[]))
            .collect();
        let pids: Vec<u32> = members.iter().map(|m| m.child.id()).collect();
        let nats_pid = nats.pid().unwrap_or(0);
        let before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
        let nats_before = cpu_seconds(nats_pid);
        let (a, e) = measure(&rt, &members, n, &format!("c{size}"));
        let used: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - before;
        let nats_used = cpu_seconds(nats_pid) - nats_before;
        println!("| cluster, {size} member(s) | {a:.0} | {e:.0} | {used:.1} | {nats_used:.1} |");
        for m in members {
            m.stop();
        }
    }
}
