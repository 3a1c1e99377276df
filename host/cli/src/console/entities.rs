//! `/entities` and `/entities/{name}`: browse an entity with `$filter`,
//! `$orderby`, `$select` and `$skip` paging, through the same page engine
//! plugins use.

use std::collections::HashMap;

use super::layout::page;
use super::{blocking, respond, PageFailure};
use crate::daemon::Shared;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use triggerfish_data::store::PageError;

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
pub struct EntityQuery {
    pub filter: String,
    pub orderby: String,
    pub select: String,
    pub top: Option<u32>,
    pub skip: Option<u64>,
}

impl EntityQuery {
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
            partition: None,
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
pub fn form(meta: &EntityMeta, q: &EntityQuery) -> Markup {
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
    q: &EntityQuery,
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

pub async fn entities_index(State(s): State<Arc<Shared>>) -> Result<Response, PageFailure> {
    let Some(store) = s.console.store.clone() else {
        return Ok(respond(page(
            s.token.is_some(),
            "Entities",
            "/entities",
            html! {},
            html! { p.muted { "No store." } },
        )));
    };
    let metas = blocking(move || {
        let names = store.entity_names().map_err(|e| e.to_string())?;
        names
            .iter()
            .map(|n| store.meta(n).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(respond(page(
        s.token.is_some(),
        "Entities",
        "/entities",
        html! {},
        index(&metas),
    )))
}

pub async fn entity_page(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageFailure> {
    let Some(store) = s.console.store.clone() else {
        return Err(PageFailure(StatusCode::NOT_FOUND, "no store".into()));
    };
    let text = |k: &str| q.get(k).cloned().unwrap_or_default();
    let number = |k: &str| -> Result<Option<u64>, PageFailure> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    PageFailure(
                        StatusCode::BAD_REQUEST,
                        format!("${k}: expected a whole number, found '{v}'"),
                    )
                })
            })
            .transpose()
    };
    let query = EntityQuery {
        filter: text("filter"),
        orderby: text("orderby"),
        select: text("select"),
        top: number("top")?.map(|t| t.min(u64::from(u32::MAX)) as u32),
        skip: number("skip")?,
    };
    let entity = name.clone();
    let (meta, result) = {
        let query = query.clone();
        blocking(move || {
            let meta = match store.meta(&entity) {
                Ok(m) => m,
                Err(e) => return Ok(Err(format!("entity '{entity}': {e}"))),
            };
            let result = match query.request() {
                Err(e) => Err((e, None)),
                Ok(req) => store
                    .get_page("console", &entity, &req)
                    .map_err(|e| match e {
                        PageError::Query(qe) => {
                            let text = match qe.option {
                                "$filter" => Some(query.filter.clone()),
                                "$orderby" => Some(query.orderby.clone()),
                                "$select" => Some(query.select.clone()),
                                _ => None,
                            };
                            (qe.to_string(), text.map(|t| (t, qe.position)))
                        }
                        other => (other.to_string(), None),
                    }),
            };
            Ok(Ok((meta, result)))
        })
        .await?
        .map_err(|e| PageFailure(StatusCode::NOT_FOUND, e))?
    };
    let title = format!("Entity {name}");
    Ok(respond(page(
        s.token.is_some(),
        &title,
        "/entities",
        form(&meta, &query),
        results(&meta, &query, result),
    )))
}
