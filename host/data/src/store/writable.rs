//! Entities plugins write: declared in the configuration, created in the
//! store on load, written one item at a time. Each write is checked against
//! the declared field types, logged with its before and after in
//! `_tf_writes` in the same transaction, and made once per run: a later
//! attempt of the same run (event, plugin) that repeats it gets the first
//! attempt's result back instead of writing again.

use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value as Json};

use super::import::quoted;
use super::{page, sql_type, table_name, valid_identifier, EntityDb, StoreError};
use crate::odata::{normalize_datetime, ColumnType};

/// Largest item (or change set) a write accepts, as JSON text, in bytes.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;
/// Most fields a writable entity may declare.
pub const MAX_WRITABLE_FIELDS: usize = 256;
/// Items a writable entity holds at most, unless configured otherwise.
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;
/// Largest `max_rows` a writable entity may be given.
pub const MAX_MAX_ROWS: u64 = 100_000_000;

/// The write log and the registry of writable entities; see
/// [`ensure_writes_schema`].
const WRITES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _tf_writes (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    attempt TEXT NOT NULL,
    entity TEXT NOT NULL,
    op TEXT NOT NULL,
    item_key TEXT NOT NULL,
    changes TEXT NOT NULL,
    before TEXT,
    after TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    run INTEGER
);
CREATE INDEX IF NOT EXISTS _tf_writes_by_run ON _tf_writes (event_id, plugin, entity, item_key);
CREATE TABLE IF NOT EXISTS _tf_writable (name TEXT PRIMARY KEY);
";

/// Create the write log and the registry if missing (the store and the
/// journal, which lists a run's writes, both call it); a write log from
/// before runs were recorded gains its `run` column.
pub fn ensure_writes_schema(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(WRITES_SCHEMA)?;
    let has_run: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('_tf_writes') WHERE name = 'run'")?
        .exists([])?;
    if !has_run {
        conn.execute_batch("ALTER TABLE _tf_writes ADD COLUMN run INTEGER")?;
    }
    Ok(())
}

/// `[[entities]]`: an entity plugins may write.
#[derive(Debug, Clone, PartialEq)]
pub struct WritableEntity {
    pub name: String,
    /// The key field (one of `fields`).
    pub key: String,
    /// Fields with their types, in declaration order.
    pub fields: Vec<(String, ColumnType)>,
    /// Fields a create must set and an update may not clear (the key always).
    pub required: Vec<String>,
    /// Plugins allowed to write it (each also needs the `entities_write` grant).
    pub writable_by: Vec<String>,
    /// Items it may hold; a create beyond is refused.
    pub max_rows: u64,
}

/// Who writes: one attempt of one run.
#[derive(Debug, Clone, Copy)]
pub struct WriteBy<'a> {
    pub plugin: &'a str,
    pub event_id: &'a str,
    /// Unique per attempt: tells a repeat by a later attempt from a second
    /// write by the same one.
    pub attempt: &'a str,
    /// The journal's run, when the attempt is one's.
    pub run: Option<i64>,
}

/// A write that was made (or had been made by an earlier attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The item as stored after the write.
    pub item: Json,
    /// The item before (updates).
    pub before: Option<Json>,
    /// The item's key, as text.
    pub key: String,
    /// True when an earlier attempt of this run made this write: nothing
    /// was written now.
    pub repeated: bool,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The item or change set is wrong; the text names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("entity '{entity}' has no item with key {key}")]
    NotFound { entity: String, key: String },
    #[error("entity '{entity}' already has an item with key {key}")]
    Exists { entity: String, key: String },
    #[error("entity '{entity}' holds its maximum of {max} items")]
    Full { entity: String, max: u64 },
    /// Not a writable entity in this store.
    #[error("entity '{0}' is not writable")]
    NotWritable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A declaration that cannot be applied to the store.
fn declaration(entity: &str, message: String) -> StoreError {
    StoreError::Declaration {
        entity: entity.to_owned(),
        message,
    }
}

impl WritableEntity {
    fn field(&self, name: &str) -> Option<ColumnType> {
        self.fields.iter().find(|(f, _)| f == name).map(|(_, t)| *t)
    }

    fn field_names(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|(f, _)| f.as_str()).collect();
        names.join(", ")
    }

    fn key_type(&self) -> ColumnType {
        self.field(&self.key).unwrap_or(ColumnType::String)
    }
}

/// A JSON value as the stored value of a field of type `t`.
fn to_value(field: &str, t: ColumnType, v: &Json) -> Result<Value, WriteError> {
    let bad = |what: &str| {
        let shown = match v {
            Json::String(s) => quoted(s),
            Json::Object(_) => "an object".into(),
            Json::Array(_) => "an array".into(),
            other => other.to_string(),
        };
        Err(WriteError::Invalid(format!(
            "field '{field}': expected {what}, got {shown}"
        )))
    };
    match (t, v) {
        (_, Json::Null) => Ok(Value::Null),
        (ColumnType::String, Json::String(s)) => Ok(Value::Text(s.clone())),
        (ColumnType::String, _) => bad("a string"),
        (ColumnType::Integer, Json::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Value::Integer(i)),
            None => bad("an integer"),
        },
        (ColumnType::Integer, _) => bad("an integer"),
        (ColumnType::Decimal, Json::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Value::Real(f)),
            _ => bad("a decimal number"),
        },
        (ColumnType::Decimal, _) => bad("a decimal number"),
        (ColumnType::Boolean, Json::Bool(b)) => Ok(Value::Integer(i64::from(*b))),
        (ColumnType::Boolean, _) => bad("true or false"),
        (ColumnType::DateTime, Json::String(s)) => match normalize_datetime(s) {
            Some(d) => Ok(Value::Text(d)),
            None => bad("a date-time (RFC 3339, e.g. \"2026-05-01T09:00:00Z\")"),
        },
        (ColumnType::DateTime, _) => bad("a date-time string"),
    }
}

/// The key given as text, as the stored value of the key field.
fn key_value(spec: &WritableEntity, id: &str) -> Result<Value, WriteError> {
    let not_found = || WriteError::NotFound {
        entity: spec.name.clone(),
        key: quoted(id),
    };
    match spec.key_type() {
        ColumnType::Integer => id
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| not_found()),
        ColumnType::Decimal => id
            .trim()
            .parse::<f64>()
            .map(Value::Real)
            .map_err(|_| not_found()),
        _ => Ok(Value::Text(id.to_owned())),
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::Integer(n) => n.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        _ => String::new(),
    }
}

/// Parse an item or change set: a JSON object of declared fields, within
/// [`MAX_ITEM_BYTES`].
fn parse_object(spec: &WritableEntity, text: &str) -> Result<Map<String, Json>, WriteError> {
    if text.len() > MAX_ITEM_BYTES {
        return Err(WriteError::Invalid(format!(
            "the item is {} bytes; at most {MAX_ITEM_BYTES} are accepted",
            text.len()
        )));
    }
    let value: Json = serde_json::from_str(text)
        .map_err(|e| WriteError::Invalid(format!("the item is not valid JSON: {e}")))?;
    let Json::Object(map) = value else {
        return Err(WriteError::Invalid(
            "the item must be a JSON object of field names and values".into(),
        ));
    };
    for name in map.keys() {
        if spec.field(name).is_none() {
            return Err(WriteError::Invalid(format!(
                "field {} is not a field of entity '{}' (fields: {})",
                quoted(name),
                spec.name,
                spec.field_names()
            )));
        }
    }
    Ok(map)
}

impl EntityDb {
    /// Create (or bring up to date) the writable entities: a new entity is
    /// created empty; fields added since are added. An entity of the same
    /// name that is not writable (a source's, the engine's), a changed key,
    /// a changed type or a removed field is an error naming the entity.
    pub fn declare_writable(&self, specs: &[WritableEntity]) -> Result<(), StoreError> {
        let mut s = self.session();
        ensure_writes_schema(&s).map_err(|e| s.error(e))?;
        let tx = s.durable_transaction()?;
        let sql = |e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        };
        for spec in specs {
            let name = &spec.name;
            if !valid_identifier(name) {
                return Err(StoreError::BadName(name.clone(), "entity"));
            }
            for (f, _) in &spec.fields {
                if !valid_identifier(f) {
                    return Err(StoreError::BadName(f.clone(), "field"));
                }
            }
            let existing: Option<(String, String)> = tx
                .query_row(
                    "SELECT key, columns FROM _tf_entities WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql)?;
            let writable: bool = tx
                .query_row("SELECT 1 FROM _tf_writable WHERE name = ?1", [name], |_| {
                    Ok(())
                })
                .optional()
                .map_err(sql)?
                .is_some();
            let table = table_name(name);
            let cols_json = |fields: &[(String, ColumnType)]| {
                serde_json::to_string(
                    &fields
                        .iter()
                        .map(|(c, t)| (c.as_str(), super::type_name(*t)))
                        .collect::<Vec<_>>(),
                )
                .unwrap_or_else(|_| "[]".into())
            };
            match existing {
                Some(_) if !writable => {
                    return Err(declaration(
                        name,
                        "the store already holds an entity of this name that plugins may not write (a source's or the insights engine's); choose another name".into(),
                    ))
                }
                Some((key, columns)) => {
                    if key != spec.key {
                        return Err(declaration(
                            name,
                            format!("its key is '{key}' in the store; a writable entity's key cannot change"),
                        ));
                    }
                    let stored: Vec<(String, String)> =
                        serde_json::from_str(&columns).unwrap_or_default();
                    for (f, t) in &stored {
                        match spec.field(f) {
                            None => {
                                return Err(declaration(
                                    name,
                                    format!("field '{f}' is in the store but no longer declared; fields cannot be removed"),
                                ))
                            }
                            Some(dt) if super::type_name(dt) != t => {
                                return Err(declaration(
                                    name,
                                    format!("field '{f}' is {t} in the store, declared {}; a field's type cannot change", super::type_name(dt)),
                                ))
                            }
                            Some(_) => {}
                        }
                    }
                    let mut added = false;
                    for (f, t) in &spec.fields {
                        if !stored.iter().any(|(s, _)| s == f) {
                            tx.execute_batch(&format!(
                                "ALTER TABLE {table} ADD COLUMN \"{f}\" {}",
                                sql_type(*t)
                            ))
                            .map_err(sql)?;
                            added = true;
                        }
                    }
                    // Unchanged declarations (every load) leave the
                    // generation, and so paging cursors, alone.
                    if added {
                        tx.execute(
                            "UPDATE _tf_entities SET columns = ?2, generation = generation + 1 WHERE name = ?1",
                            params![name, cols_json(&spec.fields)],
                        )
                        .map_err(sql)?;
                    }
                }
                None => {
                    if spec.field(&spec.key).is_none() {
                        return Err(StoreError::KeyNotAColumn {
                            entity: name.clone(),
                            key: spec.key.clone(),
                        });
                    }
                    let defs: Vec<String> = spec
                        .fields
                        .iter()
                        .map(|(c, t)| {
                            let not_null = if *c == spec.key { " NOT NULL" } else { "" };
                            format!("\"{c}\" {}{not_null}", sql_type(*t))
                        })
                        .collect();
                    tx.execute_batch(&format!(
                        "DROP TABLE IF EXISTS {table};
                         CREATE TABLE {table} ({}, PRIMARY KEY (\"{}\"));",
                        defs.join(", "),
                        spec.key
                    ))
                    .map_err(sql)?;
                    tx.execute(
                        "INSERT INTO _tf_entities (name, key, columns, generation, rows, updated_at)
                         VALUES (?1, ?2, ?3, 1, 0, ?4)",
                        params![
                            name,
                            spec.key,
                            cols_json(&spec.fields),
                            crate::event::now_rfc3339()
                        ],
                    )
                    .map_err(sql)?;
                    tx.execute("INSERT INTO _tf_writable (name) VALUES (?1)", [name])
                        .map_err(sql)?;
                }
            }
        }
        tx.commit().map_err(sql)?;
        drop(s);
        for spec in specs {
            self.forget(&spec.name);
        }
        Ok(())
    }

    /// Create an item of `spec`'s entity from a JSON object; see the module
    /// docs for what a repeat by a later attempt does.
    pub fn create_item(
        &self,
        spec: &WritableEntity,
        item: &str,
        by: WriteBy<'_>,
    ) -> Result<Written, WriteError> {
        let map = parse_object(spec, item)?;
        let mut values = Vec::with_capacity(spec.fields.len());
        for (f, t) in &spec.fields {
            let v = to_value(f, *t, map.get(f).unwrap_or(&Json::Null))?;
            if matches!(v, Value::Null) {
                if *f == spec.key {
                    return Err(WriteError::Invalid(format!(
                        "field '{f}' (the key) is required"
                    )));
                }
                if spec.required.contains(f) {
                    return Err(WriteError::Invalid(format!("field '{f}' is required")));
                }
            }
            values.push(v);
        }
        let key_index = spec
            .fields
            .iter()
            .position(|(f, _)| *f == spec.key)
            .unwrap_or(0);
        let key = key_text(&values[key_index]);
        let changes = Json::Object(map).to_string();
        self.write(spec, by, "create", &key, &changes, |tx, table| {
            if let Some(earlier) = repeated(tx, spec, by, "create", &key, None)? {
                return Ok(Step::Repeated(earlier));
            }
            let rows: i64 = tx.query_row(
                "SELECT rows FROM _tf_entities WHERE name = ?1",
                [&spec.name],
                |r| r.get(0),
            )?;
            if u64::try_from(rows).unwrap_or(0) >= spec.max_rows {
                return Ok(Step::Refused(WriteError::Full {
                    entity: spec.name.clone(),
                    max: spec.max_rows,
                }));
            }
            let placeholders = vec!["?"; values.len()].join(", ");
            let cols: Vec<&str> = spec.fields.iter().map(|(c, _)| c.as_str()).collect();
            let inserted = tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO {table} ({}) VALUES ({placeholders})",
                    page::column_list(&cols)
                ),
                rusqlite::params_from_iter(values.iter()),
            )?;
            if inserted == 0 {
                return Ok(Step::Refused(WriteError::Exists {
                    entity: spec.name.clone(),
                    key: quoted(&key),
                }));
            }
            Ok(Step::Wrote {
                before: None,
                rows_added: 1,
            })
        })
    }

    /// Change the fields in the JSON object `changes` of the item with key
    /// `id` (`null` clears a field); see the module docs for repeats.
    pub fn update_item(
        &self,
        spec: &WritableEntity,
        id: &str,
        changes: &str,
        by: WriteBy<'_>,
    ) -> Result<Written, WriteError> {
        let map = parse_object(spec, changes)?;
        let key_v = key_value(spec, id)?;
        let mut sets = Vec::new();
        let mut values = Vec::new();
        for (f, v) in &map {
            let t = spec.field(f).unwrap_or(ColumnType::String);
            let value = to_value(f, t, v)?;
            if *f == spec.key {
                if key_text(&value) != key_text(&key_v) {
                    return Err(WriteError::Invalid(format!(
                        "field '{f}' is the key and cannot be changed"
                    )));
                }
                continue;
            }
            if matches!(value, Value::Null) && spec.required.contains(f) {
                return Err(WriteError::Invalid(format!(
                    "field '{f}' is required and cannot be cleared"
                )));
            }
            sets.push(format!("\"{f}\" = ?"));
            values.push(value);
        }
        if sets.is_empty() {
            return Err(WriteError::Invalid(
                "the changes name no field to change".into(),
            ));
        }
        let key = key_text(&key_v);
        let changes = Json::Object(map).to_string();
        self.write(spec, by, "update", &key, &changes, |tx, table| {
            if let Some(earlier) = repeated(tx, spec, by, "update", &key, Some(&changes))? {
                return Ok(Step::Repeated(earlier));
            }
            let Some(before) = read_item(tx, spec, &key_v)? else {
                return Ok(Step::Refused(WriteError::NotFound {
                    entity: spec.name.clone(),
                    key: quoted(&key),
                }));
            };
            values.push(key_v.clone());
            tx.execute(
                &format!(
                    "UPDATE {table} SET {} WHERE \"{}\" = ?",
                    sets.join(", "),
                    spec.key
                ),
                rusqlite::params_from_iter(values.iter()),
            )?;
            Ok(Step::Wrote {
                before: Some(before),
                rows_added: 0,
            })
        })
    }

    /// One write in one durable transaction: `step` checks and writes, then
    /// the item is read back and the write logged.
    fn write(
        &self,
        spec: &WritableEntity,
        by: WriteBy<'_>,
        op: &str,
        key: &str,
        changes: &str,
        step: impl FnOnce(&rusqlite::Transaction<'_>, &str) -> rusqlite::Result<Step>,
    ) -> Result<Written, WriteError> {
        let mut s = self.session();
        let tx = s.durable_transaction()?;
        let sql = |e| {
            WriteError::Store(StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })
        };
        let registered = tx
            .query_row(
                "SELECT 1 FROM _tf_writable WHERE name = ?1",
                [&spec.name],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql)?;
        if registered.is_none() {
            return Err(WriteError::NotWritable(spec.name.clone()));
        }
        let table = table_name(&spec.name);
        let (before, rows_added) = match step(&tx, &table).map_err(sql)? {
            Step::Repeated(w) => return Ok(w),
            Step::Refused(e) => return Err(e),
            Step::Wrote { before, rows_added } => (before, rows_added),
        };
        let key_v = key_value(spec, key)?;
        let after = read_item(&tx, spec, &key_v)
            .map_err(sql)?
            .unwrap_or(Json::Null);
        tx.execute(
            "UPDATE _tf_entities SET rows = rows + ?2, generation = generation + 1, updated_at = ?3
             WHERE name = ?1",
            params![spec.name, rows_added, crate::event::now_rfc3339()],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO _tf_writes (event_id, plugin, attempt, entity, op, item_key, changes, before, after, at_ms, run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                by.event_id,
                by.plugin,
                by.attempt,
                spec.name,
                op,
                key,
                changes,
                before.as_ref().map(Json::to_string),
                after.to_string(),
                crate::journal::now_ms(),
                by.run
            ],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        drop(s);
        self.forget(&spec.name);
        Ok(Written {
            item: after,
            before,
            key: key.to_owned(),
            repeated: false,
        })
    }
}

/// What a write's step did.
enum Step {
    Wrote {
        before: Option<Json>,
        rows_added: i64,
    },
    Repeated(Written),
    Refused(WriteError),
}

/// The same write made by an earlier attempt of this run, if any (for an
/// update, with the same changes).
fn repeated(
    tx: &rusqlite::Transaction<'_>,
    spec: &WritableEntity,
    by: WriteBy<'_>,
    op: &str,
    key: &str,
    changes: Option<&str>,
) -> rusqlite::Result<Option<Written>> {
    let row: Option<(Option<String>, String)> = tx
        .query_row(
            "SELECT before, after FROM _tf_writes
             WHERE event_id = ?1 AND plugin = ?2 AND entity = ?3 AND item_key = ?4 AND op = ?5
               AND attempt <> ?6 AND (?7 IS NULL OR changes = ?7)
             ORDER BY seq LIMIT 1",
            params![
                by.event_id,
                by.plugin,
                spec.name,
                key,
                op,
                by.attempt,
                changes
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(before, after)| Written {
        item: serde_json::from_str(&after).unwrap_or(Json::Null),
        before: before.and_then(|b| serde_json::from_str(&b).ok()),
        key: key.to_owned(),
        repeated: true,
    }))
}

fn read_item(
    tx: &rusqlite::Transaction<'_>,
    spec: &WritableEntity,
    key: &Value,
) -> rusqlite::Result<Option<Json>> {
    let cols: Vec<&str> = spec.fields.iter().map(|(c, _)| c.as_str()).collect();
    tx.query_row(
        &format!(
            "SELECT {} FROM {} WHERE \"{}\" = ?1",
            page::column_list(&cols),
            table_name(&spec.name),
            spec.key
        ),
        [key],
        |r| page::row_to_json(r, &spec.fields, 0),
    )
    .optional()
}

/// One write of a run, as `runs show` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WriteRecord {
    pub entity: String,
    /// `create` or `update`.
    pub op: String,
    pub key: String,
    pub before: Option<Json>,
    pub after: Json,
    pub at_ms: i64,
    /// The run whose attempt wrote it.
    pub run: Option<i64>,
}

/// The writes of (event, plugin), oldest first; at most `limit`.
pub fn writes_of(
    conn: &rusqlite::Connection,
    event_id: &str,
    plugin: &str,
    limit: u32,
) -> rusqlite::Result<Vec<WriteRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entity, op, item_key, before, after, at_ms, run FROM _tf_writes
         WHERE event_id = ?1 AND plugin = ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![event_id, plugin, limit], |r| {
        let before: Option<String> = r.get(3)?;
        let after: String = r.get(4)?;
        Ok(WriteRecord {
            entity: r.get(0)?,
            op: r.get(1)?,
            key: r.get(2)?,
            before: before.and_then(|b| serde_json::from_str(&b).ok()),
            after: serde_json::from_str(&after).unwrap_or(Json::Null),
            at_ms: r.get(5)?,
            run: r.get(6)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PageLimits;

    fn spec() -> WritableEntity {
        WritableEntity {
            name: "FollowUp".into(),
            key: "Id".into(),
            fields: vec![
                ("Id".into(), ColumnType::String),
                ("CustomerId".into(), ColumnType::String),
                ("Score".into(), ColumnType::Decimal),
                ("Due".into(), ColumnType::DateTime),
                ("Done".into(), ColumnType::Boolean),
            ],
            required: vec!["CustomerId".into()],
            writable_by: vec!["p".into()],
            max_rows: 3,
        }
    }

    fn by(attempt: &str) -> WriteBy<'_> {
        WriteBy {
            plugin: "p",
            event_id: "e1",
            attempt,
            run: Some(7),
        }
    }

    fn store() -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        db.declare_writable(&[spec()]).unwrap();
        (dir, db)
    }

    fn invalid(r: Result<Written, WriteError>) -> String {
        match r {
            Err(WriteError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn creates_validate_types_and_name_the_field() {
        let (_d, db) = store();
        let s = spec();
        let w = db
            .create_item(&s, r#"{"Id":"f1","CustomerId":"c1","Score":0.5,"Due":"2026-05-01T09:00:00+02:00","Done":false}"#, by("a"))
            .unwrap();
        assert_eq!(w.item["Due"], "2026-05-01T07:00:00Z");
        assert_eq!(w.item["Done"], false);
        assert!(!w.repeated);
        assert_eq!(
            invalid(db.create_item(
                &s,
                r#"{"Id":"f2","CustomerId":"c1","Score":"high"}"#,
                by("a")
            )),
            "field 'Score': expected a decimal number, got 'high'"
        );
        assert_eq!(
            invalid(db.create_item(&s, r#"{"Id":"f2","Nope":1,"CustomerId":"c"}"#, by("a"))),
            "field 'Nope' is not a field of entity 'FollowUp' (fields: Id, CustomerId, Score, Due, Done)"
        );
        assert_eq!(
            invalid(db.create_item(&s, r#"{"CustomerId":"c"}"#, by("a"))),
            "field 'Id' (the key) is required"
        );
        assert_eq!(
            invalid(db.create_item(&s, r#"{"Id":"f3"}"#, by("a"))),
            "field 'CustomerId' is required"
        );
        assert_eq!(
            invalid(db.create_item(&s, r#"[1]"#, by("a"))),
            "the item must be a JSON object of field names and values"
        );
        assert_eq!(
            invalid(db.create_item(&s, r#"{"Id":"f4","CustomerId":{"a":1}}"#, by("a"))),
            "field 'CustomerId': expected a string, got an object"
        );
        let big = format!(r#"{{"Id":"{}"}}"#, "x".repeat(MAX_ITEM_BYTES));
        assert!(invalid(db.create_item(&s, &big, by("a"))).contains("at most 65536"));
        assert!(matches!(
            db.create_item(&s, r#"{"Id":"f1","CustomerId":"c1"}"#, by("a")),
            Err(WriteError::Exists { .. })
        ));
        assert_eq!(db.meta("FollowUp").unwrap().rows, 1);
    }

    #[test]
    fn a_later_attempt_repeating_a_write_gets_the_first_result() {
        let (_d, db) = store();
        let s = spec();
        let first = db
            .create_item(&s, r#"{"Id":"f1","CustomerId":"c1"}"#, by("a"))
            .unwrap();
        let again = db
            .create_item(&s, r#"{"Id":"f1","CustomerId":"c1"}"#, by("b"))
            .unwrap();
        assert!(again.repeated);
        assert_eq!(again.item, first.item);
        let u = db.update_item(&s, "f1", r#"{"Score":2}"#, by("a")).unwrap();
        assert_eq!(u.before.unwrap()["Score"], Json::Null);
        assert_eq!(u.item["Score"], 2.0);
        // Someone else changes it; the repeat by a later attempt does not
        // write again.
        db.update_item(
            &s,
            "f1",
            r#"{"Score":3}"#,
            WriteBy {
                plugin: "p",
                event_id: "e2",
                attempt: "z",
                run: None,
            },
        )
        .unwrap();
        let repeat = db.update_item(&s, "f1", r#"{"Score":2}"#, by("b")).unwrap();
        assert!(repeat.repeated);
        assert_eq!(
            db.get_item("FollowUp", "f1").unwrap().unwrap()["Score"],
            3.0
        );
        let log = writes_of(&db.session(), "e1", "p", 100).unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(
            (log[0].op.as_str(), log[1].op.as_str()),
            ("create", "update")
        );
        assert_eq!(log[0].run, Some(7));
        assert_eq!(
            invalid(db.update_item(&s, "f1", r#"{"Id":"other"}"#, by("a"))),
            "field 'Id' is the key and cannot be changed"
        );
        assert_eq!(
            invalid(db.update_item(&s, "f1", r#"{"CustomerId":null}"#, by("a"))),
            "field 'CustomerId' is required and cannot be cleared"
        );
        assert!(matches!(
            db.update_item(&s, "nope", r#"{"Score":1}"#, by("a")),
            Err(WriteError::NotFound { .. })
        ));
    }

    #[test]
    fn the_row_cap_holds() {
        let (_d, db) = store();
        let s = spec();
        for i in 0..3 {
            db.create_item(&s, &format!(r#"{{"Id":"f{i}","CustomerId":"c"}}"#), by("a"))
                .unwrap();
        }
        assert_eq!(
            db.create_item(&s, r#"{"Id":"f9","CustomerId":"c"}"#, by("a"))
                .unwrap_err()
                .to_string(),
            "entity 'FollowUp' holds its maximum of 3 items"
        );
    }

    #[test]
    fn declarations_add_fields_and_refuse_what_they_cannot_apply() {
        let (_d, db) = store();
        let generation = db.meta("FollowUp").unwrap().generation;
        db.declare_writable(&[spec()]).unwrap();
        assert_eq!(db.meta("FollowUp").unwrap().generation, generation);
        let mut s = spec();
        s.fields.push(("Note".into(), ColumnType::String));
        db.declare_writable(&[s.clone()]).unwrap();
        db.create_item(&s, r#"{"Id":"f1","CustomerId":"c","Note":"n"}"#, by("a"))
            .unwrap();
        s.fields.retain(|(f, _)| f != "Note");
        assert_eq!(
            db.declare_writable(&[s.clone()]).unwrap_err().to_string(),
            "entity 'FollowUp': field 'Note' is in the store but no longer declared; fields cannot be removed"
        );
        db.replace_entity(
            "Customer",
            "Id",
            &[("Id".into(), ColumnType::String)],
            Vec::new(),
        )
        .unwrap();
        let mut c = spec();
        c.name = "Customer".into();
        assert!(db
            .declare_writable(&[c.clone()])
            .unwrap_err()
            .to_string()
            .contains("may not write"));
        assert!(matches!(
            db.create_item(&c, r#"{"Id":"x","CustomerId":"c"}"#, by("a")),
            Err(WriteError::NotWritable(_))
        ));
    }
}
