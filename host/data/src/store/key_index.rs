//! Keyed tables filled with keys in no order: the key's index built, or
//! the rows sorted in, once the rows are in.
//!
//! Inserting rows into a table whose key is indexed costs a search of the
//! index per row. Keys in order (ascending ids) touch only the index's last
//! pages, which is cheap. Keys in no order (GUIDs, as CRM systems use)
//! touch pages all over the index, and once it outgrows SQLite's page
//! cache, every row reads pages back. An import starts with the index and
//! watches the keys ([`KeyOrder`]); when they prove unordered, it drops the
//! index, appends the rest of its rows, and builds the index in one sorted
//! pass (`CREATE UNIQUE INDEX`). A duplicate key is then found by that
//! pass, and named as an insert would have named it: the first row, in the
//! order pushed, whose key an earlier row already has.
//!
//! A clustered table (`WITHOUT ROWID`, the engine's computed entities such
//! as `CustomerSourceLink`, keyed by source key) is its own index: its rows,
//! once their keys prove unordered, wait in a temporary side table and go
//! in with one `INSERT … SELECT … ORDER BY` key after the last. SQLite's
//! sorter spills to files, so memory stays bounded.

use std::cmp::Ordering;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Transaction};

/// Keys pushed out of order (lower than the one before) after which an
/// import drops its key index, when they are also more than one in
/// [`UNORDERED_ONE_IN`] of the keys seen: a few late keys in an ordered
/// file keep it.
pub const UNORDERED_KEYS: u64 = 1024;
/// See [`UNORDERED_KEYS`].
pub const UNORDERED_ONE_IN: u64 = 16;

/// Counts keys lower than the key before them, in SQLite's order.
#[derive(Debug, Default)]
pub(super) struct KeyOrder {
    last: Option<Value>,
    seen: u64,
    descents: u64,
}

impl KeyOrder {
    /// Whether keys are still worth watching (not yet found unordered).
    pub(super) fn watching(&self) -> bool {
        !self.unordered()
    }

    /// The keys seen so far are in no useful order.
    pub(super) fn unordered(&self) -> bool {
        self.descents >= UNORDERED_KEYS
            && self.descents.saturating_mul(UNORDERED_ONE_IN) > self.seen
    }

    /// See the next key.
    pub(super) fn see(&mut self, key: ValueRef<'_>) {
        self.seen += 1;
        if let Some(last) = &self.last {
            if order(key, ValueRef::from(last)) == Ordering::Less {
                self.descents += 1;
            }
        }
        match (&mut self.last, key) {
            (Some(Value::Text(t)), ValueRef::Text(k)) => {
                t.clear();
                t.push_str(&String::from_utf8_lossy(k));
            }
            (last, key) => *last = Some(key.into()),
        }
    }
}

/// Rows whose keys are read to judge whether a table's keys are stored in
/// order: not when more than one in 16, and at least 1,024, are lower than
/// the key before, as an import judges its keys.
pub const SAMPLE_ROWS: u32 = 8192;

/// Whether the first [`SAMPLE_ROWS`] rows of the rowid table `table`, in
/// stored order, have their `key`s in no order (see [`KeyOrder`]): a scan
/// by row then probes anything keyed like it at random.
pub(super) fn stored_unordered(
    conn: &rusqlite::Connection,
    table: &str,
    key: &str,
) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!(
        "SELECT \"{key}\" FROM {table} ORDER BY rowid LIMIT {SAMPLE_ROWS}"
    ))?;
    let mut rows = stmt.query([])?;
    let mut order = KeyOrder::default();
    while let Some(r) = rows.next()? {
        order.see(r.get_ref(0)?);
        if order.unordered() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// SQLite's order of values (BINARY collation): NULL, numbers, text, blobs.
pub(super) fn order(a: ValueRef<'_>, b: ValueRef<'_>) -> Ordering {
    fn class(v: ValueRef<'_>) -> u8 {
        match v {
            ValueRef::Null => 0,
            ValueRef::Integer(_) | ValueRef::Real(_) => 1,
            ValueRef::Text(_) => 2,
            ValueRef::Blob(_) => 3,
        }
    }
    let num = |v: ValueRef<'_>| match v {
        ValueRef::Integer(n) => n as f64,
        ValueRef::Real(f) => f,
        _ => 0.0,
    };
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(&y),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        _ if class(a) != class(b) => class(a).cmp(&class(b)),
        _ if class(a) == 1 => num(a).total_cmp(&num(b)),
        _ => Ordering::Equal,
    }
}

/// Most runs of row tags kept to name the row of a duplicate key. A run is
/// a stretch of rows whose tags follow each other (a file's rows, broken
/// where malformed rows were skipped); past this many, a duplicate is
/// named by its position among the rows pushed, without its tag.
pub const MAX_TAG_RUNS: usize = 1 << 16;

/// Where each pushed row came from: runs of consecutive tags.
#[derive(Debug, Default)]
pub(super) struct TagRuns {
    /// (first row's position, its tag, its partition), in position order.
    runs: Vec<(u64, u64, i64)>,
    /// From this position on, tags are not known (too many runs).
    lost_from: Option<u64>,
}

impl TagRuns {
    /// Note that the row at 1-based `position` has `tag` and came in
    /// `partition`.
    pub(super) fn note(&mut self, position: u64, tag: u64, partition: i64) {
        if self.lost_from.is_some() {
            return;
        }
        if let Some(&(p, t, part)) = self.runs.last() {
            if part == partition && t.checked_add(position - p) == Some(tag) {
                return;
            }
        }
        if self.runs.len() == MAX_TAG_RUNS {
            self.lost_from = Some(position);
            return;
        }
        self.runs.push((position, tag, partition));
    }

    /// The partition and tag of the row at `position`, if noted.
    pub(super) fn find(&self, position: u64) -> Option<(i64, u64)> {
        if self.lost_from.is_some_and(|from| position >= from) {
            return None;
        }
        let i = self.runs.partition_point(|&(p, _, _)| p <= position);
        let &(p, t, part) = self.runs.get(i.checked_sub(1)?)?;
        Some((part, t + (position - p)))
    }
}

/// The index's name: new for each generation, so that it never clashes
/// with the index of the table it replaces (dropped with that table).
pub(super) fn name(entity: &str, generation: i64) -> String {
    format!("\"ent_{entity}__key_{generation}\"")
}

/// The side table a clustered entity's rows wait in when their keys come
/// in no order (temporary: it spills to a file past the page cache).
pub(super) fn side_table(entity: &str) -> String {
    format!("temp.\"tf_sort_{entity}\"")
}

/// Most helper threads SQLite's sorter may start to build a key's index.
pub const MAX_SORT_HELPERS: usize = 4;

/// Build the unique index `index` on `table`'s `key`. `Ok(None)` when built;
/// `Ok(Some((position, key)))` when two rows share a key: the 1-based
/// position (rowid) of the first row whose key an earlier one has.
/// The key's sort may use helper threads, one less than the cores and
/// at most [`MAX_SORT_HELPERS`] (`PRAGMA threads`): nothing else runs on
/// the writer's side then.
pub(super) fn build(
    tx: &Transaction<'_>,
    index: &str,
    table: &str,
    key: &str,
) -> rusqlite::Result<Option<(u64, Value)>> {
    let helpers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_sub(1)
        .clamp(1, MAX_SORT_HELPERS);
    let before: i64 = tx.query_row("PRAGMA threads", [], |r| r.get(0))?;
    tx.execute_batch(&format!("PRAGMA threads = {helpers}"))?;
    let built = tx.execute_batch(&format!(
        "CREATE UNIQUE INDEX {index} ON {table} (\"{key}\")"
    ));
    tx.execute_batch(&format!("PRAGMA threads = {before}"))?;
    match built {
        Ok(()) => Ok(None),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let found = tx.query_row(
                &format!(
                    "SELECT rowid, k FROM (
                       SELECT rowid, \"{key}\" AS k,
                              row_number() OVER (PARTITION BY \"{key}\" ORDER BY rowid) AS n
                       FROM {table})
                     WHERE n = 2 ORDER BY rowid LIMIT 1"
                ),
                params![],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Value>(1)?)),
            )?;
            Ok(Some((u64::try_from(found.0).unwrap_or(0), found.1)))
        }
        Err(e) => Err(e),
    }
}

/// `n` distinct 16-digit hex keys in no order, from `seed`, for tests.
#[cfg(test)]
pub(crate) fn scattered_keys(n: u64, seed: u64) -> Vec<String> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            format!("{x:016x}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_built_with_helpers_which_are_then_put_back() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT); PRAGMA threads = 0;")
            .unwrap();
        let tx = conn.transaction().unwrap();
        for k in ["b", "a", "c", "a"] {
            tx.execute("INSERT INTO t VALUES (?1)", [k]).unwrap();
        }
        let threads = |tx: &Transaction<'_>| -> i64 {
            tx.query_row("PRAGMA threads", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(
            build(&tx, "i1", "t", "k").unwrap(),
            Some((4, Value::Text("a".into())))
        );
        assert_eq!(threads(&tx), 0);
        tx.execute("DELETE FROM t WHERE rowid = 4", []).unwrap();
        assert_eq!(build(&tx, "i2", "t", "k").unwrap(), None);
        assert_eq!(threads(&tx), 0);
        let used: String = tx
            .query_row(
                "EXPLAIN QUERY PLAN SELECT * FROM t WHERE k = 'a'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(used.contains("i2"), "{used}");
    }

    #[test]
    fn runs_name_each_row_by_partition_and_tag() {
        let mut runs = TagRuns::default();
        // File 1: rows 1-3 (tags 1-3), tag 4 skipped, tags 5-6.
        for (pos, tag) in [(1, 1), (2, 2), (3, 3), (4, 5), (5, 6)] {
            runs.note(pos, tag, 1);
        }
        // File 2 starts again at tag 1.
        runs.note(6, 1, 2);
        runs.note(7, 2, 2);
        assert_eq!(runs.runs.len(), 3);
        assert_eq!(runs.find(3), Some((1, 3)));
        assert_eq!(runs.find(4), Some((1, 5)));
        assert_eq!(runs.find(5), Some((1, 6)));
        assert_eq!(runs.find(7), Some((2, 2)));
        assert_eq!(runs.find(0), None);
    }

    #[test]
    fn keys_in_order_or_nearly_keep_the_index_and_keys_in_none_drop_it() {
        let text = |i: u64| format!("k{i:08}");
        let mut ordered = KeyOrder::default();
        for i in 0..100_000u64 {
            // One key in 50 comes late.
            let k = if i % 50 == 49 { text(i - 40) } else { text(i) };
            ordered.see(ValueRef::Text(k.as_bytes()));
        }
        assert!(ordered.watching(), "{ordered:?}");
        let mut unordered = KeyOrder::default();
        for k in scattered_keys(3 * UNORDERED_KEYS, 1) {
            unordered.see(ValueRef::Text(k.as_bytes()));
        }
        assert!(unordered.unordered(), "{unordered:?}");
        assert_eq!(
            order(ValueRef::Integer(2), ValueRef::Real(1.5)),
            Ordering::Greater
        );
        assert_eq!(
            order(ValueRef::Real(9.0), ValueRef::Text(b"1")),
            Ordering::Less
        );
    }

    #[test]
    fn too_many_runs_lose_tags_from_there_on_only() {
        let mut runs = TagRuns::default();
        let n = MAX_TAG_RUNS as u64;
        // Every row its own run: tags jump by two.
        for pos in 1..=n + 10 {
            runs.note(pos, pos * 2, 1);
        }
        assert_eq!(runs.runs.len(), MAX_TAG_RUNS);
        assert_eq!(runs.find(n), Some((1, n * 2)));
        assert_eq!(runs.find(n + 1), None);
        assert_eq!(runs.find(n + 10), None);
    }
}
