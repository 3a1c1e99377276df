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

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, Transaction};

use super::hash_diff::{decode_key, encode_key, encode_row, Keyed};
use super::key_index::order;

/// Rows that may wait for their partner at once (a few MiB): each holds
/// its key's bytes and a 128-bit hash.
pub const MAX_WAITING_ROWS: usize = 64 * 1024;

/// Where one side's rows come from.
enum Reader<'s> {
    /// Read on the caller's connection.
    Here(rusqlite::Rows<'s>),
    /// A list of row digests (see [`super::digests`]): each row's key and
    /// its values' digest.
    Digests(Box<super::digests::Reader>),
    /// Read by a thread of its own, rows encoded in batches (see [`away`]).
    Away {
        batches: Receiver<rusqlite::Result<Vec<u8>>>,
        batch: Vec<u8>,
        at: usize,
    },
}

impl Reader<'_> {
    /// The next row's key into `key` and values into `values`; false at
    /// the end.
    fn next_into(
        &mut self,
        k: usize,
        key: &mut Vec<u8>,
        values: &mut Vec<u8>,
    ) -> rusqlite::Result<bool> {
        match self {
            Reader::Here(rows) => {
                let Some(r) = rows.next()? else {
                    return Ok(false);
                };
                key.clear();
                encode_key(r.get_ref(k)?, key);
                encode_row(r, values)?;
                Ok(true)
            }
            Reader::Digests(list) => list
                .next_into(key, values)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
            Reader::Away { batches, batch, at } => {
                if *at >= batch.len() {
                    match batches.recv() {
                        Ok(next) => (*batch, *at) = (next?, 0),
                        Err(_) => return Ok(false),
                    }
                }
                for out in [key, values] {
                    let part = take_part(batch, at).ok_or_else(|| {
                        rusqlite::Error::ToSqlConversionFailure("a row batch cut short".into())
                    })?;
                    out.clear();
                    out.extend_from_slice(part);
                }
                Ok(true)
            }
        }
    }
}

/// The length-prefixed part of `batch` at `*at`, stepping past it.
fn take_part<'b>(batch: &'b [u8], at: &mut usize) -> Option<&'b [u8]> {
    let len = batch
        .get(*at..*at + 4)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)? as usize;
    let part = batch.get(*at + 4..*at + 4 + len)?;
    *at += 4 + len;
    Some(part)
}

/// Bytes of encoded rows a reading thread sends at once.
const BATCH_BYTES: usize = 64 * 1024;

/// Read `select` on the file `uri` (opened read-only) and send its rows,
/// encoded as [`Reader::next_into`] takes them, until the end or until
/// `out` is dropped.
fn away(uri: &str, select: &str, k: usize, out: &SyncSender<rusqlite::Result<Vec<u8>>>) {
    let read = || -> rusqlite::Result<()> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(uri, flags)?;
        let mut stmt = conn.prepare(select)?;
        let mut rows = stmt.query([])?;
        let (mut key, mut values) = (Vec::new(), Vec::new());
        let mut batch = Vec::with_capacity(BATCH_BYTES + 1024);
        while let Some(r) = rows.next()? {
            key.clear();
            encode_key(r.get_ref(k)?, &mut key);
            encode_row(r, &mut values)?;
            for part in [&key, &values] {
                batch.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_le_bytes());
                batch.extend_from_slice(part);
            }
            if batch.len() >= BATCH_BYTES {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_BYTES + 1024));
                if out.send(Ok(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            let _ = out.send(Ok(batch));
        }
        Ok(())
    };
    if let Err(e) = read() {
        let _ = out.send(Err(e));
    }
}

/// One side of the walk: a table read in storage order.
struct Side<'s> {
    reader: Reader<'s>,
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

impl<'s> Side<'s> {
    /// A side reading `reader`, where `max` rows may wait.
    fn new(reader: Reader<'s>, max: usize) -> Self {
        Side {
            reader,
            at: false,
            key: Vec::new(),
            values: Vec::new(),
            next_key: Vec::new(),
            next_values: Vec::new(),
            waiting: HashMap::new(),
            max,
            over: false,
        }
    }

    /// The key stood on.
    fn key(&self) -> ValueRef<'_> {
        key_ref(&self.key)
    }

    /// Step to the next row whose key is above the one stood on; rows out
    /// of order on the way wait.
    fn step(&mut self, k: usize, keyed: &Keyed) -> rusqlite::Result<()> {
        while self
            .reader
            .next_into(k, &mut self.next_key, &mut self.next_values)?
        {
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
    let old = Side::new(Reader::Here(live_stmt.query([])?), max_waiting);
    match &tables.new_file {
        // The new rows read on a second core while this one reads the live;
        // when that fails, both here.
        Some((uri, table)) => std::thread::scope(|s| {
            let (send, batches) = sync_channel(4);
            let select = select(&format!("main.{table}"));
            s.spawn(move || away(uri, &select, k, &send));
            let new = Side::new(
                Reader::Away {
                    batches,
                    batch: Vec::new(),
                    at: 0,
                },
                max_waiting,
            );
            walk(old, new, k, limit)
        })
        .or_else(|e| {
            tracing::warn!(file = %uri, "reading a new file's rows on a thread of their own: {e}");
            let here = super::changes::Replacing {
                new_file: None,
                ..tables.clone()
            };
            diff(tx, &here, key, columns, limit, max_waiting)
        }),
        None => {
            let mut new_stmt = tx.prepare(&select(&tables.new))?;
            let new = Side::new(Reader::Here(new_stmt.query([])?), max_waiting);
            walk(old, new, k, limit)
        }
    }
}

/// As [`diff`], from the lists of row digests of the live file and the new
/// one ([`super::digests`]), each of the rows its table holds: rows are
/// compared by digest. An error when a list is missing, torn or of another
/// length: the caller compares the tables then.
pub(super) fn diff_digests(
    (live, live_rows): (&std::path::Path, u64),
    (new, new_rows): (&std::path::Path, u64),
    limit: u64,
    max_waiting: usize,
) -> rusqlite::Result<Option<Vec<Value>>> {
    let open = |file, rows| {
        super::digests::Reader::open(file, rows)
            .map(|r| Reader::Digests(Box::new(r)))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let old = Side::new(open(live, live_rows)?, max_waiting);
    let new = Side::new(open(new, new_rows)?, max_waiting);
    walk(old, new, 0, limit)
}

/// As [`diff_digests`], the new list's entries received as it is written
/// (from a [`super::digests::Tap`]), so that the walk runs beside the
/// import. An error when the live list is torn or of another length, or
/// when the new one was not finished.
pub(super) fn diff_digests_fed(
    (live, live_rows): (&std::path::Path, u64),
    fed: Receiver<rusqlite::Result<Vec<u8>>>,
    limit: u64,
    max_waiting: usize,
) -> rusqlite::Result<Option<Vec<Value>>> {
    let live = super::digests::Reader::open(live, live_rows)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let old = Side::new(Reader::Digests(Box::new(live)), max_waiting);
    let new = Side::new(
        Reader::Away {
            batches: fed,
            batch: Vec::new(),
            at: 0,
        },
        max_waiting,
    );
    walk(old, new, 0, limit)
}

/// Walk `old` and `new` side by side (see [`diff`]).
fn walk(
    mut old: Side<'_>,
    mut new: Side<'_>,
    k: usize,
    limit: u64,
) -> rusqlite::Result<Option<Vec<Value>>> {
    let keyed = Keyed::random();
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

    /// Table `a` in the store and `b` in a file of its own, of (Id TEXT,
    /// V INTEGER), rows in the order given.
    fn tables(a: &[(&str, i64)], b: &[(&str, i64)]) -> (tempfile::TempDir, EntityDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let other = rusqlite::Connection::open(dir.path().join("b.sqlite")).unwrap();
        for (conn, t, rows) in [(&*store.session(), "a", a), (&other, "b", b)] {
            conn.execute_batch(&format!("CREATE TABLE {t} (Id TEXT, V INTEGER)"))
                .unwrap();
            for (k, v) in rows {
                conn.execute(&format!("INSERT INTO {t} VALUES (?1, ?2)"), (k, v))
                    .unwrap();
            }
        }
        (dir, store)
    }

    /// The keys that differ between `a` and `b`, sorted, `b` read on the
    /// store's connection and on a thread of its own (all must agree).
    fn walk(dir: &tempfile::TempDir, store: &EntityDb, max_waiting: usize) -> Option<Vec<String>> {
        let file = dir.path().join("b.sqlite");
        let mut s = store.session();
        s.execute("ATTACH DATABASE ?1 AS nf", [file.to_string_lossy()])
            .unwrap();
        let tx = s.transaction().unwrap();
        let columns = [
            ("Id".to_owned(), ColumnType::String),
            ("V".to_owned(), ColumnType::Integer),
        ];
        let mut got = Vec::new();
        let missing = dir.path().join("missing.sqlite");
        let away = [&file, &missing].map(|f| Some((super::super::files::uri(f), "b".to_owned())));
        // Read here, away, and here again when the file away cannot be read.
        for new_file in [None, away[0].clone(), away[1].clone()] {
            let tables = super::super::changes::Replacing {
                live: "a".into(),
                new: "nf.b".into(),
                new_file,
                digests: None,
                walked: None,
            };
            let keys = diff(&tx, &tables, "Id", &columns, 1000, max_waiting).unwrap();
            got.push(keys.map(super::super::sorted_texts));
        }
        drop(tx);
        s.execute_batch("DETACH DATABASE nf").unwrap();
        assert_eq!(got[0], got[1], "read here and away");
        assert_eq!(got[0], got[2], "read here, away failing");
        got.pop().flatten()
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
        let (dir, store) = tables(&old, &new);
        let expected = ["0", "a", "c", "x"].map(String::from).to_vec();
        assert_eq!(walk(&dir, &store, 100), Some(expected));
    }

    #[test]
    fn lists_of_row_digests_are_walked_as_their_tables_are() {
        let dir = tempfile::tempdir().unwrap();
        let old = [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("b-copy", 1)];
        let new = [
            ("b", 1),
            ("c", 2),
            ("d", 1),
            ("x", 1),
            ("b-copy", 1),
            ("0", 1),
        ];
        let live = super::super::digests::test_list(dir.path(), "E.1.sqlite", &old);
        let next = super::super::digests::test_list(dir.path(), "E.2.sqlite", &new);
        let keys = |limit| {
            diff_digests((&live, 5), (&next, 6), limit, 100)
                .map(|keys| super::super::sorted_texts(keys.unwrap_or_default()))
        };
        assert_eq!(keys(100).unwrap(), ["0", "a", "c", "x"]);
        assert_eq!(keys(2).unwrap().len(), 2, "stops at the limit");
        // A list of another length than its table is no answer.
        assert!(diff_digests((&live, 4), (&next, 6), 100, 100).is_err());
        let (tables_dir, store) = tables(&old, &new);
        assert_eq!(walk(&tables_dir, &store, 100), Some(keys(100).unwrap()));
    }

    #[test]
    fn a_list_walked_as_it_is_written_answers_as_the_finished_lists_do() {
        use super::super::digests::{Tap, Writer};
        use rusqlite::types::ValueRef;
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<String> = (0..20_000).map(|i| format!("k{i:05}")).collect();
        let old: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
        // Every 997th row changed, the 5th removed, one added at the end.
        let mut new: Vec<(&str, i64)> = old
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .map(|(i, &(k, v))| (k, if i % 997 == 0 { 2 } else { v }))
            .collect();
        new.push(("k00005-copy", 1));
        let live = super::super::digests::test_list(dir.path(), "E.1.sqlite", &old);
        let next = super::super::digests::test_list(dir.path(), "E.2.sqlite", &new);
        let listed = diff_digests((&live, 20_000), (&next, 20_000), 100, 100).unwrap();
        let fed = |limit: u64, finish: bool| {
            let (send, fed) = sync_channel(4);
            let path = live.clone();
            let walking =
                std::thread::spawn(move || diff_digests_fed((&path, 20_000), fed, limit, 100));
            let file = dir.path().join(format!("E.{limit}.{finish}.sqlite"));
            let mut w = Writer::create(&file).unwrap().tapped(Tap::new(send));
            for (k, v) in &new {
                w.push(&[ValueRef::Text(k.as_bytes()), ValueRef::Integer(*v)], 0)
                    .unwrap();
            }
            if finish {
                assert!(w.finish(new.len() as u64).is_some());
            } else {
                drop(w);
            }
            walking.join().unwrap()
        };
        let sorted = |keys: Option<Vec<Value>>| super::super::sorted_texts(keys.unwrap());
        let answer = sorted(fed(100, true).unwrap());
        assert_eq!(answer.len(), 23, "21 changed, one removed, one added");
        assert_eq!(answer, sorted(listed));
        assert_eq!(sorted(fed(3, true).unwrap()).len(), 3, "stops at the limit");
        let cut = fed(100, false).unwrap_err().to_string();
        assert!(cut.contains("was not finished"), "{cut}");
    }

    #[test]
    fn too_many_rows_waiting_give_up_for_the_caller_to_diff_otherwise() {
        let old: Vec<(String, i64)> = (0..50).map(|i| (format!("k{i:02}"), 1)).collect();
        let mut new = old.clone();
        new.reverse();
        let old: Vec<(&str, i64)> = old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let new: Vec<(&str, i64)> = new.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (dir, store) = tables(&old, &new);
        assert_eq!(walk(&dir, &store, 10), None);
        assert_eq!(walk(&dir, &store, 200), Some(vec![]));
    }
}
