//! The web console: server-rendered pages (maud) over the journal and the
//! store, served by the daemon next to the admin API and under the same
//! auth rule. Charts are drawn by Chart.js; every asset is embedded in the
//! binary. Live updates: `/live` streams a server-sent event whenever the
//! journal or the refresh history changes, and the page re-renders its main
//! region.

mod assets;
mod cluster;
mod entities;
mod insights;
mod layout;
pub mod live;
mod overview;
mod plugins;
mod runs;
pub mod session;
mod signin;
mod state;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use super::daemon::Shared;
use layout::{error_box, page};

pub use signin::login_required;
pub use state::ConsoleState;

/// The console's routes (merged into the admin API's router).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(overview::overview_page))
        .route("/refresh", post(overview::refresh_from_page))
        .route("/runs", get(runs::runs_page))
        .route("/runs/{id}", get(runs::run_page))
        .route("/runs/{id}/replay", post(runs::replay_from_page))
        .route("/plugins", get(plugins::plugins_page))
        .route("/insights", get(insights::insights_page))
        .route("/entities", get(entities::entities_index))
        .route("/entities/{name}", get(entities::entity_page))
        .route("/cluster", get(cluster::cluster_page))
        .route("/live", get(live::stream))
        .route("/login", get(signin::login_form).post(signin::login))
        .route("/logout", post(signin::logout))
        .route("/assets/{file}", get(assets::asset))
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

fn respond(m: Markup) -> Response {
    Html(m.into_string()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_paths_are_not_pages() {
        assert!(super::is_page("/") && super::is_page("/runs/3") && super::is_page("/nope"));
        assert!(!super::is_page("/v1/runs") && !super::is_page("/v2/nothing"));
        assert!(!super::is_page("/metrics") && super::is_page("/vip"));
    }
}
