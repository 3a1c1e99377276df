//! `triggerfish demo …`: demo data for the insights engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use triggerfish::insights::generate::{generate, GenerateOptions, MAX_ROWS};

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
        DemoCommand::Generate { rows, out, seed } => {
            let started = Instant::now();
            let report = generate(&GenerateOptions { rows, seed }, &out)
                .with_context(|| format!("cannot generate demo data in {}", out.display()))?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "wrote demo data to {} (seed {seed}) in {secs:.1} s:",
                out.display()
            );
            for s in &report.sources {
                let file = s.path.file_name().unwrap_or_default().to_string_lossy();
                println!("  {file:<24} {:>10} rows   source {}", s.rows, s.name);
            }
            println!(
                "  {:<24} {:>10} rows   the person behind each record (source,key,person)",
                "truth.csv",
                report.rows()
            );
            println!(
                "  {:<24} {:>10}        3 sources, 3 match rules, 5 segments, 5 measures",
                "triggerfish.toml", ""
            );
            println!(
                "{} records of {} persons ({} duplicate records)",
                report.rows(),
                report.persons,
                report.rows() - report.persons
            );
            println!(
                "next: triggerfish refresh --config {}",
                report.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
