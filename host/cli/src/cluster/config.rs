//! `[cluster]`: joining a cluster of daemons over NATS JetStream.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Default environment variable of a NATS token.
pub const DEFAULT_TOKEN_ENV: &str = "TRIGGERFISH_NATS_TOKEN";
/// Default environment variable of a NATS user name.
pub const DEFAULT_USER_ENV: &str = "TRIGGERFISH_NATS_USER";
/// Default environment variable of a NATS password.
pub const DEFAULT_PASSWORD_ENV: &str = "TRIGGERFISH_NATS_PASSWORD";
/// Default environment variable of a NATS credentials file's path.
pub const DEFAULT_CREDS_ENV: &str = "TRIGGERFISH_NATS_CREDS";
/// Default window in which an event id published twice is stored once.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Longest duplicate window (a day: the server keeps every id of the window).
pub const MAX_DUPLICATE_WINDOW: Duration = Duration::from_secs(86_400);
/// Default refresher lease: a dead refresher is replaced within about this.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Shortest and longest lease accepted.
pub const LEASE_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(3), Duration::from_secs(300));
/// Most stream replicas (a NATS cluster of five).
pub const MAX_REPLICAS: u32 = 5;
/// Longest member name.
pub const MAX_MEMBER_NAME: usize = 64;

/// `[cluster]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `nats://host:port` (or `tls://`); several separated by commas.
    pub nats_url: Spanned<String>,
    /// This member's name (default: the host name and the API port).
    #[serde(default)]
    pub member: Option<Spanned<String>>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub user_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub creds_env: Option<String>,
    /// e.g. "10m".
    #[serde(default)]
    pub duplicate_window: Option<Spanned<String>>,
    /// e.g. "10s".
    #[serde(default)]
    pub lease_ttl: Option<Spanned<String>>,
    /// Replicas of every stream and bucket (1 on a single NATS server).
    #[serde(default)]
    pub replicas: Option<Spanned<u32>>,
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub nats_urls: Vec<String>,
    pub member: Option<String>,
    pub token_env: String,
    pub user_env: String,
    pub password_env: String,
    pub creds_env: String,
    pub duplicate_window: Duration,
    pub lease_ttl: Duration,
    pub replicas: u32,
}

/// A validation failure: the span of the value, its key and what is wrong.
pub type Invalid = (std::ops::Range<usize>, String, String);

fn duration(
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Result<Duration, Invalid> {
    let Some(v) = v else { return Ok(default) };
    humantime::parse_duration(v.get_ref())
        .ok()
        .filter(|d| (min..=max).contains(d))
        .ok_or_else(|| {
            (
                v.span(),
                key.to_owned(),
                format!(
                    "expected a duration from {} to {}, e.g. \"{}\", found '{}'",
                    humantime::format_duration(min),
                    humantime::format_duration(max),
                    humantime::format_duration(default),
                    v.get_ref()
                ),
            )
        })
}

/// A valid member name: letters, digits, '-' and '_'.
pub fn valid_member(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MEMBER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterSection {
    /// Check every value; errors name the key.
    pub fn validate(&self) -> Result<ClusterSettings, Invalid> {
        let url = &self.nats_url;
        let mut urls = Vec::new();
        for u in url.get_ref().split(',').map(str::trim) {
            let bad = |why: &str| (url.span(), "cluster.nats_url".to_owned(), why.to_owned());
            let rest = ["nats://", "tls://"]
                .iter()
                .find_map(|s| u.strip_prefix(s))
                .ok_or_else(|| {
                    bad(&format!(
                        "expected nats://host:port or tls://host:port, found '{u}'"
                    ))
                })?;
            if rest.contains('@') {
                return Err(bad(
                    "credentials do not belong in the file: set them in the environment (cluster.token_env, user_env and password_env, or creds_env)",
                ));
            }
            if rest.is_empty() || rest.contains('/') {
                return Err(bad(&format!("expected nats://host:port, found '{u}'")));
            }
            urls.push(u.to_owned());
        }
        let member = match &self.member {
            Some(m) if !valid_member(m.get_ref()) => {
                return Err((
                    m.span(),
                    "cluster.member".into(),
                    format!("expected 1 to {MAX_MEMBER_NAME} letters, digits, '-' or '_'"),
                ))
            }
            m => m.as_ref().map(|m| m.get_ref().clone()),
        };
        let replicas = match &self.replicas {
            None => 1,
            Some(r) if (1..=MAX_REPLICAS).contains(r.get_ref()) => *r.get_ref(),
            Some(r) => {
                return Err((
                    r.span(),
                    "cluster.replicas".into(),
                    format!("expected 1 to {MAX_REPLICAS}"),
                ))
            }
        };
        let env = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
        Ok(ClusterSettings {
            nats_urls: urls,
            member,
            token_env: env(&self.token_env, DEFAULT_TOKEN_ENV),
            user_env: env(&self.user_env, DEFAULT_USER_ENV),
            password_env: env(&self.password_env, DEFAULT_PASSWORD_ENV),
            creds_env: env(&self.creds_env, DEFAULT_CREDS_ENV),
            duplicate_window: duration(
                &self.duplicate_window,
                "cluster.duplicate_window",
                DEFAULT_DUPLICATE_WINDOW,
                (Duration::from_secs(1), MAX_DUPLICATE_WINDOW),
            )?,
            lease_ttl: duration(
                &self.lease_ttl,
                "cluster.lease_ttl",
                DEFAULT_LEASE_TTL,
                LEASE_TTL_RANGE,
            )?,
            replicas,
        })
    }
}
