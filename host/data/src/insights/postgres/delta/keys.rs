//! Keys read from the server one at a time, in the order a query gives
//! them, for the stored rows to be compared with.

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::Stop;
use crate::insights::postgres::{Batches, Col, Session, SizedRow, Sql, PROGRESS_EVERY_ROWS};

/// The keys a running query yields, with progress: keys read of `total`.
pub(super) struct KeyStream<'a, 's, 'rt> {
    rows: Batches<'s, 'rt>,
    batch: std::vec::IntoIter<SizedRow>,
    seen: u64,
    total: u64,
    key_col: &'a Col,
    progress: &'a dyn Fn(u64, u64),
}

impl<'a, 's, 'rt> KeyStream<'a, 's, 'rt> {
    /// Run `sql`, whose one column is the key `key_col` reads, with `params`.
    pub fn open(
        session: &'s Session<'rt>,
        sql: &'s Sql,
        params: &[&(dyn ToSql + Sync)],
        key_col: &'a Col,
        total: u64,
        progress: &'a dyn Fn(u64, u64),
    ) -> Result<Self, Stop> {
        let client = &session.client;
        let stream = session.run("cannot read its keys", Some(sql), async {
            let statement = client.prepare(&sql.text).await?;
            client
                .query_raw(&statement, params.iter().map(|p| *p as &dyn ToSql))
                .await
        });
        Ok(Self {
            rows: Batches {
                session,
                sql,
                rows: Box::pin(stream.map_err(Stop::Failed)?),
                ended: false,
            },
            batch: Vec::new().into_iter(),
            seen: 0,
            total,
            key_col,
            progress,
        })
    }

    /// The next key, or `None` after the last. An unreadable key matches no
    /// stored one: a full read names it.
    pub fn next(&mut self) -> Result<Option<Value>, Stop> {
        loop {
            if let Some((row, _)) = self.batch.next() {
                self.seen += 1;
                if self.seen.is_multiple_of(PROGRESS_EVERY_ROWS) {
                    (self.progress)(self.seen, self.total.max(self.seen));
                }
                return Ok(Some(
                    self.key_col.read.value(&row, 0).unwrap_or(Value::Null),
                ));
            }
            match self.rows.next(self.seen).map_err(|f| Stop::Failed(f.0))? {
                Some(rows) => self.batch = rows.into_iter(),
                None => return Ok(None),
            }
        }
    }
}
