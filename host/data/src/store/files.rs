//! Entities kept in files of their own, beside the store: a bulk import
//! writes its rows into a new file, off the store's write-ahead log, and
//! publishes it by naming it in `_tf_entities.file`. Every connection of
//! the store attaches the files named there (read-only and immutable: a
//! published file never changes; a new generation is a new file), so SQL
//! names an entity's table the same wherever it is kept. An entity whose
//! `file` is NULL lives in the main file, as every computed one does.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use super::StoreError;

/// Entities kept in files of their own at most; more are kept in the main
/// file. SQLite attaches at most 10 databases to a connection (its default
/// `SQLITE_MAX_ATTACHED`): one stays free for a file being published, and
/// one for the engine's own use.
pub const MAX_ENTITY_FILES: usize = 8;

/// How old an entity file no generation names must be before it is
/// removed when the store opens: younger ones may be an import under way,
/// in another process, not yet published.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// The schema a file being published is attached as.
pub(super) const INCOMING: &str = "tf_incoming";

/// The directory of `store`'s entity files: `<store>.files`.
pub(super) fn dir_of(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".files");
    store.with_file_name(name)
}

/// The schema an entity's file is attached as, quoted.
pub(super) fn schema(entity: &str) -> String {
    format!("\"tf_file_{entity}\"")
}

/// The schema a computed entity's file is attached as while staged (see
/// [`super::Publication::replace_entity_paged_with`]), quoted.
pub(super) fn staged_schema(entity: &str) -> String {
    format!("\"tf_staged_{entity}\"")
}

/// `path` as a SQLite URI of a read-only, immutable file.
pub(super) fn uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?mode=ro&immutable=1");
    out
}

/// Page cache of an attached entity file, in KiB: its tables are read in
/// order, once a stage, so the operating system's cache serves them as
/// well; SQLite's default (2 MiB a file) would add up with many sources.
pub const FILE_CACHE_KIB: u32 = 256;

/// Attach the published file `path` as `schema` (quoted).
pub(super) fn attach(conn: &Connection, path: &Path, schema: &str) -> rusqlite::Result<()> {
    conn.execute(&format!("ATTACH DATABASE ?1 AS {schema}"), [uri(path)])?;
    conn.execute_batch(&format!("PRAGMA {schema}.cache_size = -{FILE_CACHE_KIB}"))
}

/// Which entity file each connection of the store has attached.
#[derive(Debug)]
pub(super) struct Files {
    dir: PathBuf,
    attached: Mutex<Attached>,
}

#[derive(Debug, Default)]
struct Attached {
    /// `PRAGMA data_version` when last reconciled; `None`: never.
    version: Option<i64>,
    /// Entity → its file's name, as attached.
    files: HashMap<String, String>,
    /// Entity → its file's name, as last read from `_tf_entities`.
    wanted: HashMap<String, String>,
}

/// Tries to attach the files named, when each try finds them replaced by
/// the time it attaches them (another process publishing fast).
const SYNC_TRIES: usize = 8;

impl Files {
    pub(super) fn new(store: &Path) -> Self {
        Self {
            dir: dir_of(store),
            attached: Mutex::default(),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Attached> {
        self.attached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attach the files `_tf_entities` names and detach the others, if
    /// another connection committed since the last time (or always, with
    /// `force`). Call it on the store's connection, outside a transaction.
    pub(super) fn sync(&self, conn: &Connection, force: bool) -> rusqlite::Result<()> {
        let version: i64 = conn
            .prepare_cached("PRAGMA main.data_version")?
            .query_row([], |r| r.get(0))?;
        let mut state = self.lock();
        if !force && state.version == Some(version) {
            return Ok(());
        }
        let mut tries = 0;
        loop {
            tries += 1;
            match self.reconcile(conn, &mut state) {
                // A file named was replaced, and removed, since it was read.
                Err(e) if tries < SYNC_TRIES && named(conn)? != state.wanted => {
                    tracing::debug!("entity files changed while attached, again: {e}");
                }
                done => {
                    done?;
                    state.version = Some(version);
                    return Ok(());
                }
            }
        }
    }

    /// Whether the files attached are those `_tf_entities` names, as read
    /// on `conn` (inside a read transaction: its snapshot).
    pub(super) fn current(&self, conn: &Connection) -> rusqlite::Result<bool> {
        let named = named(conn)?;
        Ok(self.lock().files == named)
    }

    /// Attach what `_tf_entities` names now, detach the rest.
    fn reconcile(&self, conn: &Connection, state: &mut Attached) -> rusqlite::Result<()> {
        state.wanted = named(conn)?;
        let stale: Vec<String> = state
            .files
            .iter()
            .filter(|(e, f)| state.wanted.get(*e) != Some(*f))
            .map(|(e, _)| e.clone())
            .collect();
        for entity in stale {
            conn.execute_batch(&format!("DETACH DATABASE {}", schema(&entity)))?;
            state.files.remove(&entity);
        }
        for (entity, file) in &state.wanted {
            if state.files.contains_key(entity) {
                continue;
            }
            attach(conn, &self.dir.join(file), &schema(entity))?;
            state.files.insert(entity.clone(), file.clone());
        }
        Ok(())
    }

    /// Remove the files no entity names, but those modified within
    /// [`ORPHAN_GRACE`] (an import under way elsewhere); how many went.
    pub(super) fn remove_orphans(&self, conn: &Connection) -> usize {
        let Ok(named) = named(conn) else { return 0 };
        let kept: HashSet<String> = named.into_values().collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= ORPHAN_GRACE));
            // A list of row digests goes with its file.
            let file = name.strip_suffix(".digests").unwrap_or(&name);
            if file.ends_with(".sqlite") && !kept.contains(file) && old {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), "cannot remove an unused entity file: {e}")
                    }
                }
            }
        }
        removed
    }
}

/// Copy every table and index of the attached `schema` (quoted) into the
/// main file, under the same names; rows keep their rowids.
pub(super) fn copy_home(conn: &Connection, schema: &str) -> rusqlite::Result<()> {
    let objects: Vec<(String, String, String)> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT type, name, sql FROM {schema}.sqlite_schema
             WHERE sql IS NOT NULL ORDER BY type = 'index', rowid"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for (kind, name, sql) in &objects {
        // `CREATE …` unqualified makes it in the main file; indexes come
        // after the rows.
        conn.execute_batch(sql)?;
        if kind != "table" {
            continue;
        }
        let mut names = {
            let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1, ?2)")?;
            let cols = stmt.query_map([name.as_str(), schema.trim_matches('"')], |r| {
                r.get::<_, String>(0)
            })?;
            cols.map(|c| c.map(|c| quote(&c)))
                .collect::<Result<Vec<_>, _>>()?
        };
        if !sql.to_ascii_uppercase().contains("WITHOUT ROWID") {
            names.insert(0, "rowid".into());
        }
        let (names, table) = (names.join(", "), quote(name));
        conn.execute_batch(&format!(
            "INSERT INTO main.{table} ({names}) SELECT {names} FROM {schema}.{table}"
        ))?;
    }
    Ok(())
}

/// Entity → file, as `_tf_entities` names them.
fn named(conn: &Connection) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, file FROM _tf_entities WHERE file IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A new entity file being written; removed when dropped unless
/// [`NewFile::keep`] was called.
pub(super) struct NewFile {
    pub(super) path: PathBuf,
    pub(super) name: String,
    kept: bool,
}

impl NewFile {
    /// A name in `dir` for `entity`'s generation `generation`, not yet
    /// taken; the directory is made if missing.
    pub(super) fn reserve(dir: &Path, entity: &str, generation: i64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{entity}.{generation}.{}-{nanos:09}.sqlite",
            std::process::id()
        );
        Ok(Self {
            path: dir.join(&name),
            name,
            kept: false,
        })
    }

    /// Create the file for `entity`'s generation `generation` in `dir`, and
    /// a connection to write it: pages of `page_size` bytes, no journal
    /// (nothing reads it before it is synced and published).
    pub(super) fn create(
        dir: &Path,
        entity: &str,
        generation: i64,
        page_size: u32,
    ) -> Result<(Self, Connection), StoreError> {
        let file = Self::reserve(dir, entity, generation)?;
        let path = file.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        super::set_new_file_page_size(&conn, page_size).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA temp_store = FILE;",
        )
        .map_err(sql)?;
        Ok((file, conn))
    }

    /// Make the written file durable (its bytes and its name).
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Keep the file: it is published.
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
            // A list of its row digests goes with it (see [`super::digests`]).
            let _ = std::fs::remove_file(super::digests::path_of(&self.path));
        }
    }
}

/// Remove a file no generation names any more (readers that still have it
/// attached keep reading it until they next reconcile).
pub(super) fn remove(dir: &Path, name: &str) {
    let path = dir.join(name);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(file = %path.display(), "cannot remove a replaced entity file: {e}");
    }
    let list = super::digests::path_of(&path);
    match std::fs::remove_file(&list) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(file = %list.display(), "cannot remove a replaced file's row digests: {e}")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_a_path_may_hold() {
        assert_eq!(
            uri(Path::new("/a b/c?d#e%f/E.1.sqlite")),
            "file:/a%20b/c%3Fd%23e%25f/E.1.sqlite?mode=ro&immutable=1"
        );
    }

    #[test]
    fn the_directory_sits_beside_the_store() {
        assert_eq!(
            dir_of(Path::new("/s/entities.db")),
            Path::new("/s/entities.db.files")
        );
    }
}

#[cfg(test)]
mod store_tests {
    use rusqlite::types::Value;

    use super::super::{pushing, EntityDb, StoreError};
    use super::*;
    use crate::odata::ColumnType;

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("Id".into(), ColumnType::String),
            ("N".into(), ColumnType::Integer),
        ]
    }

    fn rows(n: i64, tag: &str) -> Vec<Result<Vec<Value>, StoreError>> {
        (0..n)
            .map(|i| Ok(vec![Value::Text(format!("{tag}{i:04}")), Value::Integer(i)]))
            .collect()
    }

    /// Rows `Id`, `N` of `n` numbered keys, the `N` of `edited` keys
    /// changed, imported page by page.
    fn paged(store: &EntityDb, n: i64, edited: &[i64]) -> u64 {
        let rows: Vec<Vec<Value>> = (0..n)
            .map(|i| {
                let v = if edited.contains(&i) { -i } else { i };
                vec![Value::Text(format!("k{i:05}")), Value::Integer(v)]
            })
            .collect();
        let paged = super::super::paged::import_paged(store, "E", &cols(), &rows, 100);
        paged.unwrap().expect("paged")
    }

    fn changed_since(store: &EntityDb, g: u64) -> Vec<String> {
        super::super::sorted_texts(store.changed_keys("E", g).unwrap().expect("tracked"))
    }

    #[test]
    fn a_paged_import_keeps_its_row_digests_beside_its_file_and_the_next_one_compares_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        assert_eq!(paged(&store, 3000, &[]), 3000);
        let first = file_of(&store, "E").expect("kept in a file");
        let list = |f: &str| format!("{f}.digests");
        assert_eq!(listed(&dir_of(&path)), [first.clone(), list(&first)]);
        paged(&store, 2990, &[5, 1500]);
        let second = file_of(&store, "E").expect("kept in a file");
        assert_eq!(listed(&dir_of(&path)), [second.clone(), list(&second)]);
        let removed = (2990..3000).map(|i| format!("k{i:05}"));
        let mut expected: Vec<String> = ["k00005", "k01500"].map(String::from).into();
        expected.extend(removed);
        assert_eq!(changed_since(&store, 1), expected);
        // A torn list: the tables are compared instead, to the same answer.
        let live = dir_of(&path).join(list(&second));
        let bytes = std::fs::read(&live).unwrap();
        std::fs::write(&live, &bytes[..bytes.len() - 1]).unwrap();
        paged(&store, 2990, &[5, 7]);
        assert_eq!(
            changed_since(&store, 2),
            ["k00007", "k01500"].map(String::from)
        );
    }

    fn import(store: &EntityDb, entity: &str, n: i64, tag: &str) -> Result<u64, StoreError> {
        store.import_entity_into_file_with(entity, "Id", &cols(), pushing(rows(n, tag)))
    }

    fn count(store: &EntityDb, entity: &str) -> i64 {
        let s = store.session();
        s.query_row(&format!("SELECT count(*) FROM \"ent_{entity}\""), [], |r| {
            r.get(0)
        })
        .unwrap()
    }

    fn file_of(store: &EntityDb, entity: &str) -> Option<String> {
        store
            .session()
            .query_row(
                "SELECT file FROM _tf_entities WHERE name = ?1",
                [entity],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn listed(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_import_is_published_as_a_file_that_replaces_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        let other = EntityDb::open(&path, Default::default()).unwrap();
        assert_eq!(import(&store, "E", 300, "a").unwrap(), 300);
        let first = file_of(&store, "E").expect("kept in a file");
        assert_eq!(listed(&dir_of(&path)), std::slice::from_ref(&first));
        assert_eq!((count(&store, "E"), count(&other, "E")), (300, 300));
        // The main file has no table of it.
        let in_main: i64 = store
            .session()
            .query_row(
                "SELECT count(*) FROM main.sqlite_schema WHERE name = 'ent_E'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_main, 0);

        import(&store, "E", 5, "b").unwrap();
        let second = file_of(&store, "E").unwrap();
        assert_ne!(first, second);
        assert_eq!(listed(&dir_of(&path)), [second]);
        // Another connection attaches the new file when it next looks.
        assert_eq!(count(&other, "E"), 5);
        assert_eq!(other.meta("E").unwrap().generation, 2);
        let item = other.get_item("E", "b0003").unwrap().unwrap();
        assert_eq!(item["N"], 3);
    }

    #[test]
    fn a_reader_sees_one_generation_or_the_next_while_files_are_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        import(&store, "E", 100, "a").unwrap();
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
        let (done, kinds) = (AtomicBool::new(false), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let other = EntityDb::open(&path, Default::default()).unwrap();
                let mut seen = HashSet::new();
                while !done.load(Relaxed) {
                    let s = other.session();
                    let (n, tags): (i64, String) = s
                        .query_row(
                            "SELECT count(*), group_concat(DISTINCT substr(Id, 1, 1)) FROM \"ent_E\"",
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .unwrap();
                    assert!(
                        matches!((n, tags.as_str()), (100, "a") | (200, "b")),
                        "a mix: {n} rows tagged {tags}"
                    );
                    seen.insert(tags);
                    kinds.store(seen.len(), Relaxed);
                }
            });
            // Until the reader has seen both (a bound keeps a failure finite).
            for round in 0..2_000 {
                let (n, tag) = if round % 2 == 0 {
                    (200, "b")
                } else {
                    (100, "a")
                };
                import(&store, "E", n, tag).unwrap();
                if round >= 20 && kinds.load(Relaxed) == 2 {
                    break;
                }
            }
            done.store(true, Relaxed);
            reader.join().unwrap();
            assert_eq!(kinds.load(Relaxed), 2, "the reader saw both generations");
        });
        assert_eq!(listed(&dir_of(&path)).len(), 1);
    }

    #[test]
    fn a_failed_import_leaves_the_live_file_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        import(&store, "E", 10, "a").unwrap();
        let live = file_of(&store, "E").unwrap();
        let mut bad = rows(10, "b");
        bad.push(Ok(vec![Value::Text("b0001".into()), Value::Integer(0)]));
        let e = store
            .import_entity_into_file_with("E", "Id", &cols(), pushing(bad))
            .unwrap_err();
        assert!(e.to_string().contains("b0001"), "{e}");
        assert_eq!(listed(&dir_of(&path)), [live]);
        assert_eq!(count(&store, "E"), 10);
    }

    #[test]
    fn a_change_in_place_brings_the_rows_home_and_a_replacement_in_main_retires_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        import(&store, "E", 20, "a").unwrap();
        let g = store.meta("E").unwrap().generation;
        store
            .apply_delta("E", g, |d| {
                d.upsert(&[Value::Text("a0003".into()), Value::Integer(-3)])?;
                Ok::<(), StoreError>(())
            })
            .unwrap();
        assert_eq!(file_of(&store, "E"), None);
        assert!(listed(&dir_of(&path)).is_empty());
        let n: i64 = store
            .session()
            .query_row("SELECT N FROM main.\"ent_E\" WHERE Id = 'a0003'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!((n, count(&store, "E")), (-3, 20));

        import(&store, "E", 4, "c").unwrap();
        assert!(file_of(&store, "E").is_some());
        store
            .replace_entity("E", "Id", &cols(), rows(2, "d"))
            .unwrap();
        assert_eq!((file_of(&store, "E"), count(&store, "E")), (None, 2));
        assert!(listed(&dir_of(&path)).is_empty());
    }

    #[test]
    fn past_the_limit_imports_go_to_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        for i in 0..=MAX_ENTITY_FILES {
            import(&store, &format!("E{i}"), 3, "a").unwrap();
        }
        let last = format!("E{MAX_ENTITY_FILES}");
        assert!(file_of(&store, "E0").is_some());
        assert_eq!(file_of(&store, &last), None);
        for i in 0..=MAX_ENTITY_FILES {
            assert_eq!(count(&store, &format!("E{i}")), 3);
        }
    }

    #[test]
    fn imports_that_each_found_room_keep_the_limit_when_they_publish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        for i in 0..MAX_ENTITY_FILES - 1 {
            import(&store, &format!("E{i}"), 3, "a").unwrap();
        }
        // Both find room; the one inside publishes first and takes it.
        let (outer, inner) = ("Outer", "Inner");
        store
            .import_entity_into_file_with(outer, "Id", &cols(), |sink| {
                import(&store, inner, 4, "i")?;
                pushing(rows(5, "o"))(sink)
            })
            .unwrap();
        assert!(file_of(&store, inner).is_some());
        assert_eq!(
            file_of(&store, outer),
            None,
            "past the limit: the main file"
        );
        assert_eq!(listed(&dir_of(&path)).len(), MAX_ENTITY_FILES);
        assert_eq!((count(&store, outer), count(&store, inner)), (5, 4));
        assert!(store.get_item(outer, "o0004").unwrap().is_some());
        // Its next import finds no room and goes to the main file as well.
        import(&store, outer, 2, "p").unwrap();
        assert_eq!((file_of(&store, outer), count(&store, outer)), (None, 2));
    }

    #[test]
    fn files_no_generation_names_are_removed_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        import(&store, "E", 3, "a").unwrap();
        drop(store);
        let files = dir_of(&path);
        let (young, old) = (files.join("E.9.1-1.sqlite"), files.join("E.8.1-1.sqlite"));
        std::fs::write(&young, b"").unwrap();
        std::fs::write(&old, b"").unwrap();
        let then = SystemTime::now() - ORPHAN_GRACE - Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(then)
            .unwrap();
        let store = EntityDb::open(&path, Default::default()).unwrap();
        assert!(young.exists(), "may be an import under way");
        assert!(!old.exists());
        assert_eq!(count(&store, "E"), 3);
    }

    #[test]
    fn a_snapshot_holds_the_rows_of_files_and_restores_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
        let store = EntityDb::open(&a, Default::default()).unwrap();
        import(&store, "E", 50, "a").unwrap();
        let copy = dir.path().join("copy.sqlite");
        super::super::snapshot(&a, &copy).unwrap();
        let target = EntityDb::open(&b, Default::default()).unwrap();
        import(&target, "E", 7, "z").unwrap();
        super::super::restore(&b, &copy).unwrap();
        assert_eq!(file_of(&target, "E"), None);
        assert_eq!(count(&target, "E"), 50);
        assert!(target.get_item("E", "a0049").unwrap().is_some());
    }
}
