//! The connection to the server: opened in a read-only, repeatable-read
//! transaction on a runtime of its own, statements run with a deadline, rows
//! taken in bounded batches, and the driver's errors classed (transient or
//! permanent) and described with their position in the query as written.

use std::future::Future;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use tokio_postgres::error::{ErrorPosition, SqlState};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::insights::source::{store_failure, SourceError};
use crate::store::StoreError;

/// Longest wait for a connection, authentication included; a server that
/// does not answer in time is a transient failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `statement_timeout` of the session: the server cancels a statement (the
/// count or the read) running longer.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for the next batch of rows (or any other answer) once
/// connected: the statement timeout and a minute, so a stalled network is
/// noticed even when the server cannot cancel.
pub const READ_TIMEOUT: Duration = Duration::from_secs(STATEMENT_TIMEOUT.as_secs() + 60);
/// Most rows taken from the driver per wake-up of the runtime.
const BATCH_ROWS: usize = 1024;
/// A batch also ends once its rows take this many bytes as sent, so wide
/// rows do not hold `BATCH_ROWS` times their size.
const BATCH_BYTES: usize = 4 << 20;

/// A row and its [`wire_size`].
pub(super) type SizedRow = (Row, (usize, usize));

/// The rows of a running query, taken in batches bounded in rows and bytes.
pub(super) struct Batches<'s, 'rt> {
    pub(super) session: &'s Session<'rt>,
    pub(super) sql: &'s Sql,
    pub(super) rows: std::pin::Pin<Box<tokio_postgres::RowStream>>,
    /// The stream ended: it is not polled again (it would say the
    /// connection closed).
    pub(super) ended: bool,
}

impl Batches<'_, '_> {
    /// The next rows with their [`wire_size`], or `None` after the last;
    /// `read` rows were read before (for an error).
    pub(super) fn next(&mut self, read: u64) -> Result<Option<Vec<SizedRow>>, Failure> {
        if self.ended {
            return Ok(None);
        }
        let (rows, ended) = (&mut self.rows, &mut self.ended);
        let batch = self
            .session
            .run("cannot read its rows", Some(self.sql), async {
                let mut batch = Vec::with_capacity(BATCH_ROWS);
                let mut bytes = 0;
                while batch.len() < BATCH_ROWS && bytes < BATCH_BYTES {
                    match rows.as_mut().try_next().await? {
                        Some(row) => {
                            let size = wire_size(&row);
                            bytes += size.0;
                            batch.push((row, size));
                        }
                        None => {
                            *ended = true;
                            break;
                        }
                    }
                }
                Ok(batch)
            })
            .map_err(|mut e| {
                e.rows_read = read;
                Failure(e)
            })?;
        Ok((!batch.is_empty() || !self.ended).then_some(batch))
    }
}

/// A connection on its own runtime, in a read-only transaction.
pub(super) struct Session<'rt> {
    pub(super) rt: &'rt tokio::runtime::Runtime,
    pub(super) client: Client,
    pub(super) connection: tokio::task::JoinHandle<()>,
}

impl<'rt> Session<'rt> {
    pub(super) fn open(
        rt: &'rt tokio::runtime::Runtime,
        mut config: Config,
        tls: MakeRustlsConnect,
    ) -> Result<Self, SourceError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("triggerfish");
        }
        let connected =
            rt.block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls)).await });
        let (client, connection) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                return Err(SourceError::new(
                    !transient(&e),
                    format!("cannot connect: {}", describe_error(&e, None)),
                ));
            }
            Err(_) => {
                return Err(SourceError::new(
                    false,
                    format!(
                        "cannot connect: no answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
        // The connection's own error reaches the client's calls too.
        let connection = rt.spawn(async move {
            let _ = connection.await;
        });
        let session = Self {
            rt,
            client,
            connection,
        };
        let setup = format!(
            "SET statement_timeout = {}; SET TIME ZONE 'UTC'; \
             BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            STATEMENT_TIMEOUT.as_millis()
        );
        let client = &session.client;
        session.run("cannot start its read", None, async {
            client.batch_execute(&setup).await
        })?;
        Ok(session)
    }

    /// Run `work` within [`READ_TIMEOUT`], classing its failure.
    pub(super) fn run<T>(
        &self,
        what: &str,
        sql: Option<&Sql>,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, SourceError> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(READ_TIMEOUT, work).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SourceError::new(
                !transient(&e),
                format!("{what}: {}", describe_error(&e, sql)),
            )),
            Err(_) => Err(SourceError::new(
                false,
                format!(
                    "{what}: no answer from the server within {} s",
                    READ_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// End the session: the server rolls the read-only transaction back.
    pub(super) fn close(self) {
        let Self {
            rt,
            client,
            connection,
        } = self;
        drop(client);
        // The connection sends its goodbye and ends; no reason to wait long.
        let _ =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), connection).await });
    }
}

/// SQL sent to the server, and where the configured query lies in it (its
/// first character, 0-based, and its length, in characters), so that the
/// position of an error can be given in the query as written.
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) query: Option<(usize, usize)>,
}

/// A value's bytes as the server sent them, whatever its type.
struct WireSize(usize);

impl<'a> FromSql<'a> for WireSize {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.len()))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(0))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A row's bytes as sent, and the index of its largest column.
fn wire_size(row: &Row) -> (usize, usize) {
    let (mut total, mut widest, mut most) = (0usize, 0, 0);
    for i in 0..row.len() {
        let n = row.try_get::<_, WireSize>(i).map_or(0, |w| w.0);
        total = total.saturating_add(n);
        if n > most {
            (widest, most) = (i, n);
        }
    }
    (total, widest)
}

/// A failure inside the store's transaction.
pub(super) struct Failure(pub(super) SourceError);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(store_failure(e))
    }
}

/// SQLSTATEs worth retrying: the connection, the server's resources
/// (too many connections, disk, memory), a server shutting down or starting
/// up (`57P01`–`57P03`), a cancelled statement (the statement timeout),
/// and concurrency conflicts (serialization, deadlock, lock not available).
fn transient_state(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08")
        || c.starts_with("53")
        || matches!(
            c,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01" | "55P03" | "58030"
        )
}

/// Whether retrying may help: a transient SQLSTATE, a closed connection, or
/// an I/O failure (refused, reset, timed out, a name that does not resolve).
/// Anything else — SQL errors, authentication, TLS, a value that cannot be
/// decoded — is permanent.
fn transient(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        return transient_state(code);
    }
    if e.is_closed() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            // A certificate refused or a failed handshake is not the network.
            return !io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>());
        }
        cause = c.source();
    }
    false
}

/// The driver's error with its causes; for a server error its message,
/// SQLSTATE, position in the configured query, detail and hint.
pub(super) fn describe_error(e: &tokio_postgres::Error, sql: Option<&Sql>) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{} (SQLSTATE {}", db.message(), db.code().code());
        if let Some(at) = position(db.position(), sql) {
            out.push_str(&format!(", at character {at} of the query"));
        }
        out.push(')');
        if let Some(d) = db.detail() {
            out.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            out.push_str(&format!("; hint: {h}"));
        }
        return out;
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

/// An error's position (1-based, in characters of the SQL sent) as a
/// position in the configured query, when it lies there.
fn position(at: Option<&ErrorPosition>, sql: Option<&Sql>) -> Option<usize> {
    let (Some(ErrorPosition::Original(at)), Some((start, len))) = (at, sql.and_then(|s| s.query))
    else {
        return None;
    };
    let at = usize::try_from(*at).ok()?.checked_sub(1)?;
    // Just past the query (the end of input) counts as its end.
    (at >= start && at <= start + len + 1).then(|| (at - start + 1).min(len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classed() {
        for (code, transient) in [
            ("08006", true),
            ("53300", true),
            ("57P03", true),
            ("57014", true),
            ("40001", true),
            ("42P01", false),
            ("42703", false),
            ("42601", false),
            ("28P01", false),
            ("28000", false),
            ("3D000", false),
            ("22P02", false),
        ] {
            assert_eq!(
                transient_state(&SqlState::from_code(code)),
                transient,
                "{code}"
            );
        }
    }

    #[test]
    fn positions_are_given_in_the_query_as_written() {
        let sql = Sql {
            text: "SELECT * FROM (\nSELECT id FORM t\n) AS tf_source".into(),
            query: Some((16, 16)),
        };
        let at = |n: u32| position(Some(&ErrorPosition::Original(n)), Some(&sql));
        assert_eq!(at(17), Some(1));
        assert_eq!(at(27), Some(11));
        assert_eq!(at(34), Some(17), "the end of the query");
        assert_eq!(at(3), None, "in the wrapper");
        assert_eq!(at(40), None, "in the wrapper");
        let table = Sql {
            text: "SELECT * FROM \"t\" AS tf_source".into(),
            query: None,
        };
        assert_eq!(
            position(Some(&ErrorPosition::Original(15)), Some(&table)),
            None
        );
    }
}
