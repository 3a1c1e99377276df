//! Bench binary (not criterion: one run takes seconds): generate N source rows
//! over three sources with known duplicates, run a full refresh (unification,
//! 5 segments, 5 measures) with no plugins, and report the time per stage,
//! the process's peak memory, and pairwise precision and recall against the
//! generator's truth.
//!
//! `cargo bench -p triggerfish-tests --bench refresh -- [ROWS...] [--typos R] [--fuzzy] [--change PCT]`
//! (default 1000000 rows; `--typos` and `--fuzzy` as in `demo generate`).
//!
//! `--change PCT` then edits PCT% of all rows in the CRM file (new e-mails,
//! phones and cities, a tenth of them removed and as many added as copies of
//! other contacts), refreshes again (incremental), and checks the result
//! against a `--full --force` refresh of the same data.

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
    change_pct: Option<f64>,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        rows: Vec::new(),
        typos_per_mille: 0,
        fuzzy: false,
        change_pct: None,
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
            "--change" => {
                let v = it.next().ok_or("--change needs a percentage, e.g. 1")?;
                out.change_pct = Some(v.parse().map_err(|e| format!("--change {v}: {e}"))?);
            }
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
    let engine = InsightsEngine::new(workspace.clone(), store);
    let mut count = Count(0);
    let t = Instant::now();
    let refresh = engine.refresh(&Scope::Full, &mut count)?;
    let refresh_s = t.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    // Scoring holds the truth in memory: with --change it is skipped, so the
    // peak after the second refresh is the refreshes' own.
    let scores = match a.change_pct {
        None => Some(score_store(engine.store(), &report.truth)?),
        Some(_) => None,
    };
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
    match scores {
        Some(sc) => println!(
            "  precision {:.5}  recall {:.5}  ({} records, {} persons, {} customers)",
            sc.precision, sc.recall, sc.records, sc.persons, sc.clusters
        ),
        None => println!("  (not scored with --change)"),
    }
    if !refresh.succeeded() {
        return Err("the refresh had failures".into());
    }
    if let Some(pct) = a.change_pct {
        let wanted = (rows as f64 * pct / 100.0).round() as usize;
        let edited = edit_rows(&out.join("crm-contacts.csv"), wanted)?;
        let t = Instant::now();
        let refresh = engine.refresh(&Scope::Full, &mut count)?;
        let incremental_s = t.elapsed().as_secs_f64();
        println!("after editing {edited} CRM rows ({pct}% of {rows}): refresh {incremental_s:.2} s; peak RSS so far {:.1} MiB", peak_rss_mib());
        print_stages(&refresh.stages);
        if !refresh.succeeded() {
            return Err("the incremental refresh had failures".into());
        }
        let incremental = digest(engine.store())?;
        let full = InsightsEngine::new(
            workspace.clone(),
            EntityDb::open(&config.store_path(), config.page_limits())?,
        )
        .forcing(true);
        let t = Instant::now();
        let refresh = full.refresh(&Scope::Full, &mut count)?;
        println!(
            "the same data, --full --force: refresh {:.2} s",
            t.elapsed().as_secs_f64()
        );
        print_stages(&refresh.stages);
        let same = digest(full.store())? == incremental;
        println!("customers and links identical to the full refresh: {same}");
        if !same {
            return Err("the incremental refresh differs from the full one".into());
        }
    }
    Ok(())
}

fn print_stages(stages: &[triggerfish_data::event::StageSummary]) {
    for s in stages {
        println!(
            "  {:<28} {:>9} rows {:>8} ms  {}",
            s.name,
            s.rows,
            s.duration_ms,
            s.detail.as_deref().unwrap_or("")
        );
    }
}

/// Edit about `n` data rows of the CSV at `path` (spread evenly), streaming
/// so the bench's own peak memory stays small; the number edited, removed
/// or added.
fn edit_rows(path: &Path, n: usize) -> Result<usize, Box<dyn std::error::Error>> {
    use std::io::{BufRead, Write};
    let rows = std::io::BufReader::new(std::fs::File::open(path)?)
        .lines()
        .count()
        .saturating_sub(1);
    let step = (rows / n.max(1)).max(1);
    let edited_path = path.with_extension("edited");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&edited_path)?);
    let mut lines = std::io::BufReader::new(std::fs::File::open(path)?).lines();
    let header = lines.next().ok_or("empty CSV")??;
    writeln!(out, "{header}")?;
    let mut added = Vec::new();
    let mut edited = 0usize;
    for (i, row) in lines.enumerate() {
        let row = row?;
        if i % step != step / 2 || edited >= n {
            writeln!(out, "{row}")?;
            continue;
        }
        edited += 1;
        let mut f: Vec<String> = row.split(',').map(str::to_owned).collect();
        if f.len() != 9 {
            writeln!(out, "{row}")?;
            continue;
        }
        // ContactId,FirstName,LastName,Email,Phone,PostalCode,City,Country,ModifiedOn
        match edited % 10 {
            0 => continue, // removed
            1 => {
                let mut copy = f.clone();
                copy[0] = format!("{}-copy", f[0]);
                added.push(copy.join(","));
            }
            2..=4 => f[3] = format!("moved{edited}@example.org"),
            5 | 6 => f[4] = format!("+4420{:08}", edited),
            _ => f[6] = format!("{} Nord", f[6]),
        }
        writeln!(out, "{}", f.join(","))?;
    }
    for a in added {
        writeln!(out, "{a}")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&edited_path, path)?;
    Ok(edited)
}

/// A digest of every customer and link row, in key order.
fn digest(store: &EntityDb) -> Result<u64, Box<dyn std::error::Error>> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    let conn = store.session();
    for sql in [
        "SELECT * FROM ent_Customer ORDER BY CustomerId",
        "SELECT * FROM ent_CustomerSourceLink ORDER BY LinkId",
    ] {
        let mut stmt = conn.prepare(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..n {
                format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?).hash(&mut h);
            }
        }
    }
    Ok(h.finish())
}

fn main() {
    // As the `triggerfish` binary does, so that peak RSS is the same.
    triggerfish::cli::memory::tune();
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
            if let Some(p) = a.change_pct {
                cmd.args(["--change", &p.to_string()]);
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
