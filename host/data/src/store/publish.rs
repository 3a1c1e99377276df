//! Several entities replaced as one: each is written to its staging table
//! (committed, but invisible to readers, who read the live tables), and
//! [`Publication::publish`] swaps them all in one transaction. A reader sees
//! every entity of the old generation or every one of the new, never a mix.
//!
//! An entity may instead be patched: rows deleted by key and rows inserted,
//! staged the same way and applied at publish time. Until then the engine
//! reads the patched entity through a view of the live rows with the patch.
//!
//! A computed entity may also be staged as a file of its own, written page
//! by page ([`Publication::replace_entity_paged_with`]) and attached to the
//! store's connection while staged; publishing names it in
//! `_tf_entities.file`. A patch of an entity kept in a file is applied to a
//! copy of the file, published the same way; the copy is made on a thread of
//! its own from the moment the patch is staged, while the engine goes on.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::params;
use rusqlite::types::Value;

use super::paged::{PagedSink, Sink};
use super::{
    check_names, files, integer_key, table_name, EntityDb, EntityMeta, Layout, NewRows, RowSink,
    StoreError, Table,
};
use crate::odata::{ColumnType, Schema};

mod ahead;

use ahead::Ahead;

/// One entity written but not yet published.
struct Staged {
    entity: String,
    key: String,
    columns: Vec<(String, ColumnType)>,
    rows: u64,
    /// Set when the staging table holds rows to add to the live ones after
    /// deleting the keys in [`Table::deleted`].
    patch: bool,
    /// The file holding the rows, attached as [`files::staged_schema`],
    /// when they are not in the staging table.
    file: Option<files::NewFile>,
    /// A patch's copy of the entity's file, being made since it was staged.
    making: Option<Making>,
}

/// Work run once the publication committed.
type AfterPublish<'a> = Box<dyn FnOnce() + 'a>;
/// Work finished before the publication commits; its error fails it.
type BeforePublish<'a> = Box<dyn FnOnce() -> Result<(), StoreError> + 'a>;

/// Entities replaced together; see the module docs. Dropped unpublished, it
/// removes its staging tables and the live data stays as it was.
pub struct Publication<'a> {
    store: &'a EntityDb,
    staged: Vec<Staged>,
    counters: Vec<(String, u64)>,
    before: Vec<BeforePublish<'a>>,
    after: Vec<AfterPublish<'a>>,
    /// Copies of live files started ahead of patches.
    ahead: Vec<Ahead>,
}

impl EntityDb {
    /// Start replacing several entities as one.
    pub fn publication(&self) -> Publication<'_> {
        Publication {
            store: self,
            staged: Vec::new(),
            counters: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
            ahead: Vec::new(),
        }
    }
}

impl<'a> Publication<'a> {
    /// The store written to.
    pub fn store(&self) -> &'a EntityDb {
        self.store
    }

    /// Stage new rows for `entity`, pushed by `fill` (see
    /// [`EntityDb::replace_entity_with`]; [`pushing`](super::pushing) pushes rows of an
    /// iterator); readers see them once published.
    pub fn replace_entity_with<E: From<StoreError>>(
        &mut self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let store = self.store;
        let mut conn = store.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| store.sql(e))?;
        let (rows, _, _) =
            store.fill_staging(&tx, entity, key, columns, (Layout::Clustered, 0), fill)?;
        tx.commit().map_err(|e| store.sql(e))?;
        self.unstage(entity);
        self.stage_whole((entity, key, columns), rows, None);
        Ok(rows)
    }

    /// [`Publication::replace_entity_with`], the rows written into a file
    /// of the entity's own, page by page while their keys ascend (then by
    /// SQLite; see [`paged`](super::paged)), off the store's write-ahead
    /// log. Rows are in the main file as with `replace_entity_with` when
    /// the key is an integer or [`MAX_ENTITY_FILES`](super::MAX_ENTITY_FILES)
    /// files are attached already (those of entities and those staged).
    pub fn replace_entity_paged_with<E: From<StoreError>>(
        &mut self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut dyn Sink) -> Result<(), E>,
    ) -> Result<u64, E> {
        check_names(entity, columns)?;
        self.unstage(entity);
        let store = self.store;
        let integer_key = integer_key(columns, key);
        let (generation, room) = {
            let conn = store.conn();
            let (previous, _) = store.kept_in(&conn, entity)?;
            let staged = self.staged.iter().filter(|s| s.file.is_some()).count();
            (
                previous.saturating_add(1),
                store.files_but(&conn, "")? + staged,
            )
        };
        if integer_key || room >= files::MAX_ENTITY_FILES {
            return self.replace_entity_with(entity, key, columns, |sink| fill(sink));
        }
        let new = files::NewFile::reserve(store.files.dir(), entity, generation)?;
        let page_size = store.page_size()?;
        let mut sink =
            PagedSink::create(&new.path, page_size, entity, key, columns, generation)?.going_on();
        fill(&mut sink)?;
        if let Some(why) = sink.why_set_aside() {
            tracing::debug!(
                entity,
                "rows of a computed entity set aside for SQLite: {why}"
            );
        }
        let rows = sink.count();
        sink.finish(&new.path)?;
        new.sync()?;
        let conn = store.conn();
        files::attach(&conn, &new.path, &files::staged_schema(entity)).map_err(|source| {
            StoreError::Sqlite {
                path: new.path.clone(),
                source,
            }
        })?;
        drop(conn);
        self.stage_whole((entity, key, columns), rows, Some(new));
        Ok(rows)
    }

    /// Note `entity` staged whole: `rows` rows, in `file` or its staging
    /// table.
    fn stage_whole(
        &mut self,
        (entity, key, columns): (&str, &str, &[(String, ColumnType)]),
        rows: u64,
        file: Option<files::NewFile>,
    ) {
        self.staged.push(Staged {
            entity: entity.to_owned(),
            key: key.to_owned(),
            columns: columns.to_vec(),
            rows,
            patch: false,
            file,
            making: None,
        });
    }

    /// Forget what is staged for `entity`: its file detached and removed.
    fn unstage(&mut self, entity: &str) {
        let Some(i) = self.staged.iter().position(|s| s.entity == entity) else {
            return;
        };
        let mut s = self.staged.remove(i);
        if let Some(making) = s.making.take() {
            // Its patch tables are about to go: the copy is finished first.
            drop(made(making, &s.entity));
        }
        if s.file.is_some() {
            detach_staged(self.store, &s.entity);
        }
    }

    /// Stage a patch of the live `entity`: delete the rows whose keys are in
    /// `deleted`, then add the rows pushed by `fill` (same columns as the live
    /// entity; one with a live key replaces that row). `deleted` is iterated
    /// once `fill` is done, so it may leave out what `fill` found unchanged.
    /// The number of rows it will hold.
    pub fn patch_entity_with<E: From<StoreError>>(
        &mut self,
        entity: &str,
        deleted: impl IntoIterator<Item = Value>,
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.stage_patch(
            entity,
            |tx, del| {
                let mut insert = tx.prepare(&format!("INSERT OR IGNORE INTO {del} VALUES (?1)"))?;
                for k in deleted {
                    insert.execute([k])?;
                }
                Ok(())
            },
            fill,
        )
    }

    /// Start copying the live file of `entity` (if it is kept in one) for a
    /// patch that may be staged later: the patch is then applied to that
    /// copy, not to one made when it is staged. Unused, the copy is
    /// removed with the publication.
    pub fn copy_ahead(&mut self, entity: &str) {
        if self.ahead.iter().any(|a| a.entity == entity) {
            return;
        }
        match Ahead::start(self.store, entity) {
            Ok(Some(a)) => self.ahead.push(a),
            Ok(None) => {}
            Err(e) => tracing::debug!(entity, "no copy ahead of a patch: {e}"),
        }
    }

    /// When `entity` is staged as a patch: the tables of its added rows and
    /// of the keys it deletes (which may include keys no live row has), for
    /// the engine's own SQL. Added rows equal to their live row are in
    /// neither.
    pub fn patch_tables(&self, entity: &str) -> Option<(String, String)> {
        self.staged
            .iter()
            .any(|s| s.entity == entity && s.patch)
            .then(|| (Table::staging(entity), Table::deleted(entity)))
    }

    fn stage_patch<E: From<StoreError>>(
        &mut self,
        entity: &str,
        fill_deleted: impl FnOnce(&rusqlite::Transaction<'_>, &str) -> rusqlite::Result<()>,
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let store = self.store;
        self.unstage(entity);
        let meta = store.meta(entity)?;
        let (live, del, view) = (
            table_name(entity),
            Table::deleted(entity),
            Table::patched(entity),
        );
        let key = meta.key.clone();
        let mut conn = store.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| store.sql(e))?;
        let (added, _, _) = store.fill_staging(
            &tx,
            entity,
            &key,
            &meta.schema.columns,
            (Layout::Clustered, 0),
            fill,
        )?;
        let staging = Table::staging(entity);
        tx.execute_batch(&format!(
            "DROP VIEW IF EXISTS {view};
             DROP TABLE IF EXISTS {del};
             CREATE TABLE {del} (k PRIMARY KEY);"
        ))
        .map_err(|e| store.sql(e))?;
        fill_deleted(&tx, &del).map_err(|e| store.sql(e))?;
        // A live row an added one replaces is deleted too (a key no live
        // row has deletes nothing: not looking it up is cheaper).
        tx.execute_batch(&format!(
            "INSERT OR IGNORE INTO {del} SELECT \"{key}\" FROM {staging}"
        ))
        .map_err(|e| store.sql(e))?;
        let added = added
            .saturating_sub(drop_unchanged(&tx, &meta, &staging, &del).map_err(|e| store.sql(e))?);
        let removed: i64 = tx
            .query_row(
                &format!("SELECT count(*) FROM {live} WHERE \"{key}\" IN (SELECT k FROM {del})"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| store.sql(e))?;
        tx.execute_batch(&format!(
            "CREATE TEMP VIEW {view} AS
               SELECT * FROM {live} WHERE \"{key}\" NOT IN (SELECT k FROM {del})
               UNION ALL SELECT * FROM {staging};"
        ))
        .map_err(|e| store.sql(e))?;
        tx.commit().map_err(|e| store.sql(e))?;
        let rows = (meta.rows + added).saturating_sub(u64::try_from(removed).unwrap_or(0));
        drop(conn);
        // The patch is committed: a copy of a file it applies to is made
        // now, while the engine goes on, rather than when publishing.
        let ahead = (self.ahead.iter())
            .position(|a| a.entity == entity)
            .map(|i| self.ahead.swap_remove(i));
        let making = PatchedCopy::of(store, entity, &key, ahead)?.and_then(PatchedCopy::start);
        self.staged.push(Staged {
            entity: entity.to_owned(),
            key,
            columns: meta.schema.columns.clone(),
            rows,
            patch: true,
            file: None,
            making,
        });
        Ok(rows)
    }

    /// Set the counter `name` (see [`EntityDb::counter`]) when publishing.
    pub fn set_counter(&mut self, name: &str, value: u64) {
        self.counters.retain(|(n, _)| n != name);
        self.counters.push((name.to_owned(), value));
    }

    /// Run `f` when publishing, before the commit: work done meanwhile on
    /// another thread is waited for there, and its error fails the
    /// publication. Unpublished, `f` runs when the publication is dropped
    /// and its error is ignored.
    pub fn before_publish(&mut self, f: impl FnOnce() -> Result<(), StoreError> + 'a) {
        self.before.push(Box::new(f));
    }

    /// Run `f` once the publication has committed (not if it fails).
    pub fn after_publish(&mut self, f: impl FnOnce() + 'a) {
        self.after.push(Box::new(f));
    }

    /// The table holding `entity`'s newest rows for the engine's own SQL:
    /// its staging table (or patched view) when staged here, else the live
    /// one.
    pub fn table(&self, entity: &str) -> String {
        match self.staged.iter().find(|s| s.entity == entity) {
            Some(s) if s.patch => Table::patched(entity),
            Some(s) if s.file.is_some() => {
                format!("{}.{}", files::staged_schema(entity), table_name(entity))
            }
            Some(_) => Table::staging(entity),
            None => Table::of(entity).to_string(),
        }
    }

    /// What `entity` will be once published: as staged here, else as the
    /// store has it (generation 0 while staged).
    pub fn meta(&self, entity: &str) -> Result<Arc<EntityMeta>, StoreError> {
        match self.staged.iter().find(|s| s.entity == entity) {
            Some(s) => Ok(Arc::new(EntityMeta {
                name: s.entity.clone(),
                key: s.key.clone(),
                schema: Schema {
                    columns: s.columns.clone(),
                },
                generation: 0,
                rows: s.rows,
            })),
            None => self.store.meta(entity),
        }
    }

    /// Entities staged so far, in staging order.
    pub fn entities(&self) -> Vec<&str> {
        self.staged.iter().map(|s| s.entity.as_str()).collect()
    }

    /// Make every staged entity live, in one transaction.
    pub fn publish(mut self) -> Result<(), StoreError> {
        for f in std::mem::take(&mut self.before) {
            f()?;
        }
        let store = self.store;
        let mut staged = std::mem::take(&mut self.staged);
        if staged.is_empty() && self.counters.is_empty() {
            return Ok(());
        }
        let result = (|| {
            // Patches of entities kept in files, applied to copies first.
            for s in staged.iter_mut().filter(|s| s.patch) {
                s.file = match s.making.take() {
                    Some(making) => Some(made(making, &s.entity)?),
                    None => PatchedCopy::of(store, &s.entity, &s.key, None)?
                        .map(PatchedCopy::make)
                        .transpose()?,
                };
            }
            let mut conn = store.conn();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| store.sql(e))?;
            let mut old = Vec::new();
            for s in &staged {
                let rows = match &s.file {
                    Some(f) => NewRows::File(&f.name),
                    None => NewRows::Staged,
                };
                if s.patch && s.file.is_none() {
                    apply_patch(store, &tx, s)?;
                    continue;
                }
                if s.patch {
                    drop_patch_tables(&tx, &s.entity).map_err(|e| store.sql(e))?;
                }
                old.extend(store.swap_in(&tx, &s.entity, &s.key, &s.columns, s.rows, rows)?);
            }
            tx.execute_batch(super::metadata::COUNTERS)
                .map_err(|e| store.sql(e))?;
            for (name, value) in &self.counters {
                tx.execute(
                    "INSERT INTO _tf_insights_meta (name, value) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    params![name, *value as i64],
                )
                .map_err(|e| store.sql(e))?;
            }
            tx.commit().map_err(|e| store.sql(e))?;
            drop(conn);
            Ok(old)
        })();
        for s in &staged {
            store.forget(&s.entity);
        }
        match result {
            Ok(old) => {
                // Published: staged files are read as the entities' own.
                for s in staged {
                    if let Some(file) = s.file {
                        if !s.patch {
                            detach_staged(store, &s.entity);
                        }
                        file.keep();
                    }
                }
                // Attach the new files, detach and remove the old.
                let conn = store.conn();
                match old.is_empty() {
                    true => store.retire(&conn, None),
                    false => old.into_iter().for_each(|f| store.retire(&conn, Some(f))),
                }
                drop(conn);
                for f in std::mem::take(&mut self.after) {
                    f();
                }
                Ok(())
            }
            Err(e) => {
                for s in staged.iter_mut().filter(|s| s.patch) {
                    // A copy made for the patch goes; the patch stays staged.
                    s.file = None;
                }
                self.staged = staged;
                Err(e)
            }
        }
    }
}

/// Drop from a patch the rows it would put back as they are (an added row
/// equal to the live row with its key), from its added rows and from the
/// keys it deletes, so that publishing writes only what changed; how many.
fn drop_unchanged(
    tx: &rusqlite::Transaction<'_>,
    meta: &EntityMeta,
    staging: &str,
    del: &str,
) -> rusqlite::Result<u64> {
    let (live, key) = (table_name(&meta.name), &meta.key);
    let same = super::same_values(&meta.schema.columns, key, "o", "s");
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.{UNCHANGED};
         CREATE TEMP TABLE {UNCHANGED} (k PRIMARY KEY);
         INSERT INTO temp.{UNCHANGED}
           SELECT s.\"{key}\" FROM {staging} s JOIN {live} o ON o.\"{key}\" = s.\"{key}\" WHERE {same};
         DELETE FROM {del} WHERE k IN (SELECT k FROM temp.{UNCHANGED});"
    ))?;
    let dropped = tx.execute(
        &format!("DELETE FROM {staging} WHERE \"{key}\" IN (SELECT k FROM temp.{UNCHANGED})"),
        [],
    )?;
    tx.execute_batch(&format!("DROP TABLE temp.{UNCHANGED}"))?;
    Ok(u64::try_from(dropped).unwrap_or(0))
}

/// The temporary table of the keys [`drop_unchanged`] drops.
const UNCHANGED: &str = "tf_patch_unchanged";

/// Detach `entity`'s staged file from the store's connection.
fn detach_staged(store: &EntityDb, entity: &str) {
    let conn = store.conn();
    if let Err(e) = conn.execute_batch(&format!("DETACH DATABASE {}", files::staged_schema(entity)))
    {
        tracing::warn!(entity, "cannot detach a staged entity file: {e}");
    }
}

/// Drop what `entity` has staged in the main file: its staging table, and
/// a patch's table of deleted keys and view.
fn drop_patch_tables(conn: &rusqlite::Connection, entity: &str) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "DROP VIEW IF EXISTS {}; DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        Table::patched(entity),
        Table::deleted(entity),
        Table::staging(entity)
    ))
}

/// For a patch of an entity kept in a file (which never changes once
/// published): a copy of the file with the patch applied, to publish as the
/// entity's next generation. What it needs is gathered on the caller's
/// thread ([`PatchedCopy::of`]); the copy, the patch and the sync may run on
/// another ([`PatchedCopy::make`]), as they read only committed tables.
struct PatchedCopy {
    entity: String,
    key: String,
    /// The live file, copied.
    live: PathBuf,
    /// The store, attached to read the patch.
    store: PathBuf,
    new: Start,
}

/// Where a [`PatchedCopy`] starts from.
enum Start {
    /// A name for the copy, to make.
    Reserved(files::NewFile),
    /// A copy made ahead ([`Publication::copy_ahead`]).
    Copied(Ahead),
}

/// A [`PatchedCopy`] being made on a thread of its own.
type Making = std::thread::JoinHandle<Result<files::NewFile, StoreError>>;

impl PatchedCopy {
    /// The copy to make for `entity`'s patch; `None` when the entity is in
    /// the main file. It starts from `ahead` when that copies the live file.
    fn of(
        store: &EntityDb,
        entity: &str,
        key: &str,
        ahead: Option<Ahead>,
    ) -> Result<Option<Self>, StoreError> {
        let (generation, live) = store.kept_in(&store.conn(), entity)?;
        let Some(live) = live else { return Ok(None) };
        let live = store.files.dir().join(&live);
        let new = match ahead.filter(|a| a.live == live) {
            Some(a) => Start::Copied(a),
            None => Start::Reserved(files::NewFile::reserve(
                store.files.dir(),
                entity,
                generation.saturating_add(1),
            )?),
        };
        Ok(Some(Self {
            entity: entity.to_owned(),
            key: key.to_owned(),
            live,
            store: store.path.clone(),
            new,
        }))
    }

    /// Start making it on a thread of its own; `None` (made at publish time
    /// instead) when no thread can be started.
    fn start(self) -> Option<Making> {
        let entity = self.entity.clone();
        std::thread::Builder::new()
            .name(format!("tf-patch-{entity}"))
            .spawn(move || self.make())
            .map_err(|e| tracing::debug!(entity, "patching a copy at publish time: {e}"))
            .ok()
    }

    /// Copy the live file, apply the patch, make the copy durable.
    fn make(self) -> Result<files::NewFile, StoreError> {
        let new = match self.new {
            Start::Copied(ahead) => ahead.wait()?,
            Start::Reserved(new) => {
                std::fs::copy(&self.live, &new.path).map_err(|source| StoreError::Io {
                    path: new.path.clone(),
                    source,
                })?;
                new
            }
        };
        let sql = |source| StoreError::Sqlite {
            path: new.path.clone(),
            source,
        };
        let conn = rusqlite::Connection::open(&new.path).map_err(sql)?;
        // The store is attached to read the patch; its locking stays as is.
        conn.execute_batch("PRAGMA main.journal_mode = OFF; PRAGMA main.synchronous = OFF;")
            .map_err(sql)?;
        conn.busy_timeout(STORE_BUSY).map_err(sql)?;
        conn.execute(
            "ATTACH DATABASE ?1 AS tf_store",
            [self.store.to_string_lossy()],
        )
        .map_err(sql)?;
        let (live, key) = (table_name(&self.entity), &self.key);
        conn.execute_batch(&format!(
            "BEGIN;
             DELETE FROM main.{live} WHERE \"{key}\" IN (SELECT k FROM tf_store.{del});
             INSERT INTO main.{live} SELECT * FROM tf_store.{staging};
             COMMIT;
             DETACH DATABASE tf_store;",
            del = Table::deleted(&self.entity),
            staging = Table::staging(&self.entity),
        ))
        .map_err(sql)?;
        conn.close().map_err(|(_, e)| sql(e))?;
        new.sync()?;
        Ok(new)
    }
}

/// How long a patched copy waits for the store's lock to read the patch.
const STORE_BUSY: std::time::Duration = std::time::Duration::from_secs(30);

/// The patched copy made on a thread, once it is done.
fn made(making: Making, entity: &str) -> Result<files::NewFile, StoreError> {
    making.join().unwrap_or_else(|_| {
        Err(StoreError::Declaration {
            entity: entity.to_owned(),
            message: "the thread patching a copy of its file stopped unexpectedly".to_owned(),
        })
    })
}

/// Apply a staged patch to the live table, inside `tx`, as a new generation.
fn apply_patch(
    store: &EntityDb,
    tx: &rusqlite::Transaction<'_>,
    s: &Staged,
) -> Result<(), StoreError> {
    let (live, del, view, staging) = (
        table_name(&s.entity),
        Table::deleted(&s.entity),
        Table::patched(&s.entity),
        Table::staging(&s.entity),
    );
    let key = &s.key;
    let sql = |e| store.sql(e);
    tx.execute_batch(&format!(
        "DROP VIEW IF EXISTS {view};
         DELETE FROM {live} WHERE \"{key}\" IN (SELECT k FROM {del});"
    ))
    .map_err(sql)?;
    // Row by row: one `INSERT … SELECT` would keep a statement journal of
    // every page it touches, in memory.
    {
        let mut read = tx
            .prepare(&format!("SELECT * FROM {staging}"))
            .map_err(sql)?;
        let n = read.column_count();
        let mut write = tx
            .prepare(&format!(
                "INSERT OR REPLACE INTO {live} VALUES ({})",
                vec!["?"; n].join(", ")
            ))
            .map_err(sql)?;
        let mut rows = read.query([]).map_err(sql)?;
        let mut values: Vec<Value> = Vec::with_capacity(n);
        while let Some(r) = rows.next().map_err(sql)? {
            values.clear();
            for i in 0..n {
                values.push(r.get(i).map_err(sql)?);
            }
            write
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(sql)?;
        }
    }
    tx.execute_batch(&format!("DROP TABLE {del}; DROP TABLE {staging};"))
        .map_err(sql)?;
    tx.execute(
        "UPDATE _tf_entities SET generation = generation + 1, rows = ?2, updated_at = ?3
         WHERE name = ?1",
        params![
            s.entity,
            i64::try_from(s.rows).unwrap_or(i64::MAX),
            crate::event::now_rfc3339()
        ],
    )
    .map_err(|e| store.sql(e))?;
    Ok(())
}

impl Drop for Publication<'_> {
    fn drop(&mut self) {
        for f in std::mem::take(&mut self.before) {
            if let Err(e) = f() {
                tracing::debug!("work for an unpublished publication failed: {e}");
            }
        }
        for s in &mut self.staged {
            if let Some(making) = s.making.take() {
                drop(made(making, &s.entity));
            }
        }
        for s in &self.staged {
            if s.file.is_some() {
                detach_staged(self.store, &s.entity);
            }
        }
        let conn = self.store.conn();
        for s in &self.staged {
            if let Err(e) = drop_patch_tables(&conn, &s.entity) {
                tracing::warn!(entity = %s.entity, "cannot drop an unpublished staging table: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pushing;
    use rusqlite::types::{Value, ValueRef};

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("Id".to_owned(), ColumnType::String),
            ("N".to_owned(), ColumnType::Integer),
        ]
    }

    fn rows(n: i64) -> Vec<Result<Vec<Value>, StoreError>> {
        (0..n)
            .map(|i| Ok(vec![Value::Text(format!("r{i}")), Value::Integer(i)]))
            .collect()
    }

    /// A store whose entity `A` holds `n` rows.
    /// The first column of `sql`'s rows, as text.
    fn keys_of(store: &EntityDb, sql: &str) -> Vec<String> {
        let conn = store.session();
        let mut stmt = conn.prepare(sql).unwrap();
        let keys = stmt.query_map([], |r| r.get(0)).unwrap();
        keys.map(Result::unwrap).collect()
    }

    fn store_with_a(n: i64) -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        store.replace_entity("A", "Id", &cols(), rows(n)).unwrap();
        (dir, store)
    }

    /// Whether `entity`'s live table is `WITHOUT ROWID`.
    fn clustered(store: &EntityDb, entity: &str) -> bool {
        let sql: String = store
            .conn()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [format!("ent_{entity}")],
                |r| r.get(0),
            )
            .unwrap();
        sql.ends_with("WITHOUT ROWID")
    }

    #[test]
    fn computed_rows_pushed_in_no_key_order_are_sorted_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let n = 40 * super::super::key_index::UNORDERED_KEYS;
        // Keys in no order, as a source's GUIDs give link ids.
        let ids = super::super::key_index::scattered_keys(n, 11);
        let push = |ids: &[String]| {
            let mut p = store.publication();
            let n = p.replace_entity_with("L", "Id", &cols(), |sink: &mut RowSink<'_>| {
                for group in ids.chunks(256) {
                    let cells: Vec<[ValueRef<'_>; 2]> = group
                        .iter()
                        .map(|id| [ValueRef::Text(id.as_bytes()), ValueRef::Integer(1)])
                        .collect();
                    let rows: Vec<(u64, &[ValueRef<'_>])> =
                        cells.iter().map(|c| (0, c.as_slice())).collect();
                    sink.push_batch(&rows).map_err(|(_, e)| e)?;
                }
                Ok::<(), StoreError>(())
            })?;
            p.publish()?;
            Ok::<u64, StoreError>(n)
        };
        assert_eq!(push(&ids).unwrap(), n);
        assert!(clustered(&store, "L"));
        assert_eq!(store.meta("L").unwrap().rows, n);
        let conn = store.conn();
        let stored: Vec<String> = conn
            .prepare("SELECT Id FROM \"ent_L\"")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut sorted = ids.clone();
        sorted.sort();
        assert!(
            stored == sorted,
            "{} rows stored in key order of {}",
            stored.iter().zip(&sorted).filter(|(a, b)| a == b).count(),
            sorted.len()
        );
        let side: i64 = conn
            .query_row("SELECT count(*) FROM temp.sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(side, 0, "the side table is gone");
        drop(conn);
        // A repeated key fails the staging and keeps the published rows.
        let mut twice = ids.clone();
        twice.push(ids[7].clone());
        let err = push(&twice).unwrap_err().to_string();
        assert!(err.contains("UNIQUE constraint failed"), "{err}");
        assert_eq!(store.meta("L").unwrap().rows, n);
    }

    #[test]
    fn computed_entities_are_kept_in_key_order_and_sources_by_rowid() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        store.replace_entity("Src", "Id", &cols(), rows(2)).unwrap();
        assert!(!clustered(&store, "Src"), "an import keeps its rowids");
        let mut p = store.publication();
        p.replace_entity_with("A", "Id", &cols(), |sink: &mut RowSink<'_>| {
            for i in [3i64, 1, 2] {
                let id = format!("r{i}");
                sink.push_refs(&[ValueRef::Text(id.as_bytes()), ValueRef::Integer(i)])?;
            }
            Ok::<(), StoreError>(())
        })
        .unwrap();
        p.publish().unwrap();
        assert!(clustered(&store, "A"));
        assert_eq!(
            store.get_item("A", "r2").unwrap(),
            Some(serde_json::json!({"Id": "r2", "N": 2}))
        );
        // A patch of a clustered entity, and the key error of borrowed rows.
        let mut p = store.publication();
        p.patch_entity_with("A", [Value::Text("r1".into())], |sink: &mut RowSink<'_>| {
            sink.push_refs(&[ValueRef::Text(b"r4"), ValueRef::Integer(4)])
        })
        .unwrap();
        p.publish().unwrap();
        assert!(store.get_item("A", "r1").unwrap().is_none());
        assert_eq!(store.meta("A").unwrap().rows, 3);
        let mut p = store.publication();
        let err = p
            .replace_entity_with("B", "Id", &cols(), |sink: &mut RowSink<'_>| {
                sink.push_refs(&[ValueRef::Text(b"x"), ValueRef::Integer(1)])?;
                sink.push_refs(&[ValueRef::Text(b"x"), ValueRef::Integer(2)])
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "entity 'B', row 2: duplicate key 'x' in field 'Id'"
        );
    }

    #[test]
    fn batches_go_in_chunks_and_a_failure_names_the_row_at_fault() {
        use crate::store::INSERT_CHUNK_ROWS;
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        // Two whole chunks and a rest; the tag of row i is 100 + i.
        let n = 2 * INSERT_CHUNK_ROWS + 5;
        let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        #[derive(Debug, PartialEq)]
        struct Failed(String);
        impl From<StoreError> for Failed {
            fn from(e: StoreError) -> Self {
                Failed(e.to_string())
            }
        }
        let push = |ids: &[String], narrow: Option<usize>| {
            store.replace_entity_with("B", "Id", &cols(), |sink: &mut RowSink<'_>| {
                let values: Vec<Vec<ValueRef<'_>>> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        let mut row =
                            vec![ValueRef::Text(id.as_bytes()), ValueRef::Integer(i as i64)];
                        row.truncate(if narrow == Some(i) { 1 } else { 2 });
                        row
                    })
                    .collect();
                let rows: Vec<(u64, &[ValueRef<'_>])> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (100 + i as u64, v.as_slice()))
                    .collect();
                sink.push_batch(&rows)
                    .map_err(|(tag, e)| Failed(format!("tag {tag}: {e}")))
            })
        };
        assert_eq!(push(&ids, None), Ok(n as u64));
        assert_eq!(
            store.get_item("B", &format!("r{}", n - 1)).unwrap(),
            Some(serde_json::json!({"Id": format!("r{}", n - 1), "N": n - 1}))
        );
        // A duplicate in the second chunk: the rows before it were stored.
        let mut dup = ids.clone();
        dup[INSERT_CHUNK_ROWS + 3] = "r2".into();
        let at = INSERT_CHUNK_ROWS + 3;
        assert_eq!(
            push(&dup, None),
            Err(Failed(format!(
                "tag {}: entity 'B', row {}: duplicate key 'r2' in field 'Id'",
                100 + at,
                at + 1
            )))
        );
        // A row too narrow, in the first chunk and in the rest.
        for at in [1, n - 2] {
            assert_eq!(
                push(&ids, Some(at)),
                Err(Failed(format!(
                    "tag {}: entity 'B', row {}: 1 values for 2 columns",
                    100 + at,
                    at + 1
                )))
            );
        }
        assert_eq!(store.meta("B").unwrap().rows, n as u64);
    }

    #[test]
    fn work_waited_for_before_publishing_fails_the_publication_or_runs_when_dropped() {
        let (_dir, store) = store_with_a(1);
        let mut p = store.publication();
        p.replace_entity_with("A", "Id", &cols(), pushing(rows(3)))
            .unwrap();
        p.before_publish(|| {
            Err(StoreError::Io {
                path: "keys.next".into(),
                source: std::io::Error::other("disk full"),
            })
        });
        let e = p.publish().unwrap_err();
        assert_eq!(e.to_string(), "cannot create keys.next: disk full");
        assert_eq!(store.meta("A").unwrap().rows, 1, "nothing published");
        let ran = std::cell::Cell::new(false);
        {
            let mut p = store.publication();
            p.before_publish(|| {
                ran.set(true);
                Ok(())
            });
        }
        assert!(ran.get(), "run when dropped unpublished");
        let mut p = store.publication();
        p.replace_entity_with("A", "Id", &cols(), pushing(rows(2)))
            .unwrap();
        p.before_publish(|| Ok(()));
        p.publish().unwrap();
        assert_eq!(store.meta("A").unwrap().rows, 2);
    }

    #[test]
    fn a_patch_reads_its_deleted_keys_once_its_rows_are_in() {
        let (_dir, store) = store_with_a(4);
        let filled = std::cell::Cell::new(false);
        let deleted = ["r1", "r2"].into_iter().map(|k| {
            assert!(
                filled.get(),
                "deleted keys read before the rows were pushed"
            );
            Value::Text(k.to_owned())
        });
        let mut p = store.publication();
        let fill = |sink: &mut RowSink<'_>| {
            filled.set(true);
            pushing(vec![Ok(vec![Value::Text("r9".into()), Value::Integer(9)])])(sink)
        };
        assert_eq!(p.patch_entity_with("A", deleted, fill).unwrap(), 3);
        p.publish().unwrap();
        let ids: Vec<String> = store
            .conn()
            .prepare("SELECT Id FROM ent_A ORDER BY Id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids, ["r0", "r3", "r9"]);
    }

    #[test]
    fn staged_entities_stay_invisible_until_published_together() {
        let (_dir, store) = store_with_a(1);
        let mut p = store.publication();
        p.replace_entity_with("A", "Id", &cols(), pushing(rows(3)))
            .unwrap();
        p.replace_entity_with("B", "Id", &cols(), pushing(rows(2)))
            .unwrap();
        assert_eq!(p.table("A"), "\"ent_A__staging\"");
        assert_eq!(p.table("C"), "\"ent_C\"");
        assert_eq!(p.meta("A").unwrap().rows, 3);
        // Readers still see the old A and no B.
        assert_eq!(store.meta("A").unwrap().rows, 1);
        assert!(matches!(store.meta("B"), Err(StoreError::UnknownEntity(_))));
        p.publish().unwrap();
        assert_eq!(store.meta("A").unwrap().rows, 3);
        assert_eq!(store.meta("A").unwrap().generation, 2);
        assert_eq!(store.meta("B").unwrap().rows, 2);
    }

    #[test]
    fn an_unpublished_publication_leaves_the_live_data_and_no_staging_table() {
        let (_dir, store) = store_with_a(1);
        {
            let mut p = store.publication();
            p.replace_entity_with("A", "Id", &cols(), pushing(rows(5)))
                .unwrap();
        }
        assert_eq!(store.meta("A").unwrap().rows, 1);
        let staging: i64 = store
            .session()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE '%staging%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(staging, 0);
    }

    #[test]
    fn rows_a_patch_would_put_back_as_they_are_are_dropped_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let row = |k: &str, n: Option<i64>| -> Result<Vec<Value>, StoreError> {
            Ok(vec![
                Value::Text(k.into()),
                n.map_or(Value::Null, Value::Integer),
            ])
        };
        let live = vec![
            row("r0", Some(0)),
            row("r1", None),
            row("r2", Some(2)),
            row("r3", Some(3)),
        ];
        store.replace_entity("A", "Id", &cols(), live).unwrap();
        let mut p = store.publication();
        // r0 and r1 come back as they are (r0 without being deleted first),
        // r2 changes, r3 goes, one row is new.
        let fill = pushing(vec![
            row("r0", Some(0)),
            row("r1", None),
            row("r2", Some(20)),
            row("new", Some(9)),
        ]);
        let keys = ["r1", "r2", "r3"].map(|k| Value::Text(k.into()));
        assert_eq!(p.patch_entity_with("A", keys, fill).unwrap(), 4);
        let keys_of = |sql: &str| keys_of(&store, sql);
        let (added, deleted) = p.patch_tables("A").unwrap();
        assert_eq!(
            keys_of(&format!("SELECT Id FROM {added} ORDER BY 1")),
            ["new", "r2"]
        );
        // "new" deletes nothing: added keys go in without being looked up.
        let deleted = format!("SELECT k FROM {deleted} ORDER BY 1");
        assert_eq!(keys_of(&deleted), ["new", "r2", "r3"]);
        let view = format!(
            "SELECT Id || ':' || ifnull(N, '-') FROM {} ORDER BY 1",
            p.table("A")
        );
        let expected = ["new:9", "r0:0", "r1:-", "r2:20"];
        assert_eq!(keys_of(&view), expected);
        p.publish().unwrap();
        assert_eq!(
            keys_of("SELECT Id || ':' || ifnull(N, '-') FROM ent_A ORDER BY 1"),
            expected
        );
        assert_eq!(store.meta("A").unwrap().rows, 4);
    }

    #[test]
    fn a_row_a_patch_deletes_and_adds_back_as_it_was_is_dropped_from_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let row = |k: &str| -> Result<Vec<Value>, StoreError> {
            Ok(vec![Value::Text(k.into()), Value::Integer(1)])
        };
        let live = vec![row("m0"), row("m1"), row("m2")];
        store.replace_entity("A", "Id", &cols(), live).unwrap();
        let mut p = store.publication();
        // m1 is deleted and added again: it stays as it is; m2 goes; "m3"
        // is new; m0 is not touched.
        let keys = ["m1", "m2"].map(|k| Value::Text(k.into()));
        let fill = pushing(vec![row("m1"), row("m3")]);
        assert_eq!(p.patch_entity_with("A", keys, fill).unwrap(), 3);
        let keys_of = |sql: &str| keys_of(&store, sql);
        let (added, deleted) = p.patch_tables("A").unwrap();
        assert_eq!(keys_of(&format!("SELECT Id FROM {added}")), ["m3"]);
        let deleted = format!("SELECT k FROM {deleted} ORDER BY 1");
        assert_eq!(keys_of(&deleted), ["m2", "m3"]);
        p.publish().unwrap();
        assert_eq!(
            keys_of("SELECT Id FROM ent_A ORDER BY 1"),
            ["m0", "m1", "m3"]
        );
    }

    #[test]
    fn a_patch_is_read_through_a_view_and_applied_with_counters_at_publish() {
        let (_dir, store) = store_with_a(4);
        let mut p = store.publication();
        let fill = pushing(vec![
            Ok(vec![Value::Text("new".into()), Value::Integer(9)]),
            Ok(vec![Value::Text("r0".into()), Value::Integer(10)]),
        ]);
        let keys = ["r1", "r3", "absent"].map(|k| Value::Text(k.into()));
        assert_eq!(p.patch_entity_with("A", keys, fill).unwrap(), 3);
        p.set_counter("c", 7);
        let count = |table: &str| -> i64 {
            store
                .session()
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&p.table("A")), 3);
        assert_eq!(count(&Table::of("A").to_string()), 4);
        let published = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = published.clone();
        p.after_publish(move || flag.set(true));
        p.publish().unwrap();
        assert!(published.get());
        let ids: Vec<(String, i64)> = store
            .session()
            .prepare("SELECT Id, N FROM ent_A ORDER BY Id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected = [("new", 9), ("r0", 10), ("r2", 2)].map(|(k, n)| (k.to_owned(), n));
        assert_eq!(ids, expected);
        let meta = store.meta("A").unwrap();
        assert_eq!((meta.rows, meta.generation), (3, 2));
        assert_eq!(store.counter("c").unwrap(), Some(7));
        let leftovers: i64 = store
            .session()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ent_A__%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leftovers, 0);
    }
}
