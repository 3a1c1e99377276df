//! The workspace as validated: what the engine runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::config::Watch;
use crate::insights::normalize::Normalizer;
use crate::insights::similarity::Precision;
use crate::odata::{ColumnType, Expr};
use crate::store::ImportFormat;

/// A validated workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Interval of full refreshes under `triggerfish run`.
    pub schedule: Option<Duration>,
    /// Retries of a transient source failure.
    pub retries: u32,
    /// First wait between retries; it doubles each time.
    pub retry_backoff: Duration,
    pub sources: Vec<SourceSpec>,
    pub unification: Unification,
    pub segments: Vec<SegmentSpec>,
    pub measures: Vec<MeasureSpec>,
    /// Profile fields, in first-mapped order (`CustomerId` not included).
    pub profile_fields: Vec<String>,
}

/// A validated data source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub entity: String,
    /// Where the rows come from: files (described by `format`, `path`,
    /// `root` and `is_glob`) or a PostgreSQL table or query.
    pub kind: SourceKind,
    /// Files only (`None` for postgres).
    pub format: Option<ImportFormat>,
    /// Files: how they are written beyond their format (`delimiter`,
    /// `encoding`, `datetime_format`, `decimal_separator`,
    /// `thousands_separator`, `flatten`).
    pub dialect: crate::store::FileDialect,
    /// Absolute path, or glob pattern when [`SourceSpec::is_glob`]. Files
    /// only (empty for postgres).
    pub path: PathBuf,
    /// The root folder the path lies in; files are opened inside it, and a
    /// symlink leaving it is refused. Files only (the workspace folder for
    /// postgres).
    pub root: PathBuf,
    pub is_glob: bool,
    pub key: String,
    pub types: BTreeMap<String, ColumnType>,
    pub tolerance: usize,
    pub schedule: Option<Duration>,
    pub updated_at: Option<String>,
    /// (profile field, source column), sorted by field.
    pub map: Vec<(String, String)>,
    /// (profile field, template) for derived fields, sorted by field.
    pub derived: Vec<(String, crate::insights::template::Template)>,
}

/// What kind of source a [`SourceSpec`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A file or a glob (`path`).
    Files,
    /// A PostgreSQL table or query.
    Postgres(PostgresSpec),
}

/// A validated postgres source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSpec {
    /// Where the connection string is kept.
    pub connection: ConnectionFrom,
    pub relation: Relation,
    /// The certificate authorities to verify the server with (`ssl_root_cert`).
    pub ssl_root_cert: Option<PathBuf>,
    /// A client certificate and its key to log in with (`ssl_cert`, `ssl_key`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// With `updated_at`, how often the table is read in full even when
    /// unchanged or readable by `updated_at` (`full_read_every`); `None`:
    /// never.
    pub full_read_every: Option<Duration>,
    /// The column that marks a row deleted (`deleted`): true, or not null
    /// when it is not a boolean. Such rows are not imported, and an
    /// incremental read deletes them from the store.
    pub deleted: Option<String>,
}

/// How often a postgres source with `updated_at` is read in full by default:
/// it catches rows changed without a newer `updated_at` within a day.
pub const DEFAULT_FULL_READ_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Where a postgres source's connection string is kept; it is read at
/// each refresh, never at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionFrom {
    /// An environment variable (`connection_env`).
    Env(String),
    /// A file (`connection_file`), such as a mounted secret.
    File(PathBuf),
}

/// What a postgres source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table (or view), taken as written: each part is quoted, so the
    /// names are case-sensitive.
    Table {
        schema: Option<String>,
        name: String,
    },
    /// A `SELECT` (trailing `;` and white space removed).
    Query(String),
}

impl std::fmt::Display for Relation {
    /// `table public.contacts` or `query`, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Relation::Table {
                schema: Some(schema),
                name,
            } => write!(f, "table {schema}.{name}"),
            Relation::Table { schema: None, name } => write!(f, "table {name}"),
            Relation::Query(_) => f.write_str("query"),
        }
    }
}

/// Environment variable names a `connection_env` may hold: letters,
/// digits and `_`, not starting with a digit.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SourceSpec {
    /// What an unchanged source was judged by, for the stage's detail.
    pub fn unchanged_by(&self) -> &'static str {
        match self.kind {
            SourceKind::Files => "size, time and content hash",
            SourceKind::Postgres(_) => "row count, greatest updated_at and keys",
        }
    }

    /// Every column the map and the derived fields read.
    pub fn mapped_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self.map.iter().map(|(_, c)| c.clone()).collect();
        for (_, t) in &self.derived {
            out.extend(t.columns().into_iter().map(str::to_owned));
        }
        out.sort();
        out.dedup();
        out
    }

    /// The profile fields this source fills, mapped or derived.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.map
            .iter()
            .map(|(f, _)| f.as_str())
            .chain(self.derived.iter().map(|(f, _)| f.as_str()))
    }
}

/// How one field's winning value is chosen when records merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum MergePolicy {
    /// The first non-empty value by source priority.
    Priority,
    /// The non-empty value of the most recently updated record.
    MostRecent,
    /// The most frequent non-empty value (ties by priority).
    MostFrequent,
}

impl MergePolicy {
    pub(super) fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// A validated match rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Indices into [`Workspace::profile_fields`].
    pub fields: Vec<usize>,
    /// How each of `fields` matches (same order).
    pub precision: Vec<Precision>,
    /// Fields whose values must not conflict (indices, as `fields`).
    pub guards: Vec<usize>,
}

impl Rule {
    /// The fields compared exactly: together they are the block.
    pub fn exact_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields
            .iter()
            .zip(&self.precision)
            .filter(|(_, p)| **p == Precision::Exact)
            .map(|(f, _)| *f)
    }

    /// The fields compared by similarity, with their thresholds.
    pub fn similar_fields(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.fields
            .iter()
            .zip(&self.precision)
            .filter_map(|(f, p)| match p {
                Precision::Similar(t) => Some((*f, *t)),
                Precision::Exact => None,
            })
    }

    /// True when pairs are compared one by one (fuzzy fields or guards),
    /// not just grouped by equal keys.
    pub fn compares_pairs(&self) -> bool {
        !self.guards.is_empty() || self.precision.iter().any(|p| *p != Precision::Exact)
    }
}

/// Validated unification settings.
#[derive(Debug, Clone)]
pub struct Unification {
    pub rules: Vec<Rule>,
    /// Normalisers per profile field (same order as the profile fields).
    pub normalizers: Vec<Vec<Normalizer>>,
    /// Merge policy per profile field (same order).
    pub merge: Vec<MergePolicy>,
    /// Source indices, highest priority first.
    pub priority: Vec<usize>,
}

/// A validated threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub value: f64,
    pub watch: Watch,
}

/// A validated segment.
#[derive(Debug, Clone)]
pub struct SegmentSpec {
    pub name: String,
    pub filter_text: String,
    pub filter: Expr,
    pub thresholds: Vec<Threshold>,
}

/// Aggregates of a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Aggregate {
    Count,
    DistinctCount,
    Sum,
    #[strum(to_string = "average", serialize = "avg")]
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub(super) const NAMES: &'static str = "count, distinct-count, sum, average, min, max";

    pub(super) fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A validated measure.
#[derive(Debug, Clone)]
pub struct MeasureSpec {
    pub name: String,
    pub aggregate: Aggregate,
    pub entity: String,
    pub field: Option<String>,
    /// The filter text and its parse.
    pub filter: Option<(String, Expr)>,
    pub dimension: Option<String>,
    pub thresholds: Vec<Threshold>,
}

/// Parse "90s", "15m", "2h", "500ms" (any `humantime` duration) or a bare
/// number of seconds; zero is not an interval.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(s.parse().ok()?)
    } else {
        humantime::parse_duration(s).ok()?
    };
    (!d.is_zero()).then_some(d)
}
