//! `/`: the last refreshes stage by stage, events per trigger over time,
//! runs by status, dead letters and throttled entity calls.

use std::collections::HashMap;
use std::sync::Arc;

use super::layout::page;
use super::{blocking, respond, PageFailure};
use crate::daemon::Shared;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{json, Value};
use triggerfish_data::event::StageStatus;
use triggerfish_data::insights::Scope;
use triggerfish_data::journal::{Bucket, Counts, EventRow, RunRow};
use triggerfish_data::journal::{EventFilter, RunFilter};
use triggerfish_data::store::RefreshRecord;

use super::layout::{badge, chart, duration, when};

/// Refreshes shown.
pub const REFRESHES_SHOWN: u32 = 10;
/// The events chart covers this much time.
pub const EVENTS_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Bucket widths of the events chart: the narrowest that gives at most
/// [`MAX_BARS`] bars from the first event shown.
pub const EVENTS_BUCKETS_MS: [i64; 5] = [60_000, 300_000, 900_000, 3_600_000, 10_800_000];
/// Most bars in the events chart.
pub const MAX_BARS: i64 = 60;

/// Regroup minute buckets into the narrowest width giving at most
/// [`MAX_BARS`] bars.
pub fn regroup(minutes: Vec<Bucket>, now_ms: i64) -> (i64, Vec<Bucket>) {
    let first = minutes.iter().map(|b| b.start_ms).min().unwrap_or(now_ms);
    let span = (now_ms - first).max(1);
    let width = EVENTS_BUCKETS_MS
        .iter()
        .copied()
        .find(|w| span / w < MAX_BARS)
        .unwrap_or(EVENTS_BUCKETS_MS[EVENTS_BUCKETS_MS.len() - 1]);
    let mut out: Vec<Bucket> = Vec::new();
    for b in minutes {
        let start = b.start_ms / width * width;
        match out
            .iter_mut()
            .find(|o| o.start_ms == start && o.trigger == b.trigger)
        {
            Some(o) => o.events += b.events,
            None => out.push(Bucket {
                start_ms: start,
                ..b
            }),
        }
    }
    out.sort_by(|a, b| (a.start_ms, &a.trigger).cmp(&(b.start_ms, &b.trigger)));
    (width, out)
}

/// What the overview shows.
pub struct Overview {
    pub refreshes: Option<Vec<RefreshRecord>>,
    pub counts: Counts,
    pub buckets: (i64, Vec<Bucket>),
    /// Throttled entity calls per plugin.
    pub throttled: Vec<(String, u64)>,
    pub runs: Vec<RunRow>,
    pub events: Vec<EventRow>,
}

fn count(pairs: &[(String, u64)], key: &str) -> u64 {
    pairs.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
}

fn events_chart(bucket_ms: i64, buckets: &[Bucket]) -> Value {
    let mut starts: Vec<i64> = buckets.iter().map(|b| b.start_ms).collect();
    starts.dedup();
    let labels: Vec<String> = starts.iter().map(|s| when(*s)[5..16].to_owned()).collect();
    let mut triggers: Vec<&str> = buckets.iter().map(|b| b.trigger.as_str()).collect();
    triggers.sort_unstable();
    triggers.dedup();
    let datasets: Vec<Value> = triggers
        .iter()
        .map(|t| {
            let data: Vec<u64> = starts
                .iter()
                .map(|s| {
                    buckets
                        .iter()
                        .find(|b| b.start_ms == *s && b.trigger == *t)
                        .map_or(0, |b| b.events)
                })
                .collect();
            json!({ "label": t, "data": data })
        })
        .collect();
    json!({
        "type": "bar",
        "data": { "labels": labels, "datasets": datasets },
        "options": {
            "animation": false,
            "maintainAspectRatio": false,
            "scales": { "x": { "stacked": true, "title": { "display": true, "text": format!("UTC, by {}", humantime::format_duration(std::time::Duration::from_millis(bucket_ms as u64))) } },
                        "y": { "stacked": true, "beginAtZero": true, "ticks": { "precision": 0 } } },
            "plugins": { "legend": { "position": "bottom" } }
        }
    })
}

/// The page body.
pub fn render(o: &Overview) -> Markup {
    let dead = count(&o.counts.runs_by_status, "dead");
    let throttled: u64 = o.throttled.iter().map(|(_, n)| n).sum();
    let waiting =
        count(&o.counts.runs_by_status, "queued") + count(&o.counts.runs_by_status, "retrying");
    html! {
        section.tiles {
            a.tile href="/runs?status=dead" data-tile="dead-letters" {
                span.n { (dead) } span { "dead letters" }
            }
            a.tile href="/runs" data-tile="waiting" { span.n { (waiting) } span { "runs waiting" } }
            div.tile data-tile="throttled" { span.n { (throttled) } span { "throttled entity calls" } }
            div.tile data-tile="events" {
                span.n { (o.counts.events_by_trigger.iter().map(|(_, n)| n).sum::<u64>()) }
                span { "events journaled" }
            }
        }
        section {
            h2 { "Last refreshes" }
            @match &o.refreshes {
                None => p.muted { "No [insights] section in the configuration: nothing is refreshed here." },
                Some(list) if list.is_empty() => p.muted { "No refresh has finished yet." },
                Some(list) => table #refreshes {
                    thead { tr { th { "#" } th { "scope" } th { "started (UTC)" } th { "took" } th { "status" } th { "stages" } } }
                    tbody {
                        @for r in list {
                            tr data-refresh=(r.id) {
                                td { (r.id) }
                                td { (r.scope) }
                                td { (when(r.started_ms)) }
                                td { (duration(r.duration_ms)) }
                                td { (badge(if r.succeeded { "ok" } else { "failed" })) }
                                td.stages {
                                    @for st in &r.stages {
                                        @let status: &str = st.status.into();
                                        span class={"stage " (status)} title=[st.detail.as_deref()] {
                                             (st.name) " " (badge(status)) " " (duration(st.duration_ms as i64))
                                            @if st.rows > 0 { " · " (st.rows) " rows" }
                                        }
                                    }
                                    @for st in r.stages.iter().filter(|st| st.status == StageStatus::Failed) {
                                        @if let Some(d) = &st.detail {
                                            div.error { (st.name) ": " (d) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
        }
        div.columns {
            section {
                h2 { "Events per trigger, last 24 hours" }
                @if o.buckets.1.is_empty() { p.muted { "No events in the last 24 hours." } }
                @else { (chart("events-chart", &events_chart(o.buckets.0, &o.buckets.1))) }
            }
            section {
                h2 { "Runs by status" }
                table #runs-by-status {
                    tbody {
                        @for status in ["queued", "retrying", "succeeded", "dead", "replayed"] {
                            tr { td { a href={ "/runs?status=" (status) } { (badge(status)) } } td.num { (count(&o.counts.runs_by_status, status)) } }
                        }
                    }
                }
                @if !o.throttled.is_empty() {
                    h3 { "Throttled entity calls by plugin" }
                    table { tbody { @for (p, n) in &o.throttled { tr { td { (p) } td.num { (n) } } } } }
                }
            }
        }
        div.columns {
            section {
                h2 { "Latest runs" }
                (super::runs::table(&o.runs))
            }
            section {
                h2 { "Latest events" }
                table #latest-events {
                    thead { tr { th { "event" } th { "trigger" } th { "accepted (UTC)" } th { "from" } } }
                    tbody {
                        @for e in &o.events {
                            tr { td { a href={ "/runs?" (super::runs::query("event", &e.id)) } { (e.id) } } td { (e.trigger) } td { (when(e.accepted_ms)) } td { (e.origin) } }
                        }
                    }
                }
            }
        }
    }
}

/// The overview's "Refresh now" form (with `[insights]`).
fn refresh_form(s: &Shared) -> Markup {
    html! {
        @if s.refresh.is_some() {
            form.filters method="post" action="/refresh" {
                label {
                    "refresh "
                    select name="source" {
                        option value="" { "everything (full refresh)" }
                        @for name in &s.sources { option value=(name) { "source " (name) } }
                    }
                }
                button #refresh-now type="submit" { "Refresh now" }
            }
        }
    }
}

pub async fn refresh_from_page(
    State(s): State<Arc<Shared>>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let scope = match f.get("source").filter(|v| !v.is_empty()) {
        None => Scope::Full,
        Some(name) => Scope::Source(name.clone()),
    };
    let queued = crate::daemon::scope_name(&scope);
    s.request_refresh(scope)
        .await
        .map_err(|(code, why)| PageFailure(code, why))?;
    Ok(Redirect::to(&format!("/?{}", super::runs::query("queued", &queued))).into_response())
}

pub async fn overview_page(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let host = s.host.borrow().clone();
    let throttled: Vec<(String, u64)> = host
        .plugins()
        .map(|p| {
            let n = host.entity_throttled(&p.config.name).unwrap_or(0);
            (p.config.name.clone(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let journal = s.journal.clone();
    let store = s.console.store.clone();
    let o = blocking(move || {
        let now = triggerfish_data::journal::now_ms();
        Ok(Overview {
            refreshes: match &store {
                Some(st) => Some(st.refreshes(REFRESHES_SHOWN).map_err(|e| e.to_string())?),
                None => None,
            },
            counts: journal.counts().map_err(|e| e.to_string())?,
            buckets: regroup(
                journal
                    .events_over_time(now - EVENTS_WINDOW_MS, EVENTS_BUCKETS_MS[0])
                    .map_err(|e| e.to_string())?
                    .1,
                now,
            ),
            throttled,
            runs: journal
                .runs(&RunFilter {
                    limit: 10,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?,
            events: journal
                .events(&EventFilter {
                    limit: 10,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?,
        })
    })
    .await?;
    let flash = q
        .get("queued")
        .map(|what| format!("Queued: {what}. It shows below when it finishes."));
    let body = html! {
        @if let Some(f) = &flash { p.flash role="status" { (f) } }
        (render(&o))
    };
    Ok(respond(page(
        s.token.is_some(),
        "Overview",
        "/",
        refresh_form(&s),
        body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(start_ms: i64, trigger: &str, events: u64) -> Bucket {
        Bucket {
            start_ms,
            trigger: trigger.into(),
            events,
        }
    }

    #[test]
    fn minutes_regroup_into_at_most_max_bars() {
        let now = 100 * 3_600_000;
        let (w, out) = regroup(vec![b(now - 120_000, "a", 2), b(now - 60_000, "a", 1)], now);
        assert_eq!((w, out.len()), (60_000, 2));
        let (w, out) = regroup(
            vec![
                b(now - 20 * 3_600_000, "a", 2),
                b(now - 20 * 3_600_000 + 60_000, "a", 3),
                b(now, "b", 1),
            ],
            now,
        );
        assert_eq!(w, 3_600_000);
        assert_eq!(out, [b(now - 20 * 3_600_000, "a", 5), b(now, "b", 1)]);
    }
}
