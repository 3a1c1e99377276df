//! `/runs` (filterable by plugin, trigger and status) and `/runs/{id}`: the
//! event, every attempt with its error, the captured log lines, what the run
//! posted or emailed, and a replay button for finished runs.

use std::collections::HashMap;
use std::sync::Arc;

use super::layout::page;
use super::{blocking, failed, respond, PageFailure};
use crate::daemon::Shared;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use triggerfish_data::event::TriggerKind;
use triggerfish_data::journal::RunFilter;
use triggerfish_data::journal::{RunDetail, RunRow, RunStatus};

use super::layout::{badge, duration, when};

/// Runs per page of the runs list.
pub const RUNS_PER_PAGE: u32 = 50;

/// The filters of the runs page, as given in its query.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub plugin: Option<String>,
    pub trigger: Option<String>,
    pub status: Option<String>,
    pub event: Option<String>,
    pub before: Option<i64>,
}

/// A table of runs.
pub fn table(runs: &[RunRow]) -> Markup {
    html! {
        @if runs.is_empty() { p.muted { "No runs." } }
        @else {
            table.runs {
                thead { tr { th { "run" } th { "plugin" } th { "trigger" } th { "status" } th { "attempts" } th { "created (UTC)" } th { "took" } th { "error" } } }
                tbody {
                    @for r in runs {
                        tr data-run=(r.id) data-status=(r.status) {
                            td {
                                a href={ "/runs/" (r.id) } { "#" (r.id) }
                                @if let Some(of) = r.replay_of { " " span.muted title={ "replays run #" (of) } { "↻" (of) } }
                            }
                            td { (r.plugin) }
                            td { (r.trigger) }
                            td { (badge(&r.status)) }
                            td.num { (r.attempts) }
                            td { (when(r.created_ms)) }
                            td { @if let Some(d) = r.duration_ms { (duration(d)) } }
                            td.error { @if let Some(e) = &r.error { (shorten(e, 160)) } }
                        }
                    }
                }
            }
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn select(name: &str, label: &str, options: &[String], chosen: Option<&str>) -> Markup {
    html! {
        label {
            (label) " "
            select name=(name) {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[chosen == Some(o.as_str())] { (o) }
                }
            }
        }
    }
}

/// The filter form (above the live region).
pub fn filter_form(plugins: &[String], f: &Filters) -> Markup {
    let triggers: Vec<String> = TriggerKind::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    let statuses: Vec<String> = <RunStatus as strum::VariantArray>::VARIANTS
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    html! {
        form.filters method="get" action="/runs" {
            (select("plugin", "plugin", plugins, f.plugin.as_deref()))
            (select("trigger", "trigger", &triggers, f.trigger.as_deref()))
            (select("status", "status", &statuses, f.status.as_deref()))
            @if let Some(e) = &f.event { input type="hidden" name="event" value=(e); }
            button type="submit" { "Filter" }
        }
    }
}

/// The list's body, with a link to older runs.
pub fn list(runs: &[RunRow], f: &Filters, page: u32) -> Markup {
    let older = (runs.len() as u32 == page)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("plugin", &f.plugin),
        ("trigger", &f.trigger),
        ("status", &f.status),
        ("event", &f.event),
    ] {
        if let Some(v) = v {
            query.push((k.to_owned(), v.clone()));
        }
    }
    html! {
        @if let Some(e) = &f.event { p { "Runs of event " code { (e) } " · " a href="/runs" { "all runs" } } }
        (table(runs))
        @if let Some(before) = older {
            @let q = [query.as_slice(), &[("before".to_owned(), before.to_string())]].concat();
            p { a.next href={ "/runs?" (encode(&q)) } { "older runs →" } }
        }
    }
}

/// `k=v&…`, form-encoded (`form_urlencoded`, as browsers send forms).
pub fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One `k=v`, form-encoded.
pub fn query(key: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish()
}

/// One run in full.
pub fn detail(d: &RunDetail, flash: Option<&str>) -> Markup {
    let r = &d.run;
    let replayable = r.status == "dead" || r.status == "succeeded";
    html! {
        @if let Some(f) = flash { p.flash role="status" { (f) } }
        section.summary {
            dl {
                dt { "plugin" } dd { a href={ "/runs?" (query("plugin", &r.plugin)) } { (r.plugin) } }
                dt { "event" } dd { a href={ "/runs?" (query("event", &r.event_id)) } { code { (r.event_id) } } }
                dt { "trigger" } dd { (r.trigger) }
                dt { "status" } dd #run-status { (badge(&r.status)) }
                dt { "attempts" } dd { (r.attempts) }
                @if let Some(of) = r.replay_of {
                    dt { "replays" } dd { a #replay-of href={ "/runs/" (of) } { "run #" (of) } }
                }
                @if let Some(by) = d.replayed_by {
                    dt { "replayed by" } dd { a #replayed-by href={ "/runs/" (by) } { "run #" (by) } }
                }
                dt { "created" } dd { (when(r.created_ms)) " UTC" }
                @if r.status == "queued" || r.status == "retrying" {
                    dt { "next attempt" } dd { (when(r.next_ms)) " UTC" }
                }
            }
            @if replayable {
                form method="post" action={ "/runs/" (r.id) "/replay" } {
                    button #replay type="submit" title="A new run of this plugin for the same event (sends this run already made are not repeated)" { "Replay" }
                }
            }
        }
        section {
            h2 { "Attempts" }
            @if d.history.is_empty() { p.muted { "No attempt has finished yet." } }
            @else {
                table #attempts {
                    thead { tr { th { "#" } th { "started (UTC)" } th { "took" } th { "outcome" } th { "error" } } }
                    tbody {
                        @for a in &d.history {
                            tr data-attempt=(a.attempt) data-outcome=(a.outcome) {
                                td { (a.attempt) }
                                td { (when(a.started_ms)) }
                                td { (duration(a.duration_ms)) }
                                td { (badge(&a.outcome)) }
                                td.error { @if let Some(e) = &a.error { (e) } }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Log" }
            @if d.logs.is_empty() { p.muted { "Nothing was logged." } }
            @else {
                table #log {
                    thead { tr { th { "attempt" } th { "level" } th { "from" } th { "line" } } }
                    tbody {
                        @for (attempt, line) in &d.logs {
                            tr class={ "level-" (line.level) } {
                                td { (attempt) } td { (line.level) } td { (line.source) } td.text { (line.text) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Posted or emailed" }
            @if d.sent.is_empty() { p.muted { "Nothing was sent." } }
            @else {
                table #sent {
                    thead { tr { th { "#" } th { "kind" } th { "result" } th { "at (UTC)" } } }
                    tbody {
                        @for s in &d.sent {
                            tr { td { (s.call) } td { (s.kind) } td { (s.result) } td { (when(s.at_ms)) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Status reports" }
            @if d.reports.is_empty() { p.muted { "The plugin reported no status." } }
            @else {
                table #reports {
                    thead { tr { th { "attempt" } th { "level" } th { "message" } th { "details" } th { "at (UTC)" } } }
                    tbody {
                        @for (attempt, r) in &d.reports {
                            tr class={ "report-" (r.level) } {
                                td { (attempt) } td { (badge(&r.level)) } td.text { (r.message) }
                                td { @if let Some(details) = &r.details { code { (details) } } }
                                td { (when(r.at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Written" }
            @if d.writes.is_empty() { p.muted { "Nothing was written." } }
            @else {
                table #writes {
                    thead { tr { th { "entity" } th { "write" } th { "key" } th { "before" } th { "after" } th { "at (UTC)" } } }
                    tbody {
                        @for w in &d.writes {
                            tr {
                                td { (w.entity) } td { (w.op) } td { code { (w.key) } }
                                td { @if let Some(b) = &w.before { code { (b) } } }
                                td { code { (w.after) } }
                                td { (when(w.at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Event" }
            @match &d.event {
                Some(e) => pre #event { (serde_json::to_string_pretty(e).unwrap_or_default()) },
                None => p.muted { "The event is no longer kept (pruned)." },
            }
        }
    }
}

fn plugin_names(s: &Shared) -> Vec<String> {
    s.host
        .borrow()
        .plugins()
        .map(|p| p.config.name.clone())
        .collect()
}

pub async fn runs_page(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let pick = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let f = Filters {
        plugin: pick("plugin"),
        trigger: pick("trigger"),
        status: pick("status"),
        event: pick("event"),
        before: pick("before").and_then(|b| b.parse().ok()),
    };
    if let Some(t) = &f.trigger {
        t.parse::<triggerfish_data::event::TriggerKind>()
            .map_err(|e| PageFailure(StatusCode::BAD_REQUEST, format!("trigger: {e}")))?;
    }
    let status = match &f.status {
        None => None,
        Some(v) => Some(v.parse::<RunStatus>().map_err(|_| {
            PageFailure(
                StatusCode::BAD_REQUEST,
                format!("status '{v}': expected queued, retrying, succeeded, dead or replayed"),
            )
        })?),
    };
    let filter = RunFilter {
        status,
        plugin: f.plugin.clone(),
        event: f.event.clone(),
        trigger: f.trigger.clone(),
        before: f.before,
        limit: RUNS_PER_PAGE,
    };
    let journal = s.journal.clone();
    let rows = blocking(move || journal.runs(&filter).map_err(|e| e.to_string())).await?;
    let tools = filter_form(&plugin_names(&s), &f);
    Ok(respond(page(
        s.token.is_some(),
        "Runs",
        "/runs",
        tools,
        list(&rows, &f, RUNS_PER_PAGE),
    )))
}

fn run_id(id: &str) -> Result<i64, PageFailure> {
    id.parse().map_err(|_| {
        PageFailure(
            StatusCode::BAD_REQUEST,
            format!("run id: expected a whole number, found '{id}'"),
        )
    })
}

pub async fn run_page(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let id = run_id(&id)?;
    let journal = s.journal.clone();
    let run = blocking(move || journal.run(id).map_err(|e| e.to_string()))
        .await?
        .ok_or_else(|| PageFailure(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let flash = q.get("replay_of").map(|old| {
        format!("Replay of run #{old} queued: this run's attempts appear below as they finish.")
    });
    let title = format!("Run #{id}");
    Ok(respond(page(
        s.token.is_some(),
        &title,
        "/runs",
        html! {},
        detail(&run, flash.as_deref()),
    )))
}

pub async fn replay_from_page(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, PageFailure> {
    let id = run_id(&id)?;
    let done = s.replay(vec![id]).await.map_err(failed)?;
    if done.is_empty() {
        return Err(PageFailure(
            StatusCode::CONFLICT,
            format!("run {id} does not exist, is still waiting or was replayed already; only dead-lettered or succeeded runs are replayed"),
        ));
    }
    let new_run = done[0].new_run;
    Ok(Redirect::to(&format!("/runs/{new_run}?replay_of={id}")).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        let q = [("plugin".to_owned(), "a b&c".to_owned())];
        assert_eq!(super::encode(&q), "plugin=a+b%26c");
        assert_eq!(super::query("event", "e/1"), "event=e%2F1");
        assert_eq!(super::shorten("abcdef", 3), "abc…");
    }
}
