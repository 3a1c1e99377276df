//! `triggerfish.toml`: loading and validation.
//!
//! Parse errors name the file, line, column and key (from the TOML parser);
//! validation errors name the file, line and key of the offending value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::event::TriggerKind;
use crate::insights::config::{InsightsSection, Workspace};
use crate::ratelimit::Budget;
use std::num::NonZeroU32;
use std::time::Duration;

/// Default per-event deadline.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default per-instance memory cap.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// Largest memory cap a plugin may ask for.
pub const MAX_MEMORY_MIB: u64 = 4_096;
/// Longest deadline a plugin may ask for.
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1_000;

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The whole configuration file, resolved against its directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from.
    pub path: PathBuf,
    pub host: HostSection,
    pub teams: TeamsSection,
    pub email: Option<EmailSection>,
    pub plugins: Vec<PluginConfig>,
    /// The insights workspace, when `[insights]` is present.
    pub insights: Option<Workspace>,
}

/// `[host]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// Where outboxes, caches and the store live; relative to the config file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Where compiled components are cached; default `<state_dir>/cache`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Host-wide cap on entity calls per window, across plugins (none by default).
    #[serde(default)]
    pub entity_calls_per_minute: Option<u32>,
    /// The window for `entity_calls_per_minute`, in ms (default 60000).
    #[serde(default)]
    pub entity_calls_window_ms: Option<u64>,
    /// `$top` when a query gives none (default 100).
    #[serde(default)]
    pub default_page_size: Option<u32>,
    /// Largest `$top` accepted (default 1000).
    #[serde(default)]
    pub max_page_size: Option<u32>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".triggerfish")
}

impl Default for HostSection {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            cache_dir: None,
            entity_calls_per_minute: None,
            entity_calls_window_ms: None,
            default_page_size: None,
            max_page_size: None,
        }
    }
}

/// `[teams]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSection {
    #[serde(default)]
    pub channels: BTreeMap<String, Spanned<ChannelConfig>>,
}

/// How a Teams channel is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Send to the real service.
    #[default]
    Send,
    /// Write the exact request/message under `state_dir/outbox` and print it.
    Outbox,
}

/// `[teams.channels.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    #[serde(default)]
    pub mode: Option<DeliveryMode>,
    /// The webhook URL itself (a secret: prefer `webhook_url_env`).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Name of an environment variable holding the webhook URL.
    #[serde(default)]
    pub webhook_url_env: Option<String>,
}

/// TLS mode for SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (loopback relays, tests).
    None,
    /// STARTTLS upgrade (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `[email]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSection {
    #[serde(default)]
    pub mode: Option<DeliveryMode>,
    #[serde(default)]
    pub smtp_host: Option<String>,
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    pub from: Spanned<String>,
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Named recipient groups, e.g. `data-owners`.
    #[serde(default)]
    pub groups: BTreeMap<String, Spanned<Vec<String>>>,
}

impl EmailSection {
    /// The delivery mode, defaulting to outbox when no SMTP host is set.
    pub fn delivery_mode(&self) -> DeliveryMode {
        match (self.mode, &self.smtp_host) {
            (Some(mode), _) => mode,
            (None, Some(_)) => DeliveryMode::Send,
            (None, None) => DeliveryMode::Outbox,
        }
    }

    /// The SMTP port, defaulting by TLS mode.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    /// Absolute path of the component.
    pub component: PathBuf,
    pub triggers: Vec<TriggerKind>,
    pub grants: Grants,
    pub limits: Limits,
    /// Free key/values the plugin reads with `config.get`.
    pub config: BTreeMap<String, String>,
}

/// What a plugin may use. Anything absent is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Teams channel names.
    pub teams: Vec<String>,
    /// Email recipient group names.
    pub email_groups: Vec<String>,
    /// Domains the plugin may email directly, e.g. `example.com`.
    pub email_domains: Vec<String>,
    /// Entities the plugin may read; `"*"` for all.
    pub entities: Vec<String>,
    /// Origins for `wasi:http`, e.g. `https://api.example.com` or `127.0.0.1:8080`.
    pub outbound_hosts: Vec<String>,
}

/// Resource limits for one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline per event, covering guest code and host calls.
    pub timeout_ms: u64,
    /// Linear-memory cap per instance.
    pub memory_mib: u64,
    /// Entity-call budget across events (GCRA, bursting up to the budget).
    pub entity_budget: Budget,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_mib: DEFAULT_MEMORY_MIB,
            entity_budget: Budget::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    host: HostSection,
    #[serde(default)]
    teams: TeamsSection,
    #[serde(default)]
    email: Option<EmailSection>,
    #[serde(default)]
    plugins: Vec<RawPlugin>,
    #[serde(default)]
    insights: Option<InsightsSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    #[serde(default)]
    teams: Vec<Spanned<String>>,
    #[serde(default)]
    email_groups: Vec<Spanned<String>>,
    #[serde(default)]
    email_domains: Vec<Spanned<String>>,
    #[serde(default)]
    entities: Vec<Spanned<String>>,
    #[serde(default)]
    outbound_hosts: Vec<Spanned<String>>,
}

fn plain(v: &[Spanned<String>]) -> Vec<String> {
    v.iter().map(|s| s.get_ref().clone()).collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout_ms: Option<Spanned<u64>>,
    memory_mib: Option<Spanned<u64>>,
    entity_calls_per_minute: Option<Spanned<u32>>,
    entity_calls_window_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Spanned<String>,
    component: Spanned<PathBuf>,
    #[serde(default)]
    triggers: Vec<Spanned<String>>,
    #[serde(default)]
    grants: RawGrants,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    config: BTreeMap<String, Spanned<toml::Value>>,
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse and validate configuration text; `path` names it in errors and
    /// anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let v = Validator { path, text };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));

        for (name, channel) in &raw.teams.channels {
            v.channel(name, channel)?;
        }
        if let Some(email) = &raw.email {
            v.email(email)?;
        }

        let mut plugins: Vec<PluginConfig> = Vec::with_capacity(raw.plugins.len());
        for (i, p) in raw.plugins.into_iter().enumerate() {
            let key = |k: &str| format!("plugins[{i}].{k}");
            let name = p.name.get_ref().clone();
            if !valid_name(&name) {
                return Err(v.invalid(
                    p.name.span(),
                    &key("name"),
                    "expected a name of letters, digits, '-' or '_'",
                ));
            }
            if plugins.iter().any(|q| q.name == name) {
                return Err(v.invalid(p.name.span(), &key("name"), "duplicate plugin name"));
            }
            let mut triggers = Vec::new();
            for t in &p.triggers {
                let kind = t
                    .get_ref()
                    .parse::<TriggerKind>()
                    .map_err(|e| v.invalid(t.span(), &key("triggers"), &e.to_string()))?;
                triggers.push(kind);
            }
            let g = &p.grants;
            for ch in &g.teams {
                if !raw.teams.channels.contains_key(ch.get_ref()) {
                    return Err(v.invalid(
                        ch.span(),
                        &key("grants.teams"),
                        &format!(
                            "channel '{}' is not defined under [teams.channels]",
                            ch.get_ref()
                        ),
                    ));
                }
            }
            for grp in &g.email_groups {
                let known = raw
                    .email
                    .as_ref()
                    .is_some_and(|e| e.groups.contains_key(grp.get_ref()));
                if !known {
                    return Err(v.invalid(
                        grp.span(),
                        &key("grants.email_groups"),
                        &format!(
                            "group '{}' is not defined under [email.groups]",
                            grp.get_ref()
                        ),
                    ));
                }
            }
            for d in &g.email_domains {
                let d2 = d.get_ref();
                if d2.is_empty() || d2.contains('@') || d2.contains(char::is_whitespace) {
                    return Err(v.invalid(
                        d.span(),
                        &key("grants.email_domains"),
                        &format!("'{d2}' is not a domain (expected e.g. \"example.com\")"),
                    ));
                }
            }
            for h in &g.outbound_hosts {
                crate::caps::http::Origin::parse(h.get_ref())
                    .map_err(|e| v.invalid(h.span(), &key("grants.outbound_hosts"), &e))?;
            }
            let grants = Grants {
                teams: plain(&g.teams),
                email_groups: plain(&g.email_groups),
                email_domains: plain(&g.email_domains)
                    .into_iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect(),
                entities: plain(&g.entities),
                outbound_hosts: plain(&g.outbound_hosts),
            };
            let mut limits = Limits::default();
            if let Some(t) = &p.limits.timeout_ms {
                limits.timeout_ms = *t.get_ref();
                if limits.timeout_ms == 0 || limits.timeout_ms > MAX_TIMEOUT_MS {
                    return Err(v.invalid(
                        t.span(),
                        &key("limits.timeout_ms"),
                        &format!("expected 1 to {MAX_TIMEOUT_MS} milliseconds"),
                    ));
                }
            }
            if let Some(m) = &p.limits.memory_mib {
                limits.memory_mib = *m.get_ref();
                if limits.memory_mib == 0 || limits.memory_mib > MAX_MEMORY_MIB {
                    return Err(v.invalid(
                        m.span(),
                        &key("limits.memory_mib"),
                        &format!("expected 1 to {MAX_MEMORY_MIB} MiB"),
                    ));
                }
            }
            if let Some(n) = &p.limits.entity_calls_per_minute {
                let calls = NonZeroU32::new(*n.get_ref()).ok_or_else(|| {
                    v.invalid(
                        n.span(),
                        &key("limits.entity_calls_per_minute"),
                        "expected at least 1 call",
                    )
                })?;
                limits.entity_budget.calls = calls;
            }
            if let Some(w) = &p.limits.entity_calls_window_ms {
                if *w.get_ref() == 0 {
                    return Err(v.invalid(
                        w.span(),
                        &key("limits.entity_calls_window_ms"),
                        "expected at least 1 ms",
                    ));
                }
                limits.entity_budget.window = Duration::from_millis(*w.get_ref());
            }
            let mut config = BTreeMap::new();
            for (k, val) in p.config {
                let s = match val.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Datetime(d) => d.to_string(),
                    _ => {
                        return Err(v.invalid(
                            val.span(),
                            &key(&format!("config.{k}")),
                            "expected a string, number, boolean or date",
                        ))
                    }
                };
                config.insert(k, s);
            }
            let component = base.join(p.component.get_ref());
            plugins.push(PluginConfig {
                name,
                component,
                triggers,
                grants,
                limits,
                config,
            });
        }

        if let Some(0) = raw.host.entity_calls_per_minute {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line: 1,
                key: "host.entity_calls_per_minute".into(),
                message: "expected at least 1 call".into(),
            });
        }
        let insights = raw.insights.map(|i| i.resolve(&v, base)).transpose()?;
        let mut host = raw.host;
        host.state_dir = base.join(&host.state_dir);
        host.cache_dir = Some(match &host.cache_dir {
            Some(c) => base.join(c),
            None => host.state_dir.join("cache"),
        });
        Ok(Config {
            path: path.to_owned(),
            host,
            teams: raw.teams,
            email: raw.email,
            plugins,
            insights,
        })
    }

    /// The host-wide entity budget, if capped.
    pub fn host_entity_budget(&self) -> Option<Budget> {
        let calls = NonZeroU32::new(self.host.entity_calls_per_minute?)?;
        let window = self
            .host
            .entity_calls_window_ms
            .map_or(crate::ratelimit::DEFAULT_WINDOW, Duration::from_millis);
        Some(Budget { calls, window })
    }

    /// `$top` bounds for entity queries.
    pub fn page_limits(&self) -> crate::store::PageLimits {
        let d = crate::store::PageLimits::default();
        let max_top = self.host.max_page_size.unwrap_or(d.max_top).max(1);
        crate::store::PageLimits {
            default_top: self
                .host
                .default_page_size
                .unwrap_or(d.default_top)
                .clamp(1, max_top),
            max_top,
        }
    }

    /// The entity store file.
    pub fn store_path(&self) -> PathBuf {
        self.host.state_dir.join("store.sqlite")
    }

    /// The plugin with this name.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }
}

/// Plugin, channel and group names: letters, digits, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Locates values of one file for error messages.
pub(crate) struct Validator<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Validator<'_> {
    fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn invalid(
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

    fn channel(&self, name: &str, c: &Spanned<ChannelConfig>) -> Result<(), ConfigError> {
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

    fn email(&self, e: &EmailSection) -> Result<(), ConfigError> {
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
        if e.delivery_mode() == DeliveryMode::Send && e.smtp_host.is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/tf/triggerfish.toml"), text)
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.host.state_dir, Path::new("/etc/tf/.triggerfish"));
        assert!(c.plugins.is_empty());
    }

    #[test]
    fn plugin_paths_and_defaults() {
        let c = parse(
            "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\ntriggers = [\"full-refresh-completed\"]\n",
        )
        .unwrap();
        let p = &c.plugins[0];
        assert_eq!(p.component, Path::new("/etc/tf/p.wasm"));
        assert_eq!(p.limits, Limits::default());
        assert_eq!(p.grants, Grants::default());
    }

    #[test]
    fn unknown_trigger_names_line_and_key() {
        let err = parse(
            "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\ntriggers = [\"refresh-done\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/etc/tf/triggerfish.toml:4: key `plugins[0].triggers`: unknown trigger 'refresh-done'"),
            "{err}"
        );
    }

    #[test]
    fn grant_of_undefined_channel_is_an_error() {
        let err = parse(
            "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\n[plugins.grants]\nteams = [\"ops\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/etc/tf/triggerfish.toml:5: key `plugins[0].grants.teams`: channel 'ops' is not defined under [teams.channels]"
        );
    }

    #[test]
    fn unknown_key_is_reported_by_the_parser_with_its_line() {
        let err = parse("[host]\nstate_dri = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("state_dri"), "{err}");
    }

    #[test]
    fn channel_needs_a_target() {
        let err = parse("[teams.channels.ops]\n").unwrap_err().to_string();
        assert!(err.contains("key `teams.channels.ops`: expected webhook_url, webhook_url_env, or mode = \"outbox\""), "{err}");
    }

    #[test]
    fn limits_are_bounded() {
        let err = parse(
            "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\n[plugins.limits]\nmemory_mib = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("key `plugins[0].limits.memory_mib`: expected 1 to 4096 MiB"),
            "{err}"
        );
    }

    #[test]
    fn email_defaults_to_outbox_without_smtp_host() {
        let c = parse("[email]\nfrom = \"bot@example.com\"\n[email.groups]\ndata-owners = [\"a@example.com\"]\n")
            .unwrap();
        let e = c.email.unwrap();
        assert_eq!(e.delivery_mode(), DeliveryMode::Outbox);
        assert_eq!(e.port(), 587);
    }
}
