//! `triggerfish.toml`: loading and validation.
//!
//! Parse errors name the file, line, column and key (from the TOML parser);
//! validation errors name the file, line and key of the offending value.

mod entities;
mod raw;
mod validator;

use raw::{plain, RawFile};
use validator::{load_workspace, Validator};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use std::num::NonZeroU32;
use std::time::Duration;
use triggerfish_data::event::TriggerKind;
use triggerfish_data::insights::workspace::{valid_name, Workspace};
use triggerfish_data::journal::{Journal, JournalError};
use triggerfish_data::store::{EntityDb, PageLimits, StoreError};
use triggerfish_package::oci::{self, OciRef};
use triggerfish_runtime::grants::{Grants, Origin};
use triggerfish_runtime::ratelimit::{Budget, DEFAULT_WINDOW};
use triggerfish_runtime::settings::{
    ChannelSettings, DeliveryMode, EmailSettings, Limits, PluginConfig, Settings, TlsMode,
    DEFAULT_PLUGIN_CONCURRENCY, MAX_MEMORY_MIB, MAX_PLUGIN_CONCURRENCY, MAX_TIMEOUT_MS,
};

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
    /// What the plugin runtime needs: channels, email, plugins, limits.
    pub settings: Settings,
    /// The insights workspace, when `[insights]` is present.
    pub insights: Option<Workspace>,
    /// The daemon's settings (`[host]` and `[api]`).
    pub daemon: DaemonSettings,
    /// `[cluster]`: membership of a cluster over NATS, when present.
    pub cluster: Option<crate::cluster::config::ClusterSettings>,
    /// Plugins whose `component` is an `oci://` reference, by name; their
    /// component path is only known once [`Config::pull_components`] ran.
    pub registry: BTreeMap<String, OciRef>,
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
    pub entity_calls_per_minute: Option<Spanned<u32>>,
    /// The window for `entity_calls_per_minute`, in ms (default 60000).
    #[serde(default)]
    pub entity_calls_window_ms: Option<Spanned<u64>>,
    /// `$top` when a query gives none (default 100).
    #[serde(default)]
    pub default_page_size: Option<Spanned<u32>>,
    /// Largest `$top` accepted (default 1000).
    #[serde(default)]
    pub max_page_size: Option<Spanned<u32>>,
    /// SQLite page size of the store file when it is created (default 4096).
    #[serde(default)]
    pub store_page_bytes: Option<Spanned<u32>>,
    /// Runs attempted at once across plugins (default 64).
    #[serde(default)]
    pub concurrency: Option<Spanned<u32>>,
    /// Days of finished runs and events kept (default 30).
    #[serde(default)]
    pub history_days: Option<Spanned<u32>>,
    /// How long a stopping daemon lets runs in flight finish (default 30s).
    #[serde(default)]
    pub shutdown_grace: Option<Spanned<String>>,
    /// Public keys whose plugin signatures are trusted (`ed25519:<hex>`).
    #[serde(default)]
    pub trusted_keys: Vec<Spanned<String>>,
    /// Refuse plugins without a valid signature by a trusted key.
    #[serde(default)]
    pub require_signatures: bool,
}

/// `[api]`: the daemon's admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address to listen on (default 127.0.0.1:7878; port 0 picks one).
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    /// Environment variable holding the bearer token (default TRIGGERFISH_API_TOKEN).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// What `triggerfish run` needs beyond the runtime's settings.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub concurrency: u32,
    pub history_days: u32,
    pub shutdown_grace: Duration,
    pub listen: std::net::SocketAddr,
    pub token_env: String,
}

/// Default `[api] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Default `[api] token_env`.
pub const DEFAULT_TOKEN_ENV: &str = "TRIGGERFISH_API_TOKEN";
/// Most runs at once across plugins.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Longest history kept, in days (ten years).
pub const MAX_HISTORY_DAYS: u32 = 3_650;

/// Largest configuration or workspace file read: far past any real one.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Read a configuration file: a regular file (a device such as `/dev/zero`
/// would read forever, a FIFO would block) of at most [`MAX_CONFIG_BYTES`],
/// in UTF-8.
fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a device, FIFO or folder is refused)",
        ));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Largest `max_page_size` (and so `$top`) a configuration may set: a page is
/// built in memory, so this bounds one call's memory.
pub const MAX_PAGE_SIZE_LIMIT: u32 = 10_000;
/// Most entity calls a budget may allow per window.
pub const MAX_ENTITY_CALLS: u32 = 1_000_000;
/// Longest budget window, in ms (one day).
pub const MAX_ENTITY_WINDOW_MS: u64 = 24 * 60 * 60 * 1_000;

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
            store_page_bytes: None,
            concurrency: None,
            history_days: None,
            shutdown_grace: None,
            trusted_keys: Vec::new(),
            require_signatures: false,
        }
    }
}

/// `[teams]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSection {
    #[serde(default)]
    pub channels: BTreeMap<String, Spanned<ChannelSettings>>,
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
    /// The runtime's email settings.
    fn settings(&self) -> EmailSettings {
        EmailSettings {
            mode: self.mode,
            smtp_host: self.smtp_host.clone(),
            smtp_port: self.smtp_port,
            tls: self.tls,
            from: self.from.get_ref().clone(),
            username_env: self.username_env.clone(),
            password_env: self.password_env.clone(),
            groups: self
                .groups
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect(),
        }
    }
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_text(path).map_err(|source| ConfigError::Read {
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
        let mut write_grants: Vec<(String, String, Spanned<String>)> = Vec::new();
        let mut registry = BTreeMap::new();
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
            let mut outbound_hosts = Vec::with_capacity(g.outbound_hosts.len());
            for h in &g.outbound_hosts {
                outbound_hosts.push(
                    Origin::parse(h.get_ref())
                        .map_err(|e| v.invalid(h.span(), &key("grants.outbound_hosts"), &e))?,
                );
            }
            let grants = Grants {
                teams: plain(&g.teams),
                email_groups: plain(&g.email_groups),
                email_domains: plain(&g.email_domains)
                    .into_iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect(),
                entities: plain(&g.entities),
                entities_write: plain(&g.entities_write),
                outbound_hosts,
            };
            for (j, w) in g.entities_write.iter().enumerate() {
                write_grants.push((
                    name.clone(),
                    key(&format!("grants.entities_write[{j}]")),
                    w.clone(),
                ));
            }
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
                let calls = NonZeroU32::new(*n.get_ref())
                    .filter(|c| c.get() <= MAX_ENTITY_CALLS)
                    .ok_or_else(|| {
                        v.invalid(
                            n.span(),
                            &key("limits.entity_calls_per_minute"),
                            &format!("expected 1 to {MAX_ENTITY_CALLS} calls"),
                        )
                    })?;
                limits.entity_budget.calls = calls;
            }
            if let Some(w) = &p.limits.entity_calls_window_ms {
                if *w.get_ref() == 0 || *w.get_ref() > MAX_ENTITY_WINDOW_MS {
                    return Err(v.invalid(
                        w.span(),
                        &key("limits.entity_calls_window_ms"),
                        &format!("expected 1 to {MAX_ENTITY_WINDOW_MS} ms"),
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
            let component = match p.component.get_ref().to_str() {
                Some(text) if text.starts_with(oci::SCHEME) => {
                    let r = OciRef::parse(text).map_err(|e| {
                        v.invalid(p.component.span(), &key("component"), &e.to_string())
                    })?;
                    registry.insert(name.clone(), r);
                    // Replaced by the pulled file in `pull_components`.
                    PathBuf::from(text)
                }
                _ => base.join(p.component.get_ref()),
            };
            let when = v.when(&p.when, &key)?;
            let retry = v.retry(&p.retry, &key)?;
            let concurrency = match &p.concurrency {
                None => DEFAULT_PLUGIN_CONCURRENCY,
                Some(c) if (1..=MAX_PLUGIN_CONCURRENCY).contains(c.get_ref()) => *c.get_ref(),
                Some(c) => {
                    return Err(v.invalid(
                        c.span(),
                        &key("concurrency"),
                        &format!("expected 1 to {MAX_PLUGIN_CONCURRENCY} runs at once"),
                    ))
                }
            };
            let sha256 = match &p.sha256 {
                None => None,
                Some(h)
                    if h.get_ref().len() == 64
                        && h.get_ref().bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Some(h.get_ref().to_ascii_lowercase())
                }
                Some(h) => {
                    return Err(v.invalid(
                        h.span(),
                        &key("sha256"),
                        "expected the component's sha256: 64 hex digits",
                    ))
                }
            };
            plugins.push(PluginConfig {
                name,
                component,
                triggers,
                grants,
                limits,
                config,
                when,
                retry,
                concurrency,
                sha256,
            });
        }

        v.host(&raw.host)?;
        let daemon = v.daemon(&raw.host, raw.api.as_ref())?;
        let cluster = raw
            .cluster
            .as_ref()
            .map(|c| c.validate())
            .transpose()
            .map_err(|(span, key, message)| v.invalid(span, &key, &message))?;
        let insights = raw
            .insights
            .map(|section| load_workspace(&v, section, base))
            .transpose()?;
        let writable = entities::validate(&v, &raw.entities, &plugins, insights.as_ref())?;
        for (plugin, key, grant) in &write_grants {
            entities::check_grant(&v, &writable, plugin, grant, key)?;
        }
        let host = raw.host;
        let state_dir = base.join(&host.state_dir);
        let mut settings = Settings::new(path.to_owned(), state_dir);
        if let Some(c) = &host.cache_dir {
            settings.cache_dir = Some(base.join(c));
        }
        settings.host_entity_budget = host.entity_budget();
        for (i, k) in host.trusted_keys.iter().enumerate() {
            let key = triggerfish_runtime::trust::parse_public_key(k.get_ref())
                .map_err(|e| v.invalid(k.span(), &format!("host.trusted_keys[{i}]"), &e))?;
            settings.trust.trusted_keys.push(key);
        }
        settings.trust.require_signatures = host.require_signatures;
        settings.page_limits = host.page_limits();
        if let Some(b) = &host.store_page_bytes {
            settings.store_page_bytes = *b.get_ref();
        }
        settings.teams = raw
            .teams
            .channels
            .into_iter()
            .map(|(name, ch)| (name, ch.into_inner()))
            .collect();
        settings.email = raw.email.as_ref().map(EmailSection::settings);
        settings.plugins = plugins;
        settings.writable = writable;
        if cluster.is_some() {
            settings.writes_unavailable = Some(
                "writing entities is not available on a cluster member yet: each member's store is replaced by the refresher's generations".into(),
            );
        }
        Ok(Config {
            path: path.to_owned(),
            settings,
            insights,
            daemon,
            cluster,
            registry,
        })
    }

    /// [`Config::load`], then every `oci://` component pulled (or taken from
    /// the cache when pinned by digest) and verified, ready to load.
    pub fn load_with_components(path: &Path) -> anyhow::Result<Self> {
        let mut config = Self::load(path)?;
        config.pull_components()?;
        Ok(config)
    }

    /// Pull the `oci://` components into `<cache_dir>/oci/` and point their
    /// plugins at the verified files. Runs its own small runtime on its own
    /// thread, so it works from sync and async callers alike.
    pub fn pull_components(&mut self) -> anyhow::Result<()> {
        if self.registry.is_empty() {
            return Ok(());
        }
        let cache = self
            .settings
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.settings.state_dir.join("cache"));
        let wanted = self.registry.clone();
        let pulled = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let mut out = BTreeMap::new();
                    for (name, r) in &wanted {
                        let p = oci::pull(r, &cache)
                            .await
                            .map_err(|e| anyhow::anyhow!("plugin '{name}': {e}"))?;
                        out.insert(name.clone(), p);
                    }
                    anyhow::Ok(out)
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("pulling plugin components panicked"))?
        })?;
        for p in &mut self.settings.plugins {
            if let Some(got) = pulled.get(&p.name) {
                p.component = got.component.clone();
            }
        }
        Ok(())
    }

    /// `$top` bounds for entity queries.
    pub fn page_limits(&self) -> PageLimits {
        self.settings.page_limits
    }

    /// The entity store file.
    pub fn store_path(&self) -> PathBuf {
        self.settings.store_path()
    }

    /// Open the entity store (creating it with `host.store_page_bytes` pages).
    pub fn open_store(&self) -> Result<EntityDb, StoreError> {
        self.settings.open_store()
    }

    /// Open the journal in the store file.
    pub fn open_journal(&self) -> Result<Journal, JournalError> {
        self.settings.open_journal()
    }

    /// The plugin with this name.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.settings.plugin(name)
    }
}

impl HostSection {
    /// The host-wide entity budget, if capped.
    fn entity_budget(&self) -> Option<Budget> {
        let calls = NonZeroU32::new(*self.entity_calls_per_minute.as_ref()?.get_ref())?;
        let window = self
            .entity_calls_window_ms
            .as_ref()
            .map_or(DEFAULT_WINDOW, |w| Duration::from_millis(*w.get_ref()));
        Some(Budget { calls, window })
    }

    /// `$top` bounds for entity queries.
    fn page_limits(&self) -> PageLimits {
        let d = PageLimits::default();
        let max_top = self
            .max_page_size
            .as_ref()
            .map_or(d.max_top, |m| *m.get_ref())
            .clamp(1, MAX_PAGE_SIZE_LIMIT);
        PageLimits {
            default_top: self
                .default_page_size
                .as_ref()
                .map_or(d.default_top, |t| *t.get_ref())
                .clamp(1, max_top),
            max_top,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/tf/triggerfish.toml"), text)
    }

    #[test]
    fn a_cluster_section_gets_defaults_and_names_bad_values() {
        let c = parse("[cluster]\nnats_url = \"nats://127.0.0.1:4222, nats://10.0.0.2:4222\"\n")
            .unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(
            cl.nats_urls,
            ["nats://127.0.0.1:4222", "nats://10.0.0.2:4222"]
        );
        assert_eq!(
            (cl.lease_ttl, cl.duplicate_window, cl.replicas, cl.member),
            (Duration::from_secs(10), Duration::from_secs(600), 1, None)
        );
        assert_eq!(cl.token_env, "TRIGGERFISH_NATS_TOKEN");
        assert!(parse("").unwrap().cluster.is_none());
        let cases = [
            (
                "[cluster]\nnats_url = \"nats://u:secret@127.0.0.1:4222\"\n",
                "/etc/tf/triggerfish.toml:2: key `cluster.nats_url`: credentials do not belong in the file: set them in the environment (cluster.token_env, user_env and password_env, or creds_env)",
            ),
            (
                "[cluster]\nnats_url = \"http://127.0.0.1:4222\"\n",
                "/etc/tf/triggerfish.toml:2: key `cluster.nats_url`: expected nats://host:port or tls://host:port, found 'http://127.0.0.1:4222'",
            ),
            (
                "[cluster]\nnats_url = \"nats://a:4222\"\nlease_ttl = \"1s\"\n",
                "/etc/tf/triggerfish.toml:3: key `cluster.lease_ttl`: expected a duration from 3s to 5m, e.g. \"10s\", found '1s'",
            ),
            (
                "[cluster]\nnats_url = \"nats://a:4222\"\nmember = \"a.b\"\n",
                "/etc/tf/triggerfish.toml:3: key `cluster.member`: expected 1 to 64 letters, digits, '-' or '_'",
            ),
            (
                "[cluster]\nnats_url = \"nats://a:4222\"\nreplicas = 7\n",
                "/etc/tf/triggerfish.toml:3: key `cluster.replicas`: expected 1 to 5",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.settings.state_dir, Path::new("/etc/tf/.triggerfish"));
        assert!(c.settings.plugins.is_empty());
    }

    #[test]
    fn plugin_paths_and_defaults() {
        let c = parse(
            "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\ntriggers = [\"full-refresh-completed\"]\n",
        )
        .unwrap();
        let p = &c.settings.plugins[0];
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

    /// Found by the `config` fuzz target: a workspace file that never ends.
    #[test]
    fn devices_are_refused_as_configuration_files() {
        let err = Config::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot read /dev/zero: not a regular file (a device, FIFO or folder is refused)"
        );
        let err = parse("[insights]\nfile = \"/dev/zero\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot read /dev/zero: not a regular file (a device, FIFO or folder is refused)"
        );
    }

    #[test]
    fn host_numbers_are_bounded_and_located() {
        let cases = [
            (
                "[host]\nmax_page_size = 4294967295\n",
                "/etc/tf/triggerfish.toml:2: key `host.max_page_size`: expected 1 to 10000 rows",
            ),
            (
                "[host]\n\ndefault_page_size = 2000\n",
                "/etc/tf/triggerfish.toml:3: key `host.default_page_size`: expected 1 to 1000 rows (max_page_size)",
            ),
            (
                "[host]\nentity_calls_per_minute = 0\n",
                "/etc/tf/triggerfish.toml:2: key `host.entity_calls_per_minute`: expected 1 to 1000000 calls",
            ),
            (
                "[host]\nentity_calls_window_ms = 99999999999\n",
                "/etc/tf/triggerfish.toml:2: key `host.entity_calls_window_ms`: expected 1 to 86400000 ms",
            ),
            (
                "[host]\nstore_page_bytes = 10000\n",
                "/etc/tf/triggerfish.toml:2: key `host.store_page_bytes`: 10000 is not a page size: expected one of 4096, 8192, 16384, 32768, 65536",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text}");
        }
        let default = parse("[host]\n").unwrap();
        assert_eq!(default.settings.store_page_bytes, 4096);
        let set = parse("[host]\nstore_page_bytes = 16384\n").unwrap();
        assert_eq!(set.settings.store_page_bytes, 16384);
    }

    #[test]
    fn email_defaults_to_outbox_without_smtp_host() {
        let c = parse("[email]\nfrom = \"bot@example.com\"\n[email.groups]\ndata-owners = [\"a@example.com\"]\n")
            .unwrap();
        let e = c.settings.email.unwrap();
        assert_eq!(e.delivery_mode(), DeliveryMode::Outbox);
        assert_eq!(e.port(), 587);
    }

    const WORKSPACE: &str = r#"
[[insights.sources]]
name = "crm-contacts"
path = "data/crm.csv"
key = "Id"
[insights.sources.map]
Email = "Mail"
LastName = "Name"
"#;

    #[test]
    fn the_workspace_may_live_in_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ws.toml"),
            WORKSPACE.replace("insights.", ""),
        )
        .unwrap();
        let cfg = dir.path().join("triggerfish.toml");
        std::fs::write(&cfg, "[insights]\nfile = \"ws.toml\"\n").unwrap();
        let w = Config::load(&cfg).unwrap().insights.unwrap();
        assert_eq!(w.sources[0].path, dir.path().join("data/crm.csv"));

        std::fs::write(dir.path().join("ws.toml"), "[[sources]]\nname = \"x\"\n").unwrap();
        let err = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}", dir.path().join("ws.toml").display())),
            "{err}"
        );
        assert!(err.contains("missing field `path`"), "{err}");
    }
}
