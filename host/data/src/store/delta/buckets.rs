//! Rows deleted outright, found by ranges of rows: the stored rows are cut
//! into buckets of consecutive rows ([`Delta::buckets`]); a database counts
//! its keys between the buckets' first keys, and only the buckets that lost
//! rows are compared key by key ([`Delta::absent_in`]).

use rusqlite::types::Value;

use super::{sql_error, Delta, Kept};
use crate::store::StoreError;

/// Every row of an entity, in stored order, cut into buckets of `per`
/// consecutive rows (the last may hold fewer).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Each bucket's first row: its rowid and key.
    pub starts: Vec<(i64, Value)>,
    per: u64,
    rows: u64,
}

impl Buckets {
    /// How many buckets there are.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none (no rows).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The rows bucket `i` (from 0) holds.
    pub fn rows_in(&self, i: usize) -> u64 {
        match i + 1 {
            n if n < self.len() => self.per,
            n if n == self.len() => self.rows - self.per * (self.len() as u64 - 1),
            _ => 0,
        }
    }
}

impl Delta<'_> {
    /// Cut every row of the entity (added ones too), in stored order, into
    /// buckets of `per` rows (at least 1).
    pub fn buckets(&self, per: u64) -> Result<Buckets, StoreError> {
        let per = per.max(1);
        let sql = sql_error(self.path);
        let mut scan = self
            .tx
            .prepare(&format!(
                "SELECT rowid, {} FROM {} ORDER BY rowid",
                self.key, self.table
            ))
            .map_err(sql)?;
        let mut rows = scan.query([]).map_err(sql)?;
        let mut buckets = Buckets {
            starts: Vec::new(),
            per,
            rows: 0,
        };
        while let Some(row) = rows.next().map_err(sql)? {
            if buckets.rows.is_multiple_of(per) {
                buckets
                    .starts
                    .push((row.get(0).map_err(sql)?, row.get(1).map_err(sql)?));
            }
            buckets.rows += 1;
        }
        Ok(buckets)
    }

    /// The rows (rowid and key) of the buckets `which` (ascending) whose
    /// keys `next` does not yield, given that `next` yields every key those
    /// buckets keep, in stored order (each once, then `None`), and that at
    /// most `most` go. Nothing is deleted: see [`Delta::delete_rows`].
    /// [`Kept::NotInOrder`] when a key yielded is not where its order puts
    /// it, or a row added by this delta would go; [`Kept::TooMany`] when
    /// more would go.
    pub fn absent_in<E: From<StoreError>>(
        &self,
        buckets: &Buckets,
        which: &[usize],
        mut next: impl FnMut() -> Result<Option<Value>, E>,
        most: u64,
    ) -> Result<Result<Vec<(i64, Value)>, Kept>, E> {
        let sql = sql_error(self.path);
        let select = |upper: &str| {
            self.tx.prepare(&format!(
                "SELECT rowid, {} FROM {} WHERE rowid >= ?1{upper} ORDER BY rowid",
                self.key, self.table
            ))
        };
        let mut bounded = select(" AND rowid < ?2").map_err(sql)?;
        let mut last = select("").map_err(sql)?;
        let mut gone = Vec::new();
        let mut wanted = next()?;
        for &i in which {
            let Some(&(from, _)) = buckets.starts.get(i) else {
                return Ok(Err(Kept::NotInOrder));
            };
            let mut rows = match buckets.starts.get(i + 1) {
                Some(&(to, _)) => bounded.query([from, to]),
                None => last.query([from]),
            }
            .map_err(sql)?;
            while let Some(row) = rows.next().map_err(sql)? {
                let (rowid, key): (i64, Value) =
                    (row.get(0).map_err(sql)?, row.get(1).map_err(sql)?);
                if wanted.as_ref() == Some(&key) {
                    wanted = next()?;
                } else if self.spaced && rowid >= self.first_added {
                    return Ok(Err(Kept::NotInOrder));
                } else if gone.len() as u64 >= most {
                    return Ok(Err(Kept::TooMany));
                } else {
                    gone.push((rowid, key));
                }
            }
        }
        if wanted.is_some() {
            return Ok(Err(Kept::NotInOrder));
        }
        Ok(Ok(gone))
    }
}
