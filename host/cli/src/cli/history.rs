//! `triggerfish events` and `triggerfish runs`: the journal from the command
//! line, with the daemon running or not (the store is shared safely).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use triggerfish_data::event::TriggerKind;
use triggerfish_data::journal::{EventFilter, Journal, RunFilter, RunRow, RunStatus};

use super::term::outln;
use crate::config_file::Config;

/// `triggerfish events …`.
#[derive(Subcommand)]
pub enum EventsCommand {
    /// Journaled events, newest first.
    List {
        #[command(flatten)]
        common: Common,
        /// Only this trigger, e.g. `segment-threshold-crossed`.
        #[arg(long)]
        trigger: Option<String>,
    },
}

/// `triggerfish runs …`.
#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        #[command(flatten)]
        common: Common,
        /// queued, retrying, succeeded or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        plugin: Option<String>,
        /// Only the runs of this event id.
        #[arg(long)]
        event: Option<String>,
    },
    /// One run with its log lines and sent-ledger entries.
    Show {
        #[command(flatten)]
        common: Common,
        id: i64,
    },
    /// Queue runs again: the ids given, or every dead letter (of one plugin).
    Replay {
        #[command(flatten)]
        common: Common,
        ids: Vec<i64>,
        /// Every dead-lettered run (with --plugin, that plugin's only).
        #[arg(long)]
        dead: bool,
        #[arg(long, requires = "dead")]
        plugin: Option<String>,
    },
}

/// Options every journal command takes.
#[derive(Args)]
pub struct Common {
    /// Configuration file.
    #[arg(long, short, default_value = "triggerfish.toml")]
    config: PathBuf,
    /// Most rows shown.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn open(common: &Common) -> anyhow::Result<Journal> {
    let config = Config::load(&common.config)?;
    Ok(config.open_journal()?)
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(|m| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000_000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

fn run_line(r: &RunRow) -> String {
    format!(
        "{:>8}  {:<9}  {:>3}  {:<24}  {}  {}",
        r.id,
        r.status,
        r.attempts,
        r.plugin,
        r.event_id,
        r.error.as_deref().unwrap_or("")
    )
}

/// `triggerfish events`.
pub fn events(cmd: EventsCommand) -> anyhow::Result<ExitCode> {
    let EventsCommand::List { common, trigger } = cmd;
    if let Some(t) = &trigger {
        t.parse::<TriggerKind>().context("--trigger")?;
    }
    let rows = open(&common)?.events(&EventFilter {
        trigger,
        before: None,
        limit: common.limit,
    })?;
    if common.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for e in &rows {
            outln!(
                "{:>8}  {:<30}  {:<8}  {}  {}",
                e.seq,
                e.trigger,
                e.origin,
                when(Some(e.accepted_ms)),
                e.id
            );
        }
        if rows.is_empty() {
            outln!("no events");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `triggerfish runs`.
/// For `runs replay` under a `[cluster]` section: (config, plugin, json).
/// In a cluster, dead letters are replayed from its dead-letter stream
/// (run ids are the journal's, which a cluster does not use).
pub fn cluster_replay(
    cmd: &RunsCommand,
) -> Option<anyhow::Result<(PathBuf, Option<String>, bool)>> {
    let RunsCommand::Replay {
        common,
        ids,
        dead,
        plugin,
    } = cmd
    else {
        return None;
    };
    let config = Config::load(&common.config).ok()?;
    config.cluster.as_ref()?;
    if !ids.is_empty() || !dead {
        return Some(Err(anyhow::anyhow!(
            "{}: a cluster member replays its cluster's dead letters: use `runs replay --dead [--plugin NAME]` (run ids are not used in a cluster)",
            common.config.display()
        )));
    }
    Some(Ok((common.config.clone(), plugin.clone(), common.json)))
}

pub fn runs(cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List {
            common,
            status,
            plugin,
            event,
        } => {
            let status = status
                .map(|s| {
                    s.parse::<RunStatus>().map_err(|_| {
                        anyhow::anyhow!(
                            "--status: expected queued, retrying, succeeded, dead or replayed, found '{s}'"
                        )
                    })
                })
                .transpose()?;
            let rows = open(&common)?.runs(&RunFilter {
                status,
                plugin,
                event,
                trigger: None,
                before: None,
                limit: common.limit,
            })?;
            if common.json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                outln!(
                    "{:>8}  {:<9}  {:>3}  {:<24}  event  error",
                    "run",
                    "status",
                    "try",
                    "plugin"
                );
                for r in &rows {
                    outln!("{}", run_line(r));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { common, id } => {
            let Some(d) = open(&common)?.run(id)? else {
                bail!("no run {id} in the journal");
            };
            if common.json {
                outln!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            let r = &d.run;
            outln!(
                "run {} of event {} for plugin {}",
                r.id,
                r.event_id,
                r.plugin
            );
            outln!("  status     {} after {} attempt(s)", r.status, r.attempts);
            outln!("  created    {}", when(Some(r.created_ms)));
            outln!(
                "  last try   {} ({} ms)",
                when(r.started_ms),
                r.duration_ms.unwrap_or(0)
            );
            if r.status == "queued" || r.status == "retrying" {
                outln!("  next try   {}", when(Some(r.next_ms)));
            }
            if let Some(e) = &r.error {
                outln!("  error      {e}");
            }
            if let Some(of) = r.replay_of {
                outln!("  replays    run {of}");
            }
            if let Some(by) = d.replayed_by {
                outln!("  replayed   as run {by}");
            }
            for a in &d.history {
                outln!(
                    "  attempt {}  {} ({} ms): {}{}",
                    a.attempt,
                    when(Some(a.started_ms)),
                    a.duration_ms,
                    a.outcome,
                    a.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
            for (attempt, l) in &d.logs {
                outln!("  [{attempt}] {} {}: {}", l.level, l.source, l.text);
            }
            for s in &d.sent {
                outln!("  sent #{} {}: {}", s.call, s.kind, s.result);
            }
            for (attempt, r) in &d.reports {
                outln!("  {}", crate::cli::output::report_line(*attempt, r));
            }
            for w in &d.writes {
                outln!("  {}", crate::cli::output::write_line(w));
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Replay {
            common,
            mut ids,
            dead,
            plugin,
        } => {
            let journal = open(&common)?;
            if dead {
                ids.extend(
                    journal
                        .runs(&RunFilter {
                            status: Some(RunStatus::Dead),
                            plugin,
                            event: None,
                            trigger: None,
                            before: None,
                            limit: triggerfish_data::journal::MAX_PAGE,
                        })?
                        .iter()
                        .map(|r| r.id),
                );
            }
            if ids.is_empty() {
                bail!("nothing to replay: give run ids, or --dead");
            }
            let done = journal.wait(|j, r| j.replay(ids.clone(), r))?;
            for id in &ids {
                match done.iter().find(|d| d.run == *id) {
                    Some(d) => outln!("run {id}: replayed as run {}", d.new_run),
                    None => outln!(
                        "run {id}: not replayed (no such run, still waiting, or replayed already)"
                    ),
                }
            }
            outln!(
                "{} run(s) queued again; `triggerfish run` attempts them",
                done.len()
            );
            Ok(if done.len() == ids.len() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
