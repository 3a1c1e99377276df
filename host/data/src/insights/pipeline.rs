//! A refresh: sources → unification → segments and measures, raising the six
//! triggers as they happen. Events go to an [`Observer`]; this layer knows
//! nothing of plugins or how events are delivered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compute::{compute_measures, compute_segments, MeasureValue, SegmentSize};
use super::source::{source_for, Source, SourceError};
use super::thresholds::{crossings, Crossing, Kind};
use super::unify::{unify, Phase};
use super::workspace::Workspace;
use super::{ahead, fingerprint};
use crate::event::{new_event_id, now_rfc3339};
use crate::event::{
    DataSourceRefreshFailed, DataSourceRefreshSucceeded, Event, FullRefreshCompleted,
    MeasureThresholdCrossed, SegmentThresholdCrossed, StageStatus, StageSummary, Trigger,
    UnificationRefreshCompleted,
};
use crate::journal::{NewEvent, Router};
use crate::store::{EntityDb, Publication};

/// Longest wait between two retries of a source, however many there are.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// What a refresh covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every source, unification, segments and measures.
    Full,
    /// One source only.
    Source(String),
    /// Unification, segments and measures on the data already loaded.
    Unification,
}

/// Sees a refresh as it goes.
pub trait Observer {
    /// A stage started; `total` is the work it expects, when known.
    fn stage_started(&mut self, _stage: &str, _total: Option<u64>) {}
    /// Work done so far in a stage.
    fn stage_progress(&mut self, _stage: &str, _done: u64, _total: Option<u64>) {}
    /// A stage ended.
    fn stage_finished(&mut self, _summary: &StageSummary) {}
    /// A transient source failure; the source is tried again after `wait`.
    fn retrying(&mut self, _source: &str, _attempt: u32, _wait: Duration, _error: &SourceError) {}
    /// A trigger occurred.
    fn event(&mut self, event: Event);
}

/// What a refresh did.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    pub stages: Vec<StageSummary>,
    /// Ids of the events raised, in order.
    pub events: Vec<String>,
    pub duration: Duration,
}

impl RefreshReport {
    /// True when no stage failed or was skipped.
    pub fn succeeded(&self) -> bool {
        self.stages.iter().all(|s| s.status == StageStatus::Ok)
    }
}

/// An unknown `--source`.
#[derive(Debug, thiserror::Error)]
#[error("no data source named '{name}' (sources: {known})")]
pub struct UnknownSource {
    pub name: String,
    pub known: String,
}

/// The insights engine over one store.
pub struct InsightsEngine {
    workspace: Workspace,
    store: EntityDb,
    sources: Vec<Box<dyn Source>>,
    router: Option<Arc<dyn Router>>,
    hold_ms: i64,
    force: bool,
}

/// The stages after the sources, in order.
const DOWNSTREAM: [&str; 4] = ["unification", "segments", "measures", "publish"];

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl InsightsEngine {
    /// An engine for `workspace`, writing to `store` (its own connection).
    pub fn new(workspace: Workspace, store: EntityDb) -> Self {
        let sources = workspace.sources.iter().map(source_for).collect();
        Self {
            workspace,
            store,
            sources,
            router: None,
            hold_ms: 0,
            force: false,
        }
    }

    /// Journal every event before the observer sees it, with a run for each
    /// plugin `router` names; threshold events in the same transaction as
    /// the value that raised them.
    pub fn with_journal(mut self, router: Arc<dyn Router>) -> Self {
        self.router = Some(router);
        // What counts as journaled from now on: a source's data as it is
        // (0 when it has none yet), unless an earlier run recorded more.
        for spec in &self.workspace.sources {
            let mark = journaled_mark(&spec.name);
            let baseline = || -> Result<(), crate::store::StoreError> {
                if self.store.counter(&mark)?.is_none() {
                    let generation = self.store.meta(&spec.entity).map_or(0, |m| m.generation);
                    self.store.set_counter(&mark, generation)?;
                }
                Ok(())
            };
            if let Err(e) = baseline() {
                tracing::error!(source = %spec.name, "cannot read what the journal holds: {e}");
            }
        }
        self
    }

    /// Hold the runs it journals off a daemon for `ms` (the caller attempts
    /// them itself, as `triggerfish refresh` does).
    pub fn holding_runs(mut self, ms: i64) -> Self {
        self.hold_ms = ms;
        self
    }

    /// Recompute everything: import every source and unify even when their
    /// inputs are unchanged (`refresh --full --force`).
    pub fn forcing(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The store written to.
    pub fn store(&self) -> &EntityDb {
        &self.store
    }

    fn source_index(&self, name: &str) -> Result<usize, UnknownSource> {
        self.workspace
            .sources
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| UnknownSource {
                name: name.to_owned(),
                known: self
                    .workspace
                    .sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Run a refresh of `scope`, telling `obs` as it goes.
    pub fn refresh(
        &self,
        scope: &Scope,
        obs: &mut dyn Observer,
    ) -> Result<RefreshReport, UnknownSource> {
        let started = Instant::now();
        let started_ms = crate::journal::now_ms();
        let mut run = Run {
            engine: self,
            obs,
            stages: Vec::new(),
            events: Vec::new(),
        };
        run.recover();
        match scope {
            Scope::Source(name) => {
                let i = self.source_index(name)?;
                run.source(i, None);
            }
            Scope::Unification => run.downstream(None),
            Scope::Full => {
                // Later sources read ahead (hash files that look unchanged) on a
                // second thread while earlier ones load, and the next
                // source's import starts while one loads (two at a time);
                // stages end in order.
                let ahead: Vec<_> = self
                    .sources
                    .iter()
                    .skip(1)
                    .filter_map(|s| s.read_ahead(&self.store))
                    .collect();
                let mut failed = Vec::new();
                // Unification recomputes everything when forced: which rows
                // the imports changed would go unread.
                let untracked = self.force.then(|| self.store.untracked_changes());
                std::thread::scope(|scope| {
                    if !ahead.is_empty() {
                        scope.spawn(move || ahead.into_iter().for_each(|work| work()));
                    }
                    let n = self.sources.len();
                    let mut started: Vec<Option<ahead::Started<'_>>> =
                        (0..n).map(|_| None).collect();
                    let mut launched = 1;
                    for i in 0..n {
                        // The sources up to IMPORTS_AT_ONCE - 1 after this one.
                        while launched < n.min(i + ahead::IMPORTS_AT_ONCE) {
                            let s = &self.sources[launched];
                            if s.loads_ahead() {
                                started[launched] =
                                    Some(ahead::start(scope, s.as_ref(), &self.store, self.force));
                            }
                            launched += 1;
                        }
                        let this = started.get_mut(i).and_then(Option::take);
                        if !run.source(i, this) {
                            failed.push(self.workspace.sources[i].name.clone());
                        }
                    }
                });
                drop(untracked);
                let blocked = (!failed.is_empty()).then(|| {
                    let list = failed
                        .iter()
                        .map(|n| format!("'{n}'"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("skipped: source {list} failed")
                });
                run.downstream(blocked);
                let stages = run.stages.clone();
                let succeeded = stages.iter().all(|s| s.status == StageStatus::Ok);
                run.raise(Trigger::FullRefreshCompleted(FullRefreshCompleted {
                    stages,
                    succeeded,
                    duration_ms: ms(started.elapsed()),
                }));
            }
        }
        let duration = started.elapsed();
        let label = match scope {
            Scope::Full => "full".to_owned(),
            Scope::Source(name) => format!("source:{name}"),
            Scope::Unification => "unification".to_owned(),
        };
        if let Err(e) = self
            .store
            .record_refresh(&label, started_ms, ms(duration), &run.stages)
        {
            tracing::warn!("cannot record the refresh in its history: {e}");
        }
        Ok(RefreshReport {
            stages: run.stages,
            events: run.events,
            duration,
        })
    }
}

/// The counter holding the generation of a source's data whose
/// `data-source-refresh-succeeded` event is journaled.
fn journaled_mark(source: &str) -> String {
    format!("journaled-generation:{source}")
}

fn new_event(trigger: Trigger) -> Event {
    Event {
        id: new_event_id(),
        occurred_at: now_rfc3339(),
        trigger,
    }
}

/// One refresh in progress.
struct Run<'a> {
    engine: &'a InsightsEngine,
    obs: &'a mut dyn Observer,
    stages: Vec<StageSummary>,
    events: Vec<String>,
}

impl Run<'_> {
    fn raise(&mut self, trigger: Trigger) {
        self.raise_marked(new_event(trigger), None);
    }

    /// Raise `event`; with a journal, set the counter `mark` in the same
    /// transaction that journals it.
    fn raise_marked(&mut self, event: Event, mark: Option<(&str, u64)>) {
        if let Some(router) = &self.engine.router {
            let entry = NewEvent {
                plugins: router.plugins_for(&event),
                event,
                origin: "insights".into(),
                hold_ms: self.engine.hold_ms,
            };
            if let Err(e) = self
                .engine
                .store
                .append_events(std::slice::from_ref(&entry), mark)
            {
                // Not journaled, so not delivered: say so loudly.
                tracing::error!(event = %entry.event.id, "cannot journal the event, so it is not delivered: {e}");
                return;
            }
            return self.announce(entry.event);
        }
        self.announce(event);
    }

    /// A source whose data committed without its `succeeded` event being
    /// journaled (a crash in between) gets that event now, marked recovered
    /// in its id, with what the store knows (rows; no duration).
    fn recover(&mut self) {
        if self.engine.router.is_none() {
            return;
        }
        let engine = self.engine;
        for spec in &engine.workspace.sources {
            let mark = journaled_mark(&spec.name);
            let (Ok(Some(journaled)), Ok(meta)) =
                (engine.store.counter(&mark), engine.store.meta(&spec.entity))
            else {
                continue;
            };
            if meta.generation <= journaled {
                continue;
            }
            tracing::warn!(source = %spec.name, generation = meta.generation, "its refresh committed but its event was not journaled (a crash?); raising it now");
            let event = Event {
                id: format!("evt-recovered-{}-g{}", spec.name, meta.generation),
                occurred_at: now_rfc3339(),
                trigger: Trigger::DataSourceRefreshSucceeded(DataSourceRefreshSucceeded {
                    source: spec.name.clone(),
                    rows_read: meta.rows,
                    rows_rejected: 0,
                    duration_ms: 0,
                }),
            };
            self.raise_marked(event, Some((&mark, meta.generation)));
        }
    }

    fn announce(&mut self, event: Event) {
        tracing::info!(event = %event.id, "raised");
        self.events.push(event.id.clone());
        self.obs.event(event);
    }

    fn finish(
        &mut self,
        name: String,
        status: StageStatus,
        rows: u64,
        t: Instant,
        detail: Option<String>,
    ) {
        let summary = StageSummary {
            name,
            status,
            rows,
            duration_ms: ms(t.elapsed()),
            detail,
        };
        self.obs.stage_finished(&summary);
        self.stages.push(summary);
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.obs.stage_started(name, None);
        self.finish(
            name.to_owned(),
            StageStatus::Skipped,
            0,
            Instant::now(),
            Some(why.to_owned()),
        );
    }

    /// Refresh source `i` with retries; true when it succeeded.
    /// Refresh source `i` (its first attempt already `started` on another
    /// thread, if so), with retries; whether it succeeded.
    fn source(&mut self, i: usize, mut started: Option<ahead::Started<'_>>) -> bool {
        let engine = self.engine;
        let ws = &engine.workspace;
        let spec = &ws.sources[i];
        let stage = format!("source:{}", spec.name);
        let t = Instant::now();
        self.obs.stage_started(&stage, None);
        let mut attempt = 1u32;
        let mut wait = ws.retry_backoff;
        // An import started ahead took longer than its stage shows.
        let ahead_since = started.as_ref().map(ahead::Started::began);
        loop {
            let refreshed = {
                let obs = std::cell::RefCell::new(&mut *self.obs);
                let progress = |done: u64, total: u64| {
                    if let Ok(mut obs) = obs.try_borrow_mut() {
                        obs.stage_progress(&stage, done, Some(total));
                    }
                };
                match started.take() {
                    Some(import) => import.wait(&progress),
                    None => self.engine.sources[i].refresh(
                        &self.engine.store,
                        self.engine.force,
                        &progress,
                    ),
                }
            };
            match refreshed {
                Ok(loaded) => {
                    let detail = if loaded.unchanged {
                        Some(format!(
                            "unchanged since the last import ({}): not read again",
                            spec.unchanged_by()
                        ))
                    } else {
                        let rejected = (loaded.rejected > 0).then(|| {
                            format!(
                                "{} malformed rows skipped: {}",
                                loaded.rejected,
                                loaded.rejected_examples.join("; ")
                            )
                        });
                        let ahead = ahead_since.filter(|_| attempt == 1).map(|since| {
                            format!(
                                "started while the source before loaded, {} ms in all",
                                ms(since.elapsed())
                            )
                        });
                        [loaded.detail, rejected, ahead]
                            .into_iter()
                            .flatten()
                            .reduce(|a, b| format!("{a}; {b}"))
                    };
                    self.finish(stage, StageStatus::Ok, loaded.rows, t, detail);
                    let event = new_event(Trigger::DataSourceRefreshSucceeded(
                        DataSourceRefreshSucceeded {
                            source: spec.name.clone(),
                            rows_read: loaded.rows,
                            rows_rejected: loaded.rejected,
                            // The import's own time, where it started ahead.
                            duration_ms: ms(ahead_since
                                .filter(|_| attempt == 1)
                                .unwrap_or(t)
                                .elapsed()),
                        },
                    ));
                    let generation = self.engine.store.meta(&spec.entity).map(|m| m.generation);
                    let mark = journaled_mark(&spec.name);
                    match generation {
                        Ok(g) => self.raise_marked(event, Some((&mark, g))),
                        Err(_) => self.raise_marked(event, None),
                    }
                    return true;
                }
                Err(e) if !e.permanent && attempt <= ws.retries => {
                    tracing::info!(source = %spec.name, attempt, error = %e, "transient failure, retrying");
                    self.obs.retrying(&spec.name, attempt, wait, &e);
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(MAX_RETRY_BACKOFF);
                    attempt += 1;
                }
                Err(e) => {
                    let why = if e.permanent {
                        "permanent failure"
                    } else {
                        "retries exhausted"
                    };
                    tracing::info!(source = %spec.name, attempt, error = %e, "{why}");
                    self.finish(
                        stage,
                        StageStatus::Failed,
                        0,
                        t,
                        Some(format!("{e} ({why} after {attempt} attempt(s))")),
                    );
                    self.raise(Trigger::DataSourceRefreshFailed(DataSourceRefreshFailed {
                        source: spec.name.clone(),
                        error: e.message,
                        permanent: e.permanent,
                        attempts: attempt,
                        rows_read: e.rows_read,
                        row: e.row,
                        field: e.field,
                    }));
                    return false;
                }
            }
        }
    }

    /// Unification, segments and measures, staged in one publication, then
    /// published together; all skipped when `blocked`.
    fn downstream(&mut self, blocked: Option<String>) {
        if let Some(why) = blocked {
            for name in DOWNSTREAM {
                self.skip(name, &why);
            }
            return;
        }
        let mut publication = self.engine.store.publication();
        let Some(unified) = self.unification(&mut publication) else {
            let why = "skipped: unification failed";
            for name in &DOWNSTREAM[1..] {
                self.skip(name, why);
            }
            return;
        };
        let sizes = self.segments(&mut publication);
        let values = self.measures(&mut publication);
        self.publish(publication, unified, sizes, values);
    }

    /// Make the staged entities visible in one transaction, then raise the
    /// events about them: a plugin reacting reads what the event describes.
    fn publish(
        &mut self,
        publication: Publication<'_>,
        unified: Trigger,
        sizes: Option<Vec<SegmentSize>>,
        values: Option<Vec<MeasureValue>>,
    ) {
        let t = Instant::now();
        let entities: Vec<String> = publication
            .entities()
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.obs
            .stage_started("publish", Some(entities.len() as u64));
        if let Err(e) = publication.publish() {
            let detail = format!(
                "cannot publish {} (readers keep the previous data): {e}",
                entities.join(", ")
            );
            self.finish("publish".into(), StageStatus::Failed, 0, t, Some(detail));
            return;
        }
        self.raise(unified);
        let judged = self
            .judge_segments(sizes.as_deref().unwrap_or_default())
            .and_then(|()| self.judge_measures(values.as_deref().unwrap_or_default()));
        let (status, detail) = match judged {
            Ok(()) => (StageStatus::Ok, None),
            Err(e) => (
                StageStatus::Failed,
                Some(format!("published, but cannot record thresholds: {e}")),
            ),
        };
        self.finish("publish".into(), status, entities.len() as u64, t, detail);
    }

    /// Unify into `publication`; the event to raise once published, or
    /// `None` when it failed.
    fn unification(&mut self, publication: &mut Publication<'_>) -> Option<Trigger> {
        let engine = self.engine;
        let t = Instant::now();
        let total: u64 = engine
            .workspace
            .sources
            .iter()
            .filter_map(|s| engine.store.meta(&s.entity).ok())
            .map(|m| m.rows)
            .sum();
        self.obs.stage_started("unification", Some(total));
        let obs = &mut *self.obs;
        let mut progress = |phase: Phase, done: u64, _total: u64| {
            let done = match phase {
                Phase::Map => done / 3,
                Phase::Match => total / 3,
                Phase::Merge => total / 3 + done * 2 / 3,
            };
            obs.stage_progress("unification", done.min(total), Some(total));
        };
        let input = fingerprint::unification(&engine.workspace, &engine.store).ok();
        let store = &engine.store;
        let unchanged = !engine.force
            && input.is_some()
            && store.counter(fingerprint::UNIFIED_INPUT).ok().flatten() == input;
        if unchanged {
            let stat = |i: usize| {
                store
                    .counter(fingerprint::UNIFIED_STATS[i])
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            let (source_rows, profiles) = (stat(0), stat(1));
            self.finish(
                "unification".into(),
                StageStatus::Ok,
                profiles,
                t,
                Some("no source changed since the last unification: not recomputed".into()),
            );
            return Some(Trigger::UnificationRefreshCompleted(
                UnificationRefreshCompleted {
                    source_rows,
                    profiles,
                    matched_records: stat(2),
                    merges: stat(3),
                    map_ms: 0,
                    match_ms: 0,
                    merge_ms: 0,
                    duration_ms: ms(t.elapsed()),
                },
            ));
        }
        match unify(&engine.workspace, publication, engine.force, &mut progress) {
            Ok(r) => {
                let detail = r.incremental.map(|i| {
                    format!(
                        "{} changed source rows: {} records of the clusters they touch unified again (found in {} ms)",
                        i.changed_rows, i.records, i.plan_ms
                    )
                });
                self.finish("unification".into(), StageStatus::Ok, r.profiles, t, detail);
                if let Some(input) = input {
                    // Recorded with the publication, so a failed publish
                    // leaves the next refresh to recompute.
                    let stats = [r.source_rows, r.profiles, r.matched_records, r.merges];
                    for (k, v) in fingerprint::UNIFIED_STATS.iter().zip(stats) {
                        publication.set_counter(k, v);
                    }
                    publication.set_counter(fingerprint::UNIFIED_INPUT, input);
                }
                Some(Trigger::UnificationRefreshCompleted(
                    UnificationRefreshCompleted {
                        source_rows: r.source_rows,
                        profiles: r.profiles,
                        matched_records: r.matched_records,
                        merges: r.merges,
                        map_ms: r.map_ms,
                        match_ms: r.match_ms,
                        merge_ms: r.merge_ms,
                        duration_ms: r.duration_ms,
                    },
                ))
            }
            Err(e) => {
                tracing::info!(error = %e, "unification failed");
                self.finish(
                    "unification".into(),
                    StageStatus::Failed,
                    0,
                    t,
                    Some(e.to_string()),
                );
                None
            }
        }
    }

    /// Run a stage whose body returns the rows it produced and a result, or
    /// why it failed; the result when it succeeded.
    fn stage<T>(
        &mut self,
        name: &str,
        total: u64,
        body: impl FnOnce() -> Result<(u64, T), String>,
    ) -> Option<T> {
        let t = Instant::now();
        self.obs.stage_started(name, Some(total));
        let (status, rows, detail, out) = match body() {
            Ok((rows, out)) => (StageStatus::Ok, rows, None, Some(out)),
            Err(e) => (StageStatus::Failed, 0, Some(e), None),
        };
        self.finish(name.to_owned(), status, rows, t, detail);
        out
    }

    /// Record `current` as the value of `name` and raise an event for each
    /// crossing from the value recorded before, in one transaction with the
    /// journal when there is one.
    fn judge(
        &mut self,
        kind: Kind,
        name: &str,
        current: f64,
        thresholds: &[super::workspace::Threshold],
        trigger: impl Fn(Crossing) -> Trigger,
    ) -> Result<(), String> {
        let router = self.engine.router.clone();
        let hold_ms = self.engine.hold_ms;
        let raised = self
            .engine
            .store
            .record_watched_value_with_events(kind.into(), name, current, |previous| {
                let crossed = crossings(previous, current, thresholds);
                let values = crossed.iter().map(|c| c.threshold).collect();
                let events = crossed
                    .into_iter()
                    .map(|c| {
                        let event = new_event(trigger(c));
                        NewEvent {
                            plugins: router
                                .as_ref()
                                .map(|r| r.plugins_for(&event))
                                .unwrap_or_default(),
                            event,
                            origin: "insights".into(),
                            hold_ms,
                        }
                    })
                    .collect();
                (events, values)
            })
            .map_err(|e| e.to_string())?;
        for e in raised {
            self.announce(e.event);
        }
        Ok(())
    }

    /// Compute segments into `publication`; their sizes, or `None` when
    /// the stage failed.
    fn segments(&mut self, publication: &mut Publication<'_>) -> Option<Vec<SegmentSize>> {
        let n = self.engine.workspace.segments.len() as u64;
        let engine = self.engine;
        let ws = &engine.workspace;
        self.stage("segments", n, || {
            let sizes = compute_segments(ws, publication).map_err(|e| e.to_string())?;
            let members = sizes.iter().map(|s| s.members).sum();
            Ok((members, sizes))
        })
    }

    /// Compute measures into `publication`; their values, or `None` when
    /// the stage failed.
    fn measures(&mut self, publication: &mut Publication<'_>) -> Option<Vec<MeasureValue>> {
        let n = self.engine.workspace.measures.len() as u64;
        let engine = self.engine;
        let ws = &engine.workspace;
        self.stage("measures", n, || {
            let values = compute_measures(ws, publication).map_err(|e| e.to_string())?;
            let rows = values
                .iter()
                .map(|v| v.by_dimension.len().max(1) as u64)
                .sum();
            Ok((rows, values))
        })
    }

    /// Record each segment's size, raising its crossings.
    fn judge_segments(&mut self, sizes: &[SegmentSize]) -> Result<(), String> {
        let engine = self.engine;
        let ws = &engine.workspace;
        for (spec, size) in ws.segments.iter().zip(sizes) {
            self.judge(
                Kind::Segment,
                &spec.name,
                size.members as f64,
                &spec.thresholds,
                |c| {
                    Trigger::SegmentThresholdCrossed(SegmentThresholdCrossed {
                        segment: spec.name.clone(),
                        threshold: c.threshold as u64,
                        previous: c.previous as u64,
                        current: c.current as u64,
                        direction: c.direction,
                    })
                },
            )?;
        }
        Ok(())
    }

    /// Record each measure's value, raising its crossings. Measures with a
    /// dimension never trigger; nor does "no value".
    fn judge_measures(&mut self, values: &[MeasureValue]) -> Result<(), String> {
        let engine = self.engine;
        let ws = &engine.workspace;
        for (spec, v) in ws.measures.iter().zip(values) {
            let Some(current) = v.value.filter(|_| spec.dimension.is_none()) else {
                continue;
            };
            self.judge(Kind::Measure, &spec.name, current, &spec.thresholds, |c| {
                Trigger::MeasureThresholdCrossed(MeasureThresholdCrossed {
                    measure: spec.name.clone(),
                    threshold: c.threshold,
                    previous: c.previous,
                    current: c.current,
                    direction: c.direction,
                })
            })?;
        }
        Ok(())
    }
}
