//! Data sources: where rows come from and how a failure is classed. A source
//! is a file or a glob, or a PostgreSQL table or query
//! ([`super::postgres::PostgresSource`]); [`Source`] is the seam for an HTTP
//! export later.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::fingerprint::FileStamp;
use super::workspace::{SourceKind, SourceSpec};
use crate::store::{
    import, EntityDb, ImportError, ImportErrorKind, ImportFailure, ImportSpec, Opener, StoreError,
};

/// What a successful refresh of a source loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Rows now held for the source.
    pub rows: u64,
    /// Malformed rows skipped (within tolerance), with why, for the first few.
    pub rejected: u64,
    pub rejected_examples: Vec<String>,
    /// True when the data and settings were unchanged since the last
    /// import, so nothing was read into the store.
    pub unchanged: bool,
    /// How the rows were read, when worth saying (an incremental read, or
    /// why a full one was needed).
    pub detail: Option<String>,
}

impl Loaded {
    /// Nothing read: the source was unchanged, and `rows` are held.
    pub fn unchanged(rows: u64) -> Self {
        Loaded {
            rows,
            rejected: 0,
            rejected_examples: Vec::new(),
            unchanged: true,
            detail: None,
        }
    }
}

/// Why a refresh of a source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// True when retrying cannot help.
    pub permanent: bool,
    pub message: String,
    /// Rows read before the failure.
    pub rows_read: u64,
    /// 1-based row where the data went wrong, when known.
    pub row: Option<u64>,
    /// Field where the data went wrong, when known.
    pub field: Option<String>,
}

impl SourceError {
    pub(super) fn new(permanent: bool, message: String) -> Self {
        Self {
            permanent,
            message,
            rows_read: 0,
            row: None,
            field: None,
        }
    }
}

/// A data source: replaces its entity's rows with its current data, atomically
/// (on failure the entity keeps its previous rows).
pub trait Source: Send + Sync {
    /// Load the current data into the source's entity, telling `progress`
    /// (work done, work to do: bytes for files, rows for a database) as it
    /// goes. Unless `force`, data that is unchanged since the last import is
    /// not imported again. Blocks: call it from a blocking thread, not an
    /// async task.
    fn refresh(
        &self,
        store: &EntityDb,
        force: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Loaded, SourceError>;

    /// Work the next [`Source::refresh`] into `store` can have done ahead,
    /// on another thread, while earlier sources load (a file source whose
    /// files look unchanged hashes them). Called on the refreshing thread;
    /// `None` when there is nothing to do ahead.
    fn read_ahead<'a>(&'a self, _store: &'a EntityDb) -> Option<Box<dyn FnOnce() + Send + 'a>> {
        None
    }

    /// Whether [`Source::refresh`] may run on another thread while an
    /// earlier source loads: its import does not hold the store's
    /// connection while it reads (a file source writes a file of its own).
    fn loads_ahead(&self) -> bool {
        false
    }
}

/// How many skipped rows a refresh describes.
pub(super) const REJECTED_EXAMPLES: usize = 5;

/// A file, or every file a glob matches (read in name order).
#[derive(Debug)]
pub struct FileSource {
    spec: SourceSpec,
    /// What a read-ahead found, for the next refresh.
    ahead: Mutex<Ahead>,
}

/// A file source's read-ahead.
#[derive(Debug, Default)]
enum Ahead {
    #[default]
    None,
    /// Asked for, not begun.
    Pending,
    Ready(ReadAhead),
}

/// What a read-ahead found: the files, their stamps (`None` when one could
/// not be read), and their fingerprint when only their content can tell if
/// they changed.
#[derive(Debug)]
struct ReadAhead {
    files: Vec<PathBuf>,
    stamps: Option<Vec<FileStamp>>,
    fingerprint: Option<u64>,
}

impl FileSource {
    /// A source for `spec`.
    pub fn new(spec: SourceSpec) -> Self {
        Self {
            spec,
            ahead: Mutex::default(),
        }
    }

    fn ahead(&self) -> MutexGuard<'_, Ahead> {
        self.ahead.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open `path` as the import would, for a fingerprint.
    fn open(&self, path: &Path) -> std::io::Result<std::fs::File> {
        let opener = RootedOpener {
            root: &self.spec.root,
        };
        opener
            .open(path)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// The fingerprint of `files` (see [`super::fingerprint::source`]);
    /// `None` when one cannot be read (the import then names the problem).
    fn fingerprint(&self, files: &[PathBuf]) -> Option<u64> {
        super::fingerprint::source(&self.spec, files, &|p| self.open(p)).ok()
    }

    /// The files' stamps (`None` when one cannot be read), and the
    /// source's stamp from them.
    fn stamps(&self, files: &[PathBuf]) -> (Option<Vec<FileStamp>>, Option<u64>) {
        let stamps = super::fingerprint::file_stamps(files, &|p| self.open(p)).ok();
        let stamp = stamps
            .as_deref()
            .map(|s| super::fingerprint::source_stamp(&self.spec, s));
        (stamps, stamp)
    }

    /// Whether only the files' content can tell if they changed: a
    /// fingerprint is recorded, and so is this `stamp` (or none, as an
    /// older store has). A stamp of its own says they changed.
    fn content_decides(&self, store: &EntityDb, stamp: Option<u64>) -> bool {
        let recorded = |c: &str| store.counter(c).ok().flatten();
        let name = &self.spec.name;
        recorded(&super::fingerprint::source_counter(name)).is_some()
            && match (recorded(&super::fingerprint::stamp_counter(name)), stamp) {
                (Some(was), Some(now)) => was == now,
                _ => true,
            }
    }

    /// Columns that must be in the data: the mapped ones and `updated_at`.
    fn required(&self) -> Vec<String> {
        let mut required: Vec<String> = self.spec.mapped_columns();
        required.extend(self.spec.updated_at.iter().cloned());
        required.sort();
        required.dedup();
        required
    }

    /// The read-ahead's result if it still describes `files`, whose
    /// `stamps` are as it saw them, waiting for one in progress; it is used
    /// once.
    fn take_ahead(&self, files: &[PathBuf], stamps: Option<&[FileStamp]>) -> Option<ReadAhead> {
        match std::mem::take(&mut *self.ahead()) {
            Ahead::Ready(r)
                if r.files == files && stamps.is_some() && r.stamps.as_deref() == stamps =>
            {
                Some(r)
            }
            _ => None,
        }
    }

    fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        if !self.spec.is_glob {
            return Ok(vec![self.spec.path.clone()]);
        }
        let pattern = self.spec.path.to_string_lossy().into_owned();
        let paths = glob::glob(&pattern)
            .map_err(|e| SourceError::new(true, format!("bad glob '{pattern}': {e}")))?;
        let mut files = Vec::new();
        for p in paths {
            match p {
                Ok(p) if p.is_file() => files.push(p),
                Ok(_) => {}
                Err(e) => return Err(SourceError::new(false, format!("{e}"))),
            }
        }
        if files.is_empty() {
            // A drop that has not arrived yet: worth retrying.
            return Err(SourceError::new(
                false,
                format!("no file matches '{pattern}' yet"),
            ));
        }
        files.sort();
        Ok(files)
    }
}

impl Source for FileSource {
    fn loads_ahead(&self) -> bool {
        true
    }

    fn refresh(
        &self,
        store: &EntityDb,
        force: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Loaded, SourceError> {
        let files = self.files()?;
        let opener = RootedOpener {
            root: &self.spec.root,
        };
        let (stamps, stamp) = self.stamps(&files);
        let ahead = self.take_ahead(&files, stamps.as_deref());
        let counter = super::fingerprint::source_counter(&self.spec.name);
        if !force && self.content_decides(store, stamp) {
            let fingerprint = ahead
                .and_then(|a| a.fingerprint)
                .or_else(|| self.fingerprint(&files));
            if fingerprint.is_some() && store.counter(&counter).ok().flatten() == fingerprint {
                if let Ok(meta) = store.meta(&self.spec.entity) {
                    return Ok(Loaded::unchanged(meta.rows));
                }
            }
        }
        let required = self.required();
        let spec = ImportSpec {
            progress: Some(progress),
            digests: true,
            ..self.import_spec(&files, &required, &opener)
        };
        match import(&spec, store, &self.spec.entity) {
            Ok(report) => {
                let fingerprint = match (&stamps, &report.digests) {
                    (Some(stamps), Some(digests)) => {
                        Some(super::fingerprint::source_with(&self.spec, stamps, digests))
                    }
                    // A file was not read to its end: read it again.
                    _ => self.fingerprint(&files),
                };
                // Not recorded: the next refresh imports again, which is safe.
                let recorded = fingerprint.map_or(Ok(()), |fp| {
                    store.set_counter(&counter, fp)?;
                    let stamp_counter = super::fingerprint::stamp_counter(&self.spec.name);
                    stamp.map_or(Ok(()), |s| store.set_counter(&stamp_counter, s))
                });
                if let Err(e) = recorded {
                    tracing::warn!(source = %self.spec.name, "cannot record the source's fingerprint: {e}");
                }
                Ok(Loaded {
                    rows: report.rows,
                    rejected: report.rejected.len() as u64,
                    rejected_examples: report
                        .rejected
                        .iter()
                        .take(REJECTED_EXAMPLES)
                        .map(ToString::to_string)
                        .collect(),
                    unchanged: false,
                    detail: None,
                })
            }
            Err(ImportFailure::File(e)) => Err(SourceError {
                permanent: !matches!(e.kind, ImportErrorKind::Io | ImportErrorKind::Changed),
                rows_read: e.row.map_or(0, |r| r.saturating_sub(1)),
                row: e.row,
                field: e.field.clone(),
                message: e.to_string(),
            }),
            Err(ImportFailure::EntityDb(e)) => Err(store_failure(e)),
        }
    }

    /// The fingerprint of the files, when their stamps are as at the last
    /// import (else the import hashes them as it reads them). A failure is
    /// left for the refresh to meet and report.
    fn read_ahead<'a>(&'a self, store: &'a EntityDb) -> Option<Box<dyn FnOnce() + Send + 'a>> {
        *self.ahead() = Ahead::Pending;
        Some(Box::new(move || {
            // Held while reading: a refresh that comes meanwhile waits.
            let mut ahead = self.ahead();
            if !matches!(*ahead, Ahead::Pending) {
                return; // the refresh came first
            }
            *ahead = Ahead::None;
            let Ok(files) = self.files() else {
                return;
            };
            let (stamps, stamp) = self.stamps(&files);
            let fingerprint = match self.content_decides(store, stamp) {
                true => self.fingerprint(&files),
                false => None,
            };
            *ahead = Ahead::Ready(ReadAhead {
                files,
                stamps,
                fingerprint,
            });
        }))
    }
}

impl FileSource {
    /// The import of `files`, without progress.
    fn import_spec<'a>(
        &'a self,
        files: &'a [PathBuf],
        required: &'a [String],
        opener: &'a RootedOpener<'a>,
    ) -> ImportSpec<'a> {
        ImportSpec {
            files,
            format: self.spec.format,
            dialect: &self.spec.dialect,
            types: &self.spec.types,
            key: &self.spec.key,
            required,
            tolerance: self.spec.tolerance,
            opener: Some(opener),
            progress: None,
            root: Some(&self.spec.root),
            digests: false,
        }
    }
}

/// Opens source files inside their root folder with `cap-std`: a path or
/// symlink leading out of it, and anything but a regular file (a device,
/// FIFO or directory), is refused before a byte is read.
#[derive(Debug)]
struct RootedOpener<'a> {
    root: &'a std::path::Path,
}

impl Opener for RootedOpener<'_> {
    fn open(&self, path: &std::path::Path) -> Result<std::fs::File, ImportError> {
        let refused = |message: String| ImportError {
            kind: ImportErrorKind::Refused,
            file: path.to_owned(),
            row: None,
            field: None,
            message,
        };
        let outside = || {
            refused(format!(
                "is outside the source's folder {} (a symlink leaving it is refused)",
                self.root.display()
            ))
        };
        let rel = path.strip_prefix(self.root).map_err(|_| outside())?;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => ImportError {
                kind: ImportErrorKind::NotFound,
                file: path.to_owned(),
                row: None,
                field: None,
                message: "file not found".into(),
            },
            // cap-std's answer to a path that escapes the folder.
            std::io::ErrorKind::PermissionDenied => outside(),
            _ => ImportError {
                kind: ImportErrorKind::Io,
                file: path.to_owned(),
                row: None,
                field: None,
                message: e.to_string(),
            },
        };
        // The empty root (a config named without a folder) is the current one.
        let root = if self.root.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            self.root
        };
        let dir =
            cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(io)?;
        let meta = dir.metadata(rel).map_err(io)?;
        if !meta.is_file() {
            return Err(refused(
                "is not a regular file (devices, FIFOs and folders are refused)".into(),
            ));
        }
        dir.open(rel).map(cap_std::fs::File::into_std).map_err(io)
    }
}

/// Why a small settings file (a connection string, a certificate) was not
/// read by [`read_small_file`].
#[derive(Debug)]
pub(super) enum SmallFileError {
    /// Opening or reading it failed.
    Io(std::io::Error),
    /// It is not a regular file (a pipe would stall the refresh).
    NotRegular,
    /// It is larger than the bound.
    TooLarge,
}

/// The bytes of the regular file (or link to one) at `path`, at most `max`.
/// Only its metadata is looked at before it is opened, so a pipe or a
/// device is refused rather than read.
pub(super) fn read_small_file(path: &Path, max: u64) -> Result<Vec<u8>, SmallFileError> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(SmallFileError::Io)?;
    if !meta.is_file() {
        return Err(SmallFileError::NotRegular);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(SmallFileError::Io)?;
    match bytes.len() as u64 > max {
        true => Err(SmallFileError::TooLarge),
        false => Ok(bytes),
    }
}

/// A store failure while loading: busy or locked databases and I/O are worth
/// retrying; anything else (a bad key, a duplicate) is in the data.
pub(super) fn store_failure(e: StoreError) -> SourceError {
    let transient = match &e {
        StoreError::Sqlite { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::DiskFull
            )
        ),
        StoreError::Io { .. } => true,
        _ => false,
    };
    let (row, field) = match &e {
        StoreError::Row { row, .. } => (Some(*row), None),
        _ => (None, None),
    };
    SourceError {
        permanent: !transient,
        message: e.to_string(),
        rows_read: row.map_or(0, |r: u64| r.saturating_sub(1)),
        row,
        field,
    }
}

/// The source behind a configured data source.
pub fn source_for(spec: &SourceSpec) -> Box<dyn Source> {
    match &spec.kind {
        SourceKind::Files => Box::new(FileSource::new(spec.clone())),
        SourceKind::Postgres(pg) => Box::new(super::postgres::PostgresSource::new(
            spec.clone(),
            pg.clone(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::workspace::parse_workspace_file;
    use crate::store::PageLimits;

    const CONFIG: &str = r#"
[[sources]]
name = "crm"
path = "crm.csv"
key = "Id"
[sources.map]
Email = "Email"
"#;

    fn refresh(src: &FileSource, store: &EntityDb, force: bool) -> (u64, bool) {
        let loaded = src.refresh(store, force, &|_, _| {}).unwrap();
        (loaded.rows, loaded.unchanged)
    }

    /// Read ahead; the fingerprint found, if the read-ahead is ready.
    fn read_ahead(src: &FileSource, store: &EntityDb) -> Option<Option<u64>> {
        (src.read_ahead(store).unwrap())();
        match &*src.ahead() {
            Ahead::Ready(r) => Some(r.fingerprint),
            _ => None,
        }
    }

    #[test]
    fn a_read_ahead_is_used_only_while_the_files_are_as_it_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("crm.csv");
        let ws = parse_workspace_file(&dir.path().join("w.toml"), CONFIG).unwrap();
        let src = FileSource::new(ws.sources[0].clone());
        let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();

        let counter = crate::insights::fingerprint::source_counter("crm");
        let recorded = || store.counter(&counter).unwrap();

        // Never imported: nothing to hash ahead. The file changes (a column
        // more) before the refresh.
        std::fs::write(&csv, "Id,Email\n1,a@x\n").unwrap();
        assert_eq!(read_ahead(&src, &store), Some(None));
        std::fs::write(&csv, "Id,Email,Age\n1,a@x,3\n2,b@x,4\n").unwrap();
        assert_eq!(refresh(&src, &store, false), (2, false));
        assert!(matches!(*src.ahead(), Ahead::None), "used once");

        // Unchanged: the read-ahead's fingerprint (a read of its own) is the
        // one the import recorded as it read, and the refresh skips.
        let unchanged = read_ahead(&src, &store).flatten();
        assert!(unchanged.is_some());
        assert_eq!(recorded(), unchanged);
        assert_eq!(refresh(&src, &store, false), (2, true));

        // Read ahead as unchanged, then the file changes: not skipped.
        assert_eq!(read_ahead(&src, &store), Some(unchanged));
        std::fs::write(&csv, "Id,Email,Age\n1,a@x,3\n2,b@x,4\n3,c@x,5\n").unwrap();
        assert_eq!(refresh(&src, &store, false), (3, false));
        assert_ne!(recorded(), unchanged);

        // Its size changed: a read-ahead hashes nothing, the import does.
        std::fs::write(&csv, "Id,Email,Age\n1,a@x,3\n").unwrap();
        assert_eq!(read_ahead(&src, &store), Some(None));
        assert_eq!(refresh(&src, &store, false), (1, false));
        assert_eq!(read_ahead(&src, &store).flatten(), recorded());
        assert_eq!(refresh(&src, &store, false), (1, true));

        // A refresh before its read-ahead began does the work; the
        // read-ahead then does nothing.
        let work = src.read_ahead(&store).unwrap();
        assert_eq!(refresh(&src, &store, true), (1, false));
        work();
        assert!(matches!(*src.ahead(), Ahead::None));
    }
}
