//! What the console keeps between requests: a read handle on the store,
//! the workspace, sign-in sessions, the live-update mark, and the manifests
//! read from plugin components.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{watch, Semaphore};
use triggerfish_data::insights::workspace::Workspace;
use triggerfish_data::journal::Journal;
use triggerfish_data::store::EntityDb;
use triggerfish_package::manifest::Manifest;

use super::live::{spawn_poller, MAX_LIVE_PAGES};
use super::session::Sessions;
use crate::config_file::Config;

/// Manifests cached for the plugins page (by component digest).
pub const MAX_CACHED_MANIFESTS: usize = 256;
/// Sign-in attempts accepted per minute, across all browsers (GCRA, so a
/// burst of this many, then one every few seconds): guessing the token
/// through `/login` is slowed to a crawl.
pub const SIGN_INS_PER_MINUTE: u32 = 10;

/// The console's state in the daemon.
pub struct ConsoleState {
    /// A read handle on the store, with `[insights]`.
    pub store: Option<Arc<EntityDb>>,
    pub workspace: Option<Arc<Workspace>>,
    /// `oci://…` references of plugins pulled from a registry, by plugin.
    pub references: HashMap<String, String>,
    pub sessions: Sessions,
    /// Changes whenever something new is journaled.
    pub live: watch::Receiver<u64>,
    /// Permits for [`MAX_LIVE_PAGES`].
    pub live_pages: Arc<Semaphore>,
    /// Paces `/login` (`SIGN_INS_PER_MINUTE`).
    pub sign_ins: governor::DefaultDirectRateLimiter,
    manifests: Mutex<HashMap<String, Result<Manifest, String>>>,
}

impl Default for ConsoleState {
    /// No store, no live updates (for embedding the daemon's parts).
    fn default() -> Self {
        Self {
            store: None,
            workspace: None,
            references: HashMap::new(),
            sessions: Sessions::default(),
            live: watch::channel(0).1,
            live_pages: Arc::new(Semaphore::new(MAX_LIVE_PAGES)),
            sign_ins: governor::RateLimiter::direct(governor::Quota::per_minute(
                std::num::NonZeroU32::new(SIGN_INS_PER_MINUTE).unwrap_or(std::num::NonZeroU32::MIN),
            )),
            manifests: Mutex::default(),
        }
    }
}

impl ConsoleState {
    /// Open the store for reading and start the live-update poller.
    pub fn start(
        config: &Config,
        journal: Arc<Journal>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let store = match &config.insights {
            Some(_) => Some(Arc::new(config.open_store()?)),
            None => None,
        };
        Ok(Self {
            live: spawn_poller(journal, store.clone(), stop),
            store,
            workspace: config.insights.clone().map(Arc::new),
            references: config
                .registry
                .iter()
                .map(|(name, r)| (name.clone(), r.to_string()))
                .collect(),
            ..Self::default()
        })
    }

    /// The manifest packed into a component (read once per digest).
    pub async fn manifest(&self, component: &Path, sha256: &str) -> Result<Manifest, String> {
        let cached = self
            .manifests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sha256)
            .cloned();
        if let Some(m) = cached {
            return m;
        }
        let path = component.to_owned();
        let read = tokio::task::spawn_blocking(move || {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            match triggerfish_package::section::read(&bytes) {
                Ok(Some(m)) => Ok(m),
                Ok(None) => {
                    Err("no manifest packed (`triggerfish plugin pack` adds one)".to_owned())
                }
                Err(e) => Err(format!("bad manifest: {e}")),
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let mut cache = self
            .manifests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_MANIFESTS {
            cache.clear();
        }
        cache.insert(sha256.to_owned(), read.clone());
        read
    }
}
