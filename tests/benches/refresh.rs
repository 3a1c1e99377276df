//! Bench binary (not criterion: one run takes seconds): generate N source rows
//! over three sources with known duplicates, run a full refresh (unification,
//! 5 segments, 5 measures) with no plugins, and report the time per stage,
//! the process's peak memory, and pairwise precision and recall against the
//! generator's truth.
//!
//! `cargo bench -p triggerfish-tests --bench refresh -- [ROWS...] [--typos R] [--fuzzy]`
//! (default 1000000 rows; `--typos` and `--fuzzy` as in `demo generate`).

use std::path::Path;
use std::time::Instant;

use triggerfish::config_file::Config;
use triggerfish_data::event::Event;
use triggerfish_data::insights::{InsightsEngine, Observer, Scope};
use triggerfish_data::store::EntityDb;
use triggerfish_demo::generate::{generate, GenerateOptions};
use triggerfish_demo::score::score_store;

struct Count(usize);

impl Observer for Count {
    fn event(&mut self, _event: Event) {
        self.0 += 1;
    }
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Rows to run, and the generator's noise and rule set.
struct Args {
    rows: Vec<u64>,
    typos_per_mille: u16,
    fuzzy: bool,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        rows: Vec::new(),
        typos_per_mille: 0,
        fuzzy: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--typos" => {
                let v = it.next().ok_or("--typos needs a share, e.g. 0.03")?;
                let x: f64 = v.parse().map_err(|e| format!("--typos {v}: {e}"))?;
                out.typos_per_mille = (x * 1000.0).round() as u16;
            }
            "--fuzzy" => out.fuzzy = true,
            // Flags cargo passes to bench binaries.
            a if a.starts_with('-') => {}
            n => out
                .rows
                .push(n.parse().map_err(|e| format!("rows '{n}': {e}"))?),
        }
    }
    if out.rows.is_empty() {
        out.rows.push(1_000_000);
    }
    Ok(out)
}

fn run(rows: u64, a: &Args, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let out = dir.join(format!("rows-{rows}"));
    let t = Instant::now();
    let report = generate(
        &GenerateOptions {
            rows,
            seed: 1,
            typos_per_mille: a.typos_per_mille,
            fuzzy: a.fuzzy,
        },
        &out,
    )?;
    let gen_s = t.elapsed().as_secs_f64();
    let config = Config::load(&report.config)?;
    let workspace = config
        .insights
        .clone()
        .ok_or("no [insights] in the generated config")?;
    let store = EntityDb::open(&config.store_path(), config.page_limits())?;
    let engine = InsightsEngine::new(workspace, store);
    let mut count = Count(0);
    let t = Instant::now();
    let refresh = engine.refresh(&Scope::Full, &mut count)?;
    let refresh_s = t.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let scores = score_store(engine.store(), &report.truth)?;
    println!(
        "typos {}‰, {} rules",
        a.typos_per_mille,
        if a.fuzzy { "fuzzy" } else { "exact" }
    );
    println!("rows {rows}: generated in {gen_s:.2} s; full refresh {refresh_s:.2} s; peak RSS after refresh {peak:.1} MiB; {} events", count.0);
    for s in &refresh.stages {
        println!(
            "  {:<28} {:>9} rows {:>8} ms",
            s.name, s.rows, s.duration_ms
        );
    }
    println!(
        "  precision {:.5}  recall {:.5}  ({} records, {} persons, {} customers)",
        scores.precision, scores.recall, scores.records, scores.persons, scores.clusters
    );
    if !refresh.succeeded() {
        return Err("the refresh had failures".into());
    }
    Ok(())
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rows = a.rows.clone();
    // Each size in a process of its own, so the peak memory is that size's.
    if rows.len() > 1 {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("cannot find this program: {e}");
                std::process::exit(1);
            }
        };
        for n in rows {
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg(n.to_string());
            if a.typos_per_mille > 0 {
                cmd.args([
                    "--typos",
                    &(f64::from(a.typos_per_mille) / 1000.0).to_string(),
                ]);
            }
            if a.fuzzy {
                cmd.arg("--fuzzy");
            }
            let ok = cmd.status().is_ok_and(|s| s.success());
            if !ok {
                std::process::exit(1);
            }
        }
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(1);
        }
    };
    for n in rows {
        if let Err(e) = run(n, &a, dir.path()) {
            eprintln!("rows {n}: {e}");
            std::process::exit(1);
        }
    }
}
