//! `[[entities]]`: the entities plugins may write, and the `entities_write`
//! grants that name them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use triggerfish_data::insights::workspace::Workspace;
use triggerfish_data::insights::workspace::RESERVED_ENTITIES;
use triggerfish_data::store::{
    parse_type, valid_identifier, WritableEntity, DEFAULT_MAX_ROWS, MAX_MAX_ROWS,
    MAX_WRITABLE_FIELDS,
};
use triggerfish_runtime::settings::PluginConfig;

use super::{ConfigError, Validator};

/// One `[[entities]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEntity {
    name: Spanned<String>,
    key: Spanned<String>,
    fields: Spanned<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    required: Vec<Spanned<String>>,
    #[serde(default)]
    writable_by: Vec<Spanned<String>>,
    max_rows: Option<Spanned<u64>>,
}

/// Check the `[[entities]]` against the plugins and the workspace; the
/// key field comes first, the others in name order.
pub(super) fn validate(
    v: &Validator<'_>,
    raw: &[RawEntity],
    plugins: &[PluginConfig],
    insights: Option<&Workspace>,
) -> Result<Vec<WritableEntity>, ConfigError> {
    let mut out: Vec<WritableEntity> = Vec::with_capacity(raw.len());
    for (i, e) in raw.iter().enumerate() {
        let key = |k: &str| format!("entities[{i}].{k}");
        let name = e.name.get_ref();
        if !valid_identifier(name) {
            return Err(v.invalid(
                e.name.span(),
                &key("name"),
                "expected a name of letters, digits and '_', not starting with a digit, at most 64",
            ));
        }
        let source = insights.and_then(|w| w.sources.iter().find(|s| s.entity == *name));
        if RESERVED_ENTITIES.contains(&name.as_str()) || source.is_some() {
            let owner = match source {
                Some(s) => format!("source '{}'", s.name),
                None => "the insights engine".into(),
            };
            return Err(v.invalid(
                e.name.span(),
                &key("name"),
                &format!("'{name}' is written by {owner}; plugins may not write it"),
            ));
        }
        if out.iter().any(|o| o.name == *name) {
            return Err(v.invalid(e.name.span(), &key("name"), "duplicate entity name"));
        }
        let fields_map = e.fields.get_ref();
        if fields_map.is_empty() || fields_map.len() > MAX_WRITABLE_FIELDS {
            return Err(v.invalid(
                e.fields.span(),
                &key("fields"),
                &format!("expected 1 to {MAX_WRITABLE_FIELDS} fields, e.g. {{ Id = \"string\", Score = \"decimal\" }}"),
            ));
        }
        let mut fields = Vec::with_capacity(fields_map.len());
        for (f, t) in fields_map {
            if !valid_identifier(f) {
                return Err(v.invalid(
                    t.span(),
                    &key(&format!("fields.{f}")),
                    "a field name is letters, digits and '_', not starting with a digit, at most 64",
                ));
            }
            let ty = parse_type(t.get_ref()).ok_or_else(|| {
                v.invalid(
                    t.span(),
                    &key(&format!("fields.{f}")),
                    &format!(
                        "unknown type '{}' (expected string, integer, decimal, boolean or datetime)",
                        t.get_ref()
                    ),
                )
            })?;
            fields.push((f.clone(), ty));
        }
        let Some(at) = fields.iter().position(|(f, _)| f == e.key.get_ref()) else {
            return Err(v.invalid(
                e.key.span(),
                &key("key"),
                &format!("key '{}' is not one of the fields", e.key.get_ref()),
            ));
        };
        let key_field = fields.remove(at);
        fields.insert(0, key_field);
        for r in &e.required {
            if !fields.iter().any(|(f, _)| f == r.get_ref()) {
                return Err(v.invalid(
                    r.span(),
                    &key("required"),
                    &format!("'{}' is not one of the fields", r.get_ref()),
                ));
            }
        }
        for p in &e.writable_by {
            if !plugins.iter().any(|c| c.name == *p.get_ref()) {
                return Err(v.invalid(
                    p.span(),
                    &key("writable_by"),
                    &format!("no plugin named '{}' is configured", p.get_ref()),
                ));
            }
        }
        let max_rows = match &e.max_rows {
            None => DEFAULT_MAX_ROWS,
            Some(m) if (1..=MAX_MAX_ROWS).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                return Err(v.invalid(
                    m.span(),
                    &key("max_rows"),
                    &format!("expected 1 to {MAX_MAX_ROWS} items"),
                ))
            }
        };
        out.push(WritableEntity {
            name: name.clone(),
            key: e.key.get_ref().clone(),
            fields,
            required: e.required.iter().map(|r| r.get_ref().clone()).collect(),
            writable_by: e.writable_by.iter().map(|p| p.get_ref().clone()).collect(),
            max_rows,
        });
    }
    Ok(out)
}

/// Each `entities_write` grant must name a declared entity that lists the
/// plugin in its `writable_by`.
pub(super) fn check_grant(
    v: &Validator<'_>,
    declared: &[WritableEntity],
    plugin: &str,
    grant: &Spanned<String>,
    key: &str,
) -> Result<(), ConfigError> {
    let name = grant.get_ref();
    match declared.iter().find(|e| e.name == *name) {
        None => Err(v.invalid(
            grant.span(),
            key,
            &format!("entity '{name}' is not declared under [[entities]]"),
        )),
        Some(e) if !e.writable_by.iter().any(|p| p == plugin) => Err(v.invalid(
            grant.span(),
            key,
            &format!("entity '{name}' does not list plugin '{plugin}' in its writable_by"),
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config_file::Config;

    const PLUGIN: &str = "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\n";

    fn err(text: &str) -> String {
        Config::parse(std::path::Path::new("/etc/tf/triggerfish.toml"), text)
            .unwrap_err()
            .to_string()
    }

    fn entity(extra: &str) -> String {
        format!("[[entities]]\nname = \"FollowUp\"\nkey = \"Id\"\nfields = {{ Id = \"string\", Score = \"decimal\" }}\n{extra}")
    }

    #[test]
    fn writable_entities_are_typed_and_ordered_key_first() {
        let text = format!(
            "{PLUGIN}[plugins.grants]\nentities_write = [\"FollowUp\"]\n{}",
            entity("writable_by = [\"p\"]\nrequired = [\"Score\"]\nmax_rows = 10\n")
        );
        let c = Config::parse(std::path::Path::new("/etc/tf/triggerfish.toml"), &text).unwrap();
        let e = &c.settings.writable[0];
        let fields: Vec<&str> = e.fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["Id", "Score"]);
        assert_eq!(
            (e.max_rows, e.required.clone()),
            (10, vec!["Score".to_owned()])
        );
        assert_eq!(c.settings.plugins[0].grants.entities_write, ["FollowUp"]);
    }

    #[test]
    fn bad_declarations_and_grants_name_file_line_and_key() {
        let at = "/etc/tf/triggerfish.toml";
        assert_eq!(
            err(&format!("{PLUGIN}{}", entity("writable_by = [\"q\"]\n"))),
            format!("{at}:8: key `entities[0].writable_by`: no plugin named 'q' is configured")
        );
        assert_eq!(
            err(&format!("{PLUGIN}{}", entity("").replace("\"decimal\"", "\"money\""))),
            format!("{at}:7: key `entities[0].fields.Score`: unknown type 'money' (expected string, integer, decimal, boolean or datetime)")
        );
        assert_eq!(
            err(&format!(
                "{PLUGIN}{}",
                entity("").replace("key = \"Id\"", "key = \"Nope\"")
            )),
            format!("{at}:6: key `entities[0].key`: key 'Nope' is not one of the fields")
        );
        assert_eq!(
            err(&format!("{PLUGIN}{}", entity("").replace("\"FollowUp\"", "\"SegmentMember\""))),
            format!("{at}:5: key `entities[0].name`: 'SegmentMember' is written by the insights engine; plugins may not write it")
        );
        assert_eq!(
            err(&format!("{PLUGIN}{}", entity("max_rows = 0\n"))),
            format!("{at}:8: key `entities[0].max_rows`: expected 1 to 100000000 items")
        );
        assert_eq!(
            err(&format!("{PLUGIN}[plugins.grants]\nentities_write = [\"FollowUp\"]\n{}", entity(""))),
            format!("{at}:5: key `plugins[0].grants.entities_write[0]`: entity 'FollowUp' does not list plugin 'p' in its writable_by")
        );
        assert_eq!(
            err(&format!("{PLUGIN}[plugins.grants]\nentities_write = [\"Other\"]\n")),
            format!("{at}:5: key `plugins[0].grants.entities_write[0]`: entity 'Other' is not declared under [[entities]]")
        );
    }

    #[test]
    fn a_cluster_member_refuses_writes_and_says_why() {
        let text = format!("{PLUGIN}[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n");
        let c = Config::parse(std::path::Path::new("/etc/tf/triggerfish.toml"), &text).unwrap();
        assert!(c
            .settings
            .writes_unavailable
            .unwrap()
            .starts_with("writing entities is not available on a cluster member yet"));
    }
}
