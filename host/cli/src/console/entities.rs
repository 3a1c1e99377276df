//! `/entities` and `/entities/{name}`: browse an entity with `$filter`,
//! `$orderby`, `$select` and `$skip` paging, through the same page engine
//! plugins use.

use std::sync::Arc;

use maud::{html, Markup};
use serde_json::Value;
use triggerfish_data::store::{type_name, EntityMeta, PageRequest, PageResult};

use super::runs::encode;

/// Rows per page unless `$top` says otherwise.
pub const DEFAULT_TOP: u32 = 50;
/// Longest `$filter`, `$orderby` or `$select` text accepted from the form.
pub const MAX_QUERY_TEXT: usize = 4096;

/// The query of the entity page, as typed.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub filter: String,
    pub orderby: String,
    pub select: String,
    pub top: Option<u32>,
    pub skip: Option<u64>,
}

impl Query {
    /// The page request, or which option is too long.
    pub fn request(&self) -> Result<PageRequest, String> {
        for (name, text) in [
            ("$filter", &self.filter),
            ("$orderby", &self.orderby),
            ("$select", &self.select),
        ] {
            if text.len() > MAX_QUERY_TEXT {
                return Err(format!("{name} is longer than {MAX_QUERY_TEXT} bytes"));
            }
        }
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
        Ok(PageRequest {
            filter: some(&self.filter),
            select: some(&self.select).map(|s| s.split(',').map(|f| f.trim().to_owned()).collect()),
            orderby: some(&self.orderby),
            top: Some(self.top.unwrap_or(DEFAULT_TOP)),
            skip: self.skip,
        })
    }

    fn pairs(&self, skip: Option<u64>) -> Vec<(String, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("filter", &self.filter),
            ("orderby", &self.orderby),
            ("select", &self.select),
        ] {
            if !v.is_empty() {
                q.push((k.to_owned(), v.clone()));
            }
        }
        if let Some(t) = self.top {
            q.push(("top".into(), t.to_string()));
        }
        if let Some(s) = skip.filter(|s| *s > 0) {
            q.push(("skip".into(), s.to_string()));
        }
        q
    }
}

/// The list of entities.
pub fn index(metas: &[Arc<EntityMeta>]) -> Markup {
    html! {
        @if metas.is_empty() { p.muted { "The store holds no entities yet." } }
        @else {
            table #entities {
                thead { tr { th { "entity" } th { "rows" } th { "key" } th { "columns" } } }
                tbody {
                    @for m in metas {
                        tr { td { a href={ "/entities/" (m.name) } { (m.name) } } td.num { (m.rows) } td { (m.key) }
                             td.muted { (m.schema.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")) } }
                    }
                }
            }
        }
    }
}

/// The query form (above the live region).
pub fn form(meta: &EntityMeta, q: &Query) -> Markup {
    html! {
        form.filters.query method="get" action={ "/entities/" (meta.name) } {
            label { "$filter " input name="filter" value=(q.filter) size="40" maxlength=(MAX_QUERY_TEXT) placeholder="Country eq 'FR' and Points ge 100"; }
            label { "$orderby " input name="orderby" value=(q.orderby) size="20" maxlength=(MAX_QUERY_TEXT) placeholder="LastName asc"; }
            label { "$select " input name="select" value=(q.select) size="20" maxlength=(MAX_QUERY_TEXT) placeholder="all columns"; }
            label { "$top " input name="top" type="number" min="1" value=(q.top.unwrap_or(DEFAULT_TOP)) style="width:5em"; }
            button type="submit" { "Query" }
        }
        p.muted {
            (meta.rows) " rows, key " code { (meta.key) } " · columns: "
            (meta.schema.columns.iter().map(|(c, t)| format!("{c} {}", type_name(*t))).collect::<Vec<_>>().join(", "))
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One page of rows, or the query's error with a caret under its position.
pub fn results(
    meta: &EntityMeta,
    q: &Query,
    page: Result<PageResult, (String, Option<(String, u32)>)>,
) -> Markup {
    match page {
        Err((message, at)) => html! {
            div.error role="alert" {
                p { (message) }
                @if let Some((text, pos)) = at { pre { (text) "\n" (" ".repeat(pos as usize)) "^" } }
            }
        },
        Ok(page) => {
            let columns: Vec<String> = match page.items.first() {
                Some(first) => first.keys().cloned().collect(),
                None => meta.schema.columns.iter().map(|(c, _)| c.clone()).collect(),
            };
            let skip = q.skip.unwrap_or(0);
            let top = u64::from(q.top.unwrap_or(DEFAULT_TOP));
            html! {
                p.muted { "Rows " (skip + 1) "–" (skip + page.items.len() as u64) @if page.seek { " (keyset seek)" } }
                table #rows {
                    thead { tr { @for c in &columns { th { (c) } } } }
                    tbody {
                        @for item in &page.items {
                            tr { @for c in &columns { td { (item.get(c).map(cell).unwrap_or_default()) } } }
                        }
                    }
                }
                p.pager {
                    @if skip > 0 {
                        a href={ "/entities/" (meta.name) "?" (encode(&q.pairs(Some(skip.saturating_sub(top))))) } { "← previous" }
                        " "
                    }
                    @if let Some(next) = page.next_skip {
                        a.next href={ "/entities/" (meta.name) "?" (encode(&q.pairs(Some(next)))) } { "next →" }
                    }
                }
            }
        }
    }
}
