//! The wasmtime layer: one `Engine` per process, the linker with every
//! capability, epoch ticking, and compiled components cached on disk
//! ([`crate::compile_cache`], checked by digest before use).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::PluginPre;
use crate::caps;
use crate::compile_cache::CompileCache;
use crate::state::InstanceState;

/// How often the epoch advances; deadlines are rounded up to this.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Largest component file accepted (a Python component is about 18 MB).
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// Instances the pooling allocator keeps room for (concurrent deliveries).
pub const POOL_INSTANCES: u32 = 64;

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot use the compile cache in {path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error("cannot set up the linker: {0}")]
    Linker(String),
    #[error("cannot read component {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("component {path} is not a regular file (a device, FIFO or directory is refused)")]
    NotAFile { path: PathBuf },
    #[error("component {path} is larger than {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("component {path} refused: {source}")]
    Trust {
        path: PathBuf,
        source: crate::trust::TrustError,
    },
    #[error(
        "{path} does not fit the {} world: {message}",
        crate::bindings::WORLD_PACKAGE
    )]
    World { path: PathBuf, message: String },
}

/// Options for [`Runtime::new`].
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Largest memory cap of any plugin, in bytes (sizes the pool).
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// A compiled, linked plugin component ready to instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    /// Pre-instantiated, typed handle.
    pub pre: PluginPre<InstanceState>,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
}

/// What a component is, as `triggerfish plugin inspect` shows it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub size: u64,
    pub sha256: String,
    /// Interfaces it imports, e.g. `triggerfish:plugin/teams@0.1.1`.
    pub imports: Vec<String>,
    /// What it exports, e.g. `triggerfish:plugin/handler@0.1.1`.
    pub exports: Vec<String>,
    /// Whether this host can run it, or why not (the interface named).
    pub fits: Result<(), String>,
}

/// The engine, linker and epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    cache: Option<CompileCache>,
    _ticker: EpochTicker,
}

fn base_config() -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c
}

/// Create (0700) and check the cache directory; absolute, so a later
/// change of working directory cannot move it.
fn open_cache_dir(dir: &Path) -> Result<PathBuf, EngineError> {
    let fail = |message: String| EngineError::Cache {
        path: dir.to_owned(),
        message,
    };
    let absolute = std::path::absolute(dir).map_err(|e| fail(e.to_string()))?;
    check_cache_owner(&absolute).map_err(fail)?;
    Ok(absolute)
}

impl Runtime {
    /// Build the engine (pooling allocator when the machine allows it) and a
    /// linker holding WASI p2, `wasi:http` and every Triggerfish capability.
    pub fn new(opts: &RuntimeOptions) -> Result<Self, EngineError> {
        let cache_dir = opts.cache_dir.as_deref().map(open_cache_dir).transpose()?;
        let mut pooled = base_config();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size(opts.max_memory_bytes);
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = match Engine::new(&pooled) {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!("pooling allocator unavailable ({err}); using on-demand allocation");
                Engine::new(&base_config()).map_err(|e| EngineError::Engine(e.to_string()))?
            }
        };
        let cache = cache_dir.map(|d| CompileCache::new(d, &engine));
        let linker = build_linker(&engine).map_err(|e| EngineError::Linker(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            linker,
            cache,
            _ticker: ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or load from cache) and link a component file.
    pub fn load(&self, path: &Path) -> Result<LoadedComponent, EngineError> {
        self.load_trusted(path, None, &crate::trust::TrustPolicy::default())
    }

    /// [`Runtime::load`], once the bytes pass the pin and the signature
    /// policy (checked before anything is compiled).
    pub fn load_trusted(
        &self,
        path: &Path,
        pin: Option<&str>,
        policy: &crate::trust::TrustPolicy,
    ) -> Result<LoadedComponent, EngineError> {
        let bytes = read_component(path)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        crate::trust::check(path, &digest, pin, policy).map_err(|source| EngineError::Trust {
            path: path.to_owned(),
            source,
        })?;
        let sha256 = hex::encode(digest);
        let (component, from_cache) = self.compile(path, &bytes, &digest)?;
        let world_err = |e: wasmtime::Error| EngineError::World {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(world_err)?;
        let pre = PluginPre::new(instance_pre).map_err(world_err)?;
        Ok(LoadedComponent {
            pre,
            sha256,
            from_cache,
        })
    }
}

impl Runtime {
    /// Compile a component and describe it: size, digest, imports, exports,
    /// and whether it fits this host's world.
    pub fn inspect(&self, path: &Path) -> Result<Inspection, EngineError> {
        let bytes = read_component(path)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let (component, _) = self.compile(path, &bytes, &digest)?;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let fits = self
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map(drop)
            .map_err(|e| format!("{e:#}"));
        Ok(Inspection {
            size: bytes.len() as u64,
            sha256: hex::encode(digest),
            imports,
            exports,
            fits,
        })
    }

    /// The compiled component: from the cache when a checked entry exists,
    /// else compiled now and stored.
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> Result<(Component, bool), EngineError> {
        let cached = self.cache.as_ref().map(|c| (c, c.key(digest)));
        if let Some((cache, key)) = &cached {
            match cache.get(&self.engine, key) {
                Ok(Some(c)) => return Ok((c, true)),
                Ok(None) => {}
                Err(why) => tracing::warn!(
                    component = %path.display(),
                    entry = %cache.entry_path(key).display(),
                    "compiled code in the cache refused ({why}); compiling again"
                ),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| EngineError::Compile {
            path: path.to_owned(),
            message: format!("{e:#}"),
        })?;
        if let Some((cache, key)) = &cached {
            if let Err(e) = cache.put(key, &component) {
                tracing::warn!(component = %path.display(), "cannot cache compiled code: {e}");
            }
        }
        Ok((component, false))
    }
}

/// Compiled code in the cache runs as native code: refuse a cache directory
/// that another user owns or may write to (they could replace an entry).
fn check_cache_owner(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())?;
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "it belongs to user {} and this host runs as user {me}; compiled code in it could be replaced",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it is writable by other users (mode {:o}), so compiled code in it could be replaced: run `chmod go-w` on it or choose another cache_dir",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Read a component file: a regular file (never a device or FIFO, which
/// would read forever or hang) of at most [`MAX_COMPONENT_BYTES`].
fn read_component(path: &Path) -> Result<Vec<u8>, EngineError> {
    use std::io::Read as _;
    let read_err = |source| EngineError::Read {
        path: path.to_owned(),
        source,
    };
    // O_NONBLOCK: opening a FIFO with no writer must not block.
    let file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(read_err)?
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(EngineError::NotAFile {
            path: path.to_owned(),
        });
    }
    if meta.len() > MAX_COMPONENT_BYTES {
        return Err(EngineError::TooLarge {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(EngineError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    caps::http::add_to_linker(&mut linker)?;
    caps::entities::add_to_linker(&mut linker, |s| &mut s.entities)?;
    caps::teams::add_to_linker(&mut linker, |s| &mut s.teams)?;
    caps::email::add_to_linker(&mut linker, |s| &mut s.email)?;
    caps::log::add_to_linker(&mut linker, |s| &mut s.log)?;
    caps::plugin_config::add_to_linker(&mut linker, |s| &mut s.config)?;
    caps::status::add_to_linker(&mut linker, |s| &mut s.status)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("triggerfish-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the epoch thread; deadlines rely on timers only: {e}");
        }
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config files name the cache relative to themselves; wasmtime's cache
    /// only takes absolute directories.
    #[test]
    fn a_relative_cache_directory_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(dir.path(), &cwd);
        assert!(relative.is_relative(), "{}", relative.display());
        let runtime = Runtime::new(&RuntimeOptions {
            max_memory_bytes: 1 << 20,
            cache_dir: Some(relative),
        });
        assert!(runtime.is_ok(), "{:?}", runtime.err());
    }

    #[test]
    fn a_cache_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Runtime::new(&RuntimeOptions {
            max_memory_bytes: 1 << 20,
            cache_dir: Some(dir.path().to_owned()),
        })
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            err,
            format!(
                "cannot use the compile cache in {}: it is writable by other users (mode 777), so compiled code in it could be replaced: run `chmod go-w` on it or choose another cache_dir",
                dir.path().display()
            )
        );
    }

    #[test]
    fn devices_and_fifos_are_refused_as_components() {
        let runtime = Runtime::new(&RuntimeOptions {
            max_memory_bytes: 1 << 20,
            cache_dir: None,
        })
        .unwrap();
        let err = runtime
            .load(Path::new("/dev/zero"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "component /dev/zero is not a regular file (a device, FIFO or directory is refused)"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.wasm");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = runtime.load(&fifo).err().unwrap().to_string();
        assert!(
            err.ends_with("is not a regular file (a device, FIFO or directory is refused)"),
            "{err}"
        );
    }

    /// `target` relative to `base`, through `..` as needed.
    fn pathdiff(target: &Path, base: &Path) -> PathBuf {
        let common = base.ancestors().find(|a| target.starts_with(a)).unwrap();
        let ups = base.strip_prefix(common).unwrap().components().count();
        let mut p = PathBuf::new();
        for _ in 0..ups {
            p.push("..");
        }
        p.join(target.strip_prefix(common).unwrap())
    }
}
