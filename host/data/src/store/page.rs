//! "Get items from an entity": one page of a query, with `$skip` served by a
//! keyset seek when it continues where the caller's previous page ended, so
//! walking N rows page by page costs O(N), not O(N²).

use std::sync::{Mutex, PoisonError};

use rusqlite::types::{Value, ValueRef};

use super::partitions::Restriction;
use super::{EntityDb, EntityMeta, StoreError};
use crate::odata::{self, ColumnType, OrderKey, QueryOptionError};

/// Remembered page ends (per caller, entity and query) at most.
pub const CURSOR_CAPACITY: usize = 4_096;

/// `$top` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// `$top` when the caller gives none.
    pub default_top: u32,
    /// Largest `$top` accepted.
    pub max_top: u32,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default_top: 100,
            max_top: 1_000,
        }
    }
}

/// A request for one page.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub filter: Option<String>,
    pub select: Option<Vec<String>>,
    pub orderby: Option<String>,
    pub top: Option<u32>,
    pub skip: Option<u64>,
    /// Only the rows of this partition (an id from [`EntityDb::partitions`]).
    pub partition: Option<String>,
}

/// One page.
#[derive(Debug, Clone, PartialEq)]
pub struct PageResult {
    /// Items as JSON objects.
    pub items: Vec<serde_json::Map<String, serde_json::Value>>,
    /// `$skip` of the next page, while rows remain.
    pub next_skip: Option<u64>,
    /// Whether the page was served by a keyset seek.
    pub seek: bool,
}

/// Why a page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    EntityDb(#[from] StoreError),
    #[error("{0}")]
    Query(QueryOptionError),
}

/// Where a caller's last page ended.
#[derive(Debug, Clone)]
struct Cursor {
    next_skip: u64,
    last_key: Vec<Value>,
}

/// Page ends by (caller, entity, generation, normalised query), the least
/// recently used dropped past [`CURSOR_CAPACITY`].
pub(super) struct Cursors {
    inner: Mutex<lru::LruCache<String, Cursor>>,
}

impl Default for Cursors {
    fn default() -> Self {
        let cap =
            std::num::NonZeroUsize::new(CURSOR_CAPACITY).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(lru::LruCache::new(cap)),
        }
    }
}

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, Cursor>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &str) -> Option<Cursor> {
        self.lock().get(key).cloned()
    }

    fn put(&self, key: String, cursor: Cursor) {
        self.lock().put(key, cursor);
    }

    fn remove(&self, key: &str) {
        self.lock().pop(key);
    }

    pub(super) fn forget_entity(&self, entity: &str) {
        let needle = format!("\u{1f}{entity}\u{1f}");
        let mut cache = self.lock();
        let stale: Vec<String> = cache
            .iter()
            .filter(|(k, _)| k.contains(&needle))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            cache.pop(&k);
        }
    }
}

/// `"a", "b"` for known-valid column names.
pub(super) fn column_list(cols: &[&str]) -> String {
    cols.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Read columns `offset..offset+columns.len()` of a row into a JSON object.
pub(super) fn row_to_json(
    row: &rusqlite::Row<'_>,
    columns: &[(String, ColumnType)],
    offset: usize,
) -> rusqlite::Result<serde_json::Value> {
    Ok(serde_json::Value::Object(row_to_map(row, columns, offset)?))
}

fn row_to_map(
    row: &rusqlite::Row<'_>,
    columns: &[(String, ColumnType)],
    offset: usize,
) -> rusqlite::Result<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::with_capacity(columns.len());
    for (i, (name, ty)) in columns.iter().enumerate() {
        let v = match (row.get_ref(offset + i)?, ty) {
            (ValueRef::Null, _) => serde_json::Value::Null,
            (ValueRef::Integer(n), ColumnType::Boolean) => serde_json::Value::Bool(n != 0),
            (ValueRef::Integer(n), _) => serde_json::Value::from(n),
            (ValueRef::Real(f), _) => serde_json::Value::from(f),
            (ValueRef::Text(t), _) => {
                serde_json::Value::String(String::from_utf8_lossy(t).into_owned())
            }
            (ValueRef::Blob(_), _) => serde_json::Value::Null,
        };
        map.insert(name.clone(), v);
    }
    Ok(map)
}

fn invalid(option: &'static str, message: String) -> PageError {
    PageError::Query(QueryOptionError {
        option,
        position: 0,
        message,
    })
}

/// SQL for "row comes strictly after `last` in this order": an OR of
/// prefixes equal and one key past, with SQLite's NULL placement (first when
/// ascending, last when descending).
fn seek_condition(keys: &[(String, bool)], last: &[Value]) -> (String, Vec<Value>) {
    let mut ors = Vec::new();
    let mut params = Vec::new();
    for i in 0..keys.len() {
        let mut ands = Vec::new();
        let mut p = Vec::new();
        for (j, (col, _)) in keys.iter().enumerate().take(i) {
            match &last[j] {
                Value::Null => ands.push(format!("\"{col}\" IS NULL")),
                v => {
                    ands.push(format!("\"{col}\" = ?"));
                    p.push(v.clone());
                }
            }
        }
        let (col, desc) = &keys[i];
        let after = match (&last[i], desc) {
            (Value::Null, false) => Some(format!("\"{col}\" IS NOT NULL")),
            (Value::Null, true) => None,
            (v, false) => {
                p.push(v.clone());
                Some(format!("\"{col}\" > ?"))
            }
            (v, true) => {
                p.push(v.clone());
                Some(format!("(\"{col}\" < ? OR \"{col}\" IS NULL)"))
            }
        };
        let Some(after) = after else { continue };
        ands.push(after);
        ors.push(format!("({})", ands.join(" AND ")));
        params.extend(p);
    }
    if ors.is_empty() {
        ("0".into(), params)
    } else {
        (format!("({})", ors.join(" OR ")), params)
    }
}

impl EntityDb {
    /// The page limits in force.
    pub fn page_limits(&self) -> PageLimits {
        self.limits
    }

    /// One page of `entity` for `caller` (whose page ends are remembered).
    pub fn get_page(
        &self,
        caller: &str,
        entity: &str,
        req: &PageRequest,
    ) -> Result<PageResult, PageError> {
        let meta = self.meta(entity)?;
        let top = req.top.unwrap_or(self.limits.default_top);
        if top == 0 || top > self.limits.max_top {
            return Err(invalid(
                "$top",
                format!("expected 1 to {}, got {top}", self.limits.max_top),
            ));
        }
        let skip = req.skip.unwrap_or(0);
        if i64::try_from(skip).is_err() {
            return Err(invalid("$skip", format!("{skip} is too large")));
        }
        let schema = &meta.schema;
        let restriction = match &req.partition {
            None => Restriction::None,
            Some(id) => self.restriction(entity, id)?,
        };

        let (filter_sql, filter_params, filter_canon) = match req.filter.as_deref().map(str::trim) {
            None | Some("") => (None, Vec::new(), String::new()),
            Some(text) => {
                let expr = odata::parse_filter(text).map_err(PageError::Query)?;
                let (sql, params) =
                    odata::compile_filter(&expr, schema).map_err(PageError::Query)?;
                (Some(sql), params, odata::canonical_filter(&expr))
            }
        };
        let mut order: Vec<(String, bool)> = Vec::new();
        if let Some(text) = req.orderby.as_deref().filter(|t| !t.trim().is_empty()) {
            let keys: Vec<OrderKey> = odata::parse_orderby(text).map_err(PageError::Query)?;
            odata::check_orderby(&keys, schema).map_err(PageError::Query)?;
            order.extend(keys.into_iter().map(|k| (k.field, k.descending)));
        }
        if !order.iter().any(|(c, _)| *c == meta.key) {
            order.push((meta.key.clone(), false));
        }
        let select: Vec<(String, ColumnType)> = match &req.select {
            None => schema.columns.clone(),
            Some(fields) if fields.is_empty() => schema.columns.clone(),
            Some(fields) => {
                odata::check_select(fields, schema).map_err(PageError::Query)?;
                fields
                    .iter()
                    .map(|f| (f.clone(), schema.get(f).unwrap_or(ColumnType::String)))
                    .collect()
            }
        };

        let order_canon: Vec<String> = order
            .iter()
            .map(|(c, d)| format!("{c} {}", if *d { "desc" } else { "asc" }))
            .collect();
        let cursor_key = format!(
            "{caller}\u{1f}{entity}\u{1f}{}\u{1f}{filter_canon}\u{1f}{}\u{1f}{}",
            meta.generation,
            order_canon.join(","),
            req.partition.as_deref().unwrap_or("")
        );
        let cursor = if skip > 0 {
            self.cursors
                .get(&cursor_key)
                .filter(|c| c.next_skip == skip)
        } else {
            None
        };

        let mut conds = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(f) = &filter_sql {
            conds.push(format!("({f})"));
            params.extend(filter_params);
        }
        if let Restriction::Keys(n) = restriction {
            let (sql, p) = super::partitions::keys_in(entity, &meta.key, n);
            conds.push(sql);
            params.extend(p);
        }
        if let Some(c) = &cursor {
            let (sql, p) = seek_condition(&order, &c.last_key);
            conds.push(sql);
            params.extend(p);
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let order_sql = order
            .iter()
            .map(|(c, d)| format!("\"{c}\"{}", if *d { " DESC" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ");
        let select_cols: Vec<&str> = select.iter().map(|(c, _)| c.as_str()).collect();
        let key_cols: Vec<&str> = order.iter().map(|(c, _)| c.as_str()).collect();
        let offset_sql = if cursor.is_none() && skip > 0 {
            format!(" OFFSET {skip}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {}, {} FROM {}{where_sql} ORDER BY {order_sql} LIMIT {}{offset_sql}",
            column_list(&select_cols),
            column_list(&key_cols),
            meta.table(),
            u64::from(top) + 1,
        );

        let (items, last_key, more) =
            self.run_page(&meta, &sql, &params, &select, order.len(), top)?;
        let next_skip = more.then(|| skip + u64::from(top));
        match (next_skip, last_key) {
            (Some(next), Some(last_key)) => self.cursors.put(
                cursor_key,
                Cursor {
                    next_skip: next,
                    last_key,
                },
            ),
            _ => self.cursors.remove(&cursor_key),
        }
        Ok(PageResult {
            items,
            next_skip,
            seek: cursor.is_some(),
        })
    }

    #[allow(clippy::type_complexity)]
    fn run_page(
        &self,
        meta: &EntityMeta,
        sql: &str,
        params: &[Value],
        select: &[(String, ColumnType)],
        key_count: usize,
        top: u32,
    ) -> Result<
        (
            Vec<serde_json::Map<String, serde_json::Value>>,
            Option<Vec<Value>>,
            bool,
        ),
        PageError,
    > {
        let conn = self.conn();
        let sqlerr = |e| PageError::EntityDb(self.sql(e));
        let mut stmt = conn.prepare_cached(sql).map_err(sqlerr)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlerr)?;
        let mut items = Vec::with_capacity(top as usize);
        let mut last_key = None;
        let mut more = false;
        while let Some(row) = rows.next().map_err(sqlerr)? {
            if items.len() == top as usize {
                more = true;
                break;
            }
            items.push(row_to_map(row, select, 0).map_err(sqlerr)?);
            let mut key = Vec::with_capacity(key_count);
            for i in 0..key_count {
                key.push(row.get::<_, Value>(select.len() + i).map_err(sqlerr)?);
            }
            last_key = Some(key);
        }
        let _ = meta;
        Ok((items, last_key, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_condition_handles_directions_and_nulls() {
        let keys = vec![("A".to_string(), false), ("Id".to_string(), false)];
        let (sql, p) = seek_condition(&keys, &[Value::Integer(3), Value::Text("x".into())]);
        assert_eq!(sql, "((\"A\" > ?) OR (\"A\" = ? AND \"Id\" > ?))");
        assert_eq!(p.len(), 3);
        let (sql, _) = seek_condition(&keys, &[Value::Null, Value::Text("x".into())]);
        assert_eq!(
            sql,
            "((\"A\" IS NOT NULL) OR (\"A\" IS NULL AND \"Id\" > ?))"
        );
        let keys = vec![("A".to_string(), true), ("Id".to_string(), false)];
        let (sql, _) = seek_condition(&keys, &[Value::Null, Value::Text("x".into())]);
        assert_eq!(sql, "((\"A\" IS NULL AND \"Id\" > ?))");
        let (sql, _) = seek_condition(&keys, &[Value::Integer(1), Value::Text("x".into())]);
        assert_eq!(
            sql,
            "(((\"A\" < ? OR \"A\" IS NULL)) OR (\"A\" = ? AND \"Id\" > ?))"
        );
    }
}
