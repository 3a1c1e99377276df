//! The runtime's typed settings: what the host needs to know about channels,
//! email, plugins and limits. They are plain values; reading them from a file
//! (and locating errors in it) is the command line's business.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use triggerfish_data::event::TriggerKind;
use triggerfish_data::store::{EntityDb, PageLimits};

use crate::grants::Grants;
use crate::ratelimit::Budget;
use crate::routing::{RetryPolicy, When};

/// Default per-event deadline.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default per-instance memory cap.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// Largest memory cap a plugin may ask for.
pub const MAX_MEMORY_MIB: u64 = 4_096;
/// Longest deadline a plugin may ask for.
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1_000;

/// Everything the runtime is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where these settings came from (the configuration file), named in errors.
    pub origin: PathBuf,
    /// Where outboxes, caches and the store live.
    pub state_dir: PathBuf,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Host-wide cap on entity calls across plugins.
    pub host_entity_budget: Option<Budget>,
    /// `$top` bounds for entity queries.
    pub page_limits: PageLimits,
    /// Page size, in bytes, of the store file when it is created.
    pub store_page_bytes: u32,
    /// Teams channels by name.
    pub teams: BTreeMap<String, ChannelSettings>,
    /// Email, when configured.
    pub email: Option<EmailSettings>,
    /// The plugins, in configuration order.
    pub plugins: Vec<PluginConfig>,
    /// Which signatures are trusted, and whether one is required.
    pub trust: crate::trust::TrustPolicy,
    /// `[[entities]]`: the entities plugins may write.
    pub writable: Vec<triggerfish_data::store::WritableEntity>,
    /// Why writes are refused on this host, if they are (e.g. a cluster
    /// member, whose store is replaced by each generation).
    pub writes_unavailable: Option<String>,
}

impl Settings {
    /// Defaults for a host keeping its state in `state_dir`.
    pub fn new(origin: PathBuf, state_dir: PathBuf) -> Self {
        Self {
            origin,
            cache_dir: Some(state_dir.join("cache")),
            state_dir,
            host_entity_budget: None,
            page_limits: PageLimits::default(),
            store_page_bytes: triggerfish_data::store::DEFAULT_PAGE_SIZE,
            teams: BTreeMap::new(),
            email: None,
            plugins: Vec::new(),
            trust: crate::trust::TrustPolicy::default(),
            writable: Vec::new(),
            writes_unavailable: None,
        }
    }

    /// The entity store file.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("store.sqlite")
    }

    /// Open the entity store (creating it with `store_page_bytes` pages);
    /// warns when an existing file has other pages, as the setting then
    /// does nothing.
    pub fn open_store(&self) -> Result<EntityDb, triggerfish_data::store::StoreError> {
        let store =
            EntityDb::open_with(&self.store_path(), self.page_limits, self.store_page_bytes)?;
        let has = store.page_size()?;
        if has != self.store_page_bytes {
            tracing::warn!(
                "{} has {has}-byte pages: host.store_page_bytes = {} applies only to a new store file (move the state directory aside to create one)",
                self.store_path().display(),
                self.store_page_bytes
            );
        }
        Ok(store)
    }

    /// Open the journal in the store file (creating it as [`Self::open_store`] does).
    pub fn open_journal(
        &self,
    ) -> Result<triggerfish_data::journal::Journal, triggerfish_data::journal::JournalError> {
        triggerfish_data::journal::Journal::open_with(&self.store_path(), self.store_page_bytes)
    }

    /// The plugin with this name.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }
}

/// How a channel or email is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Send to the real service.
    #[default]
    Send,
    /// Write the exact request/message under `state_dir/outbox` and print it.
    Outbox,
}

/// One Teams channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
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

/// Email delivery.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub mode: Option<DeliveryMode>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub tls: TlsMode,
    /// The sender, e.g. `Triggerfish <bot@example.com>`.
    pub from: String,
    /// Environment variables holding the SMTP credentials.
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    /// Named recipient groups, e.g. `data-owners`.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl EmailSettings {
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

/// One plugin.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    /// Path of the component.
    pub component: PathBuf,
    pub triggers: Vec<TriggerKind>,
    pub grants: Grants,
    pub limits: Limits,
    /// Free key/values the plugin reads with `config.get`.
    pub config: BTreeMap<String, String>,
    /// Trigger conditions: a run is created only where they hold.
    pub when: When,
    /// How failed runs are retried.
    pub retry: RetryPolicy,
    /// Runs of this plugin attempted at once, at most.
    pub concurrency: u32,
    /// The component's sha256 it must have (hex), when pinned.
    pub sha256: Option<String>,
}

/// Power Automate's default trigger concurrency.
pub const DEFAULT_PLUGIN_CONCURRENCY: u32 = 25;
/// Largest per-plugin concurrency (the instance pool's size).
pub const MAX_PLUGIN_CONCURRENCY: u32 = crate::engine::POOL_INSTANCES;

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
