//! The incremental read of a PostgreSQL source with `updated_at`.
//!
//! Each import notes what it saw beside the store (a [`Mark`]): the row
//! count, the greatest `updated_at` and the sum of the keys' hashes, with
//! the entity's generation it produced. When the table changed since, the
//! next refresh reads, in the same snapshot as its figures, only the rows
//! whose `updated_at` is at or past that greatest value, in key order, and
//! changes the stored rows in place ([`EntityDb::apply_delta`]). When the
//! count says rows were deleted, or a new key sorts before a stored one,
//! every key is read, in key order: the stored rows missing from it are
//! deleted, and each new row is put between the stored rows around its key
//! (a full read stores rows in key order, spaced to leave room, and
//! unification breaks ties within a source by row order). The store keeps
//! the rows in that order, so the walk needs no collation. An integer key is
//! the rowid, always in order; a uuid's text sorts as the uuid, so new uuids
//! are placed by the store's key index, without the walk. Rows deleted from
//! a large table with a fixed-width key (integers, uuids, dates) are found
//! by the key ranges that lost rows, without the walk either (`buckets`).
//! A row marked deleted (`deleted`) among the changed rows is deleted by its
//! key, and counts as explained. The result must be the one a full read
//! gives, so the read is given up, rolled back, for a full read when:
//! - the count and the keys do not add up: rows were added with an older
//!   `updated_at` (a key read is not where the store has it, or the keys'
//!   hash sum is off);
//! - new keys sort between two stored rows with no room left between them
//!   (16 halvings of the spacing, or rows stored before it);
//! - a row is malformed, or the last import skipped some (the tolerance
//!   counts over every row);
//! - more than [`MAX_DELTA_ROWS`] rows, or half the table, changed or went;
//! - the settings, the columns or the stored entity changed since, or the
//!   key or `updated_at` has a type whose text does not compare back.
//!
//! A row changed without touching `updated_at` (or committed late, with an
//! `updated_at` older than the last import's greatest) is seen at the next
//! full read: forced, or due every `full_read_every` ([`full_read_due`]).

use std::time::Duration;

mod buckets;
mod keys;

use buckets::MIN_BUCKETED_ROWS;
use keys::KeyStream;

use rusqlite::types::Value;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{ToSql, Type};

use super::{
    fingerprint, ident, natural_type, Batches, Col, PostgresSource, Session, PROGRESS_EVERY_ROWS,
};
use crate::insights::source::{store_failure, Loaded, SourceError};
use crate::insights::workspace::SourceSpec;
use crate::store::{
    Delta, EntityDb, Kept, StoreError, Upserted, MAX_ROW_BYTES, MAX_TRACKED_CHANGES,
};

/// Most rows an incremental read applies; past them (or past half the
/// table) a full read is no slower, and every change stays tracked.
pub const MAX_DELTA_ROWS: u64 = MAX_TRACKED_CHANGES;
/// Below this many rows read, the half-the-table rule does not apply.
const MIN_DELTA_LIMIT: u64 = 1024;

/// Types whose text, as PostgreSQL writes it, casts back to the same value.
const COMPARABLE: [Type; 10] = [
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::NUMERIC,
    Type::DATE,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::VARCHAR,
    Type::UUID,
];

/// What `count(*)`, `max(updated_at)` and the keys' hash sum say now.
pub(super) struct Figures {
    pub total: u64,
    /// `max(updated_at)::text`; `None` for an empty table.
    pub max: Option<String>,
    /// The sum of `hashtext(key::text)`, as text; `None` for an empty table.
    pub keys: Option<String>,
}

/// What an import saw, noted as JSON under [`mark_name`].
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Mark {
    /// The source's settings and server ([`fingerprint::postgres`]).
    settings: u64,
    /// The entity's generation the import left.
    generation: u64,
    total: u64,
    max: Option<String>,
    keys: Option<String>,
    /// When the table was last read in full (seconds since 1970).
    #[serde(default)]
    full_at: u64,
}

impl Mark {
    /// When the table was last read in full.
    pub fn full_at(&self) -> u64 {
        self.full_at
    }

    /// Whether the table and the source look as they did at the import
    /// that noted this, which left the entity at `generation`.
    pub fn unchanged(
        &self,
        spec: &SourceSpec,
        server: &str,
        now: &Figures,
        generation: u64,
    ) -> bool {
        self.settings == settings(spec, server)
            && self.generation == generation
            && self.total == now.total
            && self.max == now.max
            && self.keys == now.keys
    }
}

/// Now, in seconds since 1970 (0 if the clock is before it).
pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the source's last import noted, if anything readable.
pub(super) fn load_mark(store: &EntityDb, spec: &SourceSpec) -> Option<Mark> {
    store
        .note(&mark_name(&spec.name))
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok())
}

/// Why the table must be read in full now, if a full read is due: the last
/// one was `every` or longer ago (`full_read_every`).
pub(super) fn full_read_due(mark: Option<&Mark>, every: Option<Duration>) -> Option<String> {
    let (mark, every) = (mark?, every?);
    let since = Duration::from_secs(now_secs().saturating_sub(mark.full_at));
    (since >= every).then(|| {
        format!(
            "one is due every {} (full_read_every)",
            humantime::format_duration(every)
        )
    })
}

fn mark_name(source: &str) -> String {
    format!("source-mark:{source}")
}

/// The settings part of a mark.
fn settings(spec: &SourceSpec, server: &str) -> u64 {
    fingerprint::postgres(spec, server)
}

/// Note what an import (full or incremental) saw, the [`Mark`] that skips
/// an unchanged table and that the next incremental read starts from, with
/// when the table was last read in full (`full_at`). Not noted (a warning):
/// the next refresh reads in full, which is safe.
pub(super) fn save_mark(
    store: &EntityDb,
    spec: &SourceSpec,
    server: &str,
    figures: &Figures,
    full_at: u64,
) {
    let saved = store.meta(&spec.entity).and_then(|meta| {
        let mark = Mark {
            settings: settings(spec, server),
            generation: meta.generation,
            total: figures.total,
            max: figures.max.clone(),
            keys: figures.keys.clone(),
            full_at,
        };
        let text = serde_json::to_string(&mark).unwrap_or_default();
        store.set_note(&mark_name(&spec.name), &text)
    });
    if let Err(e) = saved {
        tracing::warn!(source = %spec.name, "cannot record what the import saw: {e}");
    }
}

/// What an incremental read needs from the refresh that tries it.
pub(super) struct Inputs<'a, 'rt> {
    pub session: &'a Session<'rt>,
    /// The relation's columns as described.
    pub described: &'a [tokio_postgres::Column],
    pub cols: &'a [Col],
    pub key_index: usize,
    pub server: &'a str,
    pub figures: &'a Figures,
}

/// How an incremental read ended.
pub(super) enum Outcome {
    /// The changed rows are stored.
    Applied(Loaded),
    /// Read in full instead, for the reason given (`None`: nothing worth
    /// saying, such as a first import).
    Full(Option<String>),
}

/// Why an incremental read stopped inside the store's transaction.
enum Stop {
    Full(String),
    Failed(SourceError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Failed(store_failure(e))
    }
}

/// The type to cast a parameter's text to for the column named `name`, when
/// its text compares back.
fn comparable(described: &[tokio_postgres::Column], name: &str) -> Result<&'static str, String> {
    let ty = described
        .iter()
        .find(|c| c.name() == name)
        .map(tokio_postgres::Column::type_);
    match ty.and_then(|t| COMPARABLE.iter().find(|c| *c == t)) {
        Some(t) => Ok(t.name()),
        None => Err(format!(
            "column '{name}' is of type {}: an incremental read compares integers, numerics, text, dates, timestamps and uuids",
            ty.map_or("unknown", Type::name)
        )),
    }
}

impl PostgresSource {
    /// Try an incremental read (see the module docs); on [`Outcome::Full`]
    /// nothing was stored and the caller reads in full.
    pub(super) fn read_delta(
        &self,
        inputs: &Inputs<'_, '_>,
        mark: &Mark,
        store: &EntityDb,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Outcome, SourceError> {
        let spec = &self.spec;
        let Some(updated_at) = &spec.updated_at else {
            return Ok(Outcome::Full(None));
        };
        let full = |why: &str| Ok(Outcome::Full(Some(why.to_owned())));
        let Ok(meta) = store.meta(&spec.entity) else {
            return Ok(Outcome::Full(None));
        };
        let Some(since) = mark.max.as_deref() else {
            return Ok(Outcome::Full(None));
        };
        if mark.settings != settings(spec, inputs.server) {
            return full("its settings or its server changed since the last import");
        }
        if mark.generation != meta.generation {
            return full("its stored rows were replaced since the last import");
        }
        if meta.rows != mark.total {
            // A full read counts them against the tolerance again.
            return full("the last import skipped malformed rows");
        }
        let typed: Vec<(String, _)> = inputs.cols.iter().map(|c| (c.name.clone(), c.ty)).collect();
        if meta.key != spec.key || meta.schema.columns != typed {
            return full("its columns changed since the last import");
        }
        let Some(key_col) = inputs.cols.get(inputs.key_index) else {
            return Ok(Outcome::Full(None));
        };
        let (u_type, k_type) = match (
            comparable(inputs.described, updated_at),
            comparable(inputs.described, &spec.key),
        ) {
            (Ok(u), Ok(k)) => (u, k),
            (Err(why), _) | (_, Err(why)) => return full(&why),
        };
        // A uuid's text sorts as the uuid: byte by byte, lowercase hex.
        let orders_alike = k_type == Type::UUID.name();
        let natural = inputs
            .described
            .iter()
            .find(|c| c.name() == spec.key)
            .map(|c| natural_type(c.type_()).0);
        if natural != Some(key_col.ty) {
            return full("its key is stored as another type than PostgreSQL's");
        }
        let last = match store.last_key(&spec.entity).map_err(store_failure)? {
            None => None,
            Some(Value::Integer(n)) => Some(n.to_string()),
            Some(Value::Text(s)) => Some(s),
            Some(_) => return full("its stored keys are neither numbers nor text"),
        };

        let list: Vec<&str> = inputs.cols.iter().map(|c| c.expr.as_str()).collect();
        let (key, u) = (ident(&spec.key), ident(updated_at));
        let after = match last {
            Some(_) => format!("{key} > $2::text::pg_catalog.{k_type}"),
            None => "true".to_owned(),
        };
        let mut sql = self.select(&format!(
            "{}, hashtext({key}::text)::int8, {after}, {}",
            list.join(", "),
            self.gone(inputs.described)
        ));
        sql.text.push_str(&format!(
            " WHERE {u} >= $1::text::pg_catalog.{u_type} ORDER BY {key}"
        ));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&since];
        if let Some(last) = &last {
            params.push(last);
        }
        let session = inputs.session;
        let client = &session.client;
        let stream = session.run("cannot read its changed rows", Some(&sql), async {
            let statement = client.prepare(&sql.text).await?;
            client
                .query_raw(&statement, params.iter().map(|p| *p as &dyn ToSql))
                .await
        })?;
        let mut rows = Batches {
            session,
            sql: &sql,
            rows: Box::pin(stream),
            ended: false,
        };

        let figures = inputs.figures;
        let limit = (figures.total / 2).clamp(MIN_DELTA_LIMIT, MAX_DELTA_ROWS);
        let n = inputs.cols.len();
        let mut read = 0u64;
        let too_many = || {
            Stop::Full(format!(
                "more than {limit} rows changed since the last import"
            ))
        };
        // How the keys were compared, for the detail.
        let mut compared = String::new();
        let applied = store.apply_delta(&spec.entity, meta.generation, |delta| {
            // The hash sums of the keys added, and of those marked deleted.
            let (mut new_keys, mut gone_keys): (i128, i128) = (0, 0);
            // A new key sorts before a stored one: the keys say where it goes.
            let mut place = false;
            while let Some(batch) = rows.next(read).map_err(|f| Stop::Failed(f.0))? {
                for (row, (size, _)) in &batch {
                    read += 1;
                    if read > limit {
                        return Err(too_many());
                    }
                    if row.try_get::<_, bool>(n + 2).unwrap_or(false) {
                        // Marked deleted (`deleted`): only its key matters.
                        let key = key_col.read.value(row, inputs.key_index);
                        let (Ok(key), Ok(hash)) = (key, row.try_get::<_, i64>(n)) else {
                            return Err(Stop::Full("a changed row is malformed".into()));
                        };
                        if key != Value::Null && delta.remove(&key)? {
                            gone_keys += i128::from(hash);
                        }
                        continue;
                    }
                    if *size as u64 > MAX_ROW_BYTES {
                        return Err(Stop::Full("a changed row is malformed".into()));
                    }
                    let values: Result<Vec<Value>, String> = inputs
                        .cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| c.read.value(row, i))
                        .collect();
                    let (Ok(values), Ok(hash), Ok(after)) = (
                        values,
                        row.try_get::<_, i64>(n),
                        row.try_get::<_, bool>(n + 1),
                    ) else {
                        return Err(Stop::Full("a changed row is malformed".into()));
                    };
                    if values.get(inputs.key_index) == Some(&Value::Null) {
                        return Err(Stop::Full("a changed row is malformed".into()));
                    }
                    if delta.upsert(&values)? == Upserted::Added {
                        place |= !after && !delta.keeps_key_order();
                        new_keys += i128::from(hash);
                    }
                    if read.is_multiple_of(PROGRESS_EVERY_ROWS) {
                        progress(read, read);
                    }
                }
            }
            let (added, flagged) = (delta.counts().added, delta.counts().deleted);
            let expected = meta.rows.saturating_add(added).saturating_sub(flagged);
            let not_explained =
                || Stop::Full("rows were added or deleted without a newer updated_at".into());
            let no_room = || {
                Stop::Full(
                    "new keys sort between two stored rows with no room left between them".into(),
                )
            };
            if place && expected >= figures.total && orders_alike {
                // The store orders these keys as the server does: each new
                // row's neighbours are found by the store's key index
                // (rows deleted since are found after, by the keys' order).
                match delta.place_by_key()? {
                    Ok(()) => place = false,
                    Err(Kept::NoRoom) => return Err(no_room()),
                    Err(_) => return Err(not_explained()),
                }
            }
            let sum = |s: &Option<String>| s.as_deref().map_or(Some(0), |s| s.parse::<i128>().ok());
            if expected > figures.total || place {
                // Rows were deleted, or added before stored ones: the keys,
                // in the order the store keeps, say which and where (and
                // that nothing else changed unseen).
                let gone = expected.saturating_sub(figures.total);
                if read.saturating_add(gone) > limit {
                    return Err(too_many());
                }
                // Only deleted: the keys of the ranges that lost rows may do.
                let hashes = match (sum(&mark.keys), sum(&figures.keys)) {
                    (Some(before), Some(now)) => Some(before + new_keys - gone_keys - now),
                    _ => None,
                };
                let by_ranges = !place && expected >= MIN_BUCKETED_ROWS;
                if let (true, Some(hashes)) = (by_ranges, hashes) {
                    let found = self.deleted_by_buckets(
                        inputs, key_col, k_type, delta, gone, hashes, progress,
                    )?;
                    if let Some(found) = found {
                        delta.delete_rows(&found.gone)?;
                        compared = format!(
                            " (keys compared in {} of {} ranges)",
                            found.compared, found.buckets
                        );
                        return Ok(());
                    }
                }
                compared = " (keys compared)".into();
                return match self.delete_missing(inputs, key_col, delta, gone, progress)? {
                    Kept::Deleted(_) => Ok(()),
                    Kept::NotInOrder | Kept::TooMany => Err(not_explained()),
                    Kept::NoRoom => Err(no_room()),
                };
            }
            let keys_add_up = matches!(
                (sum(&mark.keys), sum(&figures.keys)),
                (Some(before), Some(now)) if before + new_keys - gone_keys == now
            );
            if expected < figures.total || !keys_add_up {
                return Err(not_explained());
            }
            Ok(())
        });
        drop(rows);
        let counts = match applied {
            Ok(counts) => counts,
            Err(Stop::Full(why)) => return Ok(Outcome::Full(Some(why))),
            Err(Stop::Failed(e)) => return Err(e),
        };
        progress(read, read);
        Ok(Outcome::Applied(Loaded {
            rows: figures.total,
            rejected: 0,
            rejected_examples: Vec::new(),
            unchanged: false,
            detail: Some(format!(
                "read by updated_at: {read} rows from {since}: {} added, {} changed{}{}",
                counts.added,
                counts.changed,
                match counts.deleted {
                    0 => String::new(),
                    n => format!(", {n} deleted"),
                },
                compared
            )),
        }))
    }

    /// Delete the stored rows whose keys the relation no longer holds, at
    /// most `most`, and put the rows added before stored ones in their
    /// places, by reading every key in key order: the store keeps its rows
    /// in that order, so each key read is the next stored one that stays or
    /// an added one ([`Delta::keep_only`]). `progress` hears the keys read
    /// of the table's count.
    fn delete_missing(
        &self,
        inputs: &Inputs<'_, '_>,
        key_col: &Col,
        delta: &mut Delta<'_>,
        most: u64,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Kept, Stop> {
        let mut sql = self.select(&key_col.expr);
        sql.text.push_str(&format!(
            "{} ORDER BY {}",
            self.live(inputs.described, " WHERE ", ""),
            ident(&self.spec.key)
        ));
        let total = inputs.figures.total;
        let mut keys = KeyStream::open(inputs.session, &sql, &[], key_col, total, progress)?;
        delta.keep_only(|| keys.next(), most)
    }
}
