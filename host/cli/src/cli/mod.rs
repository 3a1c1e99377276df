//! The `triggerfish` command line. The binary is [`main`]; the test crate
//! builds the same entry point into its own binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config_file::Config;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::sync::Arc;
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_data::insights::Scope;
use triggerfish_data::journal::{now_ms, NewEvent, Verdict};
use triggerfish_runtime::{Host, Outcome, Select};

mod author;
mod cluster;
mod demo;
mod dialect;
mod entities;
mod history;
pub mod memory;
mod output;
mod plugin;
mod refresh;
mod registry;
pub(crate) mod term;

use term::{errln, out, outln};

#[derive(Parser)]
#[command(
    name = "triggerfish",
    version,
    about = "WebAssembly plugin host for customer-data triggers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build one event and run it through one plugin.
    Fire {
        /// Configuration file.
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        /// Plugin name, as in `[[plugins]] name`.
        #[arg(long)]
        plugin: String,
        /// Trigger kind, e.g. `data-source-refresh-failed`.
        #[arg(long)]
        event: String,
        /// JSON object overriding fields of the event, e.g. '{"source":"crm"}'.
        #[arg(long)]
        payload: Option<String>,
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Refresh the insights workspace: sources, unification, segments and
    /// measures, delivering the events raised to the subscribed plugins.
    Refresh {
        /// Configuration file.
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        /// Refresh only this data source.
        #[arg(long, conflicts_with_all = ["unification", "full"])]
        source: Option<String>,
        /// Run unification, segments and measures on the data already loaded.
        #[arg(long, conflicts_with = "full")]
        unification: bool,
        /// Everything: every source, unification, segments, measures (the default).
        #[arg(long)]
        full: bool,
        /// Import every source and unify even when nothing changed since the
        /// last refresh (which is skipped by default).
        #[arg(long)]
        force: bool,
    },
    /// The daemon: journal every event, deliver each run with retries, serve
    /// the admin API, refresh on the configured schedules; until Ctrl-C or
    /// SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
    },
    /// Import, list and query entities.
    #[command(subcommand)]
    Entities(entities::EntitiesCommand),
    /// Write, build, test, pack, sign, push and pull plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The journal's events.
    #[command(subcommand)]
    Events(history::EventsCommand),
    /// The journal's runs: list, show, replay.
    #[command(subcommand)]
    Runs(history::RunsCommand),
    /// A cluster of daemons sharing NATS JetStream: status.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Generate demo data for the insights engine.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// List plugins with their triggers and grants, and check each component.
    Plugins {
        /// Configuration file.
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
    },
}

/// Parse the arguments, run the command, and say how it ended.
pub fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIGGERFISH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    memory::tune();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // A reader that closed its end of a pipe had what it wanted.
            if let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
                term::quit_on(io);
            }
            errln!("error: {}", term::describe(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Fire {
            config,
            plugin,
            event,
            payload,
            json,
        } => fire(&config, &plugin, &event, payload.as_deref(), json).await,
        Command::Plugins { config } => plugins(&config),
        Command::Refresh {
            config,
            source,
            unification,
            full: _,
            force,
        } => {
            let scope = match (source, unification) {
                (Some(name), _) => Scope::Source(name),
                (None, true) => Scope::Unification,
                (None, false) => Scope::Full,
            };
            refresh::refresh(&config, scope, force).await
        }
        Command::Run { config } => crate::daemon::run(&config).await,
        Command::Entities(cmd) => tokio::task::spawn_blocking(move || entities::run(cmd)).await?,
        Command::Plugin(cmd) => plugin::run(cmd).await,
        Command::Events(cmd) => tokio::task::spawn_blocking(move || history::events(cmd)).await?,
        Command::Runs(cmd) => match history::cluster_replay(&cmd) {
            Some(Err(e)) => Err(e),
            Some(Ok((config, plugin, json))) => {
                cluster_replay(&config, plugin.as_deref(), json).await
            }
            None => tokio::task::spawn_blocking(move || history::runs(cmd)).await?,
        },
        Command::Cluster(cmd) => cluster::run(cmd).await,
        Command::Demo(cmd) => tokio::task::spawn_blocking(move || demo::run(cmd)).await?,
    }
}

async fn fire(
    path: &Path,
    plugin: &str,
    kind: &str,
    payload: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load_with_components(path)?;
    let kind: TriggerKind = kind.parse()?;
    let event = build_event(kind, payload).context("--payload")?;
    let mut host = Host::new(&config.settings, Select::Only(plugin))?;
    // Journaled first, like every event; the run is held off a running
    // daemon while this command attempts it, and recorded after.
    let journal = Arc::new(config.open_journal()?);
    host.set_journal(journal.clone());
    let timeout = host
        .plugin(plugin)
        .map(|p| p.config.limits.timeout_ms)
        .unwrap_or(0);
    let appended = journal.wait(|j, r| {
        j.append(
            vec![NewEvent {
                event: event.clone(),
                origin: "fire".into(),
                plugins: vec![plugin.to_owned()],
                hold_ms: triggerfish_data::journal::hold_for(timeout),
            }],
            r,
        )
    })?;
    let started_ms = now_ms();
    let run = appended.first().and_then(|a| a.runs.first()).copied();
    let outcome = host.deliver_run(plugin, &event, run).await?;
    if let Some(run) = run {
        // No retries by hand: a failure waits as a dead letter (`runs replay`).
        let verdict = if outcome.result.is_ok() {
            Verdict::Succeeded
        } else {
            Verdict::Dead
        };
        let attempt = outcome.attempt(run, started_ms, verdict);
        journal.wait(|j, r| j.finish(vec![attempt], r))?;
    }
    if json {
        outln!("{}", outcome_json(&outcome, kind));
    } else {
        out!("{}", output::outcome_text(&outcome, kind));
    }
    Ok(match outcome.error_text() {
        None => ExitCode::SUCCESS,
        Some(text) => {
            errln!("error: {text}");
            ExitCode::FAILURE
        }
    })
}

fn outcome_json(o: &Outcome, kind: TriggerKind) -> serde_json::Value {
    serde_json::json!({
        "plugin": o.plugin,
        "event_id": o.event_id,
        "trigger": kind.as_str(),
        "ok": o.result.is_ok(),
        "error": o.result.as_ref().err().map(|f| f.to_string()),
        "duration_ms": o.duration.as_secs_f64() * 1000.0,
        "logs": o.record.logs,
        "dropped_logs": o.record.dropped_logs,
        "deliveries": o.record.deliveries,
        "writes": o.record.writes,
        "reports": o.record.reports,
    })
}

fn plugins(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load_with_components(path)?;
    if config.settings.plugins.is_empty() {
        outln!("no plugins configured in {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = Host::runtime_for(&config.settings)?;
    let mut failed = 0;
    for p in &config.settings.plugins {
        outln!("{}", p.name);
        match config.registry.get(&p.name) {
            Some(r) => outln!(
                "  component  {r}\n             pulled to {}",
                p.component.display()
            ),
            None => outln!("  component  {}", p.component.display()),
        }
        let triggers: Vec<&str> = p.triggers.iter().map(|t| t.as_str()).collect();
        outln!(
            "  triggers   {}",
            if triggers.is_empty() {
                "(none)".into()
            } else {
                triggers.join(", ")
            }
        );
        let g = &p.grants;
        fn show<T: ToString>(v: &[T]) -> String {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
            }
        }
        outln!(
            "  grants     teams: {}; email groups: {}; email domains: {}; entities: {}; outbound hosts: {}",
            show(&g.teams),
            show(&g.email_groups),
            show(&g.email_domains),
            show(&g.entities),
            show(&g.outbound_hosts)
        );
        for line in registry::requested_vs_granted(&p.component, g) {
            outln!("  {line}");
        }
        outln!(
            "  limits     timeout {} ms, memory {} MiB",
            p.limits.timeout_ms,
            p.limits.memory_mib
        );
        match runtime.load_trusted(&p.component, p.sha256.as_deref(), &config.settings.trust) {
            Ok(c) => outln!(
                "  check      ok (sha256 {}{})",
                &c.sha256[..16],
                if c.from_cache {
                    ", compiled code from cache"
                } else {
                    ""
                }
            ),
            Err(e) => {
                failed += 1;
                outln!("  check      FAILED: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        errln!("error: {failed} plugin(s) failed the check");
        ExitCode::FAILURE
    })
}

/// `runs replay --dead` with a `[cluster]` section: the cluster's dead letters.
async fn cluster_replay(
    config: &Path,
    plugin: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let c = cluster::connect(config).await?;
    let done = c
        .replay_dead(plugin, crate::cluster::replay::MAX_REPLAY)
        .await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&done)?);
    } else if done.is_empty() {
        outln!("no dead letters to replay");
    } else {
        for d in &done {
            outln!(
                "event {} / plugin {}: republished (replay {})",
                d.event_id,
                d.plugin,
                d.replay
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
