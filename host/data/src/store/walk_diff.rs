//! The keys that differ between an entity's live and staging tables when
//! both are stored in about key order (files sorted by key, rows set aside
//! at the end): each table is read once in storage order, and the two are
//! walked side by side, each row reduced to its key and a hash of its
//! values. A row whose key is not above the one before on its side, and a
//! row with no partner where the walk meets it, wait in a hash map; the maps
//! are matched at the end. So the result does not depend on the order, only
//! the memory does: past `max_waiting` rows waiting, the walk gives up and
//! the caller takes [`super::hash_diff`], which holds any order.
//!
//! Rows the walk pairs are compared by their typed values' bytes; rows that
//! wait, by SipHash-1-3-128 of those bytes under keys drawn for each walk,
//! as [`super::hash_diff`] compares them.

use std::collections::HashMap;

use rusqlite::types::{Value, ValueRef};
use rusqlite::Transaction;

use super::hash_diff::{decode_key, encode_key, encode_row, Keyed};
use super::key_index::order;

/// Rows that may wait for their partner at once (a few MiB): each holds
/// its key's bytes and a 128-bit hash.
pub const MAX_WAITING_ROWS: usize = 64 * 1024;

/// One side of the walk: a table read in storage order.
struct Side<'s> {
    rows: rusqlite::Rows<'s>,
    /// Whether the walk stands on a row, and that row's encoded key and
    /// values (see [`encode_key`], [`encode_row`]).
    at: bool,
    key: Vec<u8>,
    values: Vec<u8>,
    /// The next row's key and values, read into buffers kept.
    next_key: Vec<u8>,
    next_values: Vec<u8>,
    /// Rows out of order, or with no partner, by encoded key: their values'
    /// hash.
    waiting: HashMap<Vec<u8>, u128>,
    /// Rows that may wait; set `over` when one more came.
    max: usize,
    over: bool,
}

impl Side<'_> {
    /// The key stood on.
    fn key(&self) -> ValueRef<'_> {
        key_ref(&self.key)
    }

    /// Step to the next row whose key is above the one stood on; rows out
    /// of order on the way wait.
    fn step(&mut self, k: usize, keyed: &Keyed) -> rusqlite::Result<()> {
        while let Some(r) = self.rows.next()? {
            self.next_key.clear();
            encode_key(r.get_ref(k)?, &mut self.next_key);
            encode_row(r, &mut self.next_values)?;
            let in_order = !self.at || order(key_ref(&self.key), key_ref(&self.next_key)).is_lt();
            if in_order {
                std::mem::swap(&mut self.key, &mut self.next_key);
                std::mem::swap(&mut self.values, &mut self.next_values);
                self.at = true;
                return Ok(());
            }
            let hash = keyed.hash(&self.next_values);
            self.waiting.insert(self.next_key.clone(), hash);
            if self.waiting.len() > self.max {
                self.over = true;
                break;
            }
        }
        self.at = false;
        Ok(())
    }

    /// The row stood on waits for a partner met later, and the walk steps on.
    fn wait(&mut self, k: usize, keyed: &Keyed) -> rusqlite::Result<()> {
        if self.at {
            self.waiting
                .insert(self.key.clone(), keyed.hash(&self.values));
        }
        self.step(k, keyed)
    }
}

/// A key encoded by [`encode_key`], as the value it was; a key in no
/// encoding reads as NULL.
fn key_ref(b: &[u8]) -> ValueRef<'_> {
    let num = |b: &[u8]| b.try_into().ok().map(u64::from_le_bytes);
    match (b.first(), b.get(1..).unwrap_or_default()) {
        (Some(1), n) => num(n).map_or(ValueRef::Null, |n| ValueRef::Integer(n as i64)),
        (Some(2), n) => num(n).map_or(ValueRef::Null, |n| ValueRef::Real(f64::from_bits(n))),
        (Some(3), t) => ValueRef::Text(t),
        (Some(4), b) => ValueRef::Blob(b),
        _ => ValueRef::Null,
    }
}

/// The keys of rows added, changed or removed between the tables `live`
/// and `new`, at most `limit`, in no particular order; `None` when more
/// than `max_waiting` rows of one side waited for a partner at once (the
/// tables are far from key order: see the module docs). A key far above
/// those after it makes them all wait, so it gives up then too.
pub(super) fn diff(
    tx: &Transaction<'_>,
    tables: &super::changes::Replacing,
    key: &str,
    columns: &[(String, crate::odata::ColumnType)],
    limit: u64,
    max_waiting: usize,
) -> rusqlite::Result<Option<Vec<Value>>> {
    let k = columns.iter().position(|(c, _)| c == key).unwrap_or(0);
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let select = |table: &str| format!("SELECT {} FROM {table} NOT INDEXED", names.join(", "));
    let mut live_stmt = tx.prepare(&select(&tables.live))?;
    let mut new_stmt = tx.prepare(&select(&tables.new))?;
    let keyed = Keyed::random();
    let side = |rows| Side {
        rows,
        at: false,
        key: Vec::new(),
        values: Vec::new(),
        next_key: Vec::new(),
        next_values: Vec::new(),
        waiting: HashMap::new(),
        max: max_waiting,
        over: false,
    };
    let mut old = side(live_stmt.query([])?);
    let mut new = side(new_stmt.query([])?);
    old.step(k, &keyed)?;
    new.step(k, &keyed)?;
    let mut out = Vec::new();
    let full = |out: &Vec<Value>| out.len() as u64 >= limit;
    loop {
        if old.over || new.over {
            return Ok(None);
        }
        match (old.at, new.at) {
            (true, true) => match order(old.key(), new.key()) {
                std::cmp::Ordering::Equal => {
                    if old.values != new.values {
                        out.push(decode_key(&new.key));
                        if full(&out) {
                            return Ok(Some(out));
                        }
                    }
                    old.step(k, &keyed)?;
                    new.step(k, &keyed)?;
                }
                std::cmp::Ordering::Less => old.wait(k, &keyed)?,
                std::cmp::Ordering::Greater => new.wait(k, &keyed)?,
            },
            (true, false) => old.wait(k, &keyed)?,
            (false, true) => new.wait(k, &keyed)?,
            (false, false) => break,
        }
    }
    // Rows that waited: changed when both sides have the key, else added
    // or removed.
    let mut left = old.waiting;
    for (enc, hash) in new.waiting {
        if left.remove(&enc) != Some(hash) {
            out.push(decode_key(&enc));
        }
    }
    out.extend(left.into_keys().map(|enc| decode_key(&enc)));
    out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::ColumnType;
    use crate::store::EntityDb;

    /// Tables `a` and `b` of (Id TEXT, V INTEGER), rows in the order given.
    fn tables(a: &[(&str, i64)], b: &[(&str, i64)]) -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let s = store.session();
        for (t, rows) in [("a", a), ("b", b)] {
            s.execute_batch(&format!("CREATE TABLE {t} (Id TEXT, V INTEGER)"))
                .unwrap();
            for (k, v) in rows {
                s.execute(&format!("INSERT INTO {t} VALUES (?1, ?2)"), (k, v))
                    .unwrap();
            }
        }
        drop(s);
        (dir, store)
    }

    fn walk(store: &EntityDb, max_waiting: usize) -> Option<Vec<String>> {
        let mut s = store.session();
        let tx = s.transaction().unwrap();
        let tables = super::super::changes::Replacing {
            live: "a".into(),
            new: "b".into(),
        };
        let columns = [
            ("Id".to_owned(), ColumnType::String),
            ("V".to_owned(), ColumnType::Integer),
        ];
        let got = diff(&tx, &tables, "Id", &columns, 1000, max_waiting).unwrap();
        got.map(|keys| {
            let mut keys: Vec<String> = keys
                .into_iter()
                .map(|k| match k {
                    Value::Text(t) => t,
                    other => panic!("{other:?}"),
                })
                .collect();
            keys.sort();
            keys
        })
    }

    #[test]
    fn rows_out_of_order_on_either_side_are_matched_at_the_end() {
        let old = [
            ("a", 1),
            ("b", 1),
            ("c", 1),
            ("d", 1),
            ("e", 1),
            ("b-copy", 1),
        ];
        // "b-copy" moved, "a" removed, "c" changed, "e-copy" and "0" added
        // out of order, "e" kept after a jump.
        let new = [
            ("b", 1),
            ("c", 2),
            ("d", 1),
            ("x", 1),
            ("e", 1),
            ("b-copy", 1),
            ("0", 1),
        ];
        let (_dir, store) = tables(&old, &new);
        let expected = ["0", "a", "c", "x"].map(String::from).to_vec();
        assert_eq!(walk(&store, 100), Some(expected));
    }

    #[test]
    fn too_many_rows_waiting_give_up_for_the_caller_to_diff_otherwise() {
        let old: Vec<(String, i64)> = (0..50).map(|i| (format!("k{i:02}"), 1)).collect();
        let mut new = old.clone();
        new.reverse();
        let old: Vec<(&str, i64)> = old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let new: Vec<(&str, i64)> = new.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (_dir, store) = tables(&old, &new);
        assert_eq!(walk(&store, 10), None);
        assert_eq!(walk(&store, 200), Some(vec![]));
    }
}
