//! `triggerfish demo …`: demo data for the insights engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::term::outln;
use crate::config_file::Config;
use anyhow::Context as _;
use clap::Subcommand;
use triggerfish_demo::generate::{generate, GenerateOptions, MAX_ROWS, MAX_TYPOS_PER_MILLE};
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
        /// Typo noise: the share (0 to 0.5) of non-anchor records whose name
        /// is misspelt and that have no e-mail or phone, so only a fuzzy rule
        /// finds their person.
        #[arg(long, value_parser = parse_typos, default_value = "0")]
        typos: u16,
        /// Match names by similarity (high precision) within a postal code,
        /// guarded by e-mail and phone, instead of exactly.
        #[arg(long)]
        fuzzy: bool,
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

/// A share in [0, 0.5], as per mille.
fn parse_typos(s: &str) -> Result<u16, String> {
    let max = f64::from(MAX_TYPOS_PER_MILLE) / 1000.0;
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=max).contains(&x) => Ok((x * 1000.0).round() as u16),
        Ok(_) => Err(format!("must be between 0 and {max}")),
        Err(e) => Err(e.to_string()),
    }
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
            let store = cfg.open_store()?;
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
        DemoCommand::Generate {
            rows,
            out,
            seed,
            typos,
            fuzzy,
        } => {
            let started = Instant::now();
            let opts = GenerateOptions {
                rows,
                seed,
                typos_per_mille: typos,
                fuzzy,
            };
            let report = generate(&opts, &out)
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
