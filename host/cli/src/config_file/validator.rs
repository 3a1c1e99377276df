//! Validation of values, located by file, line and key.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use triggerfish_data::event::Direction;
use triggerfish_data::insights::workspace::{
    line_of, valid_name, InsightsSection, Workspace, WorkspaceError,
};
use triggerfish_data::store::{PageLimits, PAGE_SIZES};
use triggerfish_runtime::routing::{RetryPolicy, When, MAX_RETRIES, MAX_WAIT_LIMIT};
use triggerfish_runtime::settings::{ChannelSettings, DeliveryMode};

use super::raw::{RawRetry, RawWhen};
use super::{
    read_text, ApiSection, ConfigError, DaemonSettings, EmailSection, HostSection, DEFAULT_LISTEN,
    DEFAULT_TOKEN_ENV, MAX_CONCURRENCY, MAX_ENTITY_CALLS, MAX_ENTITY_WINDOW_MS, MAX_HISTORY_DAYS,
    MAX_PAGE_SIZE_LIMIT,
};

/// The insights workspace: inline, or in the file `[insights] file` names;
/// span errors become `file:line` errors of the file they are in.
pub(super) fn load_workspace(
    v: &Validator<'_>,
    section: InsightsSection,
    base: &Path,
) -> Result<Workspace, ConfigError> {
    let file = section.workspace_file().map_err(|e| v.located(e))?;
    let Some(file) = file else {
        return section.validate(base).map_err(|e| v.located(e));
    };
    let path = base.join(file);
    let text = read_text(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let inner: InsightsSection = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.clone(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let iv = Validator {
        path: &path,
        text: &text,
    };
    inner.reject_nested_file().map_err(|e| iv.located(e))?;
    let wbase = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    inner.validate(&wbase).map_err(|e| iv.located(e))
}

/// Locates values of one file for error messages.
pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Validator<'_> {
    /// `[host]` daemon numbers and `[api]`.
    pub(super) fn daemon(
        &self,
        h: &HostSection,
        api: Option<&ApiSection>,
    ) -> Result<DaemonSettings, ConfigError> {
        let bounded = |n: &Option<Spanned<u32>>, key: &str, default: u32, max: u32| match n {
            None => Ok(default),
            Some(n) if (1..=max).contains(n.get_ref()) => Ok(*n.get_ref()),
            Some(n) => Err(self.invalid(n.span(), key, &format!("expected 1 to {max}"))),
        };
        let grace = match &h.shutdown_grace {
            None => Duration::from_secs(30),
            Some(g) => humantime::parse_duration(g.get_ref())
                .ok()
                .filter(|d| *d <= Duration::from_secs(3600))
                .ok_or_else(|| {
                    self.invalid(
                        g.span(),
                        "host.shutdown_grace",
                        &format!(
                            "expected a duration up to 1h, e.g. \"30s\", found '{}'",
                            g.get_ref()
                        ),
                    )
                })?,
        };
        let listen = match api.and_then(|a| a.listen.as_ref()) {
            None => DEFAULT_LISTEN.parse().map_err(|_| {
                self.invalid(0..0, "api.listen", "the default address does not parse")
            })?,
            Some(l) => l.get_ref().parse().map_err(|_| {
                self.invalid(
                    l.span(),
                    "api.listen",
                    &format!(
                        "expected an address and port, e.g. \"127.0.0.1:7878\", found '{}'",
                        l.get_ref()
                    ),
                )
            })?,
        };
        Ok(DaemonSettings {
            concurrency: bounded(&h.concurrency, "host.concurrency", 64, MAX_CONCURRENCY)?,
            history_days: bounded(&h.history_days, "host.history_days", 30, MAX_HISTORY_DAYS)?,
            shutdown_grace: grace,
            listen,
            token_env: api
                .and_then(|a| a.token_env.clone())
                .unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned()),
        })
    }

    /// `[plugins.when]`: glob patterns and a direction.
    pub(super) fn when(
        &self,
        w: &RawWhen,
        key: &dyn Fn(&str) -> String,
    ) -> Result<When, ConfigError> {
        let patterns = |list: &[Spanned<String>], field: &str| {
            list.iter()
                .map(|p| {
                    glob::Pattern::new(p.get_ref()).map_err(|e| {
                        self.invalid(
                            p.span(),
                            &key(&format!("when.{field}")),
                            &format!("'{}' is not a valid pattern: {e}", p.get_ref()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let direction = match &w.direction {
            None => None,
            Some(d) => Some(match d.get_ref().as_str() {
                "up" => Direction::Up,
                "down" => Direction::Down,
                other => {
                    return Err(self.invalid(
                        d.span(),
                        &key("when.direction"),
                        &format!("expected \"up\" or \"down\", found '{other}'"),
                    ))
                }
            }),
        };
        Ok(When {
            source: patterns(&w.source, "source")?,
            segment: patterns(&w.segment, "segment")?,
            measure: patterns(&w.measure, "measure")?,
            direction,
            permanent: w.permanent,
        })
    }

    /// `[plugins.retry]`: retries and waits within their bounds.
    pub(super) fn retry(
        &self,
        r: &RawRetry,
        key: &dyn Fn(&str) -> String,
    ) -> Result<RetryPolicy, ConfigError> {
        let mut policy = RetryPolicy::default();
        if let Some(a) = &r.attempts {
            if *a.get_ref() > MAX_RETRIES {
                return Err(self.invalid(
                    a.span(),
                    &key("retry.attempts"),
                    &format!("expected 0 (no retries) to {MAX_RETRIES}"),
                ));
            }
            policy.retries = *a.get_ref();
        }
        let wait = |w: &Spanned<String>, field: &str| {
            humantime::parse_duration(w.get_ref())
                .ok()
                .filter(|d| !d.is_zero() && *d <= MAX_WAIT_LIMIT)
                .ok_or_else(|| {
                    self.invalid(
                        w.span(),
                        &key(&format!("retry.{field}")),
                        &format!(
                            "expected a duration from 1ms to 24h, e.g. \"7.5s\", found '{}'",
                            w.get_ref()
                        ),
                    )
                })
        };
        if let Some(w) = &r.first_wait {
            policy.first_wait = wait(w, "first_wait")?;
        }
        if let Some(w) = &r.max_wait {
            policy.max_wait = wait(w, "max_wait")?;
            if policy.max_wait < policy.first_wait {
                return Err(self.invalid(
                    w.span(),
                    &key("retry.max_wait"),
                    "must not be shorter than first_wait",
                ));
            }
        }
        Ok(policy)
    }

    pub(super) fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    /// A workspace error, located in this file.
    pub(super) fn located(&self, e: WorkspaceError) -> ConfigError {
        self.invalid(e.span, &e.key, &e.message)
    }

    pub(super) fn invalid(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: &str,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: self.line_of(span),
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }

    /// `[host]` numbers within their bounds.
    pub(super) fn host(&self, h: &HostSection) -> Result<(), ConfigError> {
        if let Some(n) = &h.entity_calls_per_minute {
            if *n.get_ref() == 0 || *n.get_ref() > MAX_ENTITY_CALLS {
                return Err(self.invalid(
                    n.span(),
                    "host.entity_calls_per_minute",
                    &format!("expected 1 to {MAX_ENTITY_CALLS} calls"),
                ));
            }
        }
        if let Some(w) = &h.entity_calls_window_ms {
            if *w.get_ref() == 0 || *w.get_ref() > MAX_ENTITY_WINDOW_MS {
                return Err(self.invalid(
                    w.span(),
                    "host.entity_calls_window_ms",
                    &format!("expected 1 to {MAX_ENTITY_WINDOW_MS} ms"),
                ));
            }
        }
        if let Some(b) = &h.store_page_bytes {
            if !PAGE_SIZES.contains(b.get_ref()) {
                return Err(self.invalid(
                    b.span(),
                    "host.store_page_bytes",
                    &format!(
                        "{} is not a page size: expected one of {}",
                        b.get_ref(),
                        PAGE_SIZES.map(|p| p.to_string()).join(", ")
                    ),
                ));
            }
        }
        let max = h.max_page_size.as_ref();
        if let Some(m) = max {
            if *m.get_ref() == 0 || *m.get_ref() > MAX_PAGE_SIZE_LIMIT {
                return Err(self.invalid(
                    m.span(),
                    "host.max_page_size",
                    &format!("expected 1 to {MAX_PAGE_SIZE_LIMIT} rows"),
                ));
            }
        }
        if let Some(d) = &h.default_page_size {
            let limit = max.map_or(PageLimits::default().max_top, |m| *m.get_ref());
            if *d.get_ref() == 0 || *d.get_ref() > limit {
                return Err(self.invalid(
                    d.span(),
                    "host.default_page_size",
                    &format!("expected 1 to {limit} rows (max_page_size)"),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn channel(
        &self,
        name: &str,
        c: &Spanned<ChannelSettings>,
    ) -> Result<(), ConfigError> {
        let key = format!("teams.channels.{name}");
        let cfg = c.get_ref();
        if !valid_name(name) {
            return Err(self.invalid(
                c.span(),
                &key,
                "expected a channel name of letters, digits, '-' or '_'",
            ));
        }
        let targets =
            usize::from(cfg.webhook_url.is_some()) + usize::from(cfg.webhook_url_env.is_some());
        match cfg.mode {
            Some(DeliveryMode::Outbox) => Ok(()),
            _ if targets == 1 => {
                if let Some(url) = &cfg.webhook_url {
                    let ok = url.starts_with("https://") || url.starts_with("http://");
                    if !ok {
                        return Err(self.invalid(
                            c.span(),
                            &format!("{key}.webhook_url"),
                            "expected an http:// or https:// URL",
                        ));
                    }
                }
                Ok(())
            }
            _ if targets == 2 => Err(self.invalid(
                c.span(),
                &key,
                "set either webhook_url or webhook_url_env, not both",
            )),
            _ => Err(self.invalid(
                c.span(),
                &key,
                "expected webhook_url, webhook_url_env, or mode = \"outbox\"",
            )),
        }
    }

    pub(super) fn email(&self, e: &EmailSection) -> Result<(), ConfigError> {
        let mode = e.settings().delivery_mode();
        if e.from
            .get_ref()
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            return Err(self.invalid(
                e.from.span(),
                "email.from",
                "expected an email address such as \"Triggerfish <bot@example.com>\"",
            ));
        }
        if mode == DeliveryMode::Send && e.smtp_host.is_none() {
            return Err(self.invalid(
                e.from.span(),
                "email.smtp_host",
                "required when email mode is \"send\"",
            ));
        }
        if e.username_env.is_some() != e.password_env.is_some() {
            return Err(self.invalid(
                e.from.span(),
                "email.username_env",
                "username_env and password_env go together",
            ));
        }
        for (name, members) in &e.groups {
            let key = format!("email.groups.{name}");
            if !valid_name(name) {
                return Err(self.invalid(members.span(), &key, "expected a group name"));
            }
            if members.get_ref().is_empty() {
                return Err(self.invalid(
                    members.span(),
                    &key,
                    "a group needs at least one address",
                ));
            }
            for m in members.get_ref() {
                if m.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(self.invalid(
                        members.span(),
                        &key,
                        &format!("'{m}' is not an email address"),
                    ));
                }
            }
        }
        Ok(())
    }
}
