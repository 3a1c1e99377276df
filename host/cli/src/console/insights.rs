//! `/insights`: each source's status and rows, and a chart of each segment's
//! member count and each measure's value across refreshes, with its
//! thresholds drawn as lines and the crossings marked.

use std::sync::Arc;

use super::layout::page;
use super::{blocking, respond, PageFailure};
use crate::daemon::Shared;
use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::{json, Value};
use triggerfish_data::event::StageSummary;
use triggerfish_data::insights::workspace::{SourceKind, Threshold, Watch, Workspace};
use triggerfish_data::store::{HistoryPoint, KEPT_HISTORY_POINTS};

use super::layout::{badge, chart, duration, when};

/// A source as shown: its spec, rows held, and its stage in the newest
/// refresh that covered it.
pub struct SourceView {
    pub rows: Option<u64>,
    pub last: Option<(i64, StageSummary)>,
}

/// What the page shows, read from the store.
pub struct InsightsView {
    pub sources: Vec<SourceView>,
    /// History per segment, in workspace order.
    pub segments: Vec<Vec<HistoryPoint>>,
    pub measures: Vec<Vec<HistoryPoint>>,
}

fn watch_word(w: Watch) -> &'static str {
    match w {
        Watch::Up => "up",
        Watch::Down => "down",
        Watch::Both => "both",
    }
}

/// The Chart.js configuration of one series with its thresholds.
pub fn series_chart(label: &str, points: &[HistoryPoint], thresholds: &[Threshold]) -> Value {
    // Before its first refresh a series counts as 0 (that is what the first
    // refresh's crossings are judged against): draw that start too, unless
    // older points were dropped.
    let from_start = (points.len() as i64) < KEPT_HISTORY_POINTS;
    let mut labels: Vec<String> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut crossed: Vec<Value> = Vec::new();
    if from_start {
        labels.push("before the first refresh".into());
        values.push(0.0);
        crossed.push(Value::Null);
    }
    for p in points {
        labels.push(when(p.at_ms)[5..].to_owned());
        values.push(p.value);
        crossed.push(if p.crossed.is_empty() {
            Value::Null
        } else {
            json!(p.value)
        });
    }
    let mut datasets = vec![json!({
        "label": label, "data": values, "borderWidth": 2, "tension": 0, "pointRadius": 3,
        "borderColor": "#0b6bcb", "backgroundColor": "#0b6bcb",
    })];
    for t in thresholds {
        datasets.push(json!({
            "label": format!("threshold {} ({})", t.value, watch_word(t.watch)),
            "data": vec![t.value; labels.len()],
            "borderDash": [6, 4], "borderWidth": 1.5, "pointRadius": 0,
            "borderColor": "#c0392b", "backgroundColor": "#c0392b",
            "triggerfish": "threshold", "threshold": t.value,
        }));
    }
    if points.iter().any(|p| !p.crossed.is_empty()) {
        datasets.push(json!({
            "label": "crossed a threshold", "data": crossed, "showLine": false,
            "pointRadius": 8, "pointStyle": "triangle",
            "borderColor": "#e67e22", "backgroundColor": "#e67e22",
            "triggerfish": "crossings",
        }));
    }
    json!({
        "type": "line",
        "data": { "labels": labels, "datasets": datasets },
        "options": {
            "animation": false,
            "maintainAspectRatio": false,
            "scales": { "y": { "beginAtZero": true }, "x": { "title": { "display": true, "text": "refresh (UTC)" } } },
            "plugins": { "legend": { "position": "bottom" } }
        }
    })
}

fn thresholds_text(t: &[Threshold]) -> String {
    if t.is_empty() {
        return "none".into();
    }
    t.iter()
        .map(|t| format!("{} ({})", t.value, watch_word(t.watch)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn current(points: &[HistoryPoint]) -> String {
    points
        .last()
        .map_or_else(|| "–".to_owned(), |p| format!("{}", p.value))
}

/// The page body.
pub fn render(ws: &Workspace, v: &InsightsView) -> Markup {
    html! {
        section {
            h2 { "Sources" }
            table #sources {
                thead { tr { th { "source" } th { "entity" } th { "from" } th { "rows held" } th { "last refresh" } th { "status" } th { "took" } th { "detail" } } }
                tbody {
                    @for (spec, s) in ws.sources.iter().zip(&v.sources) {
                        tr data-source=(spec.name) {
                            td { (spec.name) }
                            td { a href={ "/entities/" (spec.entity) } { (spec.entity) } }
                            td {
                                @match &spec.kind {
                                    SourceKind::Files => { "file " code { (spec.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()) } }
                                    SourceKind::Postgres(_) => "PostgreSQL",
                                }
                            }
                            td.num { @if let Some(n) = s.rows { (n) } @else { "–" } }
                            @match &s.last {
                                Some((at, st)) => {
                                    td { (when(*at)) }
                                    @let status: &str = st.status.into();
                                    td { (badge(status)) }
                                    td { (duration(st.duration_ms as i64)) }
                                    td.error { @if let Some(d) = &st.detail { (d) } }
                                }
                                None => { td.muted colspan="4" { "not refreshed yet" } }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Segments" }
            @if ws.segments.is_empty() { p.muted { "No segments." } }
            div.charts {
                @for (spec, points) in ws.segments.iter().zip(&v.segments) {
                    article.series data-segment=(spec.name) {
                        h3 { (spec.name) " " span.value { (current(points)) " members" } }
                        p.muted { code { (spec.filter_text) } " · thresholds: " (thresholds_text(&spec.thresholds)) }
                        @if points.is_empty() { p.muted { "Not computed yet." } }
                        @else { (chart(&format!("segment-{}", spec.name), &series_chart("members", points, &spec.thresholds))) }
                    }
                }
            }
        }
        section {
            h2 { "Measures" }
            @if ws.measures.is_empty() { p.muted { "No measures." } }
            div.charts {
                @for (spec, points) in ws.measures.iter().zip(&v.measures) {
                    article.series data-measure=(spec.name) {
                        h3 { (spec.name) " " span.value { (current(points)) } }
                        p.muted {
                            (<&str>::from(spec.aggregate)) " of " (spec.entity)
                            @if let Some(f) = &spec.field { "." (f) }
                            @if let Some((text, _)) = &spec.filter { " where " code { (text) } }
                            " · thresholds: " (thresholds_text(&spec.thresholds))
                        }
                        @if spec.dimension.is_some() { p.muted { "By dimension: no thresholds, no chart." } }
                        @else if points.is_empty() { p.muted { "Not computed yet." } }
                        @else { (chart(&format!("measure-{}", spec.name), &series_chart("value", points, &spec.thresholds))) }
                    }
                }
            }
        }
        p.muted { "Charts show the last " (KEPT_HISTORY_POINTS) " refreshes of each segment and measure." }
    }
}

pub async fn insights_page(State(s): State<Arc<Shared>>) -> Result<Response, PageFailure> {
    let (Some(ws), Some(store)) = (s.console.workspace.clone(), s.console.store.clone()) else {
        let body = html! { p.muted { "No [insights] section in the configuration." } };
        return Ok(respond(page(
            s.token.is_some(),
            "Sources, segments, measures",
            "/insights",
            html! {},
            body,
        )));
    };
    let workspace = ws.clone();
    let view = blocking(move || {
        let refreshes = store
            .refreshes(triggerfish_data::store::KEPT_REFRESHES as u32)
            .map_err(|e| e.to_string())?;
        let sources = workspace
            .sources
            .iter()
            .map(|spec| SourceView {
                rows: store.meta(&spec.entity).ok().map(|m| m.rows),
                last: refreshes.iter().find_map(|r| {
                    let stage = format!("source:{}", spec.name);
                    r.stages
                        .iter()
                        .find(|st| st.name == stage)
                        .map(|st| (r.started_ms, st.clone()))
                }),
            })
            .collect();
        let history = |kind: &str, name: &str| store.history(kind, name).map_err(|e| e.to_string());
        Ok(InsightsView {
            sources,
            segments: workspace
                .segments
                .iter()
                .map(|sp| history("segment", &sp.name))
                .collect::<Result<_, _>>()?,
            measures: workspace
                .measures
                .iter()
                .map(|sp| history("measure", &sp.name))
                .collect::<Result<_, _>>()?,
        })
    })
    .await?;
    Ok(respond(page(
        s.token.is_some(),
        "Sources, segments, measures",
        "/insights",
        html! {},
        render(&ws, &view),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_starts_at_zero_with_its_thresholds_and_crossings() {
        let points = [
            HistoryPoint {
                at_ms: 1_000,
                value: 12.0,
                crossed: vec![10.0],
            },
            HistoryPoint {
                at_ms: 2_000,
                value: 8.0,
                crossed: vec![],
            },
        ];
        let t = [Threshold {
            value: 10.0,
            watch: Watch::Up,
        }];
        let c = series_chart("members", &points, &t);
        let sets = c["data"]["datasets"].as_array().unwrap();
        assert_eq!(sets[0]["data"], json!([0.0, 12.0, 8.0]));
        assert_eq!(sets[1]["label"], "threshold 10 (up)");
        assert_eq!(sets[1]["data"], json!([10.0, 10.0, 10.0]));
        assert_eq!(sets[2]["triggerfish"], "crossings");
        assert_eq!(sets[2]["data"], json!([null, 12.0, null]));
        assert_eq!(c["data"]["labels"][0], "before the first refresh");
    }
}
