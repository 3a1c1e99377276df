//! `[insights]`: data sources, unification, segments, measures, schedules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Where a configuration value sits: its span in the file.
pub type Span = std::ops::Range<usize>;

/// The `[insights]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightsSection {
    /// Interval for full refreshes under `triggerfish run`, e.g. "15m".
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Retries of a transient source failure (default 2).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff between retries, doubling (default 500 ms).
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub unification: Option<UnificationConfig>,
    #[serde(default)]
    pub segments: Vec<SegmentConfig>,
    #[serde(default)]
    pub measures: Vec<MeasureConfig>,
}

fn default_retries() -> u32 {
    2
}
fn default_backoff() -> u64 {
    500
}

/// One data source (a file today; see [`crate::insights::source::Source`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: Spanned<String>,
    /// Entity the rows are stored as (default: the name in PascalCase).
    #[serde(default)]
    pub entity: Option<String>,
    /// `csv`, `json` or `ndjson` (default: from the extension).
    #[serde(default)]
    pub format: Option<String>,
    /// File path or glob, relative to the configuration file.
    pub path: Spanned<String>,
    /// Primary-key column.
    pub key: Spanned<String>,
    /// Column types (`string`, `integer`, `decimal`, `boolean`, `datetime`);
    /// others are inferred.
    #[serde(default)]
    pub types: BTreeMap<String, Spanned<String>>,
    /// Malformed rows skipped before the source fails (default 0).
    #[serde(default)]
    pub tolerance: usize,
    /// Refresh interval for this source under `triggerfish run`, e.g. "5m".
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Column telling when a row was last updated (for `most-recent` merges).
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Profile field -> source column.
    #[serde(default)]
    pub map: BTreeMap<String, Spanned<String>>,
}

/// `[insights.unification]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnificationConfig {
    /// Match rules, in order; records matching by any rule are one customer.
    pub rules: Vec<RuleConfig>,
    /// Normalisers per profile field (default by field name).
    #[serde(default)]
    pub normalize: BTreeMap<String, Spanned<Vec<String>>>,
    /// Merge policy per profile field, and `default`.
    #[serde(default)]
    pub merge: BTreeMap<String, Spanned<String>>,
    /// Source names by priority, highest first (default: declaration order).
    #[serde(default)]
    pub priority: Vec<Spanned<String>>,
}

/// One match rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub fields: Spanned<Vec<String>>,
}

/// A threshold on a segment size or measure value.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    pub value: f64,
    #[serde(default)]
    pub direction: Watch,
}

/// Which crossings fire.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Watch {
    #[default]
    Up,
    Down,
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
    pub thresholds: Vec<ThresholdConfig>,
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
    /// Optional dimension: one value per distinct value; such measures never trigger.
    #[serde(default)]
    pub dimension: Option<Spanned<String>>,
    #[serde(default)]
    pub thresholds: Vec<ThresholdConfig>,
}

/// Parse "90s", "15m", "2h", "500ms" or a number of seconds.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], s[i..].trim()));
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "sec" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
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

/// A resolved source path (glob not yet expanded).
pub fn source_path(base: &std::path::Path, path: &str) -> PathBuf {
    base.join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
