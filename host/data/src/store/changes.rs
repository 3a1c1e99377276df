//! Which rows each replacement of an entity changed, so unification can
//! re-run only where source rows changed. When an entity is replaced through
//! [`EntityDb::replace_entity_with`], the keys of rows added, changed or
//! removed are recorded under the new generation, in the same transaction.
//! A replacement that changes too many rows, or the columns, is recorded as
//! "not tracked": readers then treat every row as changed.

use std::sync::atomic::Ordering;

use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Transaction};

use super::walk_diff::{self, MAX_WAITING_ROWS};
use super::{hash_diff, EntityDb, StoreError};

/// Keys recorded per replacement; more means "everything changed" (a
/// re-run over that many rows is no cheaper than a full one).
pub const MAX_TRACKED_CHANGES: u64 = 250_000;
/// Replacements whose changes are kept per entity; older ones are dropped.
pub const KEPT_CHANGE_SETS: u64 = 16;

const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS _tf_change_sets (
        entity TEXT NOT NULL,
        generation INTEGER NOT NULL,
        tracked INTEGER NOT NULL,
        PRIMARY KEY (entity, generation)
    );
    CREATE TABLE IF NOT EXISTS _tf_changes (
        entity TEXT NOT NULL,
        generation INTEGER NOT NULL,
        key NOT NULL
    );
    CREATE INDEX IF NOT EXISTS _tf_changes_by_generation ON _tf_changes (entity, generation);";

/// An entity's live table and the table about to replace it, as SQL names
/// them (qualified by schema where they may be in files of their own).
#[derive(Clone)]
pub(super) struct Replacing {
    pub(super) live: String,
    pub(super) new: String,
    /// When the new table is in a file of its own: the file, as a URI to
    /// open read-only, and the table's name in it.
    pub(super) new_file: Option<(String, String)>,
    /// When both tables are in files of their own, which may have lists of
    /// row digests beside them (see [`super::digests`]; compared when both
    /// do): the live file, the new one and its rows.
    pub(super) digests: Option<(std::path::PathBuf, std::path::PathBuf, u64)>,
    /// The walk of the live file's list against the new one's, made while
    /// the new one was written.
    pub(super) walked: Option<Walked>,
}

/// A walk of a live file's list of row digests against a new one's (see
/// [`walk_diff::diff_digests_fed`]): the live file it read, and its
/// answer, `None` when it failed.
pub(super) type Walked = (std::path::PathBuf, Option<Option<Vec<Value>>>);

/// Record, inside `tx`, which keys differ between `entity`'s live table and
/// the table about to become its next generation: both tables walked side
/// by side in storage order ([`walk_diff`]), or, when `unordered` (the rows
/// came in no key order) or the walk finds them so, matched by hash
/// partitions ([`hash_diff`]).
pub(super) fn record(
    store: &EntityDb,
    tx: &Transaction<'_>,
    entity: &str,
    key: &str,
    columns: &[(String, crate::odata::ColumnType)],
    unordered: bool,
    tables: &Replacing,
) -> Result<(), StoreError> {
    let sql = |e| store.sql(e);
    create_tables(tx).map_err(sql)?;
    let previous: Option<(String, String, i64, i64)> = tx
        .query_row(
            "SELECT key, columns, generation, rows FROM _tf_entities WHERE name = ?1",
            params![entity],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(sql)?;
    let g = previous.as_ref().map_or(0, |p| p.2).saturating_add(1);
    let live_rows = previous
        .as_ref()
        .map_or(0, |p| u64::try_from(p.3).unwrap_or(0));
    let same_shape = previous.is_some_and(|(k, cols, _, _)| {
        let now: Vec<(&str, &str)> = columns
            .iter()
            .map(|(c, t)| (c.as_str(), super::type_name(*t)))
            .collect();
        k == key && serde_json::to_string(&now).is_ok_and(|s| s == cols)
    });
    let mut tracked = same_shape && store.untracked.load(Ordering::Relaxed) == 0;
    if tracked {
        let limit = MAX_TRACKED_CHANGES + 1;
        let walked = match (unordered, by_digests(tables, live_rows, limit)) {
            (true, _) => None,
            (false, Some(walked)) => walked,
            (false, None) => {
                walk_diff::diff(tx, tables, key, columns, limit, MAX_WAITING_ROWS).map_err(sql)?
            }
        };
        let keys = match walked {
            Some(keys) => keys,
            None => {
                let dir = store.temp_dir();
                let parts = hash_diff::partitions_for(live_rows);
                hash_diff::diff(tx, &dir, tables, key, columns, parts, limit).map_err(
                    |e| match e {
                        hash_diff::DiffError::Sql(e) => sql(e),
                        hash_diff::DiffError::Io(source) => StoreError::Io {
                            path: dir.clone(),
                            source,
                        },
                    },
                )?
            }
        };
        let mut insert = tx
            .prepare("INSERT INTO _tf_changes (entity, generation, key) VALUES (?1, ?2, ?3)")
            .map_err(sql)?;
        for k in &keys {
            insert.execute(params![entity, g, k]).map_err(sql)?;
        }
        tracked = (keys.len() as u64) < limit;
    }
    note_set(tx, entity, g, tracked).map_err(sql)
}

/// The walk of the two files' lists of row digests (see [`walk_diff::diff`]
/// for its answer), or `None` when there are no such lists to compare or
/// one is torn or of another length.
fn by_digests(tables: &Replacing, live_rows: u64, limit: u64) -> Option<Option<Vec<Value>>> {
    let (live, new, new_rows) = tables.digests.as_ref()?;
    // Walked against the file still live, the answer stands.
    if let Some((read, Some(answer))) = &tables.walked {
        if read == live {
            return Some(answer.clone());
        }
    }
    let listed = |f: &std::path::Path| super::digests::path_of(f).exists();
    if !listed(live) || !listed(new) {
        return None;
    }
    walk_diff::diff_digests((live, live_rows), (new, *new_rows), limit, MAX_WAITING_ROWS)
        .inspect_err(|e| tracing::warn!("comparing the tables instead of their row digests: {e}"))
        .ok()
}

/// The tables of recorded changes, created when missing.
pub(super) fn create_tables(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(TABLES)
}

/// Record generation `g` of `entity` as a change set whose keys are in
/// `_tf_changes` (`tracked`), or not tracked (its keys are dropped), and
/// forget the sets older than the last [`KEPT_CHANGE_SETS`].
pub(super) fn note_set(
    tx: &Transaction<'_>,
    entity: &str,
    g: i64,
    tracked: bool,
) -> rusqlite::Result<()> {
    if !tracked {
        tx.execute(
            "DELETE FROM _tf_changes WHERE entity = ?1 AND generation = ?2",
            params![entity, g],
        )?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO _tf_change_sets (entity, generation, tracked) VALUES (?1, ?2, ?3)",
        params![entity, g, tracked],
    )?;
    let oldest = g.saturating_sub(i64::try_from(KEPT_CHANGE_SETS).unwrap_or(i64::MAX));
    for table in ["_tf_changes", "_tf_change_sets"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE entity = ?1 AND generation <= ?2"),
            params![entity, oldest],
        )?;
    }
    Ok(())
}

/// While held, replacements record no changes: their sets read as not
/// tracked, and the rows are not compared. For a refresh that recomputes
/// everything downstream anyway (`refresh --full --force`).
#[must_use = "changes are tracked again when it is dropped"]
pub struct Untracked<'a>(&'a EntityDb);

impl Drop for Untracked<'_> {
    fn drop(&mut self) {
        self.0.untracked.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EntityDb {
    /// Stop recording which rows replacements change until the guard is
    /// dropped (see [`Untracked`]).
    pub fn untracked_changes(&self) -> Untracked<'_> {
        self.untracked.fetch_add(1, Ordering::Relaxed);
        Untracked(self)
    }

    /// The keys of `entity`'s rows added, changed or removed after
    /// generation `since`, up to its current generation; `None` when some
    /// replacement in between was not tracked (see the module docs).
    pub fn changed_keys(&self, entity: &str, since: u64) -> Result<Option<Vec<Value>>, StoreError> {
        let current = self.meta(entity)?.generation;
        if current < since {
            return Ok(None);
        }
        if current == since {
            return Ok(Some(Vec::new()));
        }
        let s = self.session();
        s.execute_batch(TABLES).map_err(|e| s.error(e))?;
        let (lo, hi) = (
            i64::try_from(since).unwrap_or(i64::MAX),
            i64::try_from(current).unwrap_or(i64::MAX),
        );
        let (sets, tracked): (i64, i64) = s
            .query_row(
                "SELECT count(*), coalesce(sum(tracked), 0) FROM _tf_change_sets
                 WHERE entity = ?1 AND generation > ?2 AND generation <= ?3",
                params![entity, lo, hi],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| s.error(e))?;
        if sets != hi - lo || tracked != sets {
            return Ok(None);
        }
        let mut stmt = s
            .prepare(
                "SELECT DISTINCT key FROM _tf_changes
                 WHERE entity = ?1 AND generation > ?2 AND generation <= ?3",
            )
            .map_err(|e| s.error(e))?;
        let keys = stmt
            .query_map(params![entity, lo, hi], |r| r.get::<_, Value>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| s.error(e))?;
        Ok(Some(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::ColumnType;
    use rusqlite::types::ValueRef;

    fn put(store: &EntityDb, cols: &[&str], rows: &[&[i64]]) {
        let columns: Vec<(String, ColumnType)> = cols
            .iter()
            .map(|c| (c.to_string(), ColumnType::Integer))
            .collect();
        let rows = rows
            .iter()
            .map(|r| Ok(r.iter().map(|v| Value::Integer(*v)).collect()));
        store.replace_entity("E", "Id", &columns, rows).unwrap();
    }

    /// The keys recorded as changed after generation `since`, each taken
    /// by `pick`, sorted; `None` when not tracked.
    fn changed<T: Ord>(
        store: &EntityDb,
        since: u64,
        pick: impl Fn(Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        store.changed_keys("E", since).unwrap().map(|ks| {
            let mut out: Vec<T> = ks
                .into_iter()
                .map(|k| pick(k.clone()).unwrap_or_else(|| panic!("{k:?}")))
                .collect();
            out.sort();
            out
        })
    }

    fn keys(store: &EntityDb, since: u64) -> Option<Vec<i64>> {
        changed(store, since, |k| match k {
            Value::Integer(n) => Some(n),
            _ => None,
        })
    }

    #[test]
    fn replacements_record_added_changed_and_removed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        put(&store, &["Id", "V"], &[&[1, 10], &[2, 20], &[3, 30]]);
        // The first import has nothing to compare with.
        assert_eq!(keys(&store, 0), None);
        assert_eq!(keys(&store, 1), Some(vec![]));
        put(&store, &["Id", "V"], &[&[1, 10], &[2, 21], &[4, 40]]);
        assert_eq!(keys(&store, 1), Some(vec![2, 3, 4]));
        put(&store, &["Id", "V"], &[&[1, 11], &[2, 21], &[4, 40]]);
        assert_eq!(keys(&store, 1), Some(vec![1, 2, 3, 4]));
        assert_eq!(keys(&store, 2), Some(vec![1]));
        // A new column changes every row's shape: not tracked.
        put(&store, &["Id", "V", "W"], &[&[1, 11, 0]]);
        assert_eq!(keys(&store, 3), None);
        assert_eq!(keys(&store, 4), Some(vec![]));
    }

    #[test]
    fn replacements_while_untracked_record_no_changes_and_tracking_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        put(&store, &["Id", "V"], &[&[1, 10], &[2, 20]]);
        let outer = store.untracked_changes();
        let inner = store.untracked_changes();
        put(&store, &["Id", "V"], &[&[1, 11], &[2, 20]]);
        drop(inner);
        put(&store, &["Id", "V"], &[&[1, 12], &[2, 20]]);
        // Held by either guard: not tracked, so read as everything changed.
        assert_eq!(keys(&store, 1), None);
        assert_eq!(keys(&store, 2), None);
        drop(outer);
        put(&store, &["Id", "V"], &[&[1, 12], &[2, 21]]);
        assert_eq!(keys(&store, 3), Some(vec![2]));
    }

    /// The text keys recorded as changed by the second replacement, sorted.
    fn text_keys_changed_since_first(store: &EntityDb) -> Vec<String> {
        changed(store, 1, |k| match k {
            Value::Text(t) => Some(t),
            _ => None,
        })
        .unwrap()
    }

    /// Import text-keyed rows `(key, value)` in the order given (see
    /// [`import_values`]).
    fn import(store: &EntityDb, rows: &[(String, i64)]) {
        let rows: Vec<[Value; 3]> = rows
            .iter()
            .map(|(k, v)| [Value::Text(k.clone()), Value::Integer(*v), Value::Null])
            .collect();
        import_values(store, &rows);
    }

    #[test]
    fn keys_in_no_order_record_the_same_changes_as_keys_in_order() {
        let keys =
            super::super::key_index::scattered_keys(3 * super::super::key_index::UNORDERED_KEYS, 5);
        let before: Vec<(String, i64)> = keys.iter().map(|k| (k.clone(), 1)).collect();
        // Rows 10, 20 and 30 changed, 40 and 50 removed, two added.
        let mut after: Vec<(String, i64)> = before
            .iter()
            .enumerate()
            .filter(|(i, _)| ![40, 50].contains(i))
            .map(|(i, (k, v))| (k.clone(), if [10, 20, 30].contains(&i) { 2 } else { *v }))
            .collect();
        after.push(("0-new".to_owned(), 1));
        after.push(("~new".to_owned(), 1));
        let mut expected: Vec<String> = [10, 20, 30, 40, 50]
            .iter()
            .map(|&i| keys[i].clone())
            .collect();
        expected.extend(["0-new".to_owned(), "~new".to_owned()]);
        expected.sort();
        for ordered in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
            let (mut a, mut b) = (before.clone(), after.clone());
            if ordered {
                a.sort();
                b.sort();
            }
            import(&store, &a);
            import(&store, &b);
            let got = text_keys_changed_since_first(&store);
            assert_eq!(got, expected, "keys in order: {ordered}");
        }
    }

    /// Import rows of (text key, integer or NULL, text or NULL), in the order
    /// given, in batches as a file import pushes them.
    fn import_values(store: &EntityDb, rows: &[[Value; 3]]) {
        import_values_into(store, rows, false)
    }

    /// [`import_values`], into a file of the entity's own when `into_file`.
    fn import_values_into(store: &EntityDb, rows: &[[Value; 3]], into_file: bool) {
        let columns = vec![
            ("Id".to_owned(), ColumnType::String),
            ("V".to_owned(), ColumnType::Integer),
            ("W".to_owned(), ColumnType::String),
        ];
        let fill = |sink: &mut crate::store::RowSink<'_>| {
            for (b, group) in rows.chunks(256).enumerate() {
                let cells: Vec<Vec<ValueRef<'_>>> = group
                    .iter()
                    .map(|r| r.iter().map(ValueRef::from).collect())
                    .collect();
                let batch: Vec<(u64, &[ValueRef<'_>])> = (1u64..)
                    .zip(&cells)
                    .map(|(i, c)| (b as u64 * 256 + i, c.as_slice()))
                    .collect();
                sink.push_batch(&batch).map_err(|(_, e)| e)?;
            }
            Ok::<(), StoreError>(())
        };
        match into_file {
            true => store.import_entity_into_file_with("E", "Id", &columns, fill),
            false => store.import_entity_with("E", "Id", &columns, fill),
        }
        .unwrap();
    }

    /// Random replacements record exactly the keys added, changed (values
    /// to and from NULL included) or removed, whichever way the diff goes:
    /// the join by key for keys in order (or nearly: one late key on either
    /// side), hash partitions for keys in no order.
    #[test]
    fn random_replacements_record_exactly_the_keys_that_differ() {
        let mut x = 11u64;
        let mut next = move |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        // (how the old rows are stored, how the new ones come)
        let ways = [
            ("sorted", "sorted"),
            ("sorted", "one late key"),
            ("one late key", "sorted"),
            ("sorted", "shuffled"),
        ];
        for (round, (before_way, after_way)) in ways.into_iter().cycle().take(12).enumerate() {
            let value = |next: &mut dyn FnMut(u64) -> u64| -> [Value; 2] {
                let v = match next(5) {
                    0 => Value::Null,
                    n => Value::Integer(n as i64),
                };
                let w = match next(4) {
                    0 => Value::Null,
                    n => Value::Text(format!("w{n}")),
                };
                [v, w]
            };
            let before: Vec<[Value; 3]> = (0..3000)
                .map(|i| {
                    let [v, w] = value(&mut next);
                    [Value::Text(format!("k{i:05}")), v, w]
                })
                .collect();
            let mut after = Vec::new();
            let mut expected = Vec::new();
            for row in &before {
                let Value::Text(k) = &row[0] else {
                    unreachable!()
                };
                match next(40) {
                    // Removed.
                    0 => expected.push(k.clone()),
                    // Changed, or given the values it had.
                    1 | 2 => {
                        let [v, w] = value(&mut next);
                        if [&v, &w] != [&row[1], &row[2]] {
                            expected.push(k.clone());
                        }
                        after.push([row[0].clone(), v, w]);
                    }
                    // Kept, and a new key after it.
                    3 => {
                        after.push(row.clone());
                        let new = format!("{k}+");
                        expected.push(new.clone());
                        let [v, w] = value(&mut next);
                        after.push([Value::Text(new), v, w]);
                    }
                    _ => after.push(row.clone()),
                }
            }
            let arrange = |rows: &mut Vec<[Value; 3]>,
                           way: &str,
                           next: &mut dyn FnMut(u64) -> u64| match way {
                "one late key" => {
                    let late = rows.remove(rows.len() / 3);
                    rows.push(late);
                }
                "shuffled" => {
                    for i in (1..rows.len()).rev() {
                        rows.swap(i, next(i as u64 + 1) as usize);
                    }
                }
                _ => {}
            };
            let mut before = before;
            arrange(&mut before, before_way, &mut next);
            arrange(&mut after, after_way, &mut next);
            let dir = tempfile::tempdir().unwrap();
            let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
            // Into the main file, or files of the entity's own (whose new
            // rows the walk reads on a thread of their own).
            let into_file = round % 3 == 2;
            import_values_into(&store, &before, into_file);
            import_values_into(&store, &after, into_file);
            let got = text_keys_changed_since_first(&store);
            expected.sort();
            assert!(!expected.is_empty());
            assert_eq!(
                got, expected,
                "round {round}: stored {before_way}, new rows {after_way}"
            );
        }
    }

    #[test]
    fn old_change_sets_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        for v in 0..(KEPT_CHANGE_SETS as i64 + 3) {
            put(&store, &["Id", "V"], &[&[1, v]]);
        }
        assert_eq!(keys(&store, 1), None);
        assert_eq!(keys(&store, 3), Some(vec![1]));
    }
}
