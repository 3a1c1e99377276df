//! `/plugins`: each plugin's world, triggers, filters, grants requested
//! against granted, limits, version and digest, last runs, success rate and
//! duration percentiles.

use std::sync::Arc;

use super::layout::page;
use super::{blocking, respond, PageFailure};
use crate::daemon::Shared;
use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};
use triggerfish_data::journal::RunFilter;
use triggerfish_data::journal::{PluginStats, RunRow, STATS_WINDOW};
use triggerfish_package::manifest::Manifest;
use triggerfish_runtime::routing::When;
use triggerfish_runtime::settings::PluginConfig;

use super::layout::duration;

/// One plugin as shown.
pub struct PluginView {
    pub config: PluginConfig,
    pub sha256: String,
    /// `oci://…` when pulled from a registry.
    pub reference: Option<String>,
    /// The packed manifest, or why there is none.
    pub manifest: Result<Manifest, String>,
    pub stats: PluginStats,
    pub last: Vec<RunRow>,
    pub throttled: u64,
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "–".into()
    } else {
        v.join(", ")
    }
}

fn filters(w: &When) -> Vec<String> {
    let mut out = Vec::new();
    let globs = |p: &[glob::Pattern]| p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    if !w.source.is_empty() {
        out.push(format!("source: {}", globs(&w.source)));
    }
    if !w.segment.is_empty() {
        out.push(format!("segment: {}", globs(&w.segment)));
    }
    if !w.measure.is_empty() {
        out.push(format!("measure: {}", globs(&w.measure)));
    }
    if let Some(d) = w.direction {
        out.push(format!("direction: {}", format!("{d:?}").to_lowercase()));
    }
    if let Some(p) = w.permanent {
        out.push(format!("permanent: {p}"));
    }
    out
}

/// The page body.
pub fn render(plugins: &[PluginView]) -> Markup {
    html! {
        @if plugins.is_empty() { p.muted { "No plugins configured." } }
        @for p in plugins {
            @let c = &p.config;
            article.plugin data-plugin=(c.name) {
                h2 { (c.name) }
                div.columns {
                    dl {
                        dt { "world" }
                        dd { @match &p.manifest { Ok(m) => code { (m.world) }, Err(_) => code { (triggerfish_package::manifest::WORLD) } } }
                        dt { "version" }
                        dd {
                            @match &p.manifest {
                                Ok(m) => { (m.name) " " (m.version) " (" (format!("{:?}", m.language).to_lowercase()) ")" }
                                Err(why) => span.muted { (why) }
                            }
                        }
                        dt { "digest" } dd { code.digest { "sha256:" (p.sha256) } }
                        dt { "component" } dd {
                            @if let Some(r) = &p.reference { code { (r) } br; }
                            code { (c.component.display()) }
                        }
                        dt { "triggers" } dd { (list(&c.triggers.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>())) }
                        dt { "filters" } dd { (list(&filters(&c.when))) }
                        dt { "limits" } dd {
                            "timeout " (duration(c.limits.timeout_ms as i64)) ", memory " (c.limits.memory_mib) " MiB, "
                            (c.limits.entity_budget.calls) " entity calls per " (humantime::format_duration(c.limits.entity_budget.window))
                            ", concurrency " (c.concurrency) ", " (c.retry.retries) " retries"
                        }
                        dt { "config keys" } dd { (list(&c.config.keys().cloned().collect::<Vec<_>>())) }
                    }
                    div {
                        table.grants {
                            thead { tr { th { "capability" } th { "requested" } th { "granted" } } }
                            tbody {
                                @for (kind, given) in c.grants.kinds() {
                                    @let asked: Option<Vec<String>> = p.manifest.as_ref().ok().map(|m| {
                                        m.grants.kinds().iter().find(|(k, _)| *k == kind).map(|(_, v)| v.to_vec()).unwrap_or_default()
                                    });
                                    @let extra = asked.as_ref().is_some_and(|a| given.iter().any(|g| !a.iter().any(|x| x == g || x == "*")));
                                    tr class=[extra.then_some("warn")] {
                                        td { (kind) }
                                        td { @match &asked { Some(a) => (list(a)), None => span.muted { "(no manifest)" } } }
                                        td { (list(&given)) @if extra { " " span.badge.warn { "more than requested" } } }
                                    }
                                }
                            }
                        }
                        table.stats {
                            tbody {
                                tr { th { "success rate" } td.num data-stat="success-rate" {
                                    @match p.stats.success_rate() { Some(r) => (format!("{:.1} %", r * 100.0)), None => "–" }
                                } }
                                tr { th { "finished runs" } td.num { (p.stats.finished) " (" (p.stats.succeeded) " ok, " (p.stats.dead) " dead)" } }
                                tr { th { "waiting" } td.num { (p.stats.waiting) } }
                                tr { th { "p50 duration" } td.num data-stat="p50" { @match p.stats.p50_ms { Some(d) => (duration(d)), None => "–" } } }
                                tr { th { "p99 duration" } td.num data-stat="p99" { @match p.stats.p99_ms { Some(d) => (duration(d)), None => "–" } } }
                                tr { th { "throttled entity calls" } td.num { (p.throttled) } }
                            }
                        }
                        p.muted { "Over the last " (STATS_WINDOW) " finished runs." }
                    }
                }
                h3 { "Last runs" }
                (super::runs::table(&p.last))
                p { a href={ "/runs?" (super::runs::query("plugin", &c.name)) } { "all runs of " (c.name) " →" } }
            }
        }
    }
}

pub async fn plugins_page(State(s): State<Arc<Shared>>) -> Result<Response, PageFailure> {
    let host = s.host.borrow().clone();
    let mut views = Vec::new();
    for p in host.plugins() {
        let name = p.config.name.clone();
        let journal = s.journal.clone();
        let (stats, last) = blocking(move || {
            let stats = journal.plugin_stats(&name).map_err(|e| e.to_string())?;
            let last = journal
                .runs(&RunFilter {
                    plugin: Some(name),
                    limit: 5,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?;
            Ok((stats, last))
        })
        .await?;
        views.push(PluginView {
            manifest: s
                .console
                .manifest(&p.config.component, &p.component.sha256)
                .await,
            config: p.config.clone(),
            sha256: p.component.sha256.clone(),
            reference: s.console.references.get(&p.config.name).cloned(),
            stats,
            last,
            throttled: host.entity_throttled(&p.config.name).unwrap_or(0),
        });
    }
    Ok(respond(page(
        s.token.is_some(),
        "Plugins",
        "/plugins",
        html! {},
        render(&views),
    )))
}
