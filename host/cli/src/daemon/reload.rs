//! Hot reload: on SIGHUP, or when the config file or a plugin's component
//! changes, build a new host from the file and swap it in. Runs in flight
//! finish on the version they started with; later runs use the new one. A
//! config or component that does not load is refused with its reason and
//! the previous version keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use triggerfish_runtime::routing::Routes;
use triggerfish_runtime::{Host, Select};

use crate::cli::term::outln;
use crate::config_file::{Config, DaemonSettings};

/// How often the config file and components are looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What identifies a file's version: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

fn stamps(config: &Path, components: &[PathBuf]) -> Vec<Stamp> {
    std::iter::once(config)
        .chain(components.iter().map(PathBuf::as_path))
        .map(stamp)
        .collect()
}

/// Swaps hosts and routes in place.
pub struct Reloader {
    pub path: PathBuf,
    /// The sent ledger new hosts consult (the journal, or a cluster's bucket).
    pub ledger: Arc<dyn triggerfish_runtime::ledger::SentStore>,
    pub host: watch::Sender<Arc<Host>>,
    pub routes: watch::Sender<Arc<Routes>>,
    /// Settings that need a restart to change.
    pub daemon: DaemonSettings,
}

impl Reloader {
    /// Load the file and build a host from it (on a blocking thread: it compiles).
    async fn load(&self) -> anyhow::Result<(Host, Routes, Config)> {
        let path = self.path.clone();
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let config = Config::load_with_components(&path)?;
            let mut host = Host::new(&config.settings, Select::All)?;
            host.set_ledger(ledger);
            let routes = Routes::new(&config.settings.plugins);
            Ok((host, routes, config))
        })
        .await?
    }

    /// Reload now; say what happened.
    pub async fn reload(&self, why: &str) {
        match self.load().await {
            Ok((host, routes, config)) => {
                let d = &config.daemon;
                if d.listen != self.daemon.listen
                    || d.concurrency != self.daemon.concurrency
                    || d.token_env != self.daemon.token_env
                {
                    tracing::warn!(
                        "[api] and [host] concurrency changes take effect at the next start"
                    );
                }
                let names: Vec<String> = host
                    .plugins()
                    .map(|p| format!("{} ({})", p.config.name, &p.component.sha256[..12]))
                    .collect();
                self.host.send_replace(Arc::new(host));
                self.routes.send_replace(Arc::new(routes));
                outln!("reloaded ({why}): {}", names.join(", "));
            }
            Err(e) => {
                tracing::error!(
                    "reload refused ({why}): {}; the previous version keeps serving",
                    crate::cli::term::describe(&e)
                );
                outln!(
                    "reload refused ({why}): {}; the previous version keeps serving",
                    crate::cli::term::describe(&e)
                );
            }
        }
    }

    /// Reload on SIGHUP and on changes of the files, until `stop`.
    pub async fn watch(self, mut stop: watch::Receiver<bool>) {
        let components = |h: &Host| -> Vec<PathBuf> {
            h.plugins().map(|p| p.config.component.clone()).collect()
        };
        let mut files = components(&self.host.borrow());
        let mut seen = stamps(&self.path, &files);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let why = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
                _ = tokio::time::sleep(WATCH_EVERY) => {
                    let now = stamps(&self.path, &files);
                    if now == seen { continue; }
                    "a file changed"
                }
            };
            self.reload(why).await;
            // Watch what the serving version uses, and do not retry a refused
            // change until the files change again.
            files = components(&self.host.borrow());
            seen = stamps(&self.path, &files);
        }
    }
}
