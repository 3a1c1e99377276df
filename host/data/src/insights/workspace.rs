//! `[insights]`: data sources, unification, segments, measures and schedules,
//! as written ([`InsightsSection`]) and as validated ([`Workspace`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::normalize::Normalizer;
use super::similarity::Precision;
use crate::odata::{parse_filter, ColumnType, Expr};
use crate::store::{valid_identifier, ImportFormat};

mod sources;
mod unification;

use sources::source;
use unification::unification;

/// Entities the engine writes; a source may not take these names.
pub const RESERVED_ENTITIES: [&str; 6] = [
    "Customer",
    "CustomerSourceLink",
    "Segment",
    "SegmentMember",
    "Measure",
    "MeasureValue",
];

/// The key of the `Customer` entity.
pub const CUSTOMER_ID: &str = "CustomerId";

/// Retries of a transient source failure when none are configured.
pub const DEFAULT_RETRIES: u32 = 2;
/// Most retries of a transient source failure a workspace may ask for.
pub const MAX_RETRIES: u32 = 20;
/// Longest first wait between retries, in ms (waits never exceed a minute).
pub const MAX_RETRY_BACKOFF_MS: u64 = 60_000;
/// First wait between retries when none is configured; it doubles each time.
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 500;

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
    pub derived: Vec<(String, super::template::Template)>,
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
    fn parse(s: &str) -> Option<Self> {
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
    const NAMES: &'static str = "count, distinct-count, sum, average, min, max";

    fn parse(s: &str) -> Option<Self> {
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

/// Workspace names (sources, segments, measures) and plugin, channel and
/// group names: letters, digits, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A workspace value that is not valid, located by the byte span of the value
/// in its TOML text; the file loader turns the span into a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct WorkspaceError {
    pub span: std::ops::Range<usize>,
    pub key: String,
    pub message: String,
}

/// Builds [`WorkspaceError`]s.
struct Validator;

impl Validator {
    fn invalid(&self, span: std::ops::Range<usize>, key: &str, message: &str) -> WorkspaceError {
        WorkspaceError {
            span,
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// Parse the text of a workspace file (the keys of `[insights]` at its top
/// level) and validate it against `base`. Errors are `file:line: …` texts
/// naming `path`.
pub fn parse_workspace_file(path: &Path, text: &str) -> Result<Workspace, String> {
    let section: InsightsSection = toml::from_str(text)
        .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    section
        .reject_nested_file()
        .and_then(|()| section.validate(base))
        .map_err(|e| format!("{}:{}: {e}", path.display(), line_of(text, e.span.start)))
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// `crm-contacts` -> `CrmContacts`.
pub fn pascal_case(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

impl InsightsSection {
    /// The workspace file this section names (`[insights] file = …`), if any;
    /// an error when other keys stand beside `file`.
    pub fn workspace_file(&self) -> Result<Option<&Path>, WorkspaceError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let others = self.schedule.is_some()
            || !self.roots.is_empty()
            || self.retries.is_some()
            || self.retry_backoff_ms.is_some()
            || !self.sources.is_empty()
            || self.unification.is_some()
            || !self.segments.is_empty()
            || !self.measures.is_empty();
        if others {
            return Err(Validator.invalid(
                file.span(),
                "insights.file",
                "with `file`, the workspace lives in that file: move the other [insights] keys there",
            ));
        }
        Ok(Some(file.get_ref()))
    }

    /// For a section read from a workspace file: it may not name another.
    pub fn reject_nested_file(&self) -> Result<(), WorkspaceError> {
        match &self.file {
            Some(nested) => Err(Validator.invalid(
                nested.span(),
                "file",
                "a workspace file cannot name another",
            )),
            None => Ok(()),
        }
    }

    /// Validate into a [`Workspace`]; relative paths resolve from `base`.
    /// Errors carry the byte span of the value in the TOML text.
    pub fn validate(self, base: &Path) -> Result<Workspace, WorkspaceError> {
        let v = &Validator;
        let mut roots = vec![lexical(base)];
        roots.extend(self.roots.iter().map(|r| lexical(&base.join(r.get_ref()))));
        let schedule = interval(v, self.schedule.as_ref(), "insights.schedule")?;
        let mut sources: Vec<SourceSpec> = Vec::new();
        let mut profile_fields: Vec<String> = Vec::new();
        for (i, s) in self.sources.into_iter().enumerate() {
            let spec = source(v, base, &roots, i, s, &sources)?;
            for field in spec.fields() {
                if !profile_fields.iter().any(|f| f == field) {
                    profile_fields.push(field.to_owned());
                }
            }
            sources.push(spec);
        }
        let unification = unification(
            v,
            self.unification.unwrap_or_default(),
            &sources,
            &profile_fields,
        )?;
        let mut customer_fields = vec![CUSTOMER_ID.to_owned()];
        customer_fields.extend(profile_fields.iter().cloned());

        let mut segments: Vec<SegmentSpec> = Vec::new();
        for (i, s) in self.segments.into_iter().enumerate() {
            let key = |k: &str| format!("insights.segments[{i}].{k}");
            let name = named(v, &s.name, &key("name"))?;
            if segments.iter().any(|o| o.name == name) {
                return Err(v.invalid(s.name.span(), &key("name"), "duplicate segment name"));
            }
            let filter = filter(v, &s.filter, &key("filter"), Some(&customer_fields))?;
            let thresholds = thresholds(v, s.thresholds.as_ref(), &key("thresholds"), true)?;
            segments.push(SegmentSpec {
                name,
                filter_text: s.filter.get_ref().clone(),
                filter,
                thresholds,
            });
        }

        let mut measures: Vec<MeasureSpec> = Vec::new();
        for (i, m) in self.measures.into_iter().enumerate() {
            let key = |k: &str| format!("insights.measures[{i}].{k}");
            let name = named(v, &m.name, &key("name"))?;
            if measures.iter().any(|o| o.name == name) {
                return Err(v.invalid(m.name.span(), &key("name"), "duplicate measure name"));
            }
            let aggregate = Aggregate::parse(m.aggregate.get_ref()).ok_or_else(|| {
                v.invalid(
                    m.aggregate.span(),
                    &key("aggregate"),
                    &format!("expected one of {}", Aggregate::NAMES),
                )
            })?;
            let entity = match &m.entity {
                None => "Customer".to_owned(),
                Some(e) => {
                    let known = e.get_ref() == "Customer"
                        || sources.iter().any(|s| &s.entity == e.get_ref());
                    if !known {
                        let mut names = vec!["Customer".to_owned()];
                        names.extend(sources.iter().map(|s| s.entity.clone()));
                        return Err(v.invalid(
                            e.span(),
                            &key("entity"),
                            &format!(
                                "unknown entity '{}' (expected one of: {})",
                                e.get_ref(),
                                names.join(", ")
                            ),
                        ));
                    }
                    e.get_ref().clone()
                }
            };
            // Customer's fields are known now; a source's only after import.
            let known = (entity == "Customer").then_some(&customer_fields);
            let field = match (&m.field, aggregate) {
                (None, Aggregate::Count) => None,
                (None, _) => {
                    return Err(v.invalid(
                        m.aggregate.span(),
                        &key("field"),
                        &format!("aggregate '{}' needs a field", aggregate.as_str()),
                    ))
                }
                (Some(f), _) => Some(field_of(v, f, &key("field"), known)?),
            };
            let dimension = m
                .dimension
                .as_ref()
                .map(|d| field_of(v, d, &key("dimension"), known))
                .transpose()?;
            let filter = m
                .filter
                .as_ref()
                .map(|f| Ok((f.get_ref().clone(), filter(v, f, &key("filter"), known)?)))
                .transpose()?;
            let thresholds = thresholds(v, m.thresholds.as_ref(), &key("thresholds"), false)?;
            if let (Some(_), Some(t), false) = (&dimension, &m.thresholds, thresholds.is_empty()) {
                return Err(v.invalid(
                    t.span(),
                    &key("thresholds"),
                    "a measure with a dimension has no single value, so it cannot have thresholds",
                ));
            }
            measures.push(MeasureSpec {
                name,
                aggregate,
                entity,
                field,
                filter,
                dimension,
                thresholds,
            });
        }

        Ok(Workspace {
            schedule,
            retries: bounded(v, self.retries.as_ref(), "insights.retries", 0, MAX_RETRIES)?
                .unwrap_or(DEFAULT_RETRIES),
            retry_backoff: Duration::from_millis(
                bounded(
                    v,
                    self.retry_backoff_ms.as_ref(),
                    "insights.retry_backoff_ms",
                    1,
                    MAX_RETRY_BACKOFF_MS,
                )?
                .unwrap_or(DEFAULT_RETRY_BACKOFF_MS),
            ),
            sources,
            unification,
            segments,
            measures,
            profile_fields,
        })
    }
}

/// A number within `min..=max`, or an error naming the bounds.
fn bounded<T: Copy + PartialOrd + std::fmt::Display>(
    v: &Validator,
    n: Option<&Spanned<T>>,
    key: &str,
    min: T,
    max: T,
) -> Result<Option<T>, WorkspaceError> {
    n.map(|n| {
        let value = *n.get_ref();
        if value < min || value > max {
            Err(v.invalid(n.span(), key, &format!("expected {min} to {max}")))
        } else {
            Ok(value)
        }
    })
    .transpose()
}

fn interval(
    v: &Validator,
    s: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<Duration>, WorkspaceError> {
    s.map(|s| {
        parse_interval(s.get_ref()).ok_or_else(|| {
            v.invalid(
                s.span(),
                key,
                "expected an interval such as \"90s\", \"15m\", \"2h\" or \"500ms\"",
            )
        })
    })
    .transpose()
}

fn named(v: &Validator, s: &Spanned<String>, key: &str) -> Result<String, WorkspaceError> {
    if valid_name(s.get_ref()) {
        Ok(s.get_ref().clone())
    } else {
        Err(v.invalid(
            s.span(),
            key,
            "expected a name of letters, digits, '-' or '_'",
        ))
    }
}

fn field_of(
    v: &Validator,
    s: &Spanned<String>,
    key: &str,
    known: Option<&Vec<String>>,
) -> Result<String, WorkspaceError> {
    let f = s.get_ref();
    if !valid_identifier(f) {
        return Err(v.invalid(s.span(), key, &format!("'{f}' is not a field name")));
    }
    if let Some(known) = known {
        if !known.contains(f) {
            return Err(v.invalid(
                s.span(),
                key,
                &format!(
                    "unknown field '{f}' (Customer fields: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(f.clone())
}

fn filter(
    v: &Validator,
    s: &Spanned<String>,
    key: &str,
    known: Option<&Vec<String>>,
) -> Result<Expr, WorkspaceError> {
    let expr = parse_filter(s.get_ref()).map_err(|e| v.invalid(s.span(), key, &e.to_string()))?;
    if let Some(known) = known {
        for f in expr.fields() {
            if !known.contains(&f.name) {
                return Err(v.invalid(
                    s.span(),
                    key,
                    &format!(
                        "$filter at {}: unknown field '{}' (Customer fields: {})",
                        f.pos,
                        f.name,
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(expr)
}

fn thresholds(
    v: &Validator,
    t: Option<&Spanned<Vec<ThresholdConfig>>>,
    key: &str,
    whole: bool,
) -> Result<Vec<Threshold>, WorkspaceError> {
    let mut out = Vec::new();
    let Some(t) = t else {
        return Ok(out);
    };
    for (i, c) in t.get_ref().iter().enumerate() {
        let bad = !c.value.is_finite() || (whole && (c.value < 0.0 || c.value.fract() != 0.0));
        if bad {
            let what = if whole {
                "a segment threshold is a member count: expected a whole number >= 0"
            } else {
                "expected a finite number"
            };
            return Err(v.invalid(t.span(), &format!("{key}[{i}].value"), what));
        }
        out.push(Threshold {
            value: c.value,
            watch: c.direction,
        });
    }
    Ok(out)
}

/// `path` with `.` and `..` resolved lexically (no file system access); the
/// current folder is the empty path, a prefix of every relative path.
pub fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            // `..` cancels a folder name; at the start of a relative path
            // (or after another `..`) it stays, and above `/` it is `/`.
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod lexical_tests {
    use super::lexical;
    use std::path::Path;

    #[test]
    fn lexical_keeps_leading_parents_and_never_empties() {
        for (path, want) in [
            ("", ""),
            (".", ""),
            ("./a/../b", "b"),
            ("a/..", ""),
            ("../data", "../data"),
            ("../../x/../y", "../../y"),
            ("/a/../../b", "/b"),
        ] {
            assert_eq!(lexical(Path::new(path)), Path::new(want), "{path}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[insights]` of a triggerfish.toml at /w, errors located as the file
    /// loader locates them.
    fn parse(text: &str) -> Result<Workspace, String> {
        #[derive(Deserialize)]
        struct File {
            insights: InsightsSection,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.insights
            .validate(Path::new("/w"))
            .map_err(|e| format!("/w/triggerfish.toml:{}: {e}", line_of(text, e.span.start)))
    }

    const BASE: &str = r#"
[[insights.sources]]
name = "crm-contacts"
path = "data/crm.csv"
key = "Id"
[insights.sources.map]
Email = "Mail"
LastName = "Name"
"#;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_interval("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("soon"), None);
    }

    #[test]
    fn names() {
        assert_eq!(pascal_case("crm-contacts"), "CrmContacts");
        assert_eq!(pascal_case("web_shop orders"), "WebShopOrders");
    }

    #[test]
    fn a_source_resolves_with_defaults() {
        let w = parse(BASE).unwrap();
        let s = &w.sources[0];
        assert_eq!(s.entity, "CrmContacts");
        assert_eq!(s.path, Path::new("/w/data/crm.csv"));
        assert!(!s.is_glob);
        assert_eq!(w.profile_fields, ["Email", "LastName"]);
        assert_eq!(w.retries, DEFAULT_RETRIES);
        assert_eq!(w.unification.priority, [0]);
        assert_eq!(w.unification.normalizers[0], vec![Normalizer::Email]);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[[insights.segments]]\nname = \"s\"\nfilter = \"Age gt 3\"\n",
                "/w/triggerfish.toml:11: key `insights.segments[0].filter`: $filter at 0: unknown field 'Age' (Customer fields: CustomerId, Email, LastName)",
            ),
            (
                "[[insights.segments]]\nname = \"s\"\nfilter = \"Email eq\"\n",
                "/w/triggerfish.toml:11: key `insights.segments[0].filter`: $filter at 8: expected a value but found end of input",
            ),
            (
                "[[insights.segments]]\nname = \"s\"\nfilter = \"Email ne null\"\nthresholds = [{ value = 2.5 }]\n",
                "/w/triggerfish.toml:12: key `insights.segments[0].thresholds[0].value`: a segment threshold is a member count: expected a whole number >= 0",
            ),
            (
                "[[insights.measures]]\nname = \"m\"\naggregate = \"median\"\n",
                "/w/triggerfish.toml:11: key `insights.measures[0].aggregate`: expected one of count, distinct-count, sum, average, min, max",
            ),
            (
                "[[insights.measures]]\nname = \"m\"\naggregate = \"sum\"\n",
                "/w/triggerfish.toml:11: key `insights.measures[0].field`: aggregate 'sum' needs a field",
            ),
            (
                "[[insights.measures]]\nname = \"m\"\naggregate = \"count\"\nentity = \"Orders\"\n",
                "/w/triggerfish.toml:12: key `insights.measures[0].entity`: unknown entity 'Orders' (expected one of: Customer, CrmContacts)",
            ),
            (
                "[insights.unification]\npriority = [\"shop\"]\n",
                "/w/triggerfish.toml:10: key `insights.unification.priority`: unknown source 'shop'",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"Email\", \"LastName\"]\nprecision = { LastName = \"approximate\" }\n",
                "/w/triggerfish.toml:11: key `insights.unification.rules[0].precision`: 'LastName': expected exact, high, medium, low or a similarity above 0 and at most 1",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"Email\", \"LastName\"]\nprecision = { LastName = 1.5 }\n",
                "/w/triggerfish.toml:11: key `insights.unification.rules[0].precision`: 'LastName': expected exact, high, medium, low or a similarity above 0 and at most 1",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"LastName\"]\nprecision = { Email = \"high\" }\n",
                "/w/triggerfish.toml:11: key `insights.unification.rules[0].precision`: 'Email' is not one of the rule's fields (LastName)",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"LastName\"]\nprecision = { LastName = \"high\" }\n",
                "/w/triggerfish.toml:11: key `insights.unification.rules[0].precision`: at least one of the rule's fields must be exact: records are compared only within a block of equal exact fields",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"LastName\"]\nguards = [\"Email\", \"Phone\"]\n",
                "/w/triggerfish.toml:11: key `insights.unification.rules[0].guards`: 'Phone' is not a profile field (mapped fields: Email, LastName)",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"LastName\"]\nguards = [\"LastName\"]\n",
                "/w/triggerfish.toml:11: key `insights.unification.rules[0].guards`: 'LastName' is one of the rule's fields, so it cannot also guard it",
            ),
            (
                "[[insights.unification.rules]]\nfields = [\"Phone\"]\n",
                "/w/triggerfish.toml:10: key `insights.unification.rules[0].fields`: 'Phone' is not a profile field (mapped fields: Email, LastName)",
            ),
            (
                "FullName = \"{First} {Last|wurd 1}\"\n",
                "/w/triggerfish.toml:9: key `insights.sources[0].map.FullName`: bad template: at character 14: unknown filter 'wurd 1' (expected word N, upper, lower or trim)",
            ),
            (
                "[insights]\nretries = 1000000\n",
                "/w/triggerfish.toml:10: key `insights.retries`: expected 0 to 20",
            ),
            (
                "[insights]\nretry_backoff_ms = 0\n",
                "/w/triggerfish.toml:10: key `insights.retry_backoff_ms`: expected 1 to 60000",
            ),
            (
                "[insights.unification.merge]\nEmail = \"newest\"\n",
                "/w/triggerfish.toml:10: key `insights.unification.merge.Email`: expected priority, most-recent or most-frequent",
            ),
        ];
        for (extra, expected) in cases {
            let err = parse(&format!("{BASE}{extra}")).unwrap_err();
            assert_eq!(&err, expected, "for {extra:?}");
        }
    }

    const PG: &str = r#"
[[insights.sources]]
name = "crm"
kind = "postgres"
connection_env = "CRM_DATABASE_URL"
table = "public.contacts"
key = "id"
updated_at = "updated_at"
[insights.sources.map]
Email = "email"
"#;

    #[test]
    fn a_postgres_source_resolves() {
        let w = parse(PG).unwrap();
        let s = &w.sources[0];
        assert_eq!(
            s.kind,
            SourceKind::Postgres(PostgresSpec {
                connection: ConnectionFrom::Env("CRM_DATABASE_URL".into()),
                relation: Relation::Table {
                    schema: Some("public".into()),
                    name: "contacts".into()
                },
                ssl_root_cert: None,
                client_cert: None,
                full_read_every: Some(DEFAULT_FULL_READ_EVERY),
                deleted: None,
            })
        );
        assert_eq!(s.entity, "Crm");
        assert_eq!(s.path, PathBuf::new());
        assert_eq!(s.format, None);
        assert_eq!(s.unchanged_by(), "row count, greatest updated_at and keys");
        let q = PG.replace(
            "table = \"public.contacts\"",
            "query = \"\"\"\nSELECT id, email, updated_at FROM contacts -- all ;\n;  \n\"\"\"",
        );
        let w = parse(&q).unwrap();
        let SourceKind::Postgres(pg) = &w.sources[0].kind else {
            panic!("{:?}", w.sources[0].kind)
        };
        assert_eq!(
            pg.relation,
            Relation::Query("SELECT id, email, updated_at FROM contacts -- all".into())
        );
        assert_eq!(pg.relation.to_string(), "query");
        let t = PG.replace("public.contacts", "contacts");
        let w = parse(&t).unwrap();
        let SourceKind::Postgres(pg) = &w.sources[0].kind else {
            panic!()
        };
        assert_eq!(pg.relation.to_string(), "table contacts");
    }

    #[test]
    fn postgres_config_errors_name_file_line_and_key() {
        let secret = "postgres://crm:hunter22@db.example.com/crm";
        let cases: &[(&str, &str, &str)] = &[
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\npath = \"crm.csv\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].path`: a postgres source reads `table` or `query`, not a path",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\nquery = \"SELECT 1\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].query`: give `table` or `query`, not both",
            ),
            (
                "table = \"public.contacts\"\n",
                "",
                "/w/triggerfish.toml:3: key `insights.sources[0].table`: a postgres source needs `table` or `query`",
            ),
            (
                "public.contacts",
                "crm.public.contacts",
                "/w/triggerfish.toml:6: key `insights.sources[0].table`: expected a table name such as \"contacts\" or \"public.contacts\" (letters, digits and '_'; use `query` for others)",
            ),
            (
                "public.contacts",
                "public.\\\"Contacts\\\"",
                "/w/triggerfish.toml:6: key `insights.sources[0].table`: expected a table name such as \"contacts\" or \"public.contacts\" (letters, digits and '_'; use `query` for others)",
            ),
            (
                "table = \"public.contacts\"",
                "query = \" ; \"",
                "/w/triggerfish.toml:6: key `insights.sources[0].query`: expected a SELECT",
            ),
            (
                "connection_env = \"CRM_DATABASE_URL\"\n",
                "",
                "/w/triggerfish.toml:3: key `insights.sources[0].connection_env`: missing field `connection_env` (the name of the environment variable holding the connection string; or `connection_file`, a file holding it)",
            ),
            (
                "CRM_DATABASE_URL",
                secret,
                "/w/triggerfish.toml:5: key `insights.sources[0].connection_env`: expected the name of an environment variable (letters, digits and '_'), not the connection string itself",
            ),
            (
                "kind = \"postgres\"",
                "kind = \"mysql\"",
                "/w/triggerfish.toml:4: key `insights.sources[0].kind`: expected file or postgres",
            ),
            (
                "kind = \"postgres\"",
                "kind = \"postgres\"\nformat = \"csv\"",
                "/w/triggerfish.toml:5: key `insights.sources[0].format`: `format` is for files: a postgres source's columns are typed by PostgreSQL",
            ),
            (
                "kind = \"postgres\"\n",
                "",
                "/w/triggerfish.toml:4: key `insights.sources[0].connection_env`: `connection_env` is for a postgres source: add kind = \"postgres\"",
            ),
            (
                "key = \"id\"\n",
                "",
                "/w/triggerfish.toml:3: key `insights.sources[0].key`: missing field `key` (the primary-key column)",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\nssl_root_cert = \"certs/ca.pem\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].ssl_root_cert`: no file /w/certs/ca.pem: expected a PEM file of the certificate authorities to verify the server with",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\nfull_read_every = \"daily\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].full_read_every`: expected an interval such as \"12h\" or \"7d\", or \"never\"",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\nconnection_file = \"secrets/crm\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].connection_file`: give `connection_env` or `connection_file`, not both",
            ),
            (
                "connection_env = \"CRM_DATABASE_URL\"",
                &format!("connection_file = \"{secret}\""),
                "/w/triggerfish.toml:5: key `insights.sources[0].connection_file`: expected the path of a file holding the connection string, not the connection string itself",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\nssl_key = \"/w/client.key\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].ssl_key`: no file /w/client.key: expected a PEM file of the private key of ssl_cert",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\ndeleted = \"is deleted\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].deleted`: expected the name of a column (letters, digits and '_', not starting with a digit)",
            ),
            (
                "table = \"public.contacts\"",
                "table = \"public.contacts\"\ndeleted = \"id\"",
                "/w/triggerfish.toml:7: key `insights.sources[0].deleted`: expected a column of its own: the key and `updated_at` are set on every row, which would mark every row deleted",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(PG.contains(from), "{from}");
            let err = parse(&PG.replacen(from, to, 1)).unwrap_err();
            assert_eq!(&err, expected, "for {from:?} -> {to:?}");
            assert!(!err.contains("hunter22"), "{err}");
        }
        let err = parse("[[insights.sources]]\nname = \"crm\"\nkey = \"Id\"\n").unwrap_err();
        assert_eq!(
            err,
            "/w/triggerfish.toml:2: key `insights.sources[0].path`: missing field `path` (a file or glob; or kind = \"postgres\" with `table` or `query`)"
        );
        let err = parse(&BASE.replace("key = \"Id\"", "key = \"Id\"\ntable = \"t\"")).unwrap_err();
        assert_eq!(
            err,
            "/w/triggerfish.toml:6: key `insights.sources[0].table`: `table` is for a postgres source: add kind = \"postgres\""
        );
        let err =
            parse(&BASE.replace("key = \"Id\"", "key = \"Id\"\ndeleted = \"Gone\"")).unwrap_err();
        assert_eq!(
            err,
            "/w/triggerfish.toml:6: key `insights.sources[0].deleted`: `deleted` is for a postgres source: add kind = \"postgres\""
        );
        let ws = parse(&PG.replacen(
            "table = \"public.contacts\"",
            "table = \"public.contacts\"\ndeleted = \"IsDeleted\"",
            1,
        ))
        .unwrap();
        let SourceKind::Postgres(pg) = &ws.sources[0].kind else {
            panic!("{:?}", ws.sources[0].kind)
        };
        assert_eq!(pg.deleted.as_deref(), Some("IsDeleted"));
    }

    #[test]
    fn a_source_cannot_take_an_engine_entity() {
        let err =
            parse("[[insights.sources]]\nname = \"customer\"\npath = \"c.csv\"\nkey = \"Id\"\n")
                .unwrap_err();
        assert_eq!(
            err,
            "/w/triggerfish.toml:2: key `insights.sources[0].entity`: entity 'Customer' is written by the insights engine; choose another"
        );
    }
}
