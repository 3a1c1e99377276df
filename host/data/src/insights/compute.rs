//! Segments and measures over the store, written back as entities:
//! `Segment` (one row per segment), `SegmentMember` (who is in which),
//! `Measure` (one value per measure) and `MeasureValue` (per dimension value).

use std::collections::HashSet;

use rusqlite::types::Value;
use rusqlite::OptionalExtension;

use super::fingerprint;
use super::unify::CUSTOMER;
use super::workspace::{Aggregate, MeasureSpec, SegmentSpec, Workspace, CUSTOMER_ID};
use crate::event::now_rfc3339;
use crate::odata::{compile_filter, ColumnType, QueryOptionError};
use crate::store::{pushing, EntityDb, Publication, RowSink, StoreError, Table};

/// Segment rows.
pub const SEGMENT: &str = "Segment";
/// Segment membership rows.
pub const SEGMENT_MEMBER: &str = "SegmentMember";
/// Measure rows.
pub const MEASURE: &str = "Measure";
/// Per-dimension measure rows.
pub const MEASURE_VALUE: &str = "MeasureValue";

/// Why a segment or measure could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error(transparent)]
    EntityDb(#[from] StoreError),
    #[error("segment '{segment}': {error}")]
    SegmentFilter {
        segment: String,
        error: QueryOptionError,
    },
    #[error("measure '{measure}': {error}")]
    MeasureFilter {
        measure: String,
        error: QueryOptionError,
    },
    #[error("measure '{measure}' of entity '{entity}': {source}")]
    MeasureQuery {
        measure: String,
        entity: String,
        source: Box<StoreError>,
    },
    #[error("measure '{measure}': entity '{entity}' has no data yet")]
    NoData { measure: String, entity: String },
    #[error("measure '{measure}': entity '{entity}' has no field '{field}' (fields: {fields})")]
    UnknownField {
        measure: String,
        entity: String,
        field: String,
        fields: String,
    },
    #[error(
        "measure '{measure}': {aggregate} needs a numeric field, but '{field}' is {kind}{hint}"
    )]
    NotNumeric {
        measure: String,
        aggregate: &'static str,
        field: String,
        kind: ColumnType,
        /// For text: how a file's numbers written otherwise are read.
        hint: &'static str,
    },
}

/// One segment's size.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSize {
    pub name: String,
    pub members: u64,
}

/// One measure's value (`None` when there was nothing to aggregate).
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureValue {
    pub name: String,
    pub value: Option<f64>,
    /// Values per dimension value, for measures with a dimension.
    pub by_dimension: Vec<(String, Option<f64>)>,
}

/// Compute every segment from the newest `Customer`, staging `SegmentMember`
/// and `Segment` in `publication`.
pub fn compute_segments(
    ws: &Workspace,
    publication: &mut Publication<'_>,
) -> Result<Vec<SegmentSize>, ComputeError> {
    let customer = publication.meta(CUSTOMER)?;
    let customer_table = publication.table(CUSTOMER);
    let mut compiled = Vec::with_capacity(ws.segments.len());
    for s in &ws.segments {
        let (cond, params) = compile_filter(&s.filter, &customer.schema).map_err(|error| {
            ComputeError::SegmentFilter {
                segment: s.name.clone(),
                error,
            }
        })?;
        compiled.push((s, cond, params));
    }
    let member_columns = [
        ("MemberId".to_owned(), ColumnType::String),
        ("Segment".to_owned(), ColumnType::String),
        (CUSTOMER_ID.to_owned(), ColumnType::String),
    ];
    let sizes = match unchanged_segments(ws, publication)? {
        Some(previous) => patch_members(publication, &compiled, &previous)?,
        None => {
            let mut counts = Vec::new();
            publication.replace_entity_with(
                SEGMENT_MEMBER,
                "MemberId",
                &member_columns,
                |sink| {
                    counts = add_members(sink, &compiled, &customer_table)?;
                    Ok::<(), ComputeError>(())
                },
            )?;
            compiled
                .iter()
                .zip(counts)
                .map(|((s, _, _), members)| SegmentSize {
                    name: s.name.clone(),
                    members,
                })
                .collect()
        }
    };
    let now = now_rfc3339();
    let segment_columns = [
        ("Name".to_owned(), ColumnType::String),
        ("Filter".to_owned(), ColumnType::String),
        ("Members".to_owned(), ColumnType::Integer),
        ("UpdatedAt".to_owned(), ColumnType::DateTime),
    ];
    let rows = ws
        .segments
        .iter()
        .zip(&sizes)
        .map(|(s, n): (&SegmentSpec, &SegmentSize)| {
            Ok(vec![
                Value::Text(s.name.clone()),
                Value::Text(s.filter_text.clone()),
                Value::Integer(i64::try_from(n.members).unwrap_or(i64::MAX)),
                Value::Text(now.clone()),
            ])
        });
    publication.replace_entity_with(SEGMENT, "Name", &segment_columns, pushing(rows))?;
    Ok(sizes)
}

/// A compiled segment: its spec, SQL condition and parameters.
type Compiled<'a> = (&'a SegmentSpec, String, Vec<Value>);

/// When only some customers were replaced (an incremental unification's
/// patch) and every segment is defined as when its members were last
/// written: each segment's previous member count.
fn unchanged_segments(
    ws: &Workspace,
    publication: &Publication<'_>,
) -> Result<Option<Vec<u64>>, ComputeError> {
    if publication.patch_tables(CUSTOMER).is_none() {
        return Ok(None);
    }
    let store = publication.store();
    if store.meta(SEGMENT_MEMBER).is_err() || store.meta(SEGMENT).is_err() {
        return Ok(None);
    }
    let live: Vec<(String, String, i64)> = {
        let conn = store.session();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT \"Name\", \"Filter\", \"Members\" FROM {}",
                Table::of(SEGMENT)
            ))
            .map_err(|e| conn.error(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        match rows {
            Ok(rows) => rows,
            Err(_) => return Ok(None),
        }
    };
    if live.len() != ws.segments.len() {
        return Ok(None);
    }
    let mut previous = Vec::with_capacity(ws.segments.len());
    for s in &ws.segments {
        match live
            .iter()
            .find(|(n, f, _)| *n == s.name && *f == s.filter_text)
        {
            Some((_, _, n)) => previous.push(u64::try_from(*n).unwrap_or(0)),
            None => return Ok(None),
        }
    }
    Ok(Some(previous))
}

/// Add every segment's members among the customers of `table`; how many
/// each got.
fn add_members(
    sink: &mut RowSink<'_>,
    compiled: &[Compiled<'_>],
    table: &str,
) -> Result<Vec<u64>, StoreError> {
    let mut counts = Vec::with_capacity(compiled.len());
    for (s, cond, params) in compiled {
        let before = sink.count();
        let mut all = vec![Value::Text(s.name.clone()), Value::Text(s.name.clone())];
        all.extend(params.iter().cloned());
        sink.insert_select(
            &format!(
                "SELECT ? || '/' || \"{CUSTOMER_ID}\", ?, \"{CUSTOMER_ID}\" FROM {table} WHERE {cond}"
            ),
            &all,
        )?;
        counts.push(sink.count() - before);
    }
    Ok(counts)
}

/// The memberships (segment index, customer id) of the customers `from`
/// (a SQL `FROM …` clause with its `WHERE`, reading `CustomerId` and the
/// columns the conditions name): each segment's condition evaluated on
/// their rows. On the live rows of the customers replaced, this names the
/// live memberships: they were written from those very rows, in the
/// publication that made them live (segments whose definition changed are
/// not patched), so a scan of the members would find the same.
fn memberships_of(
    store: &EntityDb,
    compiled: &[Compiled<'_>],
    from: &str,
) -> Result<Vec<(usize, String)>, StoreError> {
    let conn = store.session();
    let mut out = Vec::new();
    for (g, group) in compiled.chunks(SEGMENTS_PER_QUERY).enumerate() {
        let mut params: Vec<Value> = Vec::new();
        let mut meets = String::new();
        for (_, cond, p) in group {
            meets.push_str(&format!(", CASE WHEN ({cond}) THEN 1 ELSE 0 END"));
            params.extend(p.iter().cloned());
        }
        let sql = format!("SELECT \"{CUSTOMER_ID}\"{meets} {from}");
        let mut stmt = conn.prepare(&sql).map_err(|e| conn.error(e))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(&params))
            .map_err(|e| conn.error(e))?;
        while let Some(r) = rows.next().map_err(|e| conn.error(e))? {
            let Some(id) = r.get::<_, Option<String>>(0).map_err(|e| conn.error(e))? else {
                continue;
            };
            for i in 0..group.len() {
                if r.get::<_, i64>(i + 1).map_err(|e| conn.error(e))? == 1 {
                    out.push((g * SEGMENTS_PER_QUERY + i, id.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Segments whose conditions one query of [`memberships_of`] evaluates:
/// their parameters stay under SQLite's limit of 32,766 (a filter has at
/// most [`crate::odata::MAX_FILTER_TERMS`] terms of at most two each).
const SEGMENTS_PER_QUERY: usize = 32;

/// Patch `SegmentMember`: drop the memberships of the replaced customers and
/// add those of the customers written again; each segment's new size.
fn patch_members(
    publication: &mut Publication<'_>,
    compiled: &[Compiled<'_>],
    previous: &[u64],
) -> Result<Vec<SegmentSize>, ComputeError> {
    let Some((added, replaced)) = publication.patch_tables(CUSTOMER) else {
        return Ok(Vec::new());
    };
    let members = Table::of(SEGMENT_MEMBER);
    let store = publication.store();
    let live = format!(
        "FROM {} WHERE \"{CUSTOMER_ID}\" IN (SELECT k FROM {replaced})",
        Table::of(CUSTOMER)
    );
    let before: HashSet<(usize, String)> = memberships_of(store, compiled, &live)?
        .into_iter()
        .collect();
    let after: HashSet<(usize, String)> =
        memberships_of(store, compiled, &format!("FROM {added}"))?
            .into_iter()
            .collect();
    // A membership is its key (segment/customer): only those that come or
    // go are staged (none is put back as it was, which the patch would
    // otherwise look up in the live rows to drop).
    let key = |(si, id): &(usize, String)| {
        let name = compiled.get(*si).map_or("", |(s, _, _)| s.name.as_str());
        (name.to_owned(), format!("{name}/{id}"))
    };
    let mut deleted: Vec<String> = before.difference(&after).map(|m| key(m).1).collect();
    deleted.sort_unstable();
    let mut came: Vec<(String, String, String)> = after
        .difference(&before)
        .map(|m| {
            let (name, member) = key(m);
            (member, name, m.1.clone())
        })
        .collect();
    came.sort_unstable();
    let rows = came.into_iter().map(|(member, name, id)| {
        Ok::<_, StoreError>(vec![
            Value::Text(member),
            Value::Text(name),
            Value::Text(id),
        ])
    });
    publication.patch_entity_with(
        SEGMENT_MEMBER,
        deleted.into_iter().map(Value::Text),
        pushing(rows),
    )?;
    // Memberships the patch adds and removes, per segment, counted in the
    // patch rather than as pushed: those that would come back unchanged
    // are dropped from both sides.
    let (adds, dropped) = publication
        .patch_tables(SEGMENT_MEMBER)
        .ok_or_else(|| StoreError::UnknownEntity(SEGMENT_MEMBER.to_owned()))?;
    let per_segment = |sql: String| -> Result<Vec<(String, i64)>, ComputeError> {
        let conn = publication.store().session();
        let mut stmt = conn.prepare(&sql).map_err(|e| conn.error(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| conn.error(e))?;
        Ok(rows)
    };
    let added = per_segment(format!(
        "SELECT \"Segment\", count(*) FROM {adds} GROUP BY 1"
    ))?;
    let removed = per_segment(format!(
        "SELECT \"Segment\", count(*) FROM {members}
         WHERE \"MemberId\" IN (SELECT k FROM {dropped}) GROUP BY 1"
    ))?;
    let count = |of: &[(String, i64)], name: &str| {
        of.iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
    };
    Ok(compiled
        .iter()
        .zip(previous)
        .map(|((s, _, _), &before)| SegmentSize {
            name: s.name.clone(),
            members: (before + count(&added, &s.name)).saturating_sub(count(&removed, &s.name)),
        })
        .collect())
}

fn aggregate_sql(m: &MeasureSpec) -> String {
    let f = m.field.as_ref().map(|f| format!("\"{f}\""));
    match (m.aggregate, f) {
        (Aggregate::Count, None) => "COUNT(*)".into(),
        (Aggregate::Count, Some(f)) => format!("COUNT({f})"),
        (Aggregate::DistinctCount, Some(f)) => format!("COUNT(DISTINCT {f})"),
        (Aggregate::Sum, Some(f)) => format!("TOTAL({f})"),
        (Aggregate::Average, Some(f)) => format!("AVG({f})"),
        (Aggregate::Min, Some(f)) => format!("MIN({f})"),
        (Aggregate::Max, Some(f)) => format!("MAX({f})"),
        // Validation requires a field for every aggregate but count.
        (_, None) => "COUNT(*)".into(),
    }
}

fn measure_one(p: &Publication<'_>, m: &MeasureSpec) -> Result<MeasureValue, ComputeError> {
    let store = p.store();
    let meta = p.meta(&m.entity).map_err(|e| match e {
        StoreError::UnknownEntity(_) => ComputeError::NoData {
            measure: m.name.clone(),
            entity: m.entity.clone(),
        },
        e => e.into(),
    })?;
    let unknown = |field: &str| ComputeError::UnknownField {
        measure: m.name.clone(),
        entity: m.entity.clone(),
        field: field.to_owned(),
        fields: meta
            .schema
            .columns
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    if let Some(f) = &m.field {
        let t = meta.schema.get(f).ok_or_else(|| unknown(f))?;
        let numeric_only = matches!(
            m.aggregate,
            Aggregate::Sum | Aggregate::Average | Aggregate::Min | Aggregate::Max
        );
        if numeric_only && !matches!(t, ColumnType::Integer | ColumnType::Decimal) {
            return Err(ComputeError::NotNumeric {
                measure: m.name.clone(),
                aggregate: m.aggregate.as_str(),
                field: f.clone(),
                kind: t,
                hint: match t {
                    ColumnType::String => " (if a file writes its numbers as 1.234,50 or 1,234.50, set its source's decimal_separator and thousands_separator)",
                    _ => "",
                },
            });
        }
    }
    if let Some(d) = &m.dimension {
        meta.schema.get(d).ok_or_else(|| unknown(d))?;
    }
    // A count of every row is the entity's row count, which every write
    // keeps (a patch's too): no scan.
    if m.aggregate == Aggregate::Count
        && m.field.is_none()
        && m.filter.is_none()
        && m.dimension.is_none()
    {
        return Ok(MeasureValue {
            name: m.name.clone(),
            value: Some(meta.rows as f64),
            by_dimension: Vec::new(),
        });
    }
    let (cond, params) = match &m.filter {
        Some((_, expr)) => {
            compile_filter(expr, &meta.schema).map_err(|error| ComputeError::MeasureFilter {
                measure: m.name.clone(),
                error,
            })?
        }
        None => ("1".to_owned(), Vec::new()),
    };
    let agg = aggregate_sql(m);
    let table = p.table(&m.entity);
    let conn = store.session();
    let e = |source| ComputeError::MeasureQuery {
        measure: m.name.clone(),
        entity: m.entity.clone(),
        source: Box::new(StoreError::Sqlite {
            path: store.path().to_owned(),
            source,
        }),
    };
    let number = |v: Value| match v {
        Value::Integer(n) => Some(n as f64),
        Value::Real(x) => Some(x),
        _ => None,
    };
    match &m.dimension {
        None => {
            let v: Value = conn
                .query_row(
                    &format!("SELECT {agg} FROM {table} WHERE {cond}"),
                    rusqlite::params_from_iter(params.iter()),
                    |r| r.get(0),
                )
                .map_err(e)?;
            Ok(MeasureValue {
                name: m.name.clone(),
                value: number(v),
                by_dimension: Vec::new(),
            })
        }
        Some(d) => {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT CAST(\"{d}\" AS TEXT), {agg} FROM {table} WHERE {cond} GROUP BY 1 ORDER BY 1"
                ))
                .map_err(e)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get::<_, Value>(1)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(e)?;
            Ok(MeasureValue {
                name: m.name.clone(),
                value: None,
                by_dimension: rows.into_iter().map(|(k, v)| (k, number(v))).collect(),
            })
        }
    }
}

/// The input of `m` as it will be once `publication` is published, when
/// its entity is not staged in it (a staged one is being written now).
fn measure_input(p: &Publication<'_>, m: &MeasureSpec) -> Result<Option<u64>, StoreError> {
    if p.entities().contains(&m.entity.as_str()) {
        return Ok(None);
    }
    match p.store().meta(&m.entity) {
        Ok(meta) => Ok(Some(fingerprint::measure_input(m, meta.generation))),
        Err(StoreError::UnknownEntity(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value `m` was last published with, when it was computed from
/// `input` (the same definition over the same data).
fn kept_value(
    store: &EntityDb,
    m: &MeasureSpec,
    input: u64,
) -> Result<Option<MeasureValue>, StoreError> {
    if store.counter(&fingerprint::measure_counter(&m.name))? != Some(input) {
        return Ok(None);
    }
    let conn = store.session();
    let e = |e| conn.error(e);
    let value: Option<Option<f64>> = conn
        .query_row(
            &format!(
                "SELECT \"Value\" FROM {} WHERE \"Name\" = ?1",
                Table::of(MEASURE)
            ),
            [&m.name],
            |r| r.get(0),
        )
        .optional()
        .map_err(e)?;
    let Some(value) = value else {
        return Ok(None);
    };
    let by_dimension = match m.dimension {
        None => Vec::new(),
        Some(_) => {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT \"Dimension\", \"Value\" FROM {} WHERE \"Measure\" = ?1 ORDER BY 1",
                    Table::of(MEASURE_VALUE)
                ))
                .map_err(e)?;
            let rows = stmt
                .query_map([&m.name], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get(1)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(e)?;
            rows
        }
    };
    Ok(Some(MeasureValue {
        name: m.name.clone(),
        value,
        by_dimension,
    }))
}

/// Compute every measure over the newest entities, staging `Measure` and
/// `MeasureValue` in `publication`. A measure whose definition and entity
/// are as when it was last published keeps its value.
pub fn compute_measures(
    ws: &Workspace,
    publication: &mut Publication<'_>,
) -> Result<Vec<MeasureValue>, ComputeError> {
    let mut values = Vec::with_capacity(ws.measures.len());
    let mut inputs = Vec::with_capacity(ws.measures.len());
    for m in &ws.measures {
        let input = measure_input(publication, m)?;
        let kept = match input {
            Some(input) => kept_value(publication.store(), m, input)?,
            None => None,
        };
        values.push(match kept {
            Some(v) => v,
            None => measure_one(publication, m)?,
        });
        inputs.push(input.unwrap_or(0));
    }
    for (m, input) in ws.measures.iter().zip(inputs) {
        publication.set_counter(&fingerprint::measure_counter(&m.name), input);
    }
    let now = now_rfc3339();
    let real = |v: Option<f64>| v.map_or(Value::Null, Value::Real);
    let measure_columns = [
        ("Name".to_owned(), ColumnType::String),
        ("Value".to_owned(), ColumnType::Decimal),
        ("Aggregate".to_owned(), ColumnType::String),
        ("Entity".to_owned(), ColumnType::String),
        ("Field".to_owned(), ColumnType::String),
        ("Dimension".to_owned(), ColumnType::String),
        ("UpdatedAt".to_owned(), ColumnType::DateTime),
    ];
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
    let rows = ws.measures.iter().zip(&values).map(|(m, v)| {
        Ok(vec![
            Value::Text(m.name.clone()),
            real(v.value),
            Value::Text(m.aggregate.as_str().to_owned()),
            Value::Text(m.entity.clone()),
            text(&m.field),
            text(&m.dimension),
            Value::Text(now.clone()),
        ])
    });
    publication.replace_entity_with(MEASURE, "Name", &measure_columns, pushing(rows))?;
    let value_columns = [
        ("Id".to_owned(), ColumnType::String),
        ("Measure".to_owned(), ColumnType::String),
        ("Dimension".to_owned(), ColumnType::String),
        ("Value".to_owned(), ColumnType::Decimal),
    ];
    let rows = values.iter().flat_map(|v| {
        v.by_dimension.iter().map(move |(d, x)| {
            Ok(vec![
                Value::Text(format!("{}/{d}", v.name)),
                Value::Text(v.name.clone()),
                Value::Text(d.clone()),
                real(*x),
            ])
        })
    });
    publication.replace_entity_with(MEASURE_VALUE, "Id", &value_columns, pushing(rows))?;
    Ok(values)
}
