//! Rows deleted outright, found without reading every key (in tables of at
//! least [`MIN_BUCKETED_ROWS`] rows, keyed by a type of [`BUCKETED_TYPES`]).
//! The stored rows, in the server's key order, are cut into buckets of
//! consecutive rows, about 16 for each row deleted; the server counts its
//! keys between the buckets' first keys (`width_bucket`), and only the keys
//! of the buckets that lost rows are read (by key ranges, through the key's
//! index, when they are few) and compared. The deleted keys' hash sum must
//! then account for the change in the table's. When anything does not add
//! up, the caller compares every key instead.

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::{Inputs, KeyStream, Stop};
use crate::insights::postgres::{ident, Col, PostgresSource};
use crate::store::{Buckets, Delta};

/// Fewest stored rows for which deletions are found by buckets; below it,
/// comparing every key costs about as little.
pub const MIN_BUCKETED_ROWS: u64 = 4096;
/// Key types whose bounds `width_bucket` searches by position. For others
/// (text) it steps through the bounds one by one, for every row: that costs
/// more than reading every key.
pub const BUCKETED_TYPES: [&str; 7] = [
    "int2",
    "int4",
    "int8",
    "date",
    "timestamp",
    "timestamptz",
    "uuid",
];
/// Fewest buckets, and most: their bounds go to the server as one array.
pub const MIN_BUCKETS: u64 = 256;
pub const MAX_BUCKETS: u64 = 16_384;
/// Buckets for each row deleted: the share of buckets that lost rows, and
/// so of keys read, stays under one in this many.
pub const BUCKETS_PER_DELETION: u64 = 16;
/// Most buckets whose keys are read by key ranges (through the key's
/// index); more are read by their bucket number, in one scan.
pub const MAX_KEY_RANGES: usize = 64;
/// Fewest rows a bucket holds.
pub const MIN_BUCKET_ROWS: u64 = 32;

/// What a bucketed search found.
pub(super) struct Found {
    /// The deleted rows: rowid and key.
    pub gone: Vec<(i64, Value)>,
    /// Buckets whose keys were compared.
    pub compared: usize,
    pub buckets: usize,
}

/// A stored key as the text the server casts back to its type.
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::Integer(n) => Some(n.to_string()),
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

impl PostgresSource {
    /// The stored rows deleted outright from the relation: `gone` of them,
    /// the sum of their keys' `hashtext` being `hashes`. `None` when the
    /// counts or the sum do not say which (rows added unseen, a collation
    /// the store's order does not follow, keys of another text).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deleted_by_buckets(
        &self,
        inputs: &Inputs<'_, '_>,
        key_col: &Col,
        key_type: &str,
        delta: &Delta<'_>,
        gone: u64,
        hashes: i128,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Option<Found>, Stop> {
        if !BUCKETED_TYPES.contains(&key_type) {
            return Ok(None);
        }
        let stored = inputs.figures.total.saturating_add(gone);
        let wanted = gone
            .saturating_mul(BUCKETS_PER_DELETION)
            .clamp(MIN_BUCKETS, MAX_BUCKETS);
        let per = stored.div_ceil(wanted).max(MIN_BUCKET_ROWS);
        let buckets = delta.buckets(per)?;
        let Some(bounds) = buckets
            .starts
            .iter()
            .map(|(_, k)| key_text(k))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(None);
        };
        let Some(lossy) = self.lossy_buckets(inputs, key_type, &buckets, &bounds, gone)? else {
            return Ok(None);
        };

        let key = ident(&self.spec.key);
        // Their numbers as `width_bucket` gives them, when read by number.
        let which: Vec<i32>;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let within = if lossy.len() <= MAX_KEY_RANGES {
            // Key ranges, which the key's index serves.
            let mut ranges = Vec::new();
            for &i in &lossy {
                let mut bound = |i: usize| {
                    params.push(&bounds[i]);
                    format!("${}::text::pg_catalog.{key_type}", params.len())
                };
                ranges.push(match i + 1 < bounds.len() {
                    true => format!("({key} >= {} AND {key} < {})", bound(i), bound(i + 1)),
                    false => format!("{key} >= {}", bound(i)),
                });
            }
            format!("({})", ranges.join(" OR "))
        } else {
            which = lossy
                .iter()
                .map(|&i| i32::try_from(i + 1).unwrap_or(i32::MAX))
                .collect();
            params.extend([&bounds as &(dyn ToSql + Sync), &which]);
            format!("width_bucket({key}, $1::text[]::pg_catalog.{key_type}[]) = ANY($2::int4[])")
        };
        let mut sql = self.select(&key_col.expr);
        sql.text.push_str(&format!(
            " WHERE {}{within} ORDER BY {key}",
            self.live(inputs.described, "", " AND ")
        ));
        let session = inputs.session;
        let reading: u64 = lossy.iter().map(|&i| buckets.rows_in(i)).sum();
        let mut keys = KeyStream::open(session, &sql, &params, key_col, reading, progress)?;
        let found = match delta.absent_in(&buckets, &lossy, || keys.next(), gone)? {
            Ok(found) if found.len() as u64 == gone => found,
            _ => return Ok(None),
        };
        drop(keys);
        let client = &session.client;

        // The deleted keys must account for the change in the keys' hash sum.
        let Some(texts) = found
            .iter()
            .map(|(_, k)| key_text(k))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(None);
        };
        let hash_sql = format!(
            "SELECT (sum(hashtext(k::text)::int8))::text
             FROM unnest($1::text[]::pg_catalog.{key_type}[]) AS k"
        );
        let sum: Option<String> = session
            .run("cannot hash its deleted keys", None, async {
                client.query_one(&hash_sql, &[&texts]).await
            })
            .map_err(Stop::Failed)?
            .try_get(0)
            .unwrap_or(None);
        if sum.and_then(|s| s.parse::<i128>().ok()) != Some(hashes) {
            return Ok(None);
        }
        Ok(Some(Found {
            gone: found,
            compared: lossy.len(),
            buckets: buckets.len(),
        }))
    }

    /// The buckets (from 0) that lost rows, by the server's count of its
    /// keys in each; `None` unless they lost `gone` rows in all and none
    /// holds more keys than stored rows.
    fn lossy_buckets(
        &self,
        inputs: &Inputs<'_, '_>,
        key_type: &str,
        buckets: &Buckets,
        bounds: &Vec<String>,
        gone: u64,
    ) -> Result<Option<Vec<usize>>, Stop> {
        let key = ident(&self.spec.key);
        let mut sql = self.select(&format!(
            "width_bucket({key}, $1::text[]::pg_catalog.{key_type}[]), count(*)"
        ));
        sql.text
            .push_str(&self.live(inputs.described, " WHERE ", ""));
        sql.text.push_str(" GROUP BY 1");
        let session = inputs.session;
        let client = &session.client;
        let counted = session.run("cannot count its keys", Some(&sql), async {
            client.query(&sql.text, &[bounds]).await
        });
        // Keys per bucket, as `width_bucket` numbers them: 0 is below the
        // first bound, i the bucket i - 1.
        let mut held = vec![0u64; buckets.len() + 1];
        for row in counted.map_err(Stop::Failed)? {
            let (Ok(at), Ok(n)) = (row.try_get::<_, i32>(0), row.try_get::<_, i64>(1)) else {
                return Ok(None);
            };
            match usize::try_from(at).ok().and_then(|at| held.get_mut(at)) {
                Some(slot) => *slot = u64::try_from(n).unwrap_or(u64::MAX),
                None => return Ok(None),
            }
        }
        if held[0] > 0 {
            return Ok(None);
        }
        let mut lossy = Vec::new();
        let mut lost = 0u64;
        for (i, &now) in held.iter().skip(1).enumerate() {
            let before = buckets.rows_in(i);
            if now > before {
                return Ok(None);
            }
            if now < before {
                lossy.push(i);
                lost += before - now;
            }
        }
        Ok((lost == gone).then_some(lossy))
    }
}
