//! Compiled components on disk, checked before use.
//!
//! An entry is named by a key over this host's version, the engine's
//! compatibility hash and the sha256 of the component. Its header repeats
//! that key and carries a sha256 of the compiled bytes, so an entry that was
//! swapped, truncated or edited, or that another host version wrote, is
//! recompiled instead of run. This guards against mistakes and stale files;
//! someone who can write the state directory can still forge an entry, which
//! is why the directory must belong to this user and be closed to others
//! (SECURITY.md: the operator trusts the state directory).

use std::hash::{Hash as _, Hasher as _};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Largest compiled entry read back (a Python component compiles to ~100 MB).
pub const MAX_COMPILED_BYTES: u64 = 1024 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"TFCWASM1";
const HEADER_LEN: usize = MAGIC.len() + 32 + 32;

/// Why an entry was not used (logged, then the component is recompiled).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    #[error("not a regular file")]
    NotAFile,
    #[error("larger than {MAX_COMPILED_BYTES} bytes")]
    TooLarge,
    #[error("header is missing or damaged")]
    BadHeader,
    #[error("it was compiled from another component or by another host version")]
    OtherComponent,
    #[error("compiled code does not match its recorded digest")]
    BadDigest,
    #[error("{0}")]
    Io(String),
    #[error("wasmtime refused it: {0}")]
    Deserialize(String),
}

/// A directory of checked, compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_hash: u64,
}

impl CompileCache {
    /// A cache in `dir` (already created and checked) for `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir,
            engine_hash: h.finish(),
        }
    }

    /// The key of a component's entry: host version, engine and component.
    pub fn key(&self, component_sha256: &[u8; 32]) -> [u8; 32] {
        let mut k = Sha256::new();
        k.update(b"triggerfish compile cache\0");
        k.update(env!("CARGO_PKG_VERSION").as_bytes());
        k.update([0]);
        k.update(self.engine_hash.to_le_bytes());
        k.update(component_sha256);
        k.finalize().into()
    }

    /// Where the entry for `key` lives.
    pub fn entry_path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hex::encode(key)))
    }

    /// The compiled component for `key`, if a valid entry exists.
    /// `Ok(None)` when there is no entry; `Err` when one exists but is refused.
    pub fn get(&self, engine: &Engine, key: &[u8; 32]) -> Result<Option<Component>, Rejected> {
        let path = self.entry_path(key);
        let bytes = match read_entry(&path) {
            Ok(b) => b,
            Err(Rejected::Io(_)) if !path.exists() => return Ok(None),
            Err(e) => return Err(e),
        };
        let artifact = check_entry(&bytes, key)?;
        // SAFETY: the bytes are what `Component::serialize` wrote for this
        // key (digest checked above) in a directory only this user can write.
        unsafe { Component::deserialize(engine, artifact) }
            .map(Some)
            .map_err(|e| Rejected::Deserialize(format!("{e:#}")))
    }

    /// Store a compiled component under `key` (written whole, then renamed).
    pub fn put(&self, key: &[u8; 32], component: &Component) -> Result<(), String> {
        let artifact = component.serialize().map_err(|e| format!("{e:#}"))?;
        let digest: [u8; 32] = Sha256::digest(&artifact).into();
        let path = self.entry_path(key);
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", hex::encode(key), std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(key)?;
            f.write_all(&digest)?;
            f.write_all(&artifact)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
    }
}

/// The compiled bytes of an entry whose header names `key` and whose digest holds.
fn check_entry<'a>(bytes: &'a [u8], key: &[u8; 32]) -> Result<&'a [u8], Rejected> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Rejected::BadHeader);
    }
    let (header, artifact) = bytes.split_at(HEADER_LEN);
    if &header[MAGIC.len()..MAGIC.len() + 32] != key {
        return Err(Rejected::OtherComponent);
    }
    let digest: [u8; 32] = Sha256::digest(artifact).into();
    if header[MAGIC.len() + 32..] != digest {
        return Err(Rejected::BadDigest);
    }
    Ok(artifact)
}

fn read_entry(path: &Path) -> Result<Vec<u8>, Rejected> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| Rejected::Io(e.to_string());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Rejected::NotAFile);
    }
    if meta.len() > MAX_COMPILED_BYTES {
        return Err(Rejected::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_COMPILED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_COMPILED_BYTES {
        return Err(Rejected::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &[u8; 32], artifact: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(key);
        b.extend_from_slice(&<[u8; 32]>::from(Sha256::digest(artifact)));
        b.extend_from_slice(artifact);
        b
    }

    #[test]
    fn an_entry_is_used_only_for_its_own_key_and_digest() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let good = entry(&a, b"code");
        assert_eq!(check_entry(&good, &a), Ok(&b"code"[..]));
        assert_eq!(check_entry(&good, &b), Err(Rejected::OtherComponent));
        let mut edited = good.clone();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        assert_eq!(check_entry(&edited, &a), Err(Rejected::BadDigest));
        assert_eq!(check_entry(&good[..10], &a), Err(Rejected::BadHeader));
        assert_eq!(check_entry(b"", &a), Err(Rejected::BadHeader));
    }
}
