//! `[insights.unification]` validated: rules with their precision and
//! guards, normalisers, merge policies and source priority.

use std::collections::BTreeMap;

use super::super::normalize::Normalizer;
use super::super::similarity::Precision;
use super::{
    MergePolicy, PrecisionConfig, Rule, RuleConfig, SourceSpec, Unification, UnificationConfig,
    Validator, WorkspaceError,
};

/// A rule's per-field precision and its guards, validated.
fn rule_comparisons(
    v: &Validator,
    i: usize,
    r: &RuleConfig,
    idx: &[usize],
    fields: &[String],
) -> Result<(Vec<Precision>, Vec<usize>), WorkspaceError> {
    let rule_fields = r.fields.get_ref();
    let mut precision = vec![Precision::Exact; idx.len()];
    if let Some(p) = &r.precision {
        let key = format!("insights.unification.rules[{i}].precision");
        for (field, level) in p.get_ref() {
            let at = rule_fields.iter().position(|f| f == field).ok_or_else(|| {
                v.invalid(
                    p.span(),
                    &key,
                    &format!(
                        "'{field}' is not one of the rule's fields ({})",
                        rule_fields.join(", ")
                    ),
                )
            })?;
            precision[at] = match level {
                PrecisionConfig::Level(s) => Precision::parse_level(s),
                PrecisionConfig::Threshold(t) => Precision::from_threshold(*t),
            }
            .ok_or_else(|| {
                v.invalid(
                    p.span(),
                    &key,
                    &format!(
                        "'{field}': expected exact, high, medium, low or a similarity above 0 and at most 1"
                    ),
                )
            })?;
        }
        if precision.iter().all(|p| *p != Precision::Exact) {
            return Err(v.invalid(
                p.span(),
                &key,
                "at least one of the rule's fields must be exact: records are compared only \
                 within a block of equal exact fields",
            ));
        }
    }
    let mut guards = Vec::new();
    if let Some(g) = &r.guards {
        let key = format!("insights.unification.rules[{i}].guards");
        for f in g.get_ref() {
            let n = fields.iter().position(|p| p == f).ok_or_else(|| {
                v.invalid(
                    g.span(),
                    &key,
                    &format!(
                        "'{f}' is not a profile field (mapped fields: {})",
                        fields.join(", ")
                    ),
                )
            })?;
            if idx.contains(&n) {
                return Err(v.invalid(
                    g.span(),
                    &key,
                    &format!("'{f}' is one of the rule's fields, so it cannot also guard it"),
                ));
            }
            guards.push(n);
        }
    }
    Ok((precision, guards))
}

pub(super) fn unification(
    v: &Validator,
    u: UnificationConfig,
    sources: &[SourceSpec],
    fields: &[String],
) -> Result<Unification, WorkspaceError> {
    let field_index = |f: &str| fields.iter().position(|p| p == f);
    let mut rules = Vec::new();
    for (i, r) in u.rules.iter().enumerate() {
        let key = format!("insights.unification.rules[{i}].fields");
        if r.fields.get_ref().is_empty() {
            return Err(v.invalid(r.fields.span(), &key, "a rule needs at least one field"));
        }
        let mut idx = Vec::new();
        for f in r.fields.get_ref() {
            let n = field_index(f).ok_or_else(|| {
                v.invalid(
                    r.fields.span(),
                    &key,
                    &format!(
                        "'{f}' is not a profile field (mapped fields: {})",
                        fields.join(", ")
                    ),
                )
            })?;
            idx.push(n);
        }
        let (precision, guards) = rule_comparisons(v, i, r, &idx, fields)?;
        rules.push(Rule {
            name: r.name.clone().unwrap_or_else(|| format!("rule-{}", i + 1)),
            fields: idx,
            precision,
            guards,
        });
    }
    let mut normalizers: Vec<Vec<Normalizer>> =
        fields.iter().map(|f| Normalizer::defaults_for(f)).collect();
    for (field, chain) in &u.normalize {
        let key = format!("insights.unification.normalize.{field}");
        let n = field_index(field).ok_or_else(|| {
            v.invalid(
                chain.span(),
                &key,
                &format!("'{field}' is not a profile field"),
            )
        })?;
        let mut steps = Vec::new();
        for s in chain.get_ref() {
            steps.push(Normalizer::parse(s).ok_or_else(|| {
                v.invalid(
                    chain.span(),
                    &key,
                    &format!("unknown normaliser '{s}' (expected {})", Normalizer::NAMES),
                )
            })?);
        }
        normalizers[n] = steps;
    }
    let mut default = MergePolicy::Priority;
    let mut merge_by_field = BTreeMap::new();
    for (field, policy) in &u.merge {
        let key = format!("insights.unification.merge.{field}");
        let p = MergePolicy::parse(policy.get_ref()).ok_or_else(|| {
            v.invalid(
                policy.span(),
                &key,
                "expected priority, most-recent or most-frequent",
            )
        })?;
        if field == "default" {
            default = p;
        } else if field_index(field).is_none() {
            return Err(v.invalid(
                policy.span(),
                &key,
                &format!("'{field}' is not a profile field"),
            ));
        } else {
            merge_by_field.insert(field.clone(), p);
        }
    }
    let merge = fields
        .iter()
        .map(|f| merge_by_field.get(f).copied().unwrap_or(default))
        .collect();
    let mut priority = Vec::new();
    for p in &u.priority {
        let n = sources
            .iter()
            .position(|s| &s.name == p.get_ref())
            .ok_or_else(|| {
                v.invalid(
                    p.span(),
                    "insights.unification.priority",
                    &format!("unknown source '{}'", p.get_ref()),
                )
            })?;
        if priority.contains(&n) {
            return Err(v.invalid(
                p.span(),
                "insights.unification.priority",
                &format!("source '{}' is listed twice", p.get_ref()),
            ));
        }
        priority.push(n);
    }
    for n in 0..sources.len() {
        if !priority.contains(&n) {
            priority.push(n);
        }
    }
    Ok(Unification {
        rules,
        normalizers,
        merge,
        priority,
    })
}
