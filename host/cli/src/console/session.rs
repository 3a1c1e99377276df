//! Console sign-in: a browser cannot send the API's bearer header, so the
//! token is typed once on `/login` and exchanged for a random session id in
//! an `HttpOnly`, `SameSite=Strict` cookie. Sessions live in memory, are
//! bounded, and end after [`SESSION_TTL`] or a restart.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, Method};

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "tf_console";
/// Sessions kept at once; the oldest goes when a new one would exceed it.
pub const MAX_SESSIONS: usize = 256;
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The signed-in browsers.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// A new session id (256 random bits, hex).
    pub fn create(&self) -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let id = hex::encode(bytes);
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        live.retain(|_, started| now.duration_since(*started) < SESSION_TTL);
        while live.len() >= MAX_SESSIONS {
            let Some(oldest) = live.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) else {
                break;
            };
            live.remove(&oldest);
        }
        live.insert(id.clone(), now);
        Ok(id)
    }

    /// Whether `id` is a live session.
    pub fn valid(&self, id: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.get(id).is_some_and(|t| t.elapsed() < SESSION_TTL)
    }

    /// End the session `id`.
    pub fn end(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// The session id in the request's cookies, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value for session `id` (or clearing it).
pub fn set_cookie(id: Option<&str>) -> String {
    match id {
        Some(id) => format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Whether a cookie-authenticated request may change state: reads always;
/// writes only when `Origin` (or, without it, `Referer`) is this host, so
/// another site cannot post a form on the operator's behalf.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    from.is_some_and(|f| {
        let rest = f
            .strip_prefix("http://")
            .or_else(|| f.strip_prefix("https://"));
        rest.is_some_and(|r| r.split('/').next() == Some(host))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_bounded_and_ended() {
        let s = Sessions::default();
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.valid(&a) && s.valid(&b));
        assert!(!s.valid("nope"));
        s.end(&a);
        assert!(!s.valid(&a));
        for _ in 0..MAX_SESSIONS + 3 {
            s.create().unwrap();
        }
        assert!(s.live.lock().unwrap().len() <= MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=1; {SESSION_COOKIE}=abc; b=2").parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("abc"));
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn writes_need_this_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&Method::GET, &h));
        assert!(!same_origin(&Method::POST, &h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&Method::POST, &h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&Method::POST, &h));
    }
}
