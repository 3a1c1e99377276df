//! `triggerfish demo …`: demo data for the insights engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::term::outln;
use crate::config_file::Config;
use anyhow::Context as _;
use clap::Subcommand;
use triggerfish_data::store::EntityDb;
use triggerfish_demo::generate::{generate, GenerateOptions, MAX_ROWS};
use triggerfish_demo::score::score_store;

#[derive(Subcommand)]
pub enum DemoCommand {
    /// Write three source files of made-up customers with known duplicates,
    /// truth.csv (the person behind every record) and a triggerfish.toml.
    Generate {
        /// Records across the three sources (about 40% CRM contacts,
        /// 35% web-shop orders, 25% loyalty members).
        #[arg(long, value_parser = parse_rows)]
        rows: u64,
        /// Output directory (created if missing; files in it are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Random seed: the same seed gives the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Score unification against the truth: pairwise precision and recall of
    /// the customers in the store (refresh first).
    Score {
        /// Configuration file (its store is scored).
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        /// The truth file (default: truth.csv next to the configuration).
        #[arg(long)]
        truth: Option<PathBuf>,
    },
}

fn parse_rows(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) if n > MAX_ROWS => Err(format!("must be at most {MAX_ROWS}")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

pub fn run(cmd: DemoCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCommand::Score { config, truth } => {
            let cfg = Config::load(&config)?;
            let truth = truth.unwrap_or_else(|| {
                config
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join("truth.csv")
            });
            let store = EntityDb::open(&cfg.store_path(), cfg.page_limits())?;
            let s = score_store(&store, &truth)?;
            outln!(
                "{} records, {} persons, {} customers",
                s.records,
                s.persons,
                s.clusters
            );
            outln!(
                "pairwise precision {:.5} ({} of {} merged pairs are the same person)",
                s.precision,
                s.true_positive_pairs,
                s.predicted_pairs
            );
            outln!(
                "pairwise recall    {:.5} ({} of {} same-person pairs merged)",
                s.recall,
                s.true_positive_pairs,
                s.true_pairs
            );
            Ok(ExitCode::SUCCESS)
        }
        DemoCommand::Generate { rows, out, seed } => {
            let started = Instant::now();
            let report = generate(&GenerateOptions { rows, seed }, &out)
                .with_context(|| format!("cannot generate demo data in {}", out.display()))?;
            let secs = started.elapsed().as_secs_f64();
            outln!(
                "wrote demo data to {} (seed {seed}) in {secs:.1} s:",
                out.display()
            );
            for s in &report.sources {
                let file = s.path.file_name().unwrap_or_default().to_string_lossy();
                outln!("  {file:<24} {:>10} rows   source {}", s.rows, s.name);
            }
            outln!(
                "  {:<24} {:>10} rows   the person behind each record (source,key,person)",
                "truth.csv",
                report.rows()
            );
            outln!(
                "  {:<24} {:>10}        3 sources, 3 match rules, 5 segments, 5 measures",
                "triggerfish.toml",
                ""
            );
            outln!(
                "{} records of {} persons ({} duplicate records)",
                report.rows(),
                report.persons,
                report.rows() - report.persons
            );
            outln!(
                "next: triggerfish refresh --config {}",
                report.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
