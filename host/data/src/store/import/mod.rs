//! Importing CSV, JSON (an array of objects) and NDJSON files as an entity's
//! rows: types inferred per column or given, in one pass or two; a bad row is
//! named by number and field. [`rows`] reads a file's rows, [`typing`] types
//! and converts their values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::ValueRef;

use super::{pipe, StoreError};
use crate::odata::ColumnType;

mod content;
mod csv_records;
mod dialect;
mod encoding;
mod flat;
mod locale;
mod naming;
mod objects;
mod rows;
mod typing;

pub use dialect::{DialectError, DialectText, FileDialect, PLAIN};
pub use encoding::{parse_encoding, Encoding};
pub use locale::{
    parse_decimal_separator, DateFormat, DateFormats, Locale, MAX_DATETIME_FORMATS,
    MAX_DATETIME_FORMAT_BYTES,
};
pub use naming::{column_name, named_column};
pub use objects::MAX_FLATTEN_DEPTH;
use rows::{visit, Flow};
pub(crate) use typing::convert_text;
use typing::Typing;

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Json,
    Ndjson,
}

impl ImportFormat {
    /// From a file extension (`csv` or `tsv`, `json`, `ndjson`/`jsonl`),
    /// looking past a `.gz` (the file is then read decompressed).
    pub fn from_path(path: &Path) -> Option<Self> {
        if super::gzip::is_gzip(path) {
            return Self::from_path(Path::new(path.file_stem()?));
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "tsv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            _ => None,
        }
    }

    /// Parse a format name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::from_path(Path::new(&format!("x.{s}")))
    }

    /// The field separator of CSV read from `path` when none is given: a
    /// tab for a `.tsv` file (or a format named `tsv`), else a comma.
    pub fn default_delimiter(path: &Path) -> u8 {
        let path = match super::gzip::is_gzip(path) {
            true => Path::new(path.file_stem().unwrap_or_default()),
            false => path,
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("tsv") => b'\t',
            _ => b',',
        }
    }
}

/// A CSV field separator as written in a configuration or on a command
/// line: one ASCII character other than `"` and a line break, or `tab`.
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        b"tab" => Ok(b'\t'),
        [b'"' | b'\r' | b'\n'] => Err(format!(
            "{}: a field separator cannot be a quote or a line break",
            quoted(s)
        )),
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!(
            "{}: expected one ASCII character, such as \";\" or \"\\t\" (or \"tab\")",
            quoted(s)
        )),
    }
}

/// What kind of problem a file has (decides whether retrying can help).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportErrorKind {
    /// The file does not exist (yet).
    NotFound,
    /// Reading failed.
    Io,
    /// Not UTF-8 (nor the encoding named).
    Encoding,
    /// Columns do not fit what is configured (key, types, names).
    Schema,
    /// A row could not be read or converted.
    Malformed,
    /// The file changed while it was being read (a drop still being written).
    Changed,
    /// The file may not be read: outside the allowed roots (a symlink leaving
    /// them), or not a regular file (a device or FIFO).
    Refused,
}

/// Longest piece of file content quoted in an error (a value or a column
/// name); longer ones are cut with `…`. Errors reach plugins and terminals.
pub const MAX_QUOTED_CHARS: usize = 32;

/// Most columns a source may have (SQLite's own limit on a table's
/// columns); a file with more is refused as soon as the excess is seen.
pub const MAX_COLUMNS: usize = 2000;

fn too_many_columns(path: &Path, row: Option<u64>) -> ImportError {
    file_error(
        path,
        ImportErrorKind::Schema,
        row,
        None,
        format!("more than {MAX_COLUMNS} columns (a source may have at most {MAX_COLUMNS})"),
    )
}

/// `'text'` for an error message: at most [`MAX_QUOTED_CHARS`] characters,
/// control characters escaped.
pub fn quoted(s: &str) -> String {
    let mut out = String::from("'");
    for (i, c) in s.chars().enumerate() {
        if i == MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Opens the files of an import; the insights engine confines sources to
/// their roots with one.
pub trait Opener: std::fmt::Debug + Sync {
    /// Open `path` for reading, or say why it may not be read.
    fn open(&self, path: &Path) -> Result<std::fs::File, ImportError>;
}

/// A file that could not be read as typed rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), row.map(|r| format!(": row {r}")).unwrap_or_default(), field.as_ref().map(|f| format!(", field '{f}'")).unwrap_or_default())]
pub struct ImportError {
    pub kind: ImportErrorKind,
    pub file: PathBuf,
    /// 1-based data row (CSV: not counting the header; NDJSON: the line).
    pub row: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

/// An import that failed: the file, or the store.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error(transparent)]
    File(#[from] ImportError),
    #[error(transparent)]
    EntityDb(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Columns in file order, with their types.
    pub columns: Vec<(String, ColumnType)>,
    /// Rows stored.
    pub rows: u64,
    /// Rows skipped as malformed (at most the tolerance).
    pub rejected: Vec<ImportError>,
    /// With [`ImportSpec::digests`]: each file's BLAKE3 digest, when the
    /// pass that stored the rows read every file whole.
    pub digests: Option<Vec<[u8; 32]>>,
}

fn file_error(
    path: &Path,
    kind: ImportErrorKind,
    row: Option<u64>,
    field: Option<&str>,
    message: String,
) -> ImportError {
    ImportError {
        kind,
        file: path.to_owned(),
        row,
        field: field.map(str::to_owned),
        message,
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> ImportError {
    if let Some(undecodable) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<encoding::Undecodable>())
    {
        return file_error(
            path,
            ImportErrorKind::Encoding,
            None,
            None,
            undecodable.to_string(),
        );
    }
    if let Some(corrupt) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<super::gzip::Corrupt>())
    {
        return file_error(
            path,
            ImportErrorKind::Malformed,
            None,
            None,
            corrupt.to_string(),
        );
    }
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ImportErrorKind::NotFound,
        std::io::ErrorKind::InvalidData => ImportErrorKind::Encoding,
        _ => ImportErrorKind::Io,
    };
    let message = match kind {
        ImportErrorKind::NotFound => "file not found".to_owned(),
        ImportErrorKind::Encoding => encoding::NOT_UTF8.to_owned(),
        _ => e.to_string(),
    };
    file_error(path, kind, None, None, message)
}

/// What to import: one or more files of one format, read as one entity.
#[derive(Clone, Copy)]
pub struct ImportSpec<'a> {
    /// The files, read in this order; CSV files must share their header.
    pub files: &'a [PathBuf],
    /// The format; by default from the first file's extension.
    pub format: Option<ImportFormat>,
    /// How the files are written beyond their format.
    pub dialect: &'a FileDialect,
    /// Column types given; others are inferred.
    pub types: &'a BTreeMap<String, ColumnType>,
    /// The key column, present in every row. Here and in `types` and
    /// `required`, columns go by their names ([`column_name`]).
    pub key: &'a str,
    /// Columns that must exist (e.g. used by a mapping), besides the key.
    pub required: &'a [String],
    /// Malformed rows skipped before the import fails.
    pub tolerance: usize,
    /// How files are opened; plain `File::open` when `None`.
    pub opener: Option<&'a dyn Opener>,
    /// Told (bytes read, bytes to read) as the import goes, about every
    /// `PROGRESS_EVERY_BYTES`; every pass counts, so the total is the
    /// files' size for one pass and twice it for two (see [`import`]).
    pub progress: Option<&'a dyn Fn(u64, u64)>,
    /// Partition origins are the files' paths relative to this folder (the
    /// file name when `None` or outside it).
    pub root: Option<&'a Path>,
    /// Hash each file's bytes as the rows are stored
    /// ([`ImportReport::digests`]).
    pub digests: bool,
}

impl<'a> ImportSpec<'a> {
    /// `files` keyed by `key`, with the `types` given and the rest inferred;
    /// no tolerance, no required columns, plain opens, no progress, no root.
    pub fn new(
        files: &'a [PathBuf],
        types: &'a BTreeMap<String, ColumnType>,
        key: &'a str,
    ) -> Self {
        Self {
            files,
            format: None,
            dialect: &PLAIN,
            types,
            key,
            required: &[],
            tolerance: 0,
            opener: None,
            progress: None,
            root: None,
            digests: false,
        }
    }
}

/// A file as a partition's origin: relative to `root`, else its name.
fn origin(root: Option<&Path>, path: &Path) -> String {
    root.and_then(|r| path.strip_prefix(r).ok())
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| path.file_name().map(Path::new))
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

impl std::fmt::Debug for ImportSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportSpec")
            .field("files", &self.files)
            .field("format", &self.format)
            .field("dialect", &self.dialect.settings())
            .field("key", &self.key)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

/// How often an import reports its progress, in bytes read.
pub const PROGRESS_EVERY_BYTES: u64 = 4 * 1024 * 1024;

/// Bytes read so far by one import, and whom to tell. The count may be
/// advanced from another thread (the reading one); the telling is done by
/// [`Progress::tick`] on this one.
struct Progress<'a> {
    read: AtomicU64,
    next: std::cell::Cell<u64>,
    total: u64,
    report: Option<&'a dyn Fn(u64, u64)>,
}

impl<'a> Progress<'a> {
    /// Nothing read yet of files of these sizes, to be read `passes` times.
    fn new(stamps: &[Stamp], passes: u64, report: Option<&'a dyn Fn(u64, u64)>) -> Self {
        Self {
            read: AtomicU64::new(0),
            next: Default::default(),
            total: passes * stamps.iter().map(|(size, _)| size).sum::<u64>(),
            report,
        }
    }

    /// Tell the bytes read, if [`PROGRESS_EVERY_BYTES`] more were read
    /// since last told.
    fn tick(&self) {
        let read = self.read.load(Ordering::Relaxed);
        if read >= self.next.get() {
            self.next.set(read + PROGRESS_EVERY_BYTES);
            if let Some(report) = self.report {
                report(read.min(self.total), self.total);
            }
        }
    }
}

/// Read `path` into `entity` with typed values; see [`import`].
pub fn import_rows(
    path: &Path,
    format: Option<ImportFormat>,
    types: &BTreeMap<String, ColumnType>,
    key: &str,
    tolerance: usize,
    store: &super::EntityDb,
    entity: &str,
) -> Result<ImportReport, ImportFailure> {
    let files = [path.to_owned()];
    // Columns as the file's headers write them, or as they are named.
    let types: BTreeMap<String, ColumnType> =
        types.iter().map(|(c, t)| (named_column(c), *t)).collect();
    let key = named_column(key);
    import(
        &ImportSpec {
            format,
            tolerance,
            ..ImportSpec::new(&files, &types, &key)
        },
        store,
        entity,
    )
}

/// Size and modification time, to notice a file written while being read.
fn stamp(path: &Path) -> Result<Stamp, ImportError> {
    let m = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    Ok((m.len(), m.modified().ok()))
}

/// Import the files of `spec` into `entity`, replacing its rows atomically.
/// Up to `tolerance` malformed rows are skipped and reported; on any other
/// failure the previous rows stay.
///
/// Columns whose types are not given are typed by every value, as
/// [`infer`] does. Usually one pass does it: the types are guessed from the
/// first `SNIFF_ROWS` rows, and the import checks every row against the
/// guess as it stores it. When the guess does not hold (or the pass fails),
/// that pass is rolled back and the import runs in two: [`infer`], then
/// [`import_inferred`], whose result and errors are the reference.
pub fn import(
    spec: &ImportSpec<'_>,
    store: &super::EntityDb,
    entity: &str,
) -> Result<ImportReport, ImportFailure> {
    if let Ok(guess) = sniff(spec) {
        match import_pass(spec, guess, store, entity) {
            Ok(report) => return Ok(report),
            Err(Pass::Failed(e)) => return Err(e),
            Err(Pass::Guessed) => {
                tracing::debug!(?spec, "the types guessed from the first rows did not hold");
            }
        }
    }
    let inferred = infer(spec)?;
    import_inferred(spec, inferred, store, entity)
}

/// Rows read to guess the columns' types for a one-pass [`import`].
pub const SNIFF_ROWS: u64 = 10_000;

/// What the first pass over an import's files found: the columns in file
/// order with their types, and each file's size and modification time then.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    typed: Vec<(String, ColumnType)>,
    stamps: Vec<Stamp>,
    format: ImportFormat,
    /// When the types are a guess from the first rows, to be checked by
    /// the import: the columns whose type is settled (see
    /// [`Typing::settled`]), which need no checking.
    guessed: Option<Vec<bool>>,
}

/// A file's size and modification time.
type Stamp = (u64, Option<std::time::SystemTime>);

/// The format and the files' stamps, before a pass.
fn start(spec: &ImportSpec<'_>) -> Result<(ImportFormat, Vec<Stamp>), ImportError> {
    let Some(first) = spec.files.first() else {
        return Err(file_error(
            Path::new(""),
            ImportErrorKind::NotFound,
            None,
            None,
            "no file to import".into(),
        ));
    };
    let format = spec
        .format
        .or_else(|| ImportFormat::from_path(first))
        .ok_or_else(|| {
            file_error(
                first,
                ImportErrorKind::Schema,
                None,
                None,
                "unknown format (expected a .csv, .json or .ndjson file, or one of them with .gz)"
                    .into(),
            )
        })?;
    let stamps = spec
        .files
        .iter()
        .map(|f| stamp(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((format, stamps))
}

/// Check the columns found against the key, the required columns and the
/// types given.
fn check_columns(
    spec: &ImportSpec<'_>,
    format: ImportFormat,
    columns: &[String],
) -> Result<(), ImportError> {
    let first = spec.files.first().map_or(Path::new(""), PathBuf::as_path);
    let schema_err =
        |field: Option<&str>, m: String| file_error(first, ImportErrorKind::Schema, None, field, m);
    let key = spec.key;
    if !columns.iter().any(|c| c == key) {
        return Err(schema_err(
            Some(key),
            format!(
                "key field '{key}' is not in the file (fields: {})",
                columns.join(", ")
            ),
        ));
    }
    for c in spec.required {
        if !columns.contains(c) {
            // `properties.email` names `PropertiesEmail`, a field of the
            // column `properties` until objects are flattened.
            let lower = c.to_ascii_lowercase();
            let parent = (format != ImportFormat::Csv && !spec.dialect.flatten)
                .then(|| {
                    columns
                        .iter()
                        .find(|p| lower.starts_with(&p.to_ascii_lowercase()) && p.len() < c.len())
                })
                .flatten();
            let hint = parent
                .map(|p| format!("; if it is a field of '{p}', set flatten = true"))
                .unwrap_or_default();
            return Err(schema_err(
                Some(c),
                format!(
                    "column '{c}' is used by the configuration but is not in the data (fields: {}){hint}",
                    columns.join(", ")
                ),
            ));
        }
    }
    for t in spec.types.keys() {
        if !columns.contains(t) {
            return Err(schema_err(
                Some(t),
                format!("a type is given for '{t}', which is not in the file"),
            ));
        }
    }
    Ok(())
}

/// The first pass of a two-pass [`import`]: read every file of `spec` once
/// to find its columns and their types, and check them against the key, the
/// required columns and the types given. Touches no store, so it may run
/// ahead on another thread.
pub fn infer(spec: &ImportSpec<'_>) -> Result<Inferred, ImportError> {
    type_columns(spec, None)
}

/// The types the first [`SNIFF_ROWS`] rows of the first file suggest, for
/// a one-pass import that checks them.
fn sniff(spec: &ImportSpec<'_>) -> Result<Inferred, ImportError> {
    type_columns(spec, Some(SNIFF_ROWS))
}

/// Read `spec`'s files (only the first `rows` rows of the first one, when
/// given: a guess) to find the columns and their types, and check them.
fn type_columns(spec: &ImportSpec<'_>, rows: Option<u64>) -> Result<Inferred, ImportError> {
    let (format, stamps) = start(spec)?;
    // A whole read is the first of two passes, and told as such.
    let report = rows.is_none().then_some(spec.progress).flatten();
    let progress = Progress::new(&stamps, 2, report);
    let files = match rows {
        Some(_) => spec.files.get(..1).unwrap_or_default(),
        None => spec.files,
    };
    let mut columns: Vec<String> = Vec::new();
    let mut typing = Typing::default();
    for path in files {
        visit(
            path,
            spec.opener,
            (format, spec.dialect),
            &mut columns,
            false,
            (&progress.read, None),
            &mut |row_no, row| {
                progress.tick();
                if let Ok(row) = row {
                    typing.observe(&row, &[], &spec.dialect.locale);
                }
                Ok(match rows.is_some_and(|n| row_no >= n) {
                    true => Flow::Stop,
                    false => Flow::Go,
                })
            },
        )?;
    }
    check_columns(spec, format, &columns)?;
    Ok(Inferred {
        typed: typing.typed(&columns, spec.types),
        stamps,
        format,
        guessed: rows.map(|_| typing.settled(&columns, spec.types)),
    })
}

/// The second pass of a two-pass [`import`]: convert every row of `spec`'s
/// files to the types [`infer`] found and store them as `entity`'s rows, in
/// one transaction. A file whose size or modification time changed since
/// the first pass fails the import as [`ImportErrorKind::Changed`].
pub fn import_inferred(
    spec: &ImportSpec<'_>,
    inferred: Inferred,
    store: &super::EntityDb,
    entity: &str,
) -> Result<ImportReport, ImportFailure> {
    let inferred = Inferred {
        guessed: None,
        ..inferred
    };
    import_pass(spec, inferred, store, entity).map_err(|e| match e {
        Pass::Failed(e) => e,
        // Only a guess can be wrong.
        Pass::Guessed => ImportFailure::File(file_error(
            spec.files.first().map_or(Path::new(""), PathBuf::as_path),
            ImportErrorKind::Schema,
            None,
            None,
            "the columns' types do not hold".into(),
        )),
    })
}

/// How a storing pass ended short.
enum Pass {
    Failed(ImportFailure),
    /// Guessed types did not hold, or a pass on guessed types failed (the
    /// two-pass import then finds the reference error).
    Guessed,
}

impl From<StoreError> for Pass {
    fn from(e: StoreError) -> Self {
        Pass::Failed(ImportFailure::EntityDb(e))
    }
}

impl From<ImportError> for Pass {
    fn from(e: ImportError) -> Self {
        Pass::Failed(ImportFailure::File(e))
    }
}

/// Convert every row of `spec`'s files to the types of `inferred` and store
/// them as `entity`'s rows, in one transaction; a guess is checked against
/// every row (and rolled back when it does not hold). One file is written
/// page by page ([`super::EntityDb::import_entity_paged_with`]) unless its
/// rows show they cannot be; then, and for several files, through SQLite.
fn import_pass(
    spec: &ImportSpec<'_>,
    inferred: Inferred,
    store: &super::EntityDb,
    entity: &str,
) -> Result<ImportReport, Pass> {
    if spec.files.len() == 1 {
        if let Some(report) = write_pass(spec, inferred.clone(), store, entity, true)? {
            return Ok(report);
        }
    }
    write_pass(spec, inferred, store, entity, false)?.ok_or(Pass::Guessed)
}

/// [`import_pass`], written page by page when `paged`: `None` when the rows
/// cannot be (nothing was stored).
fn write_pass(
    spec: &ImportSpec<'_>,
    inferred: Inferred,
    store: &super::EntityDb,
    entity: &str,
    paged: bool,
) -> Result<Option<ImportReport>, Pass> {
    let Inferred {
        typed,
        stamps,
        format,
        guessed: settled,
    } = inferred;
    let guessed = settled.is_some();
    let settled = settled.unwrap_or_default();
    let first = spec.files.first().map_or(Path::new(""), PathBuf::as_path);
    if spec.files.len() != stamps.len() {
        return Err(file_error(
            first,
            ImportErrorKind::Changed,
            None,
            None,
            "the files changed since their types were inferred".into(),
        )
        .into());
    }
    let key = spec.key;
    let key_index = typed.iter().position(|(c, _)| c == key).unwrap_or(0);
    let guessed_columns: Vec<String> = typed.iter().map(|(c, _)| c.clone()).collect();
    let mut columns = guessed_columns.clone();
    // One pass when guessed; the second of two otherwise.
    let progress = match guessed {
        true => Progress::new(&stamps, 1, spec.progress),
        false => {
            let p = Progress::new(&stamps, 2, spec.progress);
            p.read.store(p.total / 2, Ordering::Relaxed);
            p
        }
    };

    // Each file is read and converted on a thread of its own while this
    // one inserts, in one transaction.
    let tolerance = spec.tolerance;
    let mut rejected: Vec<ImportError> = Vec::new();
    let mut typing = Typing::default();
    // A duplicate key found once rows are in, named by its file and row.
    let key_error = |(at, e): (Option<(i64, u64)>, StoreError)| {
        let file = at.and_then(|(part, _)| {
            let i = usize::try_from(part).ok()?.checked_sub(1)?;
            spec.files.get(i)
        });
        file_error(
            file.map_or(first, PathBuf::as_path),
            ImportErrorKind::Malformed,
            at.map(|(_, row)| row),
            None,
            e.to_string(),
        )
    };
    let mut digests: Vec<Option<[u8; 32]>> = vec![None; spec.files.len()];
    let mut fill = |sink: &mut dyn super::Sink| {
        for (i, (path, before)) in spec.files.iter().zip(&stamps).enumerate() {
            if i > 0 {
                sink.build_key_index().map_err(key_error)?;
            }
            sink.begin_partition(&origin(spec.root, path))?;
            let (columns, rejected, typing, typed) =
                (&mut columns, &mut rejected, &mut typing, &typed);
            let settled = &settled;
            let read = &progress.read;
            let opener = spec.opener;
            let dialect = spec.dialect;
            let locale = &dialect.locale;
            let types = spec.types;
            // Set when a guessed column's value does not convert.
            let mut wrong_guess = false;
            let wrong = &mut wrong_guess;
            let digest = digests.get_mut(i);
            let hash = spec.digests;
            let produce = move |feed: &mut pipe::Feed| {
                let content = content::Content::default();
                // A guess reads new JSON keys too, to notice them.
                let visited = visit(
                    path,
                    opener,
                    (format, dialect),
                    columns,
                    !guessed,
                    (read, hash.then_some(&content)),
                    &mut |row_no, row| {
                        if guessed {
                            if let Ok(row) = &row {
                                typing.observe(row, settled, locale);
                            }
                        }
                        let converted = row
                            .map_err(|m| {
                                file_error(path, ImportErrorKind::Malformed, Some(row_no), None, m)
                            })
                            .and_then(|raw| {
                                raw.convert_into(typed, locale, feed).map_err(|(i, m)| {
                                    feed.cancel_row();
                                    let name = typed.get(i).map(|(name, _)| name.as_str());
                                    if guessed && name.is_some_and(|n| !types.contains_key(n)) {
                                        *wrong = true;
                                    }
                                    file_error(
                                        path,
                                        ImportErrorKind::Malformed,
                                        Some(row_no),
                                        name,
                                        m,
                                    )
                                })?;
                                if feed.get(key_index).is_none_or(|v| v == ValueRef::Null) {
                                    feed.cancel_row();
                                    return Err(file_error(
                                        path,
                                        ImportErrorKind::Malformed,
                                        Some(row_no),
                                        Some(key),
                                        "the key is empty".into(),
                                    ));
                                }
                                Ok(())
                            });
                        match converted {
                            Err(e) if *wrong => Err(e),
                            Ok(()) => feed.end_row(row_no).map(|()| Flow::Go).map_err(|e| {
                                file_error(
                                    path,
                                    ImportErrorKind::Io,
                                    Some(row_no),
                                    None,
                                    e.to_string(),
                                )
                            }),
                            Err(e) if rejected.len() < tolerance => {
                                rejected.push(e);
                                Ok(Flow::Go)
                            }
                            Err(mut e) => {
                                if tolerance > 0 {
                                    e.message = format!(
                                        "{} (more than {tolerance} malformed rows)",
                                        e.message
                                    );
                                }
                                Err(e)
                            }
                        }
                    },
                );
                if let (Ok(()), Some(digest)) = (&visited, digest) {
                    *digest = content.digest();
                }
                visited
            };
            let stored = pipe::run_batches(produce, |rows| {
                progress.tick();
                sink.push_batch(rows).map_err(|(row_no, e)| {
                    file_error(
                        path,
                        ImportErrorKind::Malformed,
                        Some(row_no),
                        None,
                        e.to_string(),
                    )
                })
            });
            match stored {
                Err(_) if guessed => return Err(Pass::Guessed),
                stored => stored?,
            }
            if stamp(path)? != *before {
                return Err(file_error(
                    path,
                    ImportErrorKind::Changed,
                    None,
                    None,
                    "the file changed while it was being read".into(),
                )
                .into());
            }
        }
        // A guess holds when every row gives the same columns and types.
        if guessed && (columns != guessed_columns || typing.typed(&columns, spec.types) != typed) {
            return Err(Pass::Guessed);
        }
        sink.build_key_index().map_err(key_error)?;
        Ok::<(), Pass>(())
    };
    let rows = match paged {
        true => store.import_entity_paged_with(entity, key, &typed, fill)?,
        false => Some(store.import_entity_into_file_with(entity, key, &typed, |s| fill(s))?),
    };
    let digests = spec
        .digests
        .then(|| digests.into_iter().collect::<Option<Vec<_>>>())
        .flatten();
    Ok(rows.map(|rows| ImportReport {
        columns: typed,
        rows,
        rejected,
        digests,
    }))
}

/// The first names of a list, quoted, for an error message.
fn quoted_list(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(8).map(|n| quoted(n)).collect();
    if names.len() > 8 {
        shown.push(format!("and {} more", names.len() - 8));
    }
    shown.join(", ")
}

/// Check the columns a JSON file's keys named ([`naming::column_name`]
/// each, as they were read; a key that named none kept its text).
fn check_headers(names: &[String]) -> Result<(), String> {
    if let Some(i) = names.iter().position(|n| !super::valid_identifier(n)) {
        return Err(naming::unnamable(i + 1, &names[i]));
    }
    naming::distinct(names, names)
}

#[cfg(test)]
mod tests {
    use super::rows::{Raw, Row};
    use super::*;
    use crate::store::json_array;
    use crate::store::row_bound::MAX_ROW_BYTES;
    use crate::store::{EntityDb, PageLimits, PageRequest};
    use rusqlite::types::Value;

    fn setup(name: &str, text: &str) -> (tempfile::TempDir, PathBuf, EntityDb) {
        setup_bytes(name, text.as_bytes())
    }

    fn setup_bytes(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        (dir, p, store)
    }

    /// `parts` as one gzip file, each part a member of its own.
    fn gzipped(parts: &[&str]) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = Vec::new();
        for part in parts {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part.as_bytes()).unwrap();
            out.extend(gz.finish().unwrap());
        }
        out
    }

    fn import(
        p: &Path,
        store: &EntityDb,
        types: &[(&str, ColumnType)],
        key: &str,
        tolerance: usize,
    ) -> Result<ImportReport, ImportFailure> {
        let types = types.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        import_rows(p, None, &types, key, tolerance, store, "T")
    }

    /// Import `p` as the entity `T`, keyed by `Id`, its files written as
    /// `dialect` says.
    fn import_as(
        p: PathBuf,
        store: &EntityDb,
        dialect: &FileDialect,
    ) -> Result<ImportReport, ImportFailure> {
        let (types, files) = (BTreeMap::new(), [p]);
        let spec = ImportSpec {
            dialect,
            ..ImportSpec::new(&files, &types, "Id")
        };
        super::import(&spec, store, "T")
    }

    fn file_err(r: Result<ImportReport, ImportFailure>) -> ImportError {
        match r {
            Err(ImportFailure::File(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    /// Import `p` with progress; the reports seen.
    fn import_with_progress(p: &Path, store: &EntityDb, entity: &str) -> Vec<(u64, u64)> {
        let seen = std::cell::RefCell::new(Vec::new());
        let report = |done: u64, total: u64| seen.borrow_mut().push((done, total));
        let types = BTreeMap::new();
        let files = [p.to_owned()];
        let spec = ImportSpec {
            progress: Some(&report),
            ..ImportSpec::new(&files, &types, "Id")
        };
        super::import(&spec, store, entity).unwrap();
        seen.into_inner()
    }

    #[test]
    fn imports_report_bytes_read_of_each_pass() {
        let mut text = String::from("Id,Name,Note,Code\n");
        for i in 0..120_000 {
            text.push_str(&format!(
                "{i},Person number {i},some words to make the row longer than most,{i}\n"
            ));
        }
        let (_d, p, store) = setup("big.csv", &text);
        let size = text.len() as u64;
        // Types that hold from the first rows on: one pass.
        let seen = import_with_progress(&p, &store, "T");
        assert!(
            seen.len() >= (size / PROGRESS_EVERY_BYTES) as usize,
            "{seen:?}"
        );
        assert!(seen.iter().all(|&(_, total)| total == size), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert!(
            seen.last().unwrap().0 >= size - PROGRESS_EVERY_BYTES,
            "{seen:?}"
        );

        // A late text value in an integer column: the guess fails, and the
        // two passes are counted, the second after the first.
        text.push_str("120000,Late,text at last,not a number\n");
        std::fs::write(&p, &text).unwrap();
        let size = text.len() as u64;
        let seen = import_with_progress(&p, &store, "T");
        let two: Vec<_> = seen
            .iter()
            .filter(|&&(_, total)| total == 2 * size)
            .collect();
        assert!(
            two.len() >= (2 * size / PROGRESS_EVERY_BYTES) as usize,
            "{seen:?}"
        );
        assert!(two.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert!(
            two.last().unwrap().0 > size,
            "the second pass is counted: {seen:?}"
        );
    }

    /// An entity's columns and rows, in file order.
    fn dump(store: &EntityDb, entity: &str) -> Dump {
        let meta = store.meta(entity).unwrap();
        let columns = meta.schema.columns.clone();
        let conn = store.session();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT * FROM {} ORDER BY rowid",
                super::super::Table::of(entity)
            ))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (columns, rows)
    }

    type Dump = (Vec<(String, ColumnType)>, Vec<Vec<Value>>);

    /// Both dumps alike; else the columns or the first row that differs.
    fn assert_same([one, two]: &[Dump; 2], what: &str) {
        assert_eq!(one.0, two.0, "{what}: columns");
        assert_eq!(one.1.len(), two.1.len(), "{what}: rows");
        if let Some(i) = (0..one.1.len()).find(|&i| one.1[i] != two.1[i]) {
            panic!("{what}: row {i}: {:?} against {:?}", one.1[i], two.1[i]);
        }
    }

    /// `import` of `text` (one pass or two) and the two-pass reference.
    fn both_ways(name: &str, text: &str) -> [Dump; 2] {
        let (_d, p, store) = setup(name, text);
        let types = BTreeMap::new();
        let files = [p];
        let spec = ImportSpec::new(&files, &types, "Id");
        super::import(&spec, &store, "One").unwrap();
        let inferred = infer(&spec).unwrap();
        import_inferred(&spec, inferred, &store, "Two").unwrap();
        [dump(&store, "One"), dump(&store, "Two")]
    }

    #[test]
    fn a_guess_from_the_first_rows_ends_as_inferring_every_row_would() {
        let n = SNIFF_ROWS as usize + 500;
        let late = |i: usize| i >= SNIFF_ROWS as usize + 100;
        // Each surprise in a file of its own, so that one does not hide
        // another: integers then text; nulls then integers; integers then
        // a decimal; booleans then an integer; dates then text. The last
        // rows come after the sniffed ones.
        use ColumnType::{Decimal, Integer, String as Text};
        // (column, its values, its values in the last 50 rows, the type);
        // `{i}` is the row's index.
        let surprises = [
            ("Code", "{i}", "x", Text),
            ("Late", "", "{i}", Integer),
            ("Amount", "7", "1.5", Decimal),
            ("Flag", "true", "1", Text),
            ("When", "2024-03-01", "soon", Text),
        ];
        for (name, first, last, expected) in surprises {
            let csv: std::string::String = (0..n)
                .map(|i| {
                    let v = if i + 50 < n { first } else { last };
                    format!("{i},{}\n", v.replace("{i}", &i.to_string()))
                })
                .collect();
            let both = both_ways("t.csv", &format!("Id,{name}\n{csv}"));
            assert_same(&both, name);
            assert_eq!(both[0].0[1], (name.to_owned(), expected));
        }

        // JSON: a key first seen after the sniffed rows.
        let mut ndjson = String::new();
        for i in 0..n {
            let extra = if late(i) {
                format!(r#", "Extra": {i}"#)
            } else {
                String::new()
            };
            let code = if i == n - 1 {
                r#""x""#.to_owned()
            } else {
                i.to_string()
            };
            ndjson.push_str(&format!(r#"{{"Id": {i}, "Code": {code}{extra}}}"#));
            ndjson.push('\n');
        }
        let both = both_ways("t.ndjson", &ndjson);
        assert_same(&both, "ndjson");
        let names: Vec<&str> = both[0].0.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["Id", "Code", "Extra"]);
        let array = format!("[{}]", ndjson.trim_end().replace('\n', ","));
        assert_same(&both_ways("t.json", &array), "json");

        // Tidy data: one pass, same rows.
        let tidy: String = (0..n).map(|i| format!("{i},{}\n", i * 2)).collect();
        let both = both_ways("tidy.csv", &format!("Id,Double\n{tidy}"));
        assert_same(&both, "tidy");
        assert_eq!(both[0].1.len(), n);
    }

    #[test]
    fn a_failure_on_guessed_types_is_reported_as_with_every_row_inferred() {
        // Key "2" twice as numbers, but the key column is text by its last
        // value: no duplicate then, and the rows import.
        let n = SNIFF_ROWS as usize + 10;
        let mut csv = String::from("Id,Name\n");
        for i in 0..n {
            csv.push_str(&format!("{i},n{i}\n"));
        }
        csv.push_str("02,leading zero\nx,text key\n");
        let both = both_ways("k.csv", &csv);
        assert_same(&both, "keys");
        assert_eq!(both[0].1.len(), n + 2);

        // A real duplicate: the same error either way.
        csv.push_str("5,again\n");
        let (_d, p, store) = setup("d.csv", &csv);
        let types = BTreeMap::new();
        let files = [p];
        let spec = ImportSpec::new(&files, &types, "Id");
        let one = file_err(super::import(&spec, &store, "T"));
        let two = file_err(import_inferred(&spec, infer(&spec).unwrap(), &store, "T"));
        assert_eq!(one, two);
        assert_eq!(one.row, Some(n as u64 + 3), "{one}");
    }

    #[test]
    fn json_arrays_stream_with_rows_numbered_and_shape_errors_named() {
        let (_d, p, store) = setup(
            "a.json",
            r#"[{"Id": 1, "Name": "Ann"}, {"Id": 2, "Name": "Bob"}, 7, {"Id": 4, "Name": "Dan"}]"#,
        );
        let r = import(&p, &store, &[], "Id", 1).unwrap();
        assert_eq!(r.rows, 3);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].row, Some(3));
        assert!(
            r.rejected[0].message.contains("expected an object"),
            "{}",
            r.rejected[0]
        );

        let (_d, p, store) = setup("o.json", r#"{"Id": 1}"#);
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(e.kind, ImportErrorKind::Schema);
        assert!(
            e.message.starts_with("expected a JSON array of objects"),
            "{e}"
        );

        let (_d, p, store) = setup("t.json", r#"[{"Id": 1}] trailing"#);
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert!(e.message.contains("trailing characters"), "{e}");
    }

    /// An import asked for digests hashes each file as it reads it, in
    /// every format and every way through (a guess that fails, rows out of
    /// key order, a JSON array left to the streaming parser, gzip).
    #[test]
    fn digests_are_the_files_content_hashes() {
        let big = "x".repeat(json_array::MAX_ELEMENT_BYTES);
        let many: String = (0..SNIFF_ROWS + 5)
            .map(|i| match i < SNIFF_ROWS {
                true => format!("{i},1\n"),
                false => format!("{i},x\n"),
            })
            .collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("a.csv", b"Id,N\n2,a\n1,b\n".to_vec()),
            ("a.csv", format!("Id,N\n{many}").into_bytes()),
            ("a.ndjson", b"{\"Id\":1}\n{\"Id\":2,\"N\":3}\n".to_vec()),
            ("a.json", b"[{\"Id\":1},{\"Id\":2}]\n".to_vec()),
            (
                "a.json",
                format!(r#"[{{"Id":1}},{{"Id":2,"Big":"{big}"}}]"#).into_bytes(),
            ),
            ("a.csv.gz", gzipped(&["Id,N\n1,a\n", "2,b\n"])),
        ];
        for (name, bytes) in cases {
            let (_d, p, store) = setup_bytes(name, &bytes);
            let files = [p];
            let types = BTreeMap::new();
            let spec = ImportSpec::new(&files, &types, "Id");
            let report = super::import(&spec, &store, "T").unwrap();
            assert_eq!(report.digests, None, "{name}: not asked for");
            let spec = ImportSpec {
                digests: true,
                ..spec
            };
            let report = super::import(&spec, &store, "T").unwrap();
            assert_eq!(
                report.digests,
                Some(vec![*blake3::hash(&bytes).as_bytes()]),
                "{name}"
            );
        }
    }

    /// Rows of a JSON array the fast reader leaves to the streaming parser
    /// (an error, or an element over its size limit) are each handed out
    /// once, in order, and the error is the streaming parser's.
    #[test]
    fn json_arrays_left_to_the_streaming_parser_continue_where_the_fast_read_stopped() {
        let big = "x".repeat(json_array::MAX_ELEMENT_BYTES);
        let cases = [
            (r#"[{"Id":1},{"Id":2} ,{"Id":3},]"#.to_owned(), 3),
            (r#"[{"Id":1},{"Id":2,"N":[1,}]"#.to_owned(), 1),
            (
                format!(r#"[{{"Id":1}},{{"Id":2,"Big":"{big}"}},{{"Id":3}}]"#),
                3,
            ),
            (r#"[{"Id":1},{"Id":2}] [3]"#.to_owned(), 2),
        ];
        for (text, rows) in cases {
            let (_d, p, _store) = setup("a.json", &text);
            let mut columns = Vec::new();
            let mut seen = Vec::new();
            let read = AtomicU64::new(0);
            let result = visit(
                &p,
                None,
                (ImportFormat::Json, &PLAIN),
                &mut columns,
                false,
                (&read, None),
                &mut |row_no, row| {
                    let id = row.ok().and_then(|r| match r {
                        Row::Json(values) => match values.first() {
                            Some(Raw::Num(n)) => n.as_u64(),
                            _ => None,
                        },
                        Row::Csv(_) => None,
                    });
                    seen.push((row_no, id));
                    Ok(Flow::Go)
                },
            );
            let shown: String = text.chars().take(40).collect();
            let want: Vec<_> = (1..=rows).map(|n| (n, Some(n))).collect();
            assert_eq!(seen, want, "{shown}");
            assert_eq!(read.load(Ordering::Relaxed), text.len() as u64, "{shown}");
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(_) => assert!(result.is_ok(), "{shown}: {result:?}"),
                Err(e) => assert_eq!(
                    result.map_err(|e| e.message),
                    Err(format!("not valid JSON: {e}")),
                    "{shown}"
                ),
            }
        }
    }

    #[test]
    fn json_objects_are_read_by_key_in_any_order_and_other_shapes_are_rows_refused() {
        let text = r#"[
            {"Id": 1, "Name": "Ann", "Tags": ["a", "b"]},
            {"Name": "Bob", "Id": 2, "Extra": {"x": [1, {"y": null}]}},
            [{"Id": 9}, [1, 2]],
            {"Id": 3, "Name": "Cy", "Name": "Cyd", "Tags": null},
            "text", null, true, 4.5
        ]"#;
        for (name, text) in [
            ("a.json", text.to_owned()),
            (
                "a.ndjson",
                serde_json::from_str::<Vec<serde_json::Value>>(text)
                    .unwrap()
                    .iter()
                    .map(|v| format!("{v}\n"))
                    .collect(),
            ),
        ] {
            let (_d, p, store) = setup(name, &text);
            let r = import(&p, &store, &[], "Id", 5).unwrap();
            assert_eq!(
                r.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
                ["Id", "Name", "Tags", "Extra"],
                "{name}"
            );
            assert_eq!(r.rows, 3, "{name}");
            let refused: Vec<_> = r.rejected.iter().map(|e| e.row).collect();
            assert_eq!(refused, [3, 5, 6, 7, 8].map(Some), "{name}");
            let page = store.get_page("t", "T", &PageRequest::default()).unwrap();
            assert_eq!(page.items[0]["Tags"], r#"["a","b"]"#, "{name}");
            assert_eq!(page.items[1]["Name"], "Bob", "{name}");
            assert_eq!(page.items[1]["Extra"], r#"{"x":[1,{"y":null}]}"#, "{name}");
            assert_eq!(page.items[2]["Name"], "Cyd", "{name}");
            assert_eq!(page.items[2]["Tags"], serde_json::Value::Null, "{name}");
        }
    }

    #[test]
    fn a_file_with_too_many_columns_is_refused_as_soon_as_it_shows() {
        let wide = |n: usize| (0..n).map(|i| format!("C{i}")).collect::<Vec<_>>();
        let limit =
            format!("more than {MAX_COLUMNS} columns (a source may have at most {MAX_COLUMNS})");
        // A header of 2,001 names, and one of 2,000 that is fine.
        let (_d, p, store) = setup("w.csv", &format!("{}\n", wide(MAX_COLUMNS + 1).join(",")));
        let e = file_err(import(&p, &store, &[], "C0", 0));
        assert_eq!(
            (e.kind, e.row, e.message.as_str()),
            (ImportErrorKind::Schema, None, limit.as_str())
        );
        let (_d, p, store) = setup("ok.csv", &format!("{}\n", wide(MAX_COLUMNS).join(",")));
        assert!(import(&p, &store, &[], "C0", 0).is_ok());
        // JSON keys spread over rows: the row that passes the limit is named,
        // even with a tolerance for malformed rows. Far more keys than the
        // limit in one object stop at it (no growth, no quadratic lookups).
        let object = |keys: &[String]| {
            let fields: Vec<String> = keys.iter().map(|k| format!("\"{k}\": 1")).collect();
            format!("{{\"Id\": 1, {}}}", fields.join(", "))
        };
        let keys = wide(MAX_COLUMNS * 50);
        let ndjson = format!("{}\n{}\n", object(&keys[..10]), object(&keys));
        let array = format!("[{}, {}]", object(&keys[..10]), object(&keys));
        for (name, text) in [("w.ndjson", ndjson), ("w.json", array)] {
            let (_d, p, store) = setup(name, &text);
            let e = file_err(import(&p, &store, &[], "Id", 5));
            assert_eq!(
                (e.kind, e.row, e.message.as_str()),
                (ImportErrorKind::Schema, Some(2), limit.as_str()),
                "{name}"
            );
        }
    }

    #[test]
    fn csv_types_are_inferred() {
        let (_d, p, store) = setup(
            "c.csv",
            "Id,Name,Age,Score,Vip,Joined,Zip\n1,Ann,34,1.5,true,2024-03-01,01234\n2,Bob,,2,false,2024-03-02T10:00:00+02:00,75001\n",
        );
        let r = import(&p, &store, &[], "Id", 0).unwrap();
        let types: Vec<ColumnType> = r.columns.iter().map(|c| c.1).collect();
        assert_eq!(
            types,
            [
                ColumnType::Integer,
                ColumnType::String,
                ColumnType::Integer,
                ColumnType::Decimal,
                ColumnType::Boolean,
                ColumnType::DateTime,
                ColumnType::String
            ]
        );
        let page = store.get_page("t", "T", &PageRequest::default()).unwrap();
        assert_eq!(page.items[1]["Age"], serde_json::Value::Null);
        assert_eq!(page.items[1]["Joined"], "2024-03-02T08:00:00Z");
        assert_eq!(page.items[0]["Vip"], true);
        assert_eq!(page.items[0]["Zip"], "01234");
    }

    #[test]
    fn bad_row_is_named_with_row_and_field_and_tolerance_skips_it() {
        let (_d, p, store) = setup("c.csv", "Id,Age\n1,34\n2,abc\n3,5,extra\n");
        let e = file_err(import(&p, &store, &[("Age", ColumnType::Integer)], "Id", 0));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: row 2, field 'Age': 'abc' is not an integer",
                p.display()
            )
        );
        assert_eq!(e.kind, ImportErrorKind::Malformed);
        let e = file_err(import(&p, &store, &[("Age", ColumnType::Integer)], "Id", 1));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: row 3: 3 fields where the header has 2 (more than 1 malformed rows)",
                p.display()
            )
        );
        let ok = import(&p, &store, &[("Age", ColumnType::Integer)], "Id", 2).unwrap();
        assert_eq!(ok.rows, 1);
        assert_eq!(ok.rejected.len(), 2);
    }

    #[test]
    fn a_duplicate_key_is_named_by_file_and_row_once_every_row_is_in() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        // Row 2 of a.csv is malformed and skipped; b.csv's row 3 repeats
        // a.csv's key 'k3' (the first repeat in the rows' order), row 4
        // repeats 'k1'.
        std::fs::write(&a, "Id,Age\nk1,1\nk2,x\nk3,3\n").unwrap();
        std::fs::write(&b, "Id,Age\nk4,4\nk5,5\nk3,6\nk1,7\n").unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        let types = BTreeMap::from([("Age".to_owned(), ColumnType::Integer)]);
        let files = [a.clone(), b.clone()];
        let spec = ImportSpec {
            tolerance: 1,
            ..ImportSpec::new(&files, &types, "Id")
        };
        // The import of `files` fails as malformed: its message.
        let failure =
            |files: &[PathBuf]| match super::import(&ImportSpec { files, ..spec }, &store, "T") {
                Err(ImportFailure::File(e)) if e.kind == ImportErrorKind::Malformed => {
                    e.to_string()
                }
                other => panic!("{other:?}"),
            };
        assert_eq!(
            failure(&files),
            format!(
                "{}: row 3: entity 'T', row 5: duplicate key 'k3' in field 'Id'",
                b.display()
            )
        );
        assert!(store.meta("T").is_err(), "nothing was stored");
        // The same within one file, found after its last row.
        let one = [a.clone()];
        std::fs::write(&a, "Id,Age\nk1,1\nk2,x\nk3,3\nk1,4\nk3,5\n").unwrap();
        assert_eq!(
            failure(&one),
            format!(
                "{}: row 4: entity 'T', row 3: duplicate key 'k1' in field 'Id'",
                a.display()
            )
        );
        // Keys in no order: the index is built after the rows, and the
        // first repeat is named the same way.
        let keys = super::super::key_index::scattered_keys(5000, 7);
        let mut text = String::from("Id,Age\n");
        for (i, k) in keys.iter().enumerate() {
            text.push_str(&format!("{k},{i}\n"));
        }
        text.push_str("late,x\n"); // row 5001, skipped
        text.push_str(&format!("{},1\n{},2\n", keys[4000], keys[17]));
        std::fs::write(&a, &text).unwrap();
        assert_eq!(
            failure(&one),
            format!(
                "{}: row 5002: entity 'T', row 5001: duplicate key '{}' in field 'Id'",
                a.display(),
                keys[4000]
            )
        );
        std::fs::write(&a, "Id,Age\nk1,1\nk2,x\nk3,3\n").unwrap();

        // Without the repeats the import holds, and the key is indexed.
        std::fs::write(&b, "Id,Age\nk4,4\nk5,5\n").unwrap();
        let report = super::import(&spec, &store, "T").unwrap();
        assert_eq!(report.rows, 4);
        let s = store.session();
        let plan: String = s
            .query_row(
                "EXPLAIN QUERY PLAN SELECT * FROM \"ent_T\" WHERE \"Id\" = 'k5'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("USING INDEX"), "{plan}");
        // The next import's index does not clash with this one's.
        drop(s);
        super::import(&spec, &store, "T").unwrap();
    }

    #[test]
    fn a_row_longer_than_the_bound_fails_the_file_in_every_format() {
        use super::super::row_bound::READ_AHEAD_BYTES;
        let over = "x".repeat((MAX_ROW_BYTES + 2 * READ_AHEAD_BYTES) as usize + 1);
        let under = "x".repeat(MAX_ROW_BYTES as usize - 64);
        let files = |long: &str| {
            [
                ("a.csv", format!("Id,Note\n1,a\n\n2,{long}\n3,c\n")),
                (
                    "a.ndjson",
                    format!(
                        "{{\"Id\":1,\"Note\":\"a\"}}\n\n{{\"Id\":2,\"Note\":\"{long}\"}}\n{{\"Id\":3}}\n"
                    ),
                ),
                (
                    "a.json",
                    format!(
                        "[{{\"Id\":1,\"Note\":\"a\"}},\n{{\"Id\":2,\"Note\":\"{long}\"}},{{\"Id\":3}}]"
                    ),
                ),
            ]
        };
        // Gzipped, the long row takes a few KiB of the file: the bound holds
        // the bytes it decodes to.
        let both = |long: &str| {
            files(long).into_iter().flat_map(|(name, text)| {
                [
                    (name.to_owned(), text.clone().into_bytes()),
                    (format!("{name}.gz"), gzipped(&[&text])),
                ]
            })
        };
        for (name, bytes) in both(&under) {
            let (_d, p, store) = setup_bytes(&name, &bytes);
            let report = import(&p, &store, &[], "Id", 0).unwrap();
            assert_eq!(report.rows, 3, "{name}");
        }
        for (name, bytes) in both(&over) {
            let (_d, p, store) = setup_bytes(&name, &bytes);
            let e = file_err(import(&p, &store, &[], "Id", 5));
            // NDJSON counts lines, so its long row is the third.
            let row = if name.starts_with("a.ndjson") { 3 } else { 2 };
            assert_eq!(
                e.to_string(),
                format!(
                    "{}: row {row}: longer than 8 MiB (a source row may take at most 8388608 bytes)",
                    p.display()
                ),
                "{name}"
            );
            assert_eq!(e.kind, ImportErrorKind::Malformed, "{name}");
        }
    }

    #[test]
    fn gzip_files_import_as_their_text_does_and_a_broken_one_is_named() {
        let mut csv = String::from("Id,Name,Score,Seen\n");
        let mut ndjson = String::new();
        for i in 0..3000 {
            csv.push_str(&format!(
                "{i},Name {i},{}.5,2024-01-0{}\n",
                i % 7,
                1 + i % 9
            ));
            ndjson.push_str(&format!(
                "{{\"Id\":{i},\"Name\":\"Name {i}\",\"Score\":{}.5}}\n",
                i % 7
            ));
        }
        let json = format!("[{}]", ndjson.trim_end().replace('\n', ","));
        for (name, text) in [("a.csv", &csv), ("a.ndjson", &ndjson), ("a.json", &json)] {
            let (_d, plain, store) = setup(name, text);
            import(&plain, &store, &[], "Id", 0).unwrap();
            let want = dump(&store, "T");
            // Two members (as `cat a.gz b.gz` makes), split inside a row.
            let (head, tail) = text.split_at(text.len() / 2);
            let (_g, packed, gz_store) =
                setup_bytes(&format!("{name}.gz"), &gzipped(&[head, tail]));
            let report = import(&packed, &gz_store, &[], "Id", 0).unwrap();
            assert_eq!(report.rows, 3000, "{name}");
            assert_same(&[want, dump(&gz_store, "T")], name);

            // Progress counts the file's own bytes, up to its size.
            let size = std::fs::metadata(&packed).unwrap().len();
            let seen = import_with_progress(&packed, &gz_store, "P");
            assert!(
                seen.iter()
                    .all(|&(done, total)| total == size && done <= size),
                "{seen:?}"
            );
            assert_eq!(seen.last().map(|s| s.0), Some(size), "{name}");
        }
        let mut broken = gzipped(&[&csv]);
        broken.truncate(broken.len() / 2);
        broken.extend_from_slice(&[0xff; 64]);
        let (_d, p, store) = setup_bytes("b.csv.gz", &broken);
        let e = file_err(import(&p, &store, &[], "Id", 0));
        // Named at the row where the stream broke.
        assert_eq!(e.kind, ImportErrorKind::Malformed);
        assert!(e.row.is_some_and(|r| r > 1 && r < 3000), "{e}");
        assert!(e.message.starts_with("not a valid gzip stream ("), "{e}");
        let (_d, p, store) = setup_bytes("plain.csv.gz", csv.as_bytes());
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(e.kind, ImportErrorKind::Malformed, "{e}");
        // An empty file is no gzip stream (as `gzip -d` says too).
        let (_d, p, store) = setup_bytes("empty.csv.gz", b"");
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ImportErrorKind::Malformed,
                "not a valid gzip stream (unexpected end of file)"
            )
        );
        assert_eq!(
            ImportFormat::from_path(Path::new("x.NDJSON.GZ")),
            Some(ImportFormat::Ndjson)
        );
        assert_eq!(ImportFormat::from_path(Path::new("x.gz")), None);
    }

    #[test]
    fn json_and_ndjson() {
        let (_d, p, store) = setup(
            "c.json",
            r#"[{"Id":"a","N":1,"B":true},{"Id":"b","N":2.5,"X":"y"}]"#,
        );
        let r = import(&p, &store, &[], "Id", 0).unwrap();
        assert_eq!(
            r.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["Id", "N", "B", "X"]
        );
        assert_eq!(r.columns[1].1, ColumnType::Decimal);
        let (_d2, p2, store2) = setup("c.ndjson", "{\"Id\":1}\n\n{\"Id\":2}\nnot json\n");
        let e = file_err(import(&p2, &store2, &[], "Id", 0));
        assert_eq!(e.row, Some(4));
        assert_eq!(import(&p2, &store2, &[], "Id", 1).unwrap().rows, 2);
        // Line ends (CRLF too) are not part of the line a position counts in.
        let (_d3, p3, store3) = setup("r.ndjson", "{\"Id\":1}\r\n{\"Id\":2\r\n");
        let e = file_err(import(&p3, &store3, &[], "Id", 0));
        assert_eq!(
            (e.row, e.message.as_str()),
            (
                Some(2),
                "not valid JSON: EOF while parsing an object at column 7"
            )
        );
    }

    #[test]
    fn json_strings_escaped_or_not_are_stored_alike_in_both_json_formats() {
        let rows = [
            r#"{"Id":"a","S":"plain","E":"q\"uote \u00e9","D":"2024-03-01","N":"42","O":{"k":[1,"x"]}}"#,
            r#"{"Id":"b","S":"two","E":"tab\there","D":"2024-03-02T09:30:00Z","N":"7","O":null}"#,
        ];
        let array = format!("[{}]", rows.join(",\n"));
        let lines = rows.join("\n");
        let mut seen = Vec::new();
        for (name, text) in [("t.json", array), ("t.ndjson", lines)] {
            let (_d, p, store) = setup(name, &text);
            let r = import(&p, &store, &[("N", ColumnType::Integer)], "Id", 0).unwrap();
            let types: Vec<_> = r.columns.iter().map(|(c, t)| (c.clone(), *t)).collect();
            let items = ["a", "b"].map(|id| store.get_item("T", id).unwrap());
            seen.push((types, items));
        }
        assert_eq!(seen[0], seen[1]);
        let (types, [a, b]) = &seen[0];
        assert_eq!(types[3], ("D".to_owned(), ColumnType::DateTime));
        let a = a.as_ref().unwrap();
        assert_eq!(a["S"], "plain");
        assert_eq!(a["E"], "q\"uote é");
        assert_eq!(a["N"], 42);
        assert_eq!(a["O"], r#"{"k":[1,"x"]}"#);
        let b = b.as_ref().unwrap();
        assert_eq!(b["E"], "tab\there");
        assert_eq!(b["N"], 7);
        assert!(b["O"].is_null());
    }

    #[test]
    fn headers_as_exports_write_them_name_columns_in_every_format() {
        let want = |store: &EntityDb| {
            let (columns, rows) = dump(store, "T");
            let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
            assert_eq!(names, ["ContactID", "FirstName", "EMail"]);
            assert_eq!(columns[1].1, ColumnType::String);
            assert_eq!(rows[1][1], Value::Text("Bob".into()));
        };
        let (_d, p, store) = setup(
            "c.csv",
            "Contact ID,First Name,E-mail\n1,Ann,a@x.com\n2,Bob,b@x.com\n",
        );
        import(
            &p,
            &store,
            &[("First Name", ColumnType::String)],
            "Contact ID",
            0,
        )
        .unwrap();
        want(&store);
        // JSON keys may spell a column differently from one object to the next.
        let objects = [
            r#"{"Contact ID": 1, "First Name": "Ann", "E-mail": "a@x.com"}"#,
            r#"{"e-mail": "b@x.com", "Contact ID": 2, "first name": "Bob"}"#,
        ];
        for (name, text) in [
            ("c.ndjson", objects.join("\n")),
            ("c.json", format!("[{}]", objects.join(","))),
        ] {
            let (_d, p, store) = setup(name, &text);
            import(&p, &store, &[], "ContactID", 0).unwrap();
            want(&store);
        }
        let (_d, p, store) = setup("c.json", r#"[{"Id": 1, "Email": "a", "email": "b"}]"#);
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ImportErrorKind::Schema,
                "columns 'Email' and 'email' differ only in case (column names ignore case)"
            )
        );
    }

    #[test]
    fn two_keys_of_one_object_naming_one_column_are_refused() {
        let plain = FileDialect::default();
        let flat = FileDialect {
            flatten: true,
            ..FileDialect::default()
        };
        for (objects, dialect, message) in [
            (
                [
                    r#"{"Id":1,"EMail":"a"}"#,
                    r#"{"Id":2,"E-mail":"b","EMail":"c"}"#,
                ],
                &plain,
                "keys 'E-mail' and 'EMail' both name the column 'EMail'",
            ),
            (
                [r#"{"Id":1}"#, r#"{"Id":2,"e-mail":"b","E-Mail":"c"}"#],
                &plain,
                "keys 'e-mail' and 'E-Mail' both name the column 'EMail'",
            ),
            (
                [
                    r#"{"Id":1}"#,
                    r#"{"Id":2,"Address":{"City":"x"},"AddressCity":"y"}"#,
                ],
                &flat,
                "keys 'Address.City' and 'AddressCity' both name the column 'AddressCity'",
            ),
        ] {
            for (name, text) in [
                ("c.ndjson", objects.join("\n")),
                ("c.json", format!("[{}]", objects.join(","))),
            ] {
                let (_d, p, store) = setup(name, &text);
                let e = file_err(import_as(p, &store, dialect));
                assert_eq!(
                    (e.kind, e.row, e.message.as_str()),
                    (ImportErrorKind::Schema, Some(2), message),
                    "{name}: {text}"
                );
            }
        }
        // The same key twice is a duplicate: its last value counts.
        let (_d, p, store) = setup("c.json", r#"[{"Id":1,"E-mail":"a","E-mail":"b"}]"#);
        import(&p, &store, &[], "Id", 0).unwrap();
        assert_eq!(dump(&store, "T").1[0][1], Value::Text("b".into()));
    }

    #[test]
    fn csv_fields_are_split_by_the_delimiter_given_or_the_extensions() {
        let semicolons = "Id;Name;Note\n1;Ann;\"a;b\"\n2;Bob;c\n";
        // Split by the delimiter given, or by the one Excel's first line
        // `sep=;` names (the header follows it).
        for (directive, delimiter) in [
            ("", Some(b';')),
            ("sep=;\r\n", None),
            ("SEP=;\n", Some(b';')),
        ] {
            let text = format!("{directive}{semicolons}");
            let (_d, p, store) = setup("c.csv", &text);
            let directed = FileDialect {
                delimiter,
                ..FileDialect::default()
            };
            import_as(p, &store, &directed).unwrap();
            let (columns, rows) = dump(&store, "T");
            assert_eq!(columns.len(), 3, "{directive:?}");
            assert_eq!(rows[0][2], Value::Text("a;b".into()), "{directive:?}");
            assert_eq!(rows[1][1], Value::Text("Bob".into()), "{directive:?}");
        }
        // Read with the default comma, the header is one column: named.
        let (_d, p, store) = setup("c.csv", semicolons);
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ImportErrorKind::Schema,
                "the header is one column, 'Id;Name;Note': if its fields are separated by ';', set delimiter = \";\" (`--delimiter` for `entities import`)"
            )
        );
        // A .tsv file is split by tabs, gzipped or not.
        for (name, bytes) in [
            ("t.tsv", b"Id\tName\n1\tAnn, Lee\n".to_vec()),
            ("t.tsv.gz", gzipped(&["Id\tName\n1\tAnn, Lee\n"])),
        ] {
            let (_d, p, store) = setup_bytes(name, &bytes);
            import(&p, &store, &[], "Id", 0).unwrap();
            assert_eq!(
                dump(&store, "T").1,
                [[Value::Integer(1), Value::Text("Ann, Lee".into())]]
            );
        }
    }

    #[test]
    fn delimiters_are_one_ascii_character_but_a_quote_or_line_break() {
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("\t"), Ok(b'\t'));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(
            parse_delimiter("\""),
            Err("'\"': a field separator cannot be a quote or a line break".into())
        );
        for bad in ["", ";;", "§"] {
            assert_eq!(
                parse_delimiter(bad),
                Err(format!(
                    "{}: expected one ASCII character, such as \";\" or \"\\t\" (or \"tab\")",
                    quoted(bad)
                )),
            );
        }
    }

    #[test]
    fn datetimes_are_stored_in_one_form_whatever_form_they_come_in() {
        let when = [
            "2024-03-01T09:30:00Z",
            " 2024-03-01T09:30:00Z ",
            "2024-03-01",
            "2024-03-01T11:30:00+02:00",
        ];
        let csv = format!(
            "Id,When\n{}\n5,\n",
            (1..)
                .zip(when)
                .map(|(i, w)| format!("{i},{w}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // A JSON string is taken as written: spaced, it is text.
        let objects: Vec<String> = (1..)
            .zip(when)
            .map(|(i, w)| format!(r#"{{"Id":{i},"When":"{}"}}"#, w.trim()))
            .chain([r#"{"Id":5,"When":null}"#.to_owned()])
            .collect();
        for (name, text) in [
            ("c.csv", csv),
            ("c.ndjson", objects.join("\n")),
            ("c.json", format!("[{}]", objects.join(","))),
        ] {
            let (_d, p, store) = setup(name, &text);
            import_as(p, &store, &FileDialect::default()).unwrap();
            let (columns, rows) = dump(&store, "T");
            assert_eq!(columns[1].1, ColumnType::DateTime, "{name}");
            let stored: Vec<&Value> = rows.iter().map(|r| &r[1]).collect();
            let canonical = Value::Text("2024-03-01T09:30:00Z".into());
            let midnight = Value::Text("2024-03-01T00:00:00Z".into());
            assert_eq!(
                stored,
                [&canonical, &canonical, &midnight, &canonical, &Value::Null],
                "{name}"
            );
        }
    }

    #[test]
    fn dates_in_the_datetime_format_are_inferred_as_dates() {
        let dayfirst = FileDialect {
            locale: Locale {
                dates: DateFormats::parse(&["%d/%m/%Y %H:%M", "%d/%m/%Y"]).unwrap(),
                decimal_comma: false,
                thousands: None,
            },
            ..FileDialect::default()
        };
        for (name, text) in [
            (
                "c.csv",
                "Id,Born,Code,Seen\n1,28/12/1990,12/05,28/12/2025 10:00\n2,2001-02-03,7,\n"
                    .to_owned(),
            ),
            (
                "c.ndjson",
                r#"{"Id":1,"Born":"28/12/1990","Code":"12/05","Seen":"28/12/2025 10:00"}
{"Id":2,"Born":"2001-02-03","Code":"7"}"#
                    .to_owned(),
            ),
        ] {
            let (_d, p, store) = setup(name, &text);
            import_as(p, &store, &dayfirst).unwrap();
            let (columns, rows) = dump(&store, "T");
            let types: Vec<ColumnType> = columns.iter().map(|c| c.1).collect();
            assert_eq!(
                types,
                [
                    ColumnType::Integer,
                    ColumnType::DateTime,
                    ColumnType::String,
                    ColumnType::DateTime
                ],
                "{name}"
            );
            assert_eq!(
                rows[0][1],
                Value::Text("1990-12-28T00:00:00Z".into()),
                "{name}: the second format"
            );
            assert_eq!(
                rows[0][3],
                Value::Text("2025-12-28T10:00:00Z".into()),
                "{name}: the first format"
            );
        }
    }

    #[test]
    fn a_json_array_parsed_in_place_reads_as_the_serde_path_across_chunks() {
        // Rows of every shape the in-place parse meets, spanning many read
        // chunks; `flatten` sends every row through serde_json instead.
        let shapes = [
            r#"{"id": ID, "name": "Ann", "n": 12, "x": 1.5, "ok": true}"#,
            r#"{"name":"Zoë \"Z\" Ünal","id":ID,"n":-7,"x":null,"ok":false}"#,
            r#"  {  "id" : ID , "x" : 2e3 , "name" : "\u00e9t\u00e9\n" }  "#,
            r#"{"id": ID, "name": "日本語テキスト", "n": 123456789012345678901234}"#,
            r#"{"id": ID, "nested": {"a": 1}, "name": "deep"}"#,
            r#"{"id": ID, "tags": ["a", "b"], "n": 0}"#,
            r#"{"id": ID}"#,
        ];
        let rows: Vec<String> = (0..6000)
            .map(|i| shapes[i % shapes.len()].replace("ID", &i.to_string()))
            .collect();
        let text = format!("[\n{}\n]\n", rows.join(",\n"));
        assert!(text.len() > 4 * 64 * 1024, "spans several chunks");
        let dumps = [false, true].map(|flatten| {
            let (_d, p, store) = setup("a.json", &text);
            let types = BTreeMap::new();
            let files = [p];
            let dialect = FileDialect {
                flatten,
                ..FileDialect::default()
            };
            let spec = ImportSpec {
                dialect: &dialect,
                ..ImportSpec::new(&files, &types, "id")
            };
            super::import(&spec, &store, "T").unwrap();
            dump(&store, "T")
        });
        // Flattening names nested columns apart; the rest must agree.
        let (mut fast, mut serde) = (dumps[0].clone(), dumps[1].clone());
        let shared: Vec<usize> = fast
            .0
            .iter()
            .enumerate()
            .filter(|(_, c)| ["id", "name", "n", "x", "ok"].contains(&c.0.as_str()))
            .map(|(i, _)| i)
            .collect();
        let pick = |d: &mut Dump| {
            let keep: Vec<usize> = shared
                .iter()
                .map(|&i| {
                    let name = &dumps[0].0[i].0;
                    d.0.iter().position(|c| &c.0 == name).unwrap()
                })
                .collect();
            d.0 = keep.iter().map(|&i| d.0[i].clone()).collect();
            for row in &mut d.1 {
                *row = keep.iter().map(|&i| row[i].clone()).collect();
            }
        };
        pick(&mut fast);
        pick(&mut serde);
        assert_eq!(fast.1.len(), 6000);
        assert_same(&[fast, serde], "in place against serde");
    }

    #[test]
    fn nested_objects_flatten_into_columns_named_by_their_path() {
        let objects = [
            r#"{"id": 1, "properties": {"email": "a@x.com", "first name": "Ann", "address": {"city": "Lyon"}}, "tags": ["a", "b"]}"#,
            r#"{"properties": {"first name": "Bob", "address": {"city": null, "zip": "69001"}}, "id": 2}"#,
        ];
        let deep = format!(
            r#"{{"id": 3, "n": {}1{}}}"#,
            r#"{"n": "#.repeat(MAX_FLATTEN_DEPTH + 1),
            "}".repeat(MAX_FLATTEN_DEPTH + 1)
        );
        for (name, text) in [
            (
                "c.ndjson",
                format!("{}\n{}\n{deep}", objects[0], objects[1]),
            ),
            ("c.json", format!("[{},{},{deep}]", objects[0], objects[1])),
        ] {
            let (_d, p, store) = setup(name, &text);
            let types = BTreeMap::new();
            let files = [p];
            let flat = FileDialect {
                flatten: true,
                ..FileDialect::default()
            };
            let spec = ImportSpec {
                dialect: &flat,
                ..ImportSpec::new(&files, &types, "id")
            };
            super::import(&spec, &store, "T").unwrap();
            let (columns, rows) = dump(&store, "T");
            let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
            let nested = format!("N{}", "N".repeat(MAX_FLATTEN_DEPTH));
            assert_eq!(
                names,
                [
                    "id",
                    "PropertiesEmail",
                    "PropertiesFirstName",
                    "PropertiesAddressCity",
                    "tags",
                    "PropertiesAddressZip",
                    &nested,
                ],
                "{name}"
            );
            let text = |s: &str| Value::Text(s.into());
            assert_eq!(
                rows[1],
                [
                    Value::Integer(2),
                    Value::Null,
                    text("Bob"),
                    Value::Null,
                    Value::Null,
                    text("69001"),
                    Value::Null
                ],
                "{name}"
            );
            assert_eq!(rows[0][4], text(r#"["a","b"]"#), "{name}: arrays stay JSON");
            assert_eq!(
                rows[2][6],
                text(r#"{"n":1}"#),
                "{name}: past the depth, JSON"
            );
            // Two passes (the second with the columns fixed) store the same.
            let inferred = super::infer(&spec).unwrap();
            import_inferred(&spec, inferred, &store, "Two").unwrap();
            assert_same(&[dump(&store, "T"), dump(&store, "Two")], name);
        }
    }

    #[test]
    fn schema_problems_and_missing_files_are_classified() {
        let (_d, p, store) = setup("c.csv", "Id,Name\n,Ann\n");
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ImportErrorKind::Malformed, "the key is empty")
        );
        std::fs::write(&p, "Id,名前\n1,Ann\n").unwrap();
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(e.kind, ImportErrorKind::Schema);
        assert!(e.message.contains("column 2 is named '名前'"), "{e}");
        std::fs::write(&p, "Id,Email,email\n1,a,b\n").unwrap();
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ImportErrorKind::Schema,
                "columns 'Email' and 'email' differ only in case (column names ignore case)"
            )
        );
        std::fs::write(&p, "Id,Name\n1,Ann\n").unwrap();
        let e = file_err(import(&p, &store, &[], "Key", 0));
        assert!(
            e.message.starts_with("key field 'Key' is not in the file"),
            "{e}"
        );
        let e = file_err(import(&p.with_file_name("nope.csv"), &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ImportErrorKind::NotFound, "file not found")
        );
        std::fs::write(&p, b"Id,Name\n1,\xff\xfe\n").unwrap();
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ImportErrorKind::Encoding, encoding::NOT_UTF8)
        );
    }

    #[test]
    fn files_in_other_encodings_read_by_their_mark_or_the_encoding_named() {
        let latin = FileDialect {
            encoding: Some(parse_encoding("windows-1252").unwrap()),
            ..FileDialect::default()
        };
        let import_latin = |p: PathBuf, store: &EntityDb| import_as(p, store, &latin);
        let want = [[Value::Integer(1), Value::Text("Zoé Lefèvre".into())]];
        for (name, bytes) in [
            ("c.csv", b"Id,Name\n1,Zo\xe9 Lef\xe8vre\n".to_vec()),
            (
                "c.ndjson",
                b"{\"Id\":1,\"Name\":\"Zo\xe9 Lef\xe8vre\"}\n".to_vec(),
            ),
            (
                "c.json",
                b"[{\"Id\":1,\"Name\":\"Zo\xe9 Lef\xe8vre\"}]".to_vec(),
            ),
        ] {
            let (_d, p, store) = setup_bytes(name, &bytes);
            let e = file_err(import(&p, &store, &[], "Id", 0));
            assert_eq!(e.kind, ImportErrorKind::Encoding, "{name}: {e}");
            import_latin(p, &store).unwrap();
            assert_eq!(dump(&store, "T").1, want, "{name}");
        }
        // Excel's "Unicode text": UTF-16 with its mark, tab-separated.
        let mut utf16 = vec![0xff, 0xfe];
        for unit in "Id\tName\r\n1\tZoé Lefèvre\r\n".encode_utf16() {
            utf16.extend(unit.to_le_bytes());
        }
        let (_d, p, store) = setup_bytes("c.tsv", &utf16);
        import(&p, &store, &[], "Id", 0).unwrap();
        assert_eq!(dump(&store, "T").1, want);
        // Nothing is replaced: a cut UTF-16 file fails, as does UTF-8 text
        // named windows-1252 (it would read as "ZoÃ©"), in every format.
        utf16.pop();
        let (_d, p, store) = setup_bytes("c.tsv", &utf16);
        let e = file_err(import(&p, &store, &[], "Id", 0));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ImportErrorKind::Encoding,
                "not valid UTF-16LE at byte 48 (0x0a): is the file in another encoding?"
            )
        );
        for (name, text) in [
            ("c.csv", "Id,Name\n1,Zoé\n"),
            ("c.ndjson", "{\"Id\":1,\"Name\":\"Zoé\"}\n"),
            ("c.json", "[{\"Id\":1,\"Name\":\"Zoé\"}]"),
        ] {
            let (_d, p, store) = setup(name, text);
            let e = file_err(import_latin(p, &store));
            assert_eq!(e.kind, ImportErrorKind::Encoding, "{name}: {e}");
            assert!(
                e.message.starts_with(
                    "the file is UTF-8, not windows-1252 (its first non-ASCII text, 'é' at byte"
                ),
                "{name}: {e}"
            );
        }
    }
}
