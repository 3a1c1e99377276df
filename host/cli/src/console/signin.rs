//! Signing in and out of the console (`/login`, `/logout`); the session
//! policy itself is in `session.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};

use super::layout::{error_box, page};
use super::state::SIGN_INS_PER_MINUTE;
use super::{failed, session};
use crate::daemon::Shared;

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

/// The sign-in page with `status`, returning to `next`, with an error.
fn sign_in_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let body = page(false, "Sign in", "", html! {}, login_body(next, error));
    (status, Html(body.into_string())).into_response()
}

/// The sign-in page, answered with 401 to a page request without a session.
pub fn login_required(path: &str) -> Response {
    sign_in_page(StatusCode::UNAUTHORIZED, path, None)
}

pub async fn login_form(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if s.token.is_none() {
        return Redirect::to("/").into_response();
    }
    let next = q.get("next").map_or("/", String::as_str);
    sign_in_page(StatusCode::OK, next, None)
}

/// Only same-site paths are followed after signing in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

pub async fn login(
    State(s): State<Arc<Shared>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let next = safe_next(f.get("next").map_or("/", String::as_str)).to_owned();
    let Some(token) = &s.token else {
        return Redirect::to(&next).into_response();
    };
    if s.console.sign_ins.check().is_err() {
        tracing::warn!(
            "console sign-in refused: more than {SIGN_INS_PER_MINUTE} attempts a minute"
        );
        return sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some("Too many sign-in attempts: try again in a minute."),
        );
    }
    let given = f.get("token").map_or("", String::as_str);
    if !crate::daemon::api::same(given.as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("console sign-in refused: wrong token");
        return sign_in_page(StatusCode::UNAUTHORIZED, &next, Some("Wrong token."));
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

pub async fn logout(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers) {
        s.console.sessions.end(id);
    }
    (
        [(header::SET_COOKIE, session::set_cookie(None))],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(super::safe_next("/runs/3"), "/runs/3");
        assert_eq!(super::safe_next("//evil.example"), "/");
        assert_eq!(super::safe_next("https://evil.example"), "/");
        assert_eq!(super::safe_next("/\\evil"), "/");
    }
}
