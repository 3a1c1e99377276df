//! The admin API (axum): events in and out, runs and replays, refreshes,
//! metrics and health. Every error is JSON naming what was wrong.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_data::insights::Scope;
use triggerfish_data::journal::{EventFilter, Router as _, RunFilter, RunStatus};

use super::Shared;
use crate::console;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest event id accepted from outside.
pub const MAX_EVENT_ID_BYTES: usize = 128;

/// An error answer: a status and a message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The routes, with the bearer check when a token is set.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/plugins", get(plugins))
        .route("/v1/events", get(list_events).post(post_event))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route("/v1/runs/{id}/replay", post(replay))
        .route("/v1/refresh", post(refresh))
        .merge(console::router())
        .fallback(console::not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// With a token set: the API takes `Authorization: Bearer <token>`; the
/// console also takes a session cookie from `/login`, and then only
/// same-origin writes. Health, sign-in and assets are open.
async fn auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let path = req.uri().path();
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let bearer = given.is_some_and(|g| same(g.as_bytes(), token.expose().as_bytes()));
        let session = !bearer
            && console::is_page(path)
            && console::session::cookie(req.headers())
                .is_some_and(|id| s.console.sessions.valid(id));
        let open = path == "/healthz" || console::is_open(path);
        if !bearer && !session && !open {
            if console::is_page(path) {
                return console::login_required(path);
            }
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)".into(),
            )
            .into_response();
        }
        if session && !console::session::same_origin(req.method(), req.headers()) {
            return (
                StatusCode::FORBIDDEN,
                "a console form must be posted from the console's own origin",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.stopping.load(Ordering::Relaxed) {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "stopping".into()).into_response()
    } else {
        Json(json!({ "status": "ready" })).into_response()
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let host = s.host.borrow().clone();
    let text = s
        .metrics
        .render(&s.journal, &host, s.cluster.as_deref())
        .map_err(internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn plugins(State(s): State<Arc<Shared>>) -> Json<Value> {
    let host = s.host.borrow().clone();
    let list: Vec<Value> = host
        .plugins()
        .map(|p| {
            json!({
                "name": p.config.name,
                "component": p.config.component.display().to_string(),
                "sha256": p.component.sha256,
                "triggers": p.config.triggers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "concurrency": p.config.concurrency,
                "retry": {
                    "attempts": p.config.retry.retries,
                    "first_wait_ms": p.config.retry.first_wait.as_millis() as u64,
                    "max_wait_ms": p.config.retry.max_wait.as_millis() as u64,
                },
            })
        })
        .collect();
    Json(json!({ "plugins": list }))
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                bad(format!(
                    "query parameter '{key}': expected a whole number, found '{v}'"
                ))
            })
        })
        .transpose()
}

fn known(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(format!(
            "unknown query parameter '{k}' (known: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn page_limit(q: &HashMap<String, String>) -> Result<u32, ApiError> {
    Ok(match number(q, "limit")? {
        None => 100,
        Some(n) if (1..=i64::from(triggerfish_data::journal::MAX_PAGE)).contains(&n) => n as u32,
        Some(n) => {
            return Err(bad(format!(
                "query parameter 'limit': expected 1 to {}, found {n}",
                triggerfish_data::journal::MAX_PAGE
            )))
        }
    })
}

async fn list_events(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    known(&q, &["trigger", "before", "limit"])?;
    if let Some(t) = q.get("trigger") {
        t.parse::<TriggerKind>()
            .map_err(|e| bad(format!("query parameter 'trigger': {e}")))?;
    }
    let filter = EventFilter {
        trigger: q.get("trigger").cloned(),
        before: number(&q, "before")?,
        limit: page_limit(&q)?,
    };
    let journal = s.journal.clone();
    let rows = tokio::task::spawn_blocking(move || journal.events(&filter))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let next = (rows.len() as u32 == page_limit(&q)?).then(|| rows.last().map(|r| r.seq));
    Ok(Json(
        json!({ "events": rows, "next_before": next.flatten() }),
    ))
}

async fn list_runs(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    known(
        &q,
        &["status", "plugin", "event", "trigger", "before", "limit"],
    )?;
    if let Some(t) = q.get("trigger") {
        t.parse::<TriggerKind>()
            .map_err(|e| bad(format!("query parameter 'trigger': {e}")))?;
    }
    let status = q
        .get("status")
        .map(|v| {
            v.parse::<RunStatus>().map_err(|_| {
                bad(format!(
                    "query parameter 'status': expected queued, retrying, succeeded, dead or replayed, found '{v}'"
                ))
            })
        })
        .transpose()?;
    let limit = page_limit(&q)?;
    let filter = RunFilter {
        status,
        plugin: q.get("plugin").cloned(),
        event: q.get("event").cloned(),
        trigger: q.get("trigger").cloned(),
        before: number(&q, "before")?,
        limit,
    };
    let journal = s.journal.clone();
    let rows = tokio::task::spawn_blocking(move || journal.runs(&filter))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let next = (rows.len() as u32 == limit).then(|| rows.last().map(|r| r.id));
    Ok(Json(json!({ "runs": rows, "next_before": next.flatten() })))
}

fn run_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| bad(format!("run id: expected a whole number, found '{id}'")))
}

async fn show_run(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = run_id(&id)?;
    let journal = s.journal.clone();
    match tokio::task::spawn_blocking(move || journal.run(id))
        .await
        .map_err(internal)?
        .map_err(internal)?
    {
        Some(detail) => Ok(Json(json!(detail))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no run {id}"))),
    }
}

async fn replay(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = run_id(&id)?;
    let done = s.replay(vec![id]).await.map_err(internal)?;
    if done.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("run {id} does not exist, is still waiting or was replayed already; only dead-lettered or succeeded runs are replayed"),
        ));
    }
    Ok(Json(json!({
        "replayed": done.iter().map(|d| d.run).collect::<Vec<_>>(),
        "runs": done.iter().map(|d| d.new_run).collect::<Vec<_>>(),
    })))
}

async fn post_event(State(s): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    if s.stopping.load(Ordering::Relaxed) {
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "stopping".into()));
    }
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(bad(
            "body must be a JSON object: {\"trigger\": \"...\", ...its fields}",
        ));
    };
    let trigger = match fields.remove("trigger") {
        Some(Value::String(t)) => t,
        Some(_) => {
            return Err(bad(
                "field 'trigger' must be a string such as \"data-source-refresh-failed\"",
            ))
        }
        None => {
            return Err(bad(
                "field 'trigger' is missing (one of the six trigger names)",
            ))
        }
    };
    let kind: TriggerKind = trigger
        .parse()
        .map_err(|e| bad(format!("field 'trigger': {e}")))?;
    if let Some(id) = fields.get("id") {
        let ok = id.as_str().is_some_and(|i| {
            !i.is_empty()
                && i.len() <= MAX_EVENT_ID_BYTES
                && i.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
        if !ok {
            return Err(bad(format!(
                "field 'id': expected 1 to {MAX_EVENT_ID_BYTES} letters, digits or '-', '_', '.', ':'"
            )));
        }
    }
    let payload = Value::Object(fields).to_string();
    let event = build_event(kind, Some(&payload)).map_err(|e| bad(e.to_string()))?;
    if let Some(m) = &s.cluster {
        // Durable once JetStream acknowledged it; unreachable NATS is 503,
        // so the client tries again (the id makes that safe).
        let plugins = s.routes.borrow().plugins_for(&event);
        let done = m
            .cluster
            .ingest(&event, &plugins, 0)
            .await
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        if !done.duplicate {
            s.metrics.accepted(kind);
        }
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "id": event.id,
                "runs": done.runs,
                "duplicate": done.duplicate,
                "seq": done.seq,
            })),
        )
            .into_response());
    }
    let appended = s.ingest(event, "api").await.map_err(internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": appended.id,
            "runs": appended.runs.len(),
            "duplicate": appended.duplicate,
        })),
    )
        .into_response())
}

async fn refresh(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let _ = headers;
    let scope = if body.is_empty() {
        Scope::Full
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
        match v.get("source") {
            None | Some(Value::Null) => Scope::Full,
            Some(Value::String(name)) => Scope::Source(name.clone()),
            Some(_) => return Err(bad("field 'source' must be a string (a data source name)")),
        }
    };
    let answer = s
        .request_refresh(scope)
        .await
        .map_err(|(code, why)| ApiError(code, why))?;
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}
