//! A PostgreSQL table or query as a data source (`kind = "postgres"`).
//!
//! The connection string comes from the environment variable the source
//! names (`connection_env`) or a file (`connection_file`, such as a mounted
//! secret), read at each refresh; it never enters a message, an event or a log
//! line, and messages are scrubbed of it and of its password whatever the
//! driver or the server says. The driver is `tokio-postgres`, run on a small
//! current-thread runtime inside [`Source::refresh`], which blocks like the
//! rest of this crate; TLS is rustls's, as `sslmode` asks (see [`pg_tls`]).
//!
//! A refresh reads in one read-only, repeatable-read transaction, so the
//! figures that decide whether the rows changed describe exactly the rows
//! imported:
//! 1. the columns of the table or query (`SELECT *` described, not run),
//!    checked against the key, `updated_at`, `deleted`, the map and `types`;
//! 2. `count(*)`, and with `updated_at` also `max(updated_at)` and a sum of
//!    the keys' hashes (count and sum over the rows not marked `deleted`).
//!    When these and the source's settings are what they were at the last
//!    import, the import is skipped (unless forced);
//! 3. with `updated_at`, the rows past the last import's greatest
//!    `updated_at`, applied in place when they explain every change (see
//!    `delta`);
//! 4. otherwise every row not marked `deleted`, in key order, streamed (the
//!    driver's channel holds one batch of messages, so a million rows never
//!    sit in memory), into a fresh copy of the entity that replaces the old
//!    one atomically, its rows spaced for rows added later. Rows are
//!    decoded on a thread of their own while the store writes them, as a
//!    file's are. Batches are bounded in rows and in bytes, and a row larger
//!    than the store's [`MAX_ROW_BYTES`] is a malformed row, as in a file.
//!    The driver receives a row whole before it can be measured, so a larger
//!    one is held once, within the server's own limits, then dropped.
//!
//! Rows added with an older `updated_at`, malformed rows and new keys with no
//! room left between stored ones send the refresh to a full read; rows
//! changed without a newer `updated_at` are seen at the next full read, which
//! comes every `full_read_every` or when forced. Without `updated_at`, every
//! refresh reads in full.

use rusqlite::types::ValueRef;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::source::{
    read_small_file, Loaded, SmallFileError, Source, SourceError, REJECTED_EXAMPLES,
};
use super::workspace::{ConnectionFrom, PostgresSpec, Relation, SourceSpec};
use super::{fingerprint, pg_tls};
use crate::odata::ColumnType;
use crate::store::{pipe, quoted, valid_identifier, EntityDb, StoreError, MAX_ROW_BYTES};

/// Largest `connection_file` read, in bytes.
pub const MAX_CONNECTION_FILE_BYTES: u64 = 64 << 10;
/// How often a refresh reports its progress, in rows.
pub const PROGRESS_EVERY_ROWS: u64 = 10_000;
/// Column names listed in an error before "and N more".
const LISTED_COLUMNS: usize = 12;

mod columns;
mod delta;
mod session;

use columns::{natural_type, row_key, Col, Problem, Read};
use session::{describe_error, Batches, Failure, Session, SizedRow, Sql};
pub use session::{CONNECT_TIMEOUT, READ_TIMEOUT, STATEMENT_TIMEOUT};

/// A PostgreSQL table or query.
#[derive(Debug, Clone)]
pub struct PostgresSource {
    spec: SourceSpec,
    pg: PostgresSpec,
}

impl PostgresSource {
    /// A source for `spec`, whose kind is `pg`.
    pub fn new(spec: SourceSpec, pg: PostgresSpec) -> Self {
        Self { spec, pg }
    }

    /// The connection string, from the environment or its file.
    fn connection_string(&self) -> Result<String, SourceError> {
        let path = match &self.pg.connection {
            ConnectionFrom::File(path) => path,
            ConnectionFrom::Env(var) => {
                let why = match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => return Ok(v),
                    Ok(_) => "is empty",
                    Err(std::env::VarError::NotPresent) => "is not set",
                    Err(std::env::VarError::NotUnicode(_)) => "is not valid UTF-8",
                };
                return Err(SourceError::new(
                    true,
                    format!("the environment variable {var} (its connection_env) {why}: set it to the connection string"),
                ));
            }
        };
        let why = match read_connection_file(path) {
            Ok(text) => return Ok(text),
            Err(why) => why,
        };
        Err(SourceError::new(
            true,
            format!(
                "the file {} (its connection_file) {why}: put the connection string in it",
                path.display()
            ),
        ))
    }

    /// Where the connection string is kept, for a message.
    fn kept_in(&self) -> String {
        match &self.pg.connection {
            ConnectionFrom::Env(var) => var.clone(),
            ConnectionFrom::File(path) => format!("the file {}", path.display()),
        }
    }

    /// The relation read, as SQL after `FROM`, with the columns `list`.
    fn select(&self, list: &str) -> Sql {
        match &self.pg.relation {
            Relation::Table { schema, name } => {
                let table = match schema {
                    Some(s) => format!("{}.{}", ident(s), ident(name)),
                    None => ident(name),
                };
                Sql {
                    text: format!("SELECT {list} FROM {table} AS tf_source"),
                    query: None,
                }
            }
            Relation::Query(q) => {
                // On lines of its own, so a trailing `--` comment ends there.
                let head = format!("SELECT {list} FROM (\n");
                Sql {
                    text: format!("{head}{q}\n) AS tf_source"),
                    query: Some((head.chars().count(), q.chars().count())),
                }
            }
        }
    }

    /// The SQL that holds for a row marked deleted (`deleted`): its column
    /// true, or not null when it is not a boolean; `false` without one.
    fn gone(&self, described: &[tokio_postgres::Column]) -> String {
        let Some(column) = &self.pg.deleted else {
            return "false".into();
        };
        let boolean = described
            .iter()
            .any(|c| c.name() == column && *c.type_() == Type::BOOL);
        match boolean {
            true => format!("{} IS TRUE", ident(column)),
            false => format!("{} IS NOT NULL", ident(column)),
        }
    }

    /// `NOT (`[`Self::gone`]`)` between `before` and `after`, to keep the
    /// rows not marked deleted; empty without `deleted`.
    pub(super) fn live(
        &self,
        described: &[tokio_postgres::Column],
        before: &str,
        after: &str,
    ) -> String {
        match self.pg.deleted {
            Some(_) => format!("{before}NOT ({}){after}", self.gone(described)),
            None => String::new(),
        }
    }

    /// Every column, typed and with how to read it; an error for a name the
    /// store cannot hold, or a configured column that is missing.
    fn columns(&self, described: &[tokio_postgres::Column]) -> Result<Vec<Col>, SourceError> {
        let mut cols: Vec<Col> = Vec::new();
        for (i, c) in described.iter().enumerate() {
            let name = c.name();
            if !valid_identifier(name) {
                return Err(SourceError::new(
                    true,
                    format!("column {} is named {}: expected letters, digits and '_', not starting with a digit (rename it with AS in a query)", i + 1, quoted(name)),
                ));
            }
            if let Some(o) = cols.iter().find(|o| o.name.eq_ignore_ascii_case(name)) {
                let message = match o.name == name {
                    true => format!("column {} appears twice", quoted(name)),
                    false => format!(
                        "columns {} and {} differ only in case (column names ignore case)",
                        quoted(&o.name),
                        quoted(name)
                    ),
                };
                return Err(SourceError::new(
                    true,
                    format!("{message} (rename one with AS in a query)"),
                ));
            }
            let (natural, native) = natural_type(c.type_());
            let wanted = self.spec.types.get(name).copied().unwrap_or(natural);
            let (read, expr) = match native {
                Some(read) if wanted == natural => (read, ident(name)),
                // Everything else arrives as PostgreSQL's text of the value,
                // read as a file's text is.
                _ => (Read::Text(wanted), format!("{}::text", ident(name))),
            };
            cols.push(Col {
                name: name.to_owned(),
                ty: wanted,
                read,
                expr,
            });
        }
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        let missing = |column: &str, used_by: &str| {
            let mut e = SourceError::new(
                true,
                format!(
                    "column {} used by {used_by} is not in its columns ({})",
                    quoted(column),
                    listed(&names)
                ),
            );
            e.field = Some(column.to_owned());
            e
        };
        let spec = &self.spec;
        let mut used: Vec<(&str, String)> = vec![(spec.key.as_str(), "key".to_owned())];
        if let Some(u) = &spec.updated_at {
            used.push((u, "updated_at".into()));
        }
        if let Some(d) = &self.pg.deleted {
            used.push((d, "deleted".into()));
        }
        for (field, column) in &spec.map {
            used.push((column, format!("map.{field}")));
        }
        for (field, template) in &spec.derived {
            for column in template.columns() {
                used.push((column, format!("map.{field}")));
            }
        }
        for column in spec.types.keys() {
            used.push((column, format!("types.{column}")));
        }
        for (column, used_by) in used {
            if !names.contains(&column) {
                return Err(missing(column, &used_by));
            }
        }
        Ok(cols)
    }

    /// One row's values into `feed`'s open row, or the field that went
    /// wrong and why (the open row is then left part-filled: cancel it).
    /// A row over [`MAX_ROW_BYTES`] (`size` is its [`wire_size`]) is refused.
    fn feed_row(
        &self,
        row: &Row,
        (size, widest): (usize, usize),
        cols: &[Col],
        key: usize,
        feed: &mut pipe::Feed,
    ) -> Result<(), Problem> {
        if size as u64 > MAX_ROW_BYTES {
            let field = cols
                .get(widest)
                .map_or_else(String::new, |c| c.name.clone());
            return Err(Problem {
                field,
                message: format!(
                    "the row takes {size} bytes, longer than {} MiB (a source row may take at most {MAX_ROW_BYTES} bytes)",
                    MAX_ROW_BYTES >> 20
                ),
                key: None,
            });
        }
        for (i, c) in cols.iter().enumerate() {
            c.read.feed(row, i, feed).map_err(|message| Problem {
                field: c.name.clone(),
                message,
                key: None,
            })?;
        }
        if feed.get(key).is_none_or(|v| v == ValueRef::Null) {
            return Err(Problem {
                field: self.spec.key.clone(),
                message: "the key is empty".into(),
                key: None,
            });
        }
        Ok(())
    }

    /// Rows from `rows` into `feed`, numbered from 1 as read (`read` counts
    /// them); a malformed row is skipped within the tolerance (described in
    /// `rejected`), else fails the refresh naming it.
    fn stream_rows(
        &self,
        mut rows: Batches<'_, '_>,
        cols: &[Col],
        key_index: usize,
        rejected: &mut Vec<String>,
        read: &mut u64,
        feed: &mut pipe::Feed,
    ) -> Result<(), Failure> {
        let tolerance = self.spec.tolerance;
        while let Some(batch) = rows.next(*read)? {
            for (row, size) in &batch {
                *read += 1;
                let mut problem = match self.feed_row(row, *size, cols, key_index, feed) {
                    Ok(()) => {
                        // Stopped: the writer failed, and its error is the one reported.
                        feed.end_row(*read)
                            .map_err(|e| Failure(SourceError::new(true, e.to_string())))?;
                        continue;
                    }
                    Err(p) => p,
                };
                feed.cancel_row();
                problem.key = cols.get(key_index).and_then(|c| row_key(row, c, key_index));
                if rejected.len() < tolerance {
                    rejected.push(problem.describe(*read));
                    continue;
                }
                let more = if tolerance > 0 {
                    format!(" (more than {tolerance} malformed rows)")
                } else {
                    String::new()
                };
                let mut e = SourceError::new(true, format!("{}{more}", problem.describe(*read)));
                e.rows_read = *read - 1;
                e.row = Some(*read);
                e.field = Some(problem.field);
                return Err(Failure(e));
            }
        }
        Ok(())
    }

    /// A refresh with the connection string in hand; errors not yet scrubbed
    /// nor named after the source.
    fn load(
        &self,
        config: Config,
        tls: MakeRustlsConnect,
        store: &EntityDb,
        force: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Loaded, SourceError> {
        let server = format!(
            "{:?}|{:?}|{:?}|{:?}",
            config.get_hosts(),
            config.get_ports(),
            config.get_dbname(),
            config.get_user()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SourceError::new(false, format!("cannot start its I/O runtime: {e}")))?;
        let session = Session::open(&rt, config, tls)?;
        let loaded = self.read(&session, &server, store, force, progress);
        session.close();
        loaded
    }

    fn read(
        &self,
        session: &Session<'_>,
        server: &str,
        store: &EntityDb,
        force: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Loaded, SourceError> {
        let spec = &self.spec;
        let client = &session.client;
        let describe = self.select("*");
        let described = session.run("cannot read its columns", Some(&describe), async {
            client.prepare(&describe.text).await
        })?;
        let cols = self.columns(described.columns())?;
        let key_index = cols.iter().position(|c| c.name == spec.key).unwrap_or(0);

        // Rows marked deleted are not counted, but their `updated_at` is:
        // marking one changes the table.
        let live = self.live(described.columns(), " FILTER (WHERE ", ")");
        let mut figures = vec![format!("count(*){live}")];
        if let Some(u) = &spec.updated_at {
            figures.push(format!("max({})::text", ident(u)));
            figures.push(format!(
                "(sum(hashtext({}::text)::int8){live})::text",
                ident(&spec.key)
            ));
        }
        let count_sql = self.select(&figures.join(", "));
        let stats = session.run("cannot count its rows", Some(&count_sql), async {
            client.query_one(&count_sql.text, &[]).await
        })?;
        let total: i64 = stats.try_get(0).map_err(|e| {
            SourceError::new(
                true,
                format!("cannot count its rows: {}", describe_error(&e, None)),
            )
        })?;
        let total = u64::try_from(total).unwrap_or(0);
        let figures = delta::Figures {
            total,
            max: stats.try_get(1).unwrap_or(None),
            keys: stats.try_get(2).unwrap_or(None),
        };
        // What the last import saw: only kept with `updated_at`.
        let mark = spec
            .updated_at
            .as_ref()
            .and_then(|_| delta::load_mark(store, spec));
        let due = match force {
            true => None,
            false => delta::full_read_due(mark.as_ref(), self.pg.full_read_every),
        };
        if let (false, None, Some(mark), Ok(meta)) = (force, &due, &mark, store.meta(&spec.entity))
        {
            if mark.unchanged(spec, server, &figures, meta.generation) {
                return Ok(Loaded::unchanged(meta.rows));
            }
        }
        // Changed since the last import: the rows past its greatest
        // `updated_at`, when they are all that changed; else a full read.
        let mut how = due.map(|why| format!("read in full: {why}"));
        if let (false, None, Some(mark)) = (force, &how, &mark) {
            let inputs = delta::Inputs {
                session,
                described: described.columns(),
                cols: &cols,
                key_index,
                server,
                figures: &figures,
            };
            match self.read_delta(&inputs, mark, store, progress)? {
                delta::Outcome::Applied(loaded) => {
                    delta::save_mark(store, spec, server, &figures, mark.full_at());
                    return Ok(loaded);
                }
                delta::Outcome::Full(why) => how = why.map(|w| format!("read in full: {w}")),
            }
        }

        let list: Vec<&str> = cols.iter().map(|c| c.expr.as_str()).collect();
        // In key order: the heap's order changes when rows are updated, and
        // unification breaks ties within a source by row order. The order is
        // the database's (its index serves it); where the store orders keys
        // otherwise, it builds their index after the last row.
        let mut data_sql = self.select(&list.join(", "));
        data_sql.text.push_str(&format!(
            "{} ORDER BY {}",
            self.live(described.columns(), " WHERE ", ""),
            ident(&spec.key)
        ));
        let stream = session.run("cannot read its rows", Some(&data_sql), async {
            let statement = client.prepare(&data_sql.text).await?;
            client
                .query_raw(&statement, std::iter::empty::<&dyn ToSql>())
                .await
        })?;
        let stream = Batches {
            session,
            sql: &data_sql,
            rows: Box::pin(stream),
            ended: false,
        };
        let typed: Vec<(String, ColumnType)> =
            cols.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let mut rejected: Vec<String> = Vec::new();
        let mut read = 0u64;
        let mut reported = 0u64;
        // A row the store refused (a duplicate key), by its row number when
        // known (else the store's message names its stored position).
        let refused = |row: Option<u64>, e: StoreError| match (row, e) {
            (Some(row), StoreError::Row { message, .. }) => {
                let mut e = SourceError::new(true, format!("row {row}: {message}"));
                e.rows_read = row.saturating_sub(1);
                e.row = Some(row);
                e.field = Some(spec.key.clone());
                Failure(e)
            }
            (None, e @ StoreError::Row { .. }) => {
                let mut e = SourceError::new(true, e.to_string());
                e.field = Some(spec.key.clone());
                Failure(e)
            }
            (_, other) => other.into(),
        };
        // Rows are read and converted on a thread of their own while this
        // one writes them, as a file's are; the key's index is built after
        // the last row when the keys do not come in the store's order.
        let stored = store.import_entity_with(&spec.entity, &spec.key, &typed, |sink| {
            // Each refresh is one partition, covering every row it read.
            sink.begin_partition(&format!("postgres: {}", self.pg.relation))?;
            if spec.updated_at.is_some() {
                // Room between rows for keys an incremental read adds.
                sink.space_rows()?;
            }
            let (rejected, read) = (&mut rejected, &mut read);
            let produce = |feed: &mut pipe::Feed| {
                self.stream_rows(stream, &cols, key_index, rejected, read, feed)
            };
            pipe::run_batches(produce, |rows| {
                sink.push_batch(rows)
                    .map_err(|(row, e)| refused(Some(row), e))?;
                if let Some(&(last, _)) = rows.last() {
                    if last >= reported + PROGRESS_EVERY_ROWS {
                        reported = last;
                        progress(last, total.max(last));
                    }
                }
                Ok(())
            })?;
            sink.build_key_index()
                .map_err(|(at, e)| refused(at.map(|(_, row)| row), e))?;
            progress(*read, *read);
            Ok::<(), Failure>(())
        });
        let rows = stored.map_err(|Failure(e)| e)?;
        if spec.updated_at.is_some() {
            delta::save_mark(store, spec, server, &figures, delta::now_secs());
        }
        Ok(Loaded {
            rows,
            rejected: rejected.len() as u64,
            rejected_examples: rejected.into_iter().take(REJECTED_EXAMPLES).collect(),
            unchanged: false,
            detail: how,
        })
    }
}

impl Source for PostgresSource {
    fn refresh(
        &self,
        store: &EntityDb,
        force: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Loaded, SourceError> {
        let named = |mut e: SourceError, secrets: &[String]| {
            e.message = scrub(
                &format!(
                    "postgres source '{}' ({}): {}",
                    self.spec.name, self.pg.relation, e.message
                ),
                secrets,
            );
            e
        };
        let url = self.connection_string().map_err(|e| named(e, &[]))?;
        let (for_driver, asked) = pg_tls::split_sslmode(&url);
        let mut secrets = vec![url.trim().to_owned(), for_driver.trim().to_owned()];
        let config = match for_driver.parse::<Config>() {
            Ok(c) => c,
            Err(e) => {
                let why = describe_error(&e, None);
                let hint = if why.ends_with("unknown option `sslrootcert`") {
                    " (name the file as the source's ssl_root_cert)"
                } else if why.ends_with("unknown option `sslcert`")
                    || why.ends_with("unknown option `sslkey`")
                {
                    " (name the files as the source's ssl_cert and ssl_key)"
                } else {
                    ""
                };
                let e = SourceError::new(
                    true,
                    format!(
                        "the connection string in {} is not valid: {why}{hint}",
                        self.kept_in()
                    ),
                );
                return Err(named(e, &secrets));
            }
        };
        if let Some(p) = config.get_password().filter(|p| !p.is_empty()) {
            secrets.push(String::from_utf8_lossy(p).into_owned());
        }
        let check = asked.unwrap_or(match self.pg.ssl_root_cert {
            Some(_) => pg_tls::Check::Chain,
            None => pg_tls::Check::Nothing,
        });
        let client = self
            .pg
            .client_cert
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()));
        let tls = pg_tls::connector(check, self.pg.ssl_root_cert.as_deref(), client)
            .map_err(|message| named(SourceError::new(true, message), &secrets))?;
        self.load(config, tls, store, force, progress)
            .map_err(|e| named(e, &secrets))
    }
}

/// `text` with every secret replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// The connection string a `connection_file` holds (trimmed: such files
/// often end in a newline), or why it cannot be used. Only a regular file
/// (or a link to one) of at most [`MAX_CONNECTION_FILE_BYTES`] is read, so
/// a pipe or a device cannot stall or flood the refresh.
fn read_connection_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = read_small_file(path, MAX_CONNECTION_FILE_BYTES).map_err(|e| match e {
        SmallFileError::Io(e) => format!("cannot be read: {e}"),
        SmallFileError::NotRegular => "is not a regular file".to_owned(),
        SmallFileError::TooLarge => {
            format!("is larger than {} KiB", MAX_CONNECTION_FILE_BYTES >> 10)
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|_| "is not valid UTF-8".to_owned())?;
    match text.trim() {
        "" => Err("is empty".into()),
        trimmed => Ok(trimmed.to_owned()),
    }
}

/// A quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The first column names, for an error.
fn listed(names: &[&str]) -> String {
    let mut out = names
        .iter()
        .take(LISTED_COLUMNS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED_COLUMNS {
        out.push_str(&format!(" and {} more", names.len() - LISTED_COLUMNS));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = vec![
            "postgres://u:hunter22@db/crm".to_owned(),
            "hunter22".to_owned(),
            String::new(),
        ];
        assert_eq!(
            scrub("bad postgres://u:hunter22@db/crm; again hunter22", &secrets),
            "bad ***; again ***"
        );
    }
}
