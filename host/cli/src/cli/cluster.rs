//! `triggerfish cluster`: what a cluster of daemons is doing, from any
//! machine that reaches its NATS servers with the configuration's
//! `[cluster]` section.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Subcommand;

use super::term::outln;
use crate::cluster::{Cluster, ClusterStatus};
use crate::config_file::Config;

/// `triggerfish cluster …`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Members, the refresher, the store generation, stream sizes, each
    /// plugin's consumer lag and the dead letters.
    Status {
        /// Configuration file (its `[cluster]` section).
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Connect as the configuration says, without joining.
pub async fn connect(path: &Path) -> anyhow::Result<Cluster> {
    let config = Config::load(path)?;
    let Some(settings) = &config.cluster else {
        bail!(
            "{}: no [cluster] section: this daemon is not a cluster member (set [cluster] nats_url)",
            path.display()
        );
    };
    let history = Duration::from_secs(u64::from(config.daemon.history_days) * 86_400);
    Cluster::connect(settings, "cli", history)
        .await
        .with_context(|| format!("{}: [cluster]", path.display()))
}

/// Run a `cluster` command.
pub async fn run(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Status { config, json } => {
            let c = connect(&config).await?;
            let s = c.status().await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print(s: &ClusterStatus) {
    outln!("NATS:        {}", s.nats);
    outln!(
        "refresher:   {}",
        s.refresher
            .as_deref()
            .unwrap_or("(none: the lease is free)")
    );
    match &s.generation {
        Some(g) => outln!(
            "store:       generation {} ({} bytes, by {})",
            g.number,
            g.bytes,
            g.member
        ),
        None => outln!("store:       no generation published yet"),
    }
    outln!(
        "streams:     {} event(s), {} run(s) waiting, {} dead letter(s)",
        s.events,
        s.runs_waiting,
        s.dead_letters
    );
    outln!("members:     {}", s.members.len());
    for m in &s.members {
        outln!(
            "  {:<24} {:<28} gen {:<5} in flight {:<4} ok {:<7} failed {:<5} redelivered {:<5}{}",
            m.id,
            m.api,
            m.generation,
            m.in_flight,
            m.attempts_ok,
            m.attempts_failed,
            m.redelivered,
            if m.refresher { " refresher" } else { "" }
        );
        for p in &m.plugins {
            outln!(
                "      plugin {} sha256:{} (concurrency {})",
                p.name,
                p.sha256.get(..12).unwrap_or(&p.sha256),
                p.concurrency
            );
        }
    }
    outln!("consumers:");
    for c in &s.consumers {
        outln!(
            "  {:<28} pending {:<7} unacked {:<7} redelivered {}",
            c.plugin,
            c.pending,
            c.ack_pending,
            c.redelivered
        );
    }
}
