//! The `[insights]` section as written: what serde reads, with spans for
//! errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The `[insights]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightsSection {
    /// A separate file holding the workspace (the keys below, at its top level).
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    /// Interval of full refreshes under `triggerfish run`, e.g. "15m".
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Retries of a transient source failure (default 2).
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// First wait between retries in ms, doubling (default 500).
    #[serde(default)]
    pub retry_backoff_ms: Option<Spanned<u64>>,
    /// Folders sources may read from besides the workspace's own (the folder
    /// of the file that holds `[insights]`).
    #[serde(default)]
    pub roots: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub unification: Option<UnificationConfig>,
    #[serde(default)]
    pub segments: Vec<SegmentConfig>,
    #[serde(default)]
    pub measures: Vec<MeasureConfig>,
}

/// `[[insights.sources]]`: one data source, a file or glob (the default) or
/// a PostgreSQL table or query (`kind = "postgres"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: Spanned<String>,
    /// `file` (default) or `postgres`.
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    /// Entity the rows are stored as (default: the name in PascalCase).
    #[serde(default)]
    pub entity: Option<Spanned<String>>,
    /// `csv`, `json` or `ndjson` (default: from the extension). Files only.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// CSV: the field separator, one character or `tab` (default: `,`, or a
    /// tab for `.tsv`). Files only.
    #[serde(default)]
    pub delimiter: Option<Spanned<String>>,
    /// The files' encoding when they have no byte-order mark (default:
    /// UTF-8). Files only.
    #[serde(default)]
    pub encoding: Option<Spanned<String>>,
    /// How datetime columns are written when not in ISO 8601, in strftime's
    /// notation (`%d/%m/%Y %H:%M`), or a list tried in turn. Files only.
    #[serde(default)]
    pub datetime_format: Option<Spanned<OneOrMany>>,
    /// `.` (default) or `,`: how decimal numbers are written. Files only.
    #[serde(default)]
    pub decimal_separator: Option<Spanned<String>>,
    /// What numbers group their digits by three with (`,` in `1,234.50`,
    /// `.` in `1.234,50`, a space, `'`). Files only.
    #[serde(default)]
    pub thousands_separator: Option<Spanned<String>>,
    /// JSON: the fields of nested objects are columns of their own, named
    /// by their path. JSON and NDJSON files only.
    #[serde(default)]
    pub flatten: Option<Spanned<bool>>,
    /// File path or glob, relative to the configuration file. Required for
    /// files, refused for postgres (checked in validation, so that the error
    /// names the file, line and key).
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Postgres: the name of the environment variable holding the
    /// connection string (never the string itself).
    #[serde(default)]
    pub connection_env: Option<Spanned<String>>,
    /// Postgres: a file holding the connection string instead (a mounted
    /// secret), relative to the configuration file.
    #[serde(default)]
    pub connection_file: Option<Spanned<String>>,
    /// Postgres: the table read, `name` or `schema.name`.
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    /// Postgres: a `SELECT` read instead of a table.
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// Postgres: a PEM file of the certificate authorities the server's
    /// certificate must chain to, relative to the configuration file.
    #[serde(default)]
    pub ssl_root_cert: Option<Spanned<String>>,
    /// Postgres: a PEM certificate to log in with, and its key (`ssl_key`),
    /// relative to the configuration file.
    #[serde(default)]
    pub ssl_cert: Option<Spanned<String>>,
    /// Postgres: the PEM private key of `ssl_cert`.
    #[serde(default)]
    pub ssl_key: Option<Spanned<String>>,
    /// Postgres with `updated_at`: how often the table is read in full all
    /// the same, changed or not (an interval, or "never").
    #[serde(default)]
    pub full_read_every: Option<Spanned<String>>,
    /// Postgres: the column that marks a row deleted (soft deletion).
    #[serde(default)]
    pub deleted: Option<Spanned<String>>,
    /// Primary-key column (required; checked in validation).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// Column types; other columns are inferred.
    #[serde(default)]
    pub types: BTreeMap<String, Spanned<String>>,
    /// Malformed rows skipped before the source fails (default 0).
    #[serde(default)]
    pub tolerance: Option<usize>,
    /// Refresh interval of this source under `triggerfish run`, e.g. "5m".
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Column telling when a row was last updated (for `most-recent` merges;
    /// a postgres source also skips an unchanged table by it).
    #[serde(default)]
    pub updated_at: Option<Spanned<String>>,
    /// Profile field = source column.
    #[serde(default)]
    pub map: BTreeMap<String, Spanned<String>>,
}

/// `[insights.unification]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnificationConfig {
    /// Match rules, in order; records matching by any rule are one customer.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Normalisers per profile field (default chosen by the field's name).
    #[serde(default)]
    pub normalize: BTreeMap<String, Spanned<Vec<String>>>,
    /// Merge policy per profile field, and `default`.
    #[serde(default)]
    pub merge: BTreeMap<String, Spanned<String>>,
    /// Source names by priority, highest first (default: declaration order).
    #[serde(default)]
    pub priority: Vec<Spanned<String>>,
}

/// `[[insights.unification.rules]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub fields: Spanned<Vec<String>>,
    /// Per field: `exact` (the default), `high`, `medium`, `low` or a
    /// similarity threshold in (0, 1].
    #[serde(default)]
    pub precision: Option<Spanned<BTreeMap<String, PrecisionConfig>>>,
    /// Fields that must not conflict: a pair whose values of one both exist
    /// and differ does not match by this rule.
    #[serde(default)]
    pub guards: Option<Spanned<Vec<String>>>,
}

/// One text or a list of them, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// Every text, in order.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Self::One(one) => vec![one.as_str()],
            Self::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// A precision as written: a level name or a threshold.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PrecisionConfig {
    Level(String),
    Threshold(f64),
}

/// A threshold as written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    pub value: f64,
    #[serde(default)]
    pub direction: Watch,
}

/// Which crossings of a threshold fire.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Watch {
    /// Rising to or above the value.
    #[default]
    Up,
    /// Falling below the value.
    Down,
    /// Either.
    Both,
}

/// `[[insights.segments]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    pub name: Spanned<String>,
    /// A `$filter` over `Customer` fields.
    pub filter: Spanned<String>,
    #[serde(default)]
    pub thresholds: Option<Spanned<Vec<ThresholdConfig>>>,
}

/// `[[insights.measures]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureConfig {
    pub name: Spanned<String>,
    /// `count`, `distinct-count`, `sum`, `average`, `min`, `max`.
    pub aggregate: Spanned<String>,
    /// Entity aggregated: `Customer` (default) or a source's entity.
    #[serde(default)]
    pub entity: Option<Spanned<String>>,
    /// Field aggregated (not needed for `count`).
    #[serde(default)]
    pub field: Option<Spanned<String>>,
    /// Optional `$filter` condition.
    #[serde(default)]
    pub filter: Option<Spanned<String>>,
    /// Optional dimension: one value per distinct value; never triggers.
    #[serde(default)]
    pub dimension: Option<Spanned<String>>,
    #[serde(default)]
    pub thresholds: Option<Spanned<Vec<ThresholdConfig>>>,
}
