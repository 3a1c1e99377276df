//! What a refresh may skip: a source whose files and settings are unchanged
//! (size, modification time and a BLAKE3 hash of the content), or whose
//! PostgreSQL rows look unchanged (count, greatest `updated_at`, keys), is not
//! imported again, and unification whose inputs are unchanged (every source's data
//! generation and the unification settings) is not recomputed, nor is a
//! measure whose definition and entity are unchanged.

use std::io::Read as _;
use std::path::Path;

use blake3::Hasher;

use super::workspace::{MeasureSpec, SourceSpec, Workspace};
use crate::store::{EntityDb, StoreError};

/// Counter holding a source's fingerprint at its last import.
pub fn source_counter(source: &str) -> String {
    format!("source-fingerprint:{source}")
}

/// Counter holding a source's [`source_stamp`] at its last import.
pub fn stamp_counter(source: &str) -> String {
    format!("source-stamp:{source}")
}

/// Counter holding unification's input fingerprint at its last run.
pub const UNIFIED_INPUT: &str = "unified-input";
/// Counters holding the last unification's figures, for a skipped run's event.
pub const UNIFIED_STATS: [&str; 4] = [
    "unified-stats:source-rows",
    "unified-stats:profiles",
    "unified-stats:matched-records",
    "unified-stats:merges",
];

/// Counter holding a measure's input at its last computation; see
/// [`measure_input`].
pub fn measure_counter(measure: &str) -> String {
    format!("measure-input:{measure}")
}

/// A measure's input: its definition and the data generation of the entity
/// it reads (generations only grow, and every write bumps one). Equal inputs
/// give equal values. Never 0, which stands for "unknown".
pub fn measure_input(m: &MeasureSpec, generation: u64) -> u64 {
    let mut h = Hasher::new();
    let filter = m.filter.as_ref().map(|(text, _)| text);
    h.update(
        format!(
            "{}|{}|{}|{:?}|{:?}|{:?}|{generation}",
            m.name,
            m.aggregate.as_str(),
            m.entity,
            m.field,
            filter,
            m.dimension
        )
        .as_bytes(),
    );
    fold(h) | 1
}

/// The first 64 bits of the digest. BLAKE3, not SHA-256: it hashes the
/// files about three times as fast on one core, and every refresh hashes
/// every file source.
fn fold(hasher: Hasher) -> u64 {
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The settings of a source that shape what its import stores.
fn import_settings(spec: &SourceSpec) -> String {
    let mut settings = format!(
        "{:?}|{}|{}|{:?}|{:?}|{:?}",
        spec.types, spec.key, spec.tolerance, spec.updated_at, spec.map, spec.derived
    );
    // Empty when plain, so that sources which say nothing keep theirs.
    settings.push_str(&spec.dialect.settings());
    settings
}

/// A source's format and import settings, as its fingerprints begin.
fn settings(spec: &SourceSpec) -> String {
    format!("{:?}|{}", spec.format, import_settings(spec))
}

/// A source file's path, size and modification time, as fingerprints
/// cover them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp(String);

impl FileStamp {
    fn of(path: &Path, meta: &std::fs::Metadata) -> Self {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Self(format!("|{}|{}|{}|", path.display(), meta.len(), mtime))
    }
}

/// Opens a source's files, for their stamps or content.
pub type Open<'a> = &'a dyn Fn(&Path) -> std::io::Result<std::fs::File>;

/// Each file's [`FileStamp`], in order.
pub fn file_stamps(
    files: &[std::path::PathBuf],
    open: Open<'_>,
) -> std::io::Result<Vec<FileStamp>> {
    files
        .iter()
        .map(|p| Ok(FileStamp::of(p, &open(p)?.metadata()?)))
        .collect()
}

/// A source's import settings and its files' stamps, not their content:
/// when it differs from the one recorded at the last import, the files
/// changed, and the import hashes them as it reads them instead of a read
/// beforehand.
pub fn source_stamp(spec: &SourceSpec, stamps: &[FileStamp]) -> u64 {
    let mut h = Hasher::new();
    h.update(b"stamp|");
    h.update(settings(spec).as_bytes());
    stamps.iter().for_each(|s| {
        h.update(s.0.as_bytes());
    });
    fold(h)
}

/// The fingerprint of a source from its files' stamps and the BLAKE3
/// digests of their content, in order (see [`source`]).
pub fn source_with(spec: &SourceSpec, stamps: &[FileStamp], digests: &[[u8; 32]]) -> u64 {
    let mut h = Hasher::new();
    h.update(settings(spec).as_bytes());
    for (stamp, digest) in stamps.iter().zip(digests) {
        h.update(stamp.0.as_bytes());
        h.update(digest);
    }
    fold(h)
}

/// The fingerprint of a source: its import settings, then each file's path,
/// size, modification time and content hash. Reads every byte once.
pub fn source(
    spec: &SourceSpec,
    files: &[std::path::PathBuf],
    open: Open<'_>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut stamps = Vec::with_capacity(files.len());
    let mut digests = Vec::with_capacity(files.len());
    for path in files {
        let mut file = open(path)?;
        stamps.push(FileStamp::of(path, &file.metadata()?));
        let mut content = Hasher::new();
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            content.update(&buf[..n]);
        }
        digests.push(*content.finalize().as_bytes());
    }
    Ok(source_with(spec, &stamps, &digests))
}

/// The fingerprint of a postgres source's settings and of the server,
/// database and user it reads as (never the password). What its rows looked
/// like at the last import is noted beside it (the postgres source's mark).
pub fn postgres(spec: &SourceSpec, server: &str) -> u64 {
    let mut h = Hasher::new();
    h.update(
        format!(
            "postgres|{:?}|{}|{server}",
            spec.kind,
            import_settings(spec)
        )
        .as_bytes(),
    );
    fold(h)
}

/// The fingerprint of unification's inputs: the settings that shape
/// profiles ([`unification_settings`]) and each source's data generation.
pub fn unification(ws: &Workspace, store: &EntityDb) -> Result<u64, StoreError> {
    let mut h = Hasher::new();
    h.update(&unification_settings(ws).to_le_bytes());
    for s in &ws.sources {
        h.update(&store.meta(&s.entity)?.generation.to_le_bytes());
    }
    Ok(fold(h))
}

/// The fingerprint of everything in the workspace that shapes profiles
/// (not the data): sources' names, entities, keys and mappings, and the
/// unification settings.
pub fn unification_settings(ws: &Workspace) -> u64 {
    let mut h = Hasher::new();
    for s in &ws.sources {
        h.update(
            format!(
                "{}|{}|{}|{:?}|{:?}|{:?}|",
                s.name, s.entity, s.key, s.map, s.derived, s.updated_at
            )
            .as_bytes(),
        );
    }
    h.update(format!("{:?}|{:?}", ws.unification, ws.profile_fields).as_bytes());
    fold(h)
}
