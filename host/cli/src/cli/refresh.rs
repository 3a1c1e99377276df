//! `triggerfish refresh`: the insights engine refreshes
//! on a blocking thread and reports through a channel; events go to the
//! subscribed plugins as they are raised, and everything shows on the terminal.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::term::{self, outln};
use crate::config_file::Config;
use crate::daemon::scope_name;
use anyhow::{bail, Context as _};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinSet;
use triggerfish_data::event::{describe, TriggerKind};
use triggerfish_data::event::{Event, StageStatus, StageSummary};
use triggerfish_data::insights::source::SourceError;
use triggerfish_data::insights::workspace::{SourceKind, Workspace};
use triggerfish_data::insights::{InsightsEngine, Observer, RefreshReport, Scope};
use triggerfish_data::journal::{self, now_ms, Journal, RunFilter};
use triggerfish_runtime::routing::{self, Routes};
use triggerfish_runtime::{Host, Outcome, Select};

use super::output::outcome_text;

/// What the refresh thread tells the terminal.
enum Msg {
    Started(String, Option<u64>),
    Progress(String, u64, Option<u64>),
    Finished(StageSummary),
    Retrying(String, u32, Duration, String),
    Event(Event),
}

struct ChannelObserver(UnboundedSender<Msg>);

impl Observer for ChannelObserver {
    fn stage_started(&mut self, stage: &str, total: Option<u64>) {
        let _ = self.0.send(Msg::Started(stage.to_owned(), total));
    }
    fn stage_progress(&mut self, stage: &str, done: u64, total: Option<u64>) {
        let _ = self.0.send(Msg::Progress(stage.to_owned(), done, total));
    }
    fn stage_finished(&mut self, summary: &StageSummary) {
        let _ = self.0.send(Msg::Finished(summary.clone()));
    }
    fn retrying(&mut self, source: &str, attempt: u32, wait: Duration, error: &SourceError) {
        let _ = self.0.send(Msg::Retrying(
            source.to_owned(),
            attempt,
            wait,
            error.to_string(),
        ));
    }
    fn event(&mut self, event: Event) {
        let _ = self.0.send(Msg::Event(event));
    }
}

/// Progress bars per stage on a terminal; plain lines otherwise.
struct Display {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    /// Stages whose progress counts rows (database sources), not bytes.
    row_stages: Vec<String>,
}

impl Display {
    fn new(workspace: &Workspace) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: HashMap::new(),
            row_stages: workspace
                .sources
                .iter()
                .filter(|s| !matches!(s.kind, SourceKind::Files))
                .map(|s| format!("source:{}", s.name))
                .collect(),
        }
    }

    /// Print whole lines above the bars.
    fn say(&self, text: &str) {
        let text = text.trim_end();
        match &self.multi {
            Some(m) => {
                let _ = m.println(term::clean(text));
            }
            None => outln!("{text}"),
        }
    }

    fn started(&mut self, stage: &str, total: Option<u64>) {
        let Some(m) = &self.multi else { return };
        let bar = match total {
            Some(n) => m.add(ProgressBar::new(n.max(1))),
            None => m.add(ProgressBar::new_spinner()),
        };
        let style = ProgressStyle::with_template(
            "{prefix:<28} [{bar:30}] {pos:>9}/{len:<9} {elapsed_precise}",
        )
        .map(|s| s.progress_chars("=> "));
        if let (Some(_), Ok(style)) = (total, style) {
            bar.set_style(style);
        }
        bar.set_prefix(stage.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.insert(stage.to_owned(), bar);
    }

    fn progress(&mut self, stage: &str, done: u64, total: Option<u64>) {
        if let Some(bar) = self.bars.get(stage) {
            if let Some(t) = total {
                if bar.length().is_none() {
                    // A source learns its size once it has listed its files
                    // (bytes read of both passes) or counted its rows.
                    let template = if self.row_stages.iter().any(|s| s == stage) {
                        "{prefix:<28} [{bar:30}] {pos:>9}/{len:<9} rows {elapsed_precise}"
                    } else {
                        "{prefix:<28} [{bar:30}] {bytes:>9}/{total_bytes:<9} {elapsed_precise}"
                    };
                    let bytes =
                        ProgressStyle::with_template(template).map(|s| s.progress_chars("=> "));
                    if let Ok(style) = bytes {
                        bar.set_style(style);
                    }
                }
                bar.set_length(t.max(1));
            }
            bar.set_position(done);
        }
    }

    fn finished(&mut self, s: &StageSummary) {
        if let Some(bar) = self.bars.remove(&s.name) {
            bar.finish_and_clear();
        }
        self.say(&stage_line(s));
    }
}

fn status_word(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Ok => "ok",
        StageStatus::Failed => "FAILED",
        StageStatus::Skipped => "skipped",
    }
}

fn stage_line(s: &StageSummary) -> String {
    let mut line = format!(
        "  {:<28} {:<8} {:>10} rows {:>8} ms",
        s.name,
        status_word(s.status),
        s.rows,
        s.duration_ms
    );
    if let Some(d) = &s.detail {
        line.push_str("  ");
        line.push_str(d);
    }
    line
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}\n"))
        .collect::<String>()
}

/// The host, engine and journal of a refresh.
struct Daemon {
    host: Arc<Host>,
    engine: Arc<InsightsEngine>,
    journal: Arc<Journal>,
}

impl Daemon {
    fn open(path: &Path, force: bool) -> anyhow::Result<Self> {
        let config = Config::load_with_components(path)?;
        let Some(workspace) = config.insights.clone() else {
            bail!(
                "{}: no [insights] section: add data sources under [[insights.sources]] (see the README's configuration reference)",
                path.display()
            );
        };
        let journal = Arc::new(config.open_journal()?);
        let mut host = Host::new(&config.settings, Select::All)?;
        host.set_journal(journal.clone());
        let store = config.open_store()?;
        // Events are journaled (crossings with their values); this command
        // attempts the runs itself, so they are held off a running daemon.
        let longest = config
            .settings
            .plugins
            .iter()
            .map(|p| p.limits.timeout_ms)
            .max()
            .unwrap_or(0);
        let engine = InsightsEngine::new(workspace, store)
            .with_journal(Arc::new(Routes::new(&config.settings.plugins)))
            .holding_runs(journal::hold_for(longest))
            .forcing(force);
        Ok(Self {
            host: Arc::new(host),
            engine: Arc::new(engine),
            journal,
        })
    }

    /// One refresh, with events delivered as they come; true when every
    /// stage and every delivery succeeded.
    async fn refresh(&self, scope: Scope) -> anyhow::Result<bool> {
        let (tx, mut rx) = unbounded_channel();
        let engine = self.engine.clone();
        let job_scope = scope.clone();
        let job = tokio::task::spawn_blocking(move || {
            engine.refresh(&job_scope, &mut ChannelObserver(tx))
        });
        let mut display = Display::new(self.engine.workspace());
        let mut deliveries: JoinSet<(TriggerKind, Vec<Outcome>)> = JoinSet::new();
        let mut delivered = (0usize, 0usize);
        let mut show = |display: &Display, kind: TriggerKind, outcomes: Vec<Outcome>| {
            for o in outcomes {
                if o.result.is_ok() {
                    delivered.0 += 1;
                } else {
                    delivered.1 += 1;
                }
                display.say(&format!(
                    "    -> {}\n{}",
                    o.plugin,
                    indent(&outcome_text(&o, kind))
                ));
            }
        };
        let mut open = true;
        while open || !deliveries.is_empty() {
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    None => open = false,
                    Some(Msg::Started(s, t)) => display.started(&s, t),
                    Some(Msg::Progress(s, d, t)) => display.progress(&s, d, t),
                    Some(Msg::Finished(s)) => display.finished(&s),
                    Some(Msg::Retrying(source, attempt, wait, error)) => display.say(&format!(
                        "  source:{source} attempt {attempt} failed: {error}; retrying in {} ms",
                        wait.as_millis()
                    )),
                    Some(Msg::Event(event)) => {
                        let kind = TriggerKind::of(&event.trigger);
                        display.say(&format!("  event {kind} {}: {}", event.id, describe(&event.trigger)));
                        let host = self.host.clone();
                        let journal = self.journal.clone();
                        deliveries.spawn(async move {
                            let started_ms = now_ms();
                            let outcomes = host.dispatch(&event).await;
                            record(&journal, &host, &event.id, started_ms, &outcomes);
                            (kind, outcomes)
                        });
                    }
                },
                Some(done) = deliveries.join_next(), if !deliveries.is_empty() => {
                    let (kind, outcomes) = done.context("a delivery task failed")?;
                    show(&display, kind, outcomes);
                }
            }
        }
        let report: RefreshReport = job.await.context("the refresh thread failed")??;
        summary(&display, &scope, &report, delivered);
        Ok(report.succeeded() && delivered.1 == 0)
    }
}

/// Record each outcome as its run's first attempt: a failure is left for
/// `triggerfish run` to retry (or dead-lettered when the plugin has none).
fn record(journal: &Journal, host: &Host, event_id: &str, started_ms: i64, outcomes: &[Outcome]) {
    let runs = match journal.runs(&RunFilter {
        event: Some(event_id.to_owned()),
        ..Default::default()
    }) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(event = event_id, "cannot read the event's runs: {e}");
            return;
        }
    };
    let attempts = outcomes
        .iter()
        .filter_map(|o| {
            let run = runs.iter().find(|r| r.plugin == o.plugin)?;
            let retry = host.plugin(&o.plugin).map(|p| p.config.retry);
            let verdict = routing::verdict(retry, 1, o.result.is_ok());
            Some(o.attempt(run.id, started_ms, verdict))
        })
        .collect();
    if let Err(e) = journal.wait(|j, r| j.finish(attempts, r)) {
        tracing::error!(event = event_id, "cannot record the attempts: {e}");
    }
}

fn summary(display: &Display, scope: &Scope, r: &RefreshReport, delivered: (usize, usize)) {
    let mut text = format!(
        "\n{} {} in {:.2} s\n",
        scope_name(scope),
        if r.succeeded() {
            "succeeded"
        } else {
            "had failures"
        },
        r.duration.as_secs_f64()
    );
    for s in &r.stages {
        text.push_str(&stage_line(s));
        text.push('\n');
    }
    text.push_str(&format!(
        "  events raised: {}; plugin deliveries: {} ok, {} failed\n",
        r.events.len(),
        delivered.0,
        delivered.1
    ));
    if delivered.1 > 0 {
        text.push_str(
            "  failed runs wait in the journal: `triggerfish run` retries them (`triggerfish runs list`)\n",
        );
    }
    display.say(&text);
}

/// `triggerfish refresh`.
pub async fn refresh(path: &Path, scope: Scope, force: bool) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::open(path, force)?;
    outln!("{} of {}", scope_name(&scope), path.display());
    Ok(if daemon.refresh(scope).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
