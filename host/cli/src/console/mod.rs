//! The web console: server-rendered pages (maud) over the journal and the
//! store, served by the daemon next to the admin API and under the same
//! auth rule. Charts are drawn by Chart.js; every asset is embedded in the
//! binary. Live updates: `/live` streams a server-sent event whenever the
//! journal or the refresh history changes, and the page re-renders its main
//! region.

mod entities;
mod insights;
mod layout;
pub mod live;
mod overview;
mod plugins;
mod runs;
pub mod session;
mod state;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use triggerfish_data::insights::Scope;
use triggerfish_data::journal::{EventFilter, RunFilter, RunStatus};
use triggerfish_data::store::PageError;

use super::daemon::Shared;
use layout::{error_box, page};

pub use state::ConsoleState;

/// Runs per page of the runs list.
pub const RUNS_PER_PAGE: u32 = 50;

/// The console's routes (merged into the admin API's router).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(overview_page))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/replay", post(replay_from_page))
        .route("/refresh", post(refresh_from_page))
        .route("/plugins", get(plugins_page))
        .route("/insights", get(insights_page))
        .route("/entities", get(entities_index))
        .route("/entities/{name}", get(entity_page))
        .route("/live", get(live::stream))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/{file}", get(asset))
}

/// Paths anyone may fetch: the sign-in page and the static assets.
pub fn is_open(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/")
}

/// Whether `path` is a console page (answered with HTML, not JSON).
pub fn is_page(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let versioned =
        first.len() > 1 && first.starts_with('v') && first[1..].bytes().all(|b| b.is_ascii_digit());
    !(versioned || matches!(path, "/metrics" | "/healthz" | "/readyz"))
}

/// The answer to an unknown path: an HTML page for the console, JSON under the API.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if is_page(uri.path()) {
        PageFailure(StatusCode::NOT_FOUND, format!("no page {}", uri.path())).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such endpoint" })),
        )
            .into_response()
    }
}

/// An error page.
pub struct PageFailure(StatusCode, String);

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        let body = page(false, "Error", "", html! {}, error_box(&self.1));
        (self.0, Html(body.into_string())).into_response()
    }
}

fn failed(e: impl std::fmt::Display) -> PageFailure {
    PageFailure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Run blocking store or journal reads off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, PageFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(failed)?
        .map_err(failed)
}

fn html(m: Markup) -> Response {
    Html(m.into_string()).into_response()
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

async fn refresh_from_page(
    State(s): State<Arc<Shared>>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let Some(tx) = &s.refresh else {
        return Err(PageFailure(
            StatusCode::CONFLICT,
            "no [insights] section in the configuration: nothing to refresh".into(),
        ));
    };
    let scope = match f.get("source").filter(|v| !v.is_empty()) {
        None => Scope::Full,
        Some(name) if s.sources.contains(name) => Scope::Source(name.clone()),
        Some(name) => {
            return Err(PageFailure(
                StatusCode::BAD_REQUEST,
                format!(
                    "no data source named '{name}' (sources: {})",
                    s.sources.join(", ")
                ),
            ))
        }
    };
    let queued = crate::daemon::scope_name(&scope);
    tx.send(scope)
        .await
        .map_err(|_| PageFailure(StatusCode::SERVICE_UNAVAILABLE, "stopping".into()))?;
    Ok(Redirect::to(&format!("/?queued={}", runs::percent(&queued))).into_response())
}

async fn overview_page(
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
        Ok(overview::Overview {
            refreshes: match &store {
                Some(st) => Some(
                    st.refreshes(overview::REFRESHES_SHOWN)
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            },
            counts: journal.counts().map_err(|e| e.to_string())?,
            buckets: overview::regroup(
                journal
                    .events_over_time(
                        now - overview::EVENTS_WINDOW_MS,
                        overview::EVENTS_BUCKETS_MS[0],
                    )
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
        (overview::render(&o))
    };
    Ok(html(page(
        s.token.is_some(),
        "Overview",
        "/",
        refresh_form(&s),
        body,
    )))
}

fn plugin_names(s: &Shared) -> Vec<String> {
    s.host
        .borrow()
        .plugins()
        .map(|p| p.config.name.clone())
        .collect()
}

async fn runs_page(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let pick = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let f = runs::Filters {
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
                format!("status '{v}': expected queued, retrying, succeeded or dead"),
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
    let tools = runs::filter_form(&plugin_names(&s), &f);
    Ok(html(page(
        s.token.is_some(),
        "Runs",
        "/runs",
        tools,
        runs::list(&rows, &f, RUNS_PER_PAGE),
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

async fn run_page(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let id = run_id(&id)?;
    let journal = s.journal.clone();
    let detail = blocking(move || journal.run(id).map_err(|e| e.to_string()))
        .await?
        .ok_or_else(|| PageFailure(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let flash = q
        .contains_key("replayed")
        .then_some("Queued again: its next attempt appears below when it finishes.");
    let title = format!("Run #{id}");
    Ok(html(page(
        s.token.is_some(),
        &title,
        "/runs",
        html! {},
        runs::detail(&detail, flash),
    )))
}

async fn replay_from_page(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, PageFailure> {
    let id = run_id(&id)?;
    let done = s.replay(vec![id]).await.map_err(failed)?;
    if done.is_empty() {
        return Err(PageFailure(
            StatusCode::CONFLICT,
            format!("run {id} does not exist or is still waiting; only dead-lettered or succeeded runs are replayed"),
        ));
    }
    Ok(Redirect::to(&format!("/runs/{id}?replayed=1")).into_response())
}

async fn plugins_page(State(s): State<Arc<Shared>>) -> Result<Response, PageFailure> {
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
        views.push(plugins::PluginView {
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
    Ok(html(page(
        s.token.is_some(),
        "Plugins",
        "/plugins",
        html! {},
        plugins::render(&views),
    )))
}

async fn insights_page(State(s): State<Arc<Shared>>) -> Result<Response, PageFailure> {
    let (Some(ws), Some(store)) = (s.console.workspace.clone(), s.console.store.clone()) else {
        let body = html! { p.muted { "No [insights] section in the configuration." } };
        return Ok(html(page(
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
            .map(|spec| insights::SourceView {
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
        Ok(insights::InsightsView {
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
    Ok(html(page(
        s.token.is_some(),
        "Sources, segments, measures",
        "/insights",
        html! {},
        insights::render(&ws, &view),
    )))
}

async fn entities_index(State(s): State<Arc<Shared>>) -> Result<Response, PageFailure> {
    let Some(store) = s.console.store.clone() else {
        return Ok(html(page(
            s.token.is_some(),
            "Entities",
            "/entities",
            html! {},
            html! { p.muted { "No store." } },
        )));
    };
    let metas = blocking(move || {
        let names = store.entity_names().map_err(|e| e.to_string())?;
        names
            .iter()
            .map(|n| store.meta(n).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(html(page(
        s.token.is_some(),
        "Entities",
        "/entities",
        html! {},
        entities::index(&metas),
    )))
}

async fn entity_page(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let Some(store) = s.console.store.clone() else {
        return Err(PageFailure(StatusCode::NOT_FOUND, "no store".into()));
    };
    let text = |k: &str| q.get(k).cloned().unwrap_or_default();
    let number = |k: &str| -> Result<Option<u64>, PageFailure> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    PageFailure(
                        StatusCode::BAD_REQUEST,
                        format!("${k}: expected a whole number, found '{v}'"),
                    )
                })
            })
            .transpose()
    };
    let query = entities::Query {
        filter: text("filter"),
        orderby: text("orderby"),
        select: text("select"),
        top: number("top")?.map(|t| t.min(u64::from(u32::MAX)) as u32),
        skip: number("skip")?,
    };
    let entity = name.clone();
    let (meta, result) = {
        let query = query.clone();
        blocking(move || {
            let meta = match store.meta(&entity) {
                Ok(m) => m,
                Err(e) => return Ok(Err(format!("entity '{entity}': {e}"))),
            };
            let result = match query.request() {
                Err(e) => Err((e, None)),
                Ok(req) => store
                    .get_page("console", &entity, &req)
                    .map_err(|e| match e {
                        PageError::Query(qe) => {
                            let text = match qe.option {
                                "$filter" => Some(query.filter.clone()),
                                "$orderby" => Some(query.orderby.clone()),
                                "$select" => Some(query.select.clone()),
                                _ => None,
                            };
                            (qe.to_string(), text.map(|t| (t, qe.position)))
                        }
                        other => (other.to_string(), None),
                    }),
            };
            Ok(Ok((meta, result)))
        })
        .await?
        .map_err(|e| PageFailure(StatusCode::NOT_FOUND, e))?
    };
    let title = format!("Entity {name}");
    Ok(html(page(
        s.token.is_some(),
        &title,
        "/entities",
        entities::form(&meta, &query),
        entities::results(&meta, &query, result),
    )))
}

fn login_body(next: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { (error_box(e)) }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label { "API token " input #token type="password" name="token" autocomplete="current-password" autofocus; }
            button #sign-in type="submit" { "Sign in" }
        }
        p.muted { "The token is the value of the environment variable named by " code { "[api] token_env" } " (the same bearer token the API takes)." }
    }
}

/// The sign-in page, answered with 401 to a page request without a session.
pub fn login_required(path: &str) -> Response {
    let body = page(false, "Sign in", "", html! {}, login_body(path, None));
    (StatusCode::UNAUTHORIZED, Html(body.into_string())).into_response()
}

async fn login_form(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if s.token.is_none() {
        return Redirect::to("/").into_response();
    }
    let next = q.get("next").map_or("/", String::as_str);
    html(page(false, "Sign in", "", html! {}, login_body(next, None)))
}

/// Only same-site paths are followed after signing in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

async fn login(State(s): State<Arc<Shared>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let next = safe_next(f.get("next").map_or("/", String::as_str)).to_owned();
    let Some(token) = &s.token else {
        return Redirect::to(&next).into_response();
    };
    let given = f.get("token").map_or("", String::as_str);
    if !super::daemon::api::same(given.as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("console sign-in refused: wrong token");
        let body = page(
            false,
            "Sign in",
            "",
            html! {},
            login_body(&next, Some("Wrong token.")),
        );
        return (StatusCode::UNAUTHORIZED, Html(body.into_string())).into_response();
    }
    match s.console.sessions.create() {
        Ok(id) => (
            [(header::SET_COOKIE, session::set_cookie(Some(&id)))],
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => failed(format!("cannot create a session: {e}")).into_response(),
    }
}

async fn logout(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers) {
        s.console.sessions.end(id);
    }
    (
        [(header::SET_COOKIE, session::set_cookie(None))],
        Redirect::to("/login"),
    )
        .into_response()
}

/// The embedded assets: (name, content type, bytes).
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console.js"),
    ),
    (
        "chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/chart.umd.min.js"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_paths_are_not_pages() {
        assert!(super::is_page("/") && super::is_page("/runs/3") && super::is_page("/nope"));
        assert!(!super::is_page("/v1/runs") && !super::is_page("/v2/nothing"));
        assert!(!super::is_page("/metrics") && super::is_page("/vip"));
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(super::safe_next("/runs/3"), "/runs/3");
        assert_eq!(super::safe_next("//evil.example"), "/");
        assert_eq!(super::safe_next("https://evil.example"), "/");
        assert_eq!(super::safe_next("/\\evil"), "/");
    }
}
