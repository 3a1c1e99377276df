//! `[insights]`: data sources, unification, segments, measures and schedules,
//! as written ([`InsightsSection`]) and as validated ([`Workspace`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::odata::{parse_filter, Expr};
use crate::store::valid_identifier;

mod config;
mod dialect;
mod sources;
mod spec;
mod unification;

pub use config::{
    InsightsSection, MeasureConfig, PrecisionConfig, RuleConfig, SegmentConfig, SourceConfig,
    ThresholdConfig, UnificationConfig, Watch,
};
pub use spec::{
    parse_interval, valid_env_name, Aggregate, ConnectionFrom, MeasureSpec, MergePolicy,
    PostgresSpec, Relation, Rule, SegmentSpec, SourceKind, SourceSpec, Threshold, Unification,
    Workspace, DEFAULT_FULL_READ_EVERY,
};

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

pub use crate::text::pascal_case;

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
    use serde::Deserialize;

    use super::super::normalize::Normalizer;
    use super::*;
    use crate::odata::ColumnType;

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
    fn a_file_source_names_columns_as_its_headers_write_them() {
        let w = parse(
            r#"
[[insights.sources]]
name = "crm"
path = "crm.csv"
key = "Contact ID"
updated_at = "Modified On"
types = { "Postal Code" = "string" }
[insights.sources.map]
Email = "E-mail"
FullName = "{First Name} {Last Name}"
"#,
        )
        .unwrap();
        let s = &w.sources[0];
        assert_eq!(s.key, "ContactID");
        assert_eq!(s.updated_at.as_deref(), Some("ModifiedOn"));
        // updated_at's column is a datetime, typed or not.
        assert_eq!(
            s.types.iter().collect::<Vec<_>>(),
            [
                (&"ModifiedOn".to_owned(), &ColumnType::DateTime),
                (&"PostalCode".to_owned(), &ColumnType::String)
            ]
        );
        assert_eq!(s.map, [("Email".to_owned(), "EMail".to_owned())]);
        assert_eq!(s.derived[0].1.columns(), ["FirstName", "LastName"]);
        for (text, want) in [
            (
                "types = { \"Postal Code\" = \"string\", PostalCode = \"integer\" }",
                "key `insights.sources[0].types.PostalCode`: the column 'PostalCode' is given a type twice",
            ),
            (
                "types = { \"名前\" = \"string\" }",
                "key `insights.sources[0].types.名前`: '名前' is not a column name",
            ),
        ] {
            let text = format!("[[insights.sources]]\nname = \"crm\"\npath = \"crm.csv\"\nkey = \"Id\"\n{text}\n");
            let e = parse(&text).unwrap_err();
            assert!(e.ends_with(want), "{e}");
        }
        let w = parse("[[insights.sources]]\nname = \"crm\"\npath = \"crm.txt\"\nformat = \"tsv\"\nkey = \"Id\"\n").unwrap();
        assert_eq!(
            (w.sources[0].format, w.sources[0].dialect.delimiter),
            (Some(crate::store::ImportFormat::Csv), Some(b'\t'))
        );
        let w = parse("[[insights.sources]]\nname = \"crm\"\npath = \"crm.csv\"\ndelimiter = \";\"\nkey = \"Id\"\n").unwrap();
        assert_eq!(w.sources[0].dialect.delimiter, Some(b';'));
        for (text, want) in [
            (
                "path = \"crm.json\"\ndelimiter = \";\"",
                "triggerfish.toml:5: key `insights.sources[0].delimiter`: `delimiter` is for CSV files",
            ),
            (
                "path = \"crm.csv\"\nupdated_at = \"Modified\"\ntypes = { Modified = \"string\" }",
                "triggerfish.toml:5: key `insights.sources[0].updated_at`: 'Modified' is typed string: updated_at orders records by time, so its column is a datetime",
            ),
            (
                "path = \"crm.csv\"\ndatetime_format = \"%d/%m\"",
                "triggerfish.toml:5: key `insights.sources[0].datetime_format`: '%d/%m': it does not name a day, a month and a year (e.g. \"%d/%m/%Y\" or \"%m/%d/%Y %I:%M %p\")",
            ),
            (
                "path = \"crm.csv\"\ndatetime_format = [\"%d/%m/%Y %H:%M\", \"%d/%m\"]",
                "triggerfish.toml:5: key `insights.sources[0].datetime_format`: '%d/%m': it does not name a day, a month and a year (e.g. \"%d/%m/%Y\" or \"%m/%d/%Y %I:%M %p\")",
            ),
            (
                "path = \"crm.csv\"\ndatetime_format = [\"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\", \"%d/%m/%Y\"]",
                "triggerfish.toml:5: key `insights.sources[0].datetime_format`: 9 formats: at most 8 may be listed",
            ),
            (
                "path = \"crm.csv\"\ndecimal_separator = \";\"",
                "triggerfish.toml:5: key `insights.sources[0].decimal_separator`: ';': expected \".\" or \",\"",
            ),
            (
                "path = \"crm.csv\"\ndecimal_separator = \",\"\nthousands_separator = \",\"",
                "triggerfish.toml:6: key `insights.sources[0].thousands_separator`: ',': that is the decimal separator (decimal_separator = \",\"); numbers written 1,234.50 need decimal_separator = \".\"",
            ),
            (
                "path = \"crm.csv\"\nflatten = true",
                "triggerfish.toml:5: key `insights.sources[0].flatten`: `flatten` is for JSON and NDJSON files: CSV does not nest",
            ),
            (
                "path = \"crm.csv\"\nencoding = \"klingon\"",
                "triggerfish.toml:5: key `insights.sources[0].encoding`: 'klingon': unknown encoding (e.g. utf-8, windows-1252, iso-8859-15, utf-16le)",
            ),
            (
                "path = \"crm.csv\"\ndelimiter = \";;\"",
                "triggerfish.toml:5: key `insights.sources[0].delimiter`: ';;': expected one ASCII character, such as \";\" or \"\\t\" (or \"tab\")",
            ),
        ] {
            let e = parse(&format!("[[insights.sources]]\nname = \"crm\"\nkey = \"Id\"\n{text}\n")).unwrap_err();
            assert!(e.ends_with(want), "{e}");
        }
        // A table's columns are named by the database: as they are.
        let e =
            parse(&PG.replace("key = \"id\"", "key = \"id\"\nencoding = \"latin1\"")).unwrap_err();
        assert!(
            e.ends_with("`encoding` is for files: PostgreSQL sends UTF-8"),
            "{e}"
        );
        let dated = "key = \"id\"\ndatetime_format = \"%d/%m/%Y\"";
        let e = parse(&PG.replace("key = \"id\"", dated)).unwrap_err();
        assert!(
            e.ends_with("`datetime_format` is for files: PostgreSQL types its dates"),
            "{e}"
        );
        let e = parse(&PG.replace("key = \"id\"", "key = \"Contact ID\"")).unwrap_err();
        assert!(e.ends_with("'Contact ID' is not a column name"), "{e}");
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
