//! The keys that differ between an entity's live and staging tables when
//! its keys come in no order (GUIDs): each table is read once in storage
//! order, each row reduced to its key, a 128-bit hash of the key and one of
//! its values, and routed by the key's hash to partitions in temporary
//! files. Partition by
//! partition, the live table's pairs go into a hash map that the staging
//! table's pairs are checked against. Nothing is sorted, every page is read
//! once, and memory holds one partition's entries.
//!
//! The partitions' hash maps are keyed by a 128-bit hash of the key, so an
//! entry's size does not depend on the key's; removed keys are read back
//! from the file. Two rows with equal hashes are taken as equal: with
//! SipHash-1-3-128 over typed values, under keys drawn for each diff, a
//! change slips through with odds of about 2^-128.

use std::collections::HashMap;
use std::hash::Hasher;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use rusqlite::types::{Value, ValueRef};
use rusqlite::Transaction;
use siphasher::sip128::{Hasher128, SipHasher13};

/// Rows per partition aimed at: the live table's entries of one partition
/// are held in memory at once.
pub const ROWS_PER_PARTITION: u64 = 64 * 1024;
/// The most partitions (temporary files per table).
pub const MAX_PARTITIONS: u64 = 256;
/// Write and read buffer per temporary file.
const BUFFER: usize = 32 * 1024;

/// A failure of the diff: the store's, or its temporary files'.
#[derive(Debug)]
pub(super) enum DiffError {
    Sql(rusqlite::Error),
    Io(io::Error),
}

impl From<rusqlite::Error> for DiffError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<io::Error> for DiffError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Partitions for a live table of `rows` rows.
pub(super) fn partitions_for(rows: u64) -> usize {
    rows.div_ceil(ROWS_PER_PARTITION).clamp(1, MAX_PARTITIONS) as usize
}

/// The keys of `entity`'s rows added, changed or removed between its live
/// and staging tables, at most `limit`, in no particular order, through
/// `parts` partitions (see [`partitions_for`]) in temporary files in `dir`.
pub(super) fn diff(
    tx: &Transaction<'_>,
    dir: &Path,
    tables: &super::changes::Replacing,
    key: &str,
    columns: &[(String, crate::odata::ColumnType)],
    parts: usize,
    limit: u64,
) -> Result<Vec<Value>, DiffError> {
    let parts = parts.max(1);
    let k = columns.iter().position(|(c, _)| c == key).unwrap_or(0);
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let hashes = Hashes {
        keys: Keyed::random(),
        rows: Keyed::random(),
    };
    let live = route(tx, dir, &tables.live, &names, k, parts, &hashes)?;
    let staging = route(tx, dir, &tables.new, &names, k, parts, &hashes)?;
    let mut out = Vec::new();
    for (old, new) in live.into_iter().zip(staging) {
        // By the key's hash: an entry's size does not depend on the key's.
        let mut held: HashMap<u128, (u128, u64)> = HashMap::new();
        let mut old = Pairs::read(old)?;
        while let Some(p) = old.next()? {
            held.insert(p.key_hash, (p.row_hash, p.at));
        }
        let mut new = Pairs::read(new)?;
        while let Some(p) = new.next()? {
            if held.remove(&p.key_hash).map(|(h, _)| h) != Some(p.row_hash) {
                out.push(decode_key(p.key));
            }
            if out.len() as u64 >= limit {
                return Ok(out);
            }
        }
        // What is left was removed: its keys read back from the live side.
        let mut left: Vec<u64> = held.into_values().map(|(_, at)| at).collect();
        left.sort_unstable();
        for at in left {
            out.push(decode_key(old.at(at)?.key));
            if out.len() as u64 >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// The two hashes of a diff: of keys, and of rows' values.
struct Hashes {
    keys: Keyed,
    rows: Keyed,
}

/// SipHash-1-3-128 under keys drawn for one diff, so that no file can be
/// made to collide on purpose.
pub(super) struct Keyed(u64, u64);

impl Keyed {
    pub(super) fn random() -> Self {
        let state = std::collections::hash_map::RandomState::new();
        Self(
            std::hash::BuildHasher::hash_one(&state, 0u8),
            std::hash::BuildHasher::hash_one(&state, 1u8),
        )
    }

    fn hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.0, self.1)
    }

    /// The hash of `b`.
    pub(super) fn hash(&self, b: &[u8]) -> u128 {
        let mut h = self.hasher();
        h.write(b);
        h.finish128().as_u128()
    }
}

/// Read `table` whole in storage order and write each row's (hash of its
/// key, hash of its values, encoded key) to the partition of its key's
/// hash; the partitions, rewound.
fn route(
    tx: &Transaction<'_>,
    dir: &Path,
    table: &str,
    names: &[String],
    k: usize,
    parts: usize,
    hashes: &Hashes,
) -> Result<Vec<std::fs::File>, DiffError> {
    let mut files = (0..parts)
        .map(|_| {
            Ok(BufWriter::with_capacity(
                BUFFER,
                tempfile::tempfile_in(dir)?,
            ))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM {table} NOT INDEXED",
        names.join(", ")
    ))?;
    let mut rows = stmt.query([])?;
    let (mut key, mut values) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next()? {
        encode_row(r, &mut values)?;
        let row_hash = hashes.rows.hash(&values);
        key.clear();
        encode_key(r.get_ref(k)?, &mut key);
        // The key's hash routes it and matches it: computed once, under
        // drawn keys, so no file can crowd one partition either.
        let key_hash = hashes.keys.hash(&key);
        let out = &mut files[(key_hash % parts as u128) as usize];
        out.write_all(&key_hash.to_le_bytes())?;
        out.write_all(&row_hash.to_le_bytes())?;
        out.write_all(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes())?;
        out.write_all(&key)?;
    }
    files
        .into_iter()
        .map(|w| {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.seek(SeekFrom::Start(0))?;
            Ok(f)
        })
        .collect::<io::Result<_>>()
        .map_err(DiffError::Io)
}

/// Every value of `row`, typed and delimited, into `out` (emptied first):
/// two rows have the same bytes when the store's comparison has their
/// values the same, so their hashes can stand for them.
pub(super) fn encode_row(row: &rusqlite::Row<'_>, out: &mut Vec<u8>) -> rusqlite::Result<()> {
    out.clear();
    for i in 0..row.as_ref().column_count() {
        encode_value(row.get_ref(i)?, out);
    }
    Ok(())
}

/// `values`, as [`encode_row`] encodes a row's, into `out` (emptied first).
pub(super) fn encode_values<'v>(values: impl Iterator<Item = ValueRef<'v>>, out: &mut Vec<u8>) {
    out.clear();
    for v in values {
        encode_value(v, out);
    }
}

/// `v` into `out`, typed, so that `1`, `1.0` and `'1'` differ as the
/// store's comparison has them differ, and delimited.
fn encode_value(v: ValueRef<'_>, out: &mut Vec<u8>) {
    let bytes = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        ValueRef::Real(x) => {
            out.push(2);
            // 0.0 and -0.0 compare equal.
            out.extend_from_slice(&(if x == 0.0 { 0 } else { x.to_bits() }).to_le_bytes());
        }
        ValueRef::Text(t) => bytes(out, 3, t),
        ValueRef::Blob(b) => bytes(out, 4, b),
    }
}

/// A key as bytes that decode back to the same value: a type tag, then
/// its text or number.
pub(super) fn encode_key(v: ValueRef<'_>, out: &mut Vec<u8>) {
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        ValueRef::Real(x) => {
            out.push(2);
            out.extend_from_slice(&(if x == 0.0 { 0.0f64 } else { x }).to_le_bytes());
        }
        ValueRef::Text(t) => {
            out.push(3);
            out.extend_from_slice(t);
        }
        ValueRef::Blob(b) => {
            out.push(4);
            out.extend_from_slice(b);
        }
    }
}

pub(super) fn decode_key(b: &[u8]) -> Value {
    let num = |b: &[u8]| b.try_into().ok().map(u64::from_le_bytes);
    match (b.first(), b.get(1..).unwrap_or_default()) {
        (Some(1), n) => num(n).map_or(Value::Null, |n| Value::Integer(n as i64)),
        (Some(2), n) => num(n).map_or(Value::Null, |n| Value::Real(f64::from_bits(n))),
        (Some(3), t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        (Some(4), b) => Value::Blob(b.to_vec()),
        _ => Value::Null,
    }
}

/// One row as a partition holds it.
struct Pair<'a> {
    /// Where it starts in its partition's file.
    at: u64,
    key_hash: u128,
    row_hash: u128,
    key: &'a [u8],
}

/// The rows of one partition, read back.
struct Pairs {
    input: BufReader<std::fs::File>,
    /// Where the next pair starts.
    at: u64,
    key: Vec<u8>,
}

impl Pairs {
    fn read(file: std::fs::File) -> io::Result<Self> {
        Ok(Self {
            input: BufReader::with_capacity(BUFFER, file),
            at: 0,
            key: Vec::new(),
        })
    }

    /// The next pair; `None` at the end.
    fn next(&mut self) -> io::Result<Option<Pair<'_>>> {
        let mut head = [0u8; 36];
        match self.input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let part = |r: std::ops::Range<usize>| head.get(r).unwrap_or_default();
        let u128_at = |r| part(r).try_into().map(u128::from_le_bytes).unwrap_or(0);
        let n = part(32..36).try_into().map(u32::from_le_bytes).unwrap_or(0) as usize;
        self.key.resize(n, 0);
        self.input.read_exact(&mut self.key)?;
        let at = self.at;
        self.at += head.len() as u64 + n as u64;
        Ok(Some(Pair {
            at,
            key_hash: u128_at(0..16),
            row_hash: u128_at(16..32),
            key: &self.key,
        }))
    }

    /// The pair that starts at `at` (as [`Pairs::next`] gave it).
    fn at(&mut self, at: u64) -> io::Result<Pair<'_>> {
        self.input.seek(SeekFrom::Start(at))?;
        self.at = at;
        self.next()?
            .ok_or_else(|| io::Error::other("corrupt temporary file: a pair past its end"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::ColumnType;
    use crate::store::{table_name, Table};

    fn e() -> super::super::changes::Replacing {
        super::super::changes::Replacing {
            live: table_name("E"),
            new: Table::staging("E"),
            new_file: None,
            digests: None,
            walked: None,
        }
    }

    #[test]
    fn added_changed_and_removed_keys_are_found_across_partitions_and_cut_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = rusqlite::Connection::open(dir.path().join("s.sqlite")).unwrap();
        let tx = conn.transaction().unwrap();
        let columns = vec![
            ("Id".to_owned(), ColumnType::String),
            ("V".to_owned(), ColumnType::Integer),
            ("W".to_owned(), ColumnType::String),
        ];
        for t in [table_name("E"), Table::staging("E")] {
            tx.execute_batch(&format!(
                "CREATE TABLE {t} (\"Id\" TEXT, \"V\", \"W\" TEXT)"
            ))
            .unwrap();
        }
        let put = |t: &str, id: &str, v: Value, w: Option<&str>| {
            tx.execute(
                &format!("INSERT INTO {t} VALUES (?1, ?2, ?3)"),
                rusqlite::params![id, v, w],
            )
            .unwrap();
        };
        for i in 0..500 {
            let id = format!("k{:03}", (i * 7919) % 1000);
            put(&table_name("E"), &id, Value::Integer(i), Some("a"));
            // k..0 changed; k..1 changed in type only (1 -> 1.0, in a
            // column of no type); k..2 changed from "a" to NULL; k..3
            // removed.
            match i % 10 {
                0 => put(&Table::staging("E"), &id, Value::Integer(-i - 1), Some("a")),
                1 => put(&Table::staging("E"), &id, Value::Real(i as f64), Some("a")),
                2 => put(&Table::staging("E"), &id, Value::Integer(i), None),
                3 => {}
                _ => put(&Table::staging("E"), &id, Value::Integer(i), Some("a")),
            }
        }
        put(&Table::staging("E"), "new", Value::Integer(1), None);
        let mut want: Vec<String> = (0..500)
            .filter(|i| i % 10 < 4)
            .map(|i| format!("k{:03}", (i * 7919) % 1000))
            .collect();
        want.push("new".into());
        want.sort();
        for parts in [1, 7, 256] {
            let got = diff(&tx, dir.path(), &e(), "Id", &columns, parts, u64::MAX).unwrap();
            let got = super::super::sorted_texts(got);
            assert_eq!(got, want, "{parts} partitions");
            let cut = diff(&tx, dir.path(), &e(), "Id", &columns, parts, 10).unwrap();
            assert_eq!(cut.len(), 10, "{parts} partitions");
        }
    }

    #[test]
    fn keys_round_trip_and_values_encode_by_type() {
        for v in [
            Value::Null,
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Text("é-1".into()),
            Value::Blob(vec![0, 1]),
        ] {
            let mut b = Vec::new();
            encode_key(ValueRef::from(&v), &mut b);
            assert_eq!(decode_key(&b), v);
        }
        let hash = |v: ValueRef<'_>| {
            let mut b = Vec::new();
            encode_value(v, &mut b);
            Keyed(1, 2).hash(&b)
        };
        assert_ne!(hash(ValueRef::Integer(1)), hash(ValueRef::Real(1.0)));
        assert_ne!(hash(ValueRef::Integer(1)), hash(ValueRef::Text(b"1")));
        assert_ne!(hash(ValueRef::Text(b"")), hash(ValueRef::Null));
        assert_eq!(hash(ValueRef::Real(0.0)), hash(ValueRef::Real(-0.0)));
    }
}
