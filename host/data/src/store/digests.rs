//! A digest of every row of an imported entity file, kept beside it as
//! `<file>.digests`, so that the next import's changes are found by
//! comparing two such lists ([`super::walk_diff::diff_digests`]) instead of
//! reading both tables through SQLite. An entity file never changes once
//! published, and its digests are written by the import that wrote it: the
//! list stands for the file as long as the file is kept. It follows the
//! file: removed with it, and unused when missing, torn or of another
//! length (the tables are compared then).
//!
//! The list holds, in the order the rows were pushed (about key order), each
//! row's key and the XXH3-128 of its values, typed as in
//! [`super::hash_diff`] (under a fixed seed: two lists must agree), then a
//! trailer with the row count and an XXH3-64 checksum of the entries. Both
//! hashes were SipHash-1-3 in the first version (`tfdgst01`): a list of it
//! is not read, and the tables are compared once.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use rusqlite::types::ValueRef;
use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3};

use super::hash_diff::{encode_key, encode_values};
use super::paged::Sink;
use super::{pipe, StoreError};

/// The first bytes of a list.
const MAGIC: &[u8; 8] = b"tfdgst02";
/// The length field that starts the trailer instead of an entry.
const TRAILER: u32 = u32::MAX;
/// Write and read buffer.
const BUFFER: usize = 256 * 1024;
/// The longest key a list may hold: a key is part of a row.
const MAX_KEY_BYTES: u64 = super::MAX_ROW_BYTES + 1;
/// The seed of the row digests (fixed: lists written apart are compared).
const ROW_SEED: u64 = 0x7466_726f_7773;

/// The list kept beside the entity file `file`.
pub(super) fn path_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".digests");
    PathBuf::from(name)
}

/// Writes a list while the rows go by.
pub(super) struct Writer {
    out: BufWriter<File>,
    path: PathBuf,
    rows: u64,
    sum: Xxh3,
    key: Vec<u8>,
    values: Vec<u8>,
    tap: Option<Tap>,
}

/// Bytes of entries a [`Tap`] sends at once.
const TAP_BATCH: usize = 64 * 1024;

/// Sends the entries of a list being written, in batches of (key, digest)
/// parts each after its `u32` length, to a walk under way (see
/// [`super::walk_diff::diff_digests_fed`]). Dropped before the list is
/// finished, it sends an error: the walk must not take a list cut short
/// for a whole one.
pub(super) struct Tap {
    out: Option<SyncSender<rusqlite::Result<Vec<u8>>>>,
    batch: Vec<u8>,
}

impl Tap {
    pub(super) fn new(out: SyncSender<rusqlite::Result<Vec<u8>>>) -> Self {
        Self {
            out: Some(out),
            batch: Vec::with_capacity(TAP_BATCH + 1024),
        }
    }

    fn push(&mut self, key: &[u8], digest: &[u8]) {
        let Some(out) = &self.out else { return };
        for part in [key, digest] {
            // A key's length was checked against `MAX_KEY_BYTES`.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            self.batch.extend_from_slice(&len.to_le_bytes());
            self.batch.extend_from_slice(part);
        }
        if self.batch.len() >= TAP_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(TAP_BATCH + 1024));
            if out.send(Ok(full)).is_err() {
                // The walk is over (it gave up, or found enough).
                self.out = None;
            }
        }
    }

    /// The list is whole: send the last entries and end the walk's side.
    fn finish(&mut self) {
        if let Some(out) = self.out.take() {
            if !self.batch.is_empty() {
                let _ = out.send(Ok(std::mem::take(&mut self.batch)));
            }
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            let cut = io::Error::other("the list of row digests being walked was not finished");
            let _ = out.send(Err(rusqlite::Error::ToSqlConversionFailure(Box::new(cut))));
        }
    }
}

impl Writer {
    /// A new list for the entity file `file`.
    pub(super) fn create(file: &Path) -> io::Result<Self> {
        let path = path_of(file);
        let mut out = BufWriter::with_capacity(BUFFER, File::create(&path)?);
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            path,
            rows: 0,
            sum: Xxh3::new(),
            key: Vec::new(),
            values: Vec::new(),
            tap: None,
        })
    }

    /// Also send each entry to `tap`.
    pub(super) fn tapped(mut self, tap: Tap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Add a row, its key at `k`.
    pub(super) fn push(&mut self, row: &[ValueRef<'_>], k: usize) -> io::Result<()> {
        self.key.clear();
        encode_key(row.get(k).copied().unwrap_or(ValueRef::Null), &mut self.key);
        let len = u32::try_from(self.key.len())
            .ok()
            .filter(|&n| u64::from(n) <= MAX_KEY_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a key too long"))?;
        encode_values(row.iter().copied(), &mut self.values);
        let digest = xxh3_128_with_seed(&self.values, ROW_SEED).to_le_bytes();
        for part in [&len.to_le_bytes()[..], &self.key, &digest] {
            self.sum.update(part);
            self.out.write_all(part)?;
        }
        if let Some(tap) = &mut self.tap {
            tap.push(&self.key, &digest);
        }
        self.rows += 1;
        Ok(())
    }

    /// Write the trailer: the list of `rows` rows is done (else it is
    /// removed, and `None`).
    pub(super) fn finish(mut self, rows: u64) -> Option<PathBuf> {
        let done = (|| {
            if rows != self.rows {
                return Err(io::Error::other(format!(
                    "{} rows digested of {rows}",
                    self.rows
                )));
            }
            self.out.write_all(&TRAILER.to_le_bytes())?;
            self.out.write_all(&self.rows.to_le_bytes())?;
            self.out.write_all(&self.sum.digest().to_le_bytes())?;
            self.out.flush()
        })();
        match done {
            Ok(()) => {
                if let Some(tap) = &mut self.tap {
                    tap.finish();
                }
                Some(std::mem::take(&mut self.path))
            }
            Err(e) => {
                tracing::debug!(file = %self.path.display(), "row digests left out: {e}");
                let _ = std::fs::remove_file(&self.path);
                None
            }
        }
    }
}

/// A sink that writes the list of the rows going by to another sink. A
/// failure to write it only drops the list.
pub(super) struct Digesting<'s> {
    sink: &'s mut dyn Sink,
    writer: Option<Writer>,
    key: usize,
}

impl<'s> Digesting<'s> {
    /// `sink`, its rows keyed by column `key`, listed by `writer`.
    pub(super) fn new(sink: &'s mut dyn Sink, writer: Option<Writer>, key: usize) -> Self {
        Self { sink, writer, key }
    }

    /// The list's writer, unless writing failed.
    pub(super) fn into_writer(self) -> Option<Writer> {
        self.writer
    }
}

impl Sink for Digesting<'_> {
    fn begin_partition(&mut self, origin: &str) -> Result<(), StoreError> {
        self.sink.begin_partition(origin)
    }

    fn push_batch(&mut self, rows: &pipe::Rows<'_>) -> Result<(), (u64, StoreError)> {
        self.sink.push_batch(rows)?;
        if let Some(w) = &mut self.writer {
            if let Err(e) = rows.iter().try_for_each(|(_, row)| w.push(row, self.key)) {
                tracing::debug!(file = %w.path.display(), "row digests left out: {e}");
                let _ = std::fs::remove_file(&w.path);
                self.writer = None;
            }
        }
        Ok(())
    }

    fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)> {
        self.sink.build_key_index()
    }
}

/// Reads a list, checking its trailer and checksum at the end.
pub(super) struct Reader {
    input: BufReader<File>,
    path: PathBuf,
    /// Rows the list must hold.
    expected: u64,
    rows: u64,
    sum: Xxh3,
    done: bool,
}

impl Reader {
    /// The list beside the entity file `file`, which holds `rows` rows.
    pub(super) fn open(file: &Path, rows: u64) -> io::Result<Self> {
        let path = path_of(file);
        let mut input = BufReader::with_capacity(BUFFER, File::open(&path)?);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid(&path, "not a list of row digests"));
        }
        Ok(Self {
            input,
            path,
            expected: rows,
            rows: 0,
            sum: Xxh3::new(),
            done: false,
        })
    }

    /// The next row's encoded key into `key` and its digest's bytes into
    /// `digest`; false at the end of a whole list, an error when it is
    /// torn or of another length.
    pub(super) fn next_into(
        &mut self,
        key: &mut Vec<u8>,
        digest: &mut Vec<u8>,
    ) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len)?;
        let n = u32::from_le_bytes(len);
        if n == TRAILER {
            let mut tail = [0u8; 16];
            self.input.read_exact(&mut tail)?;
            let (rows, sum) = tail.split_at(8);
            let whole = rows == self.rows.to_le_bytes()
                && sum == self.sum.digest().to_le_bytes()
                && self.rows == self.expected
                && self.input.read(&mut [0u8; 1])? == 0;
            if !whole {
                return Err(invalid(&self.path, "torn, or of another file"));
            }
            self.done = true;
            return Ok(false);
        }
        if u64::from(n) > MAX_KEY_BYTES {
            return Err(invalid(&self.path, "a key longer than a row may be"));
        }
        self.sum.update(&len);
        key.resize(n as usize, 0);
        self.input.read_exact(key)?;
        digest.resize(16, 0);
        self.input.read_exact(digest)?;
        self.sum.update(key);
        self.sum.update(digest);
        self.rows += 1;
        Ok(true)
    }
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// For tests: the list of `rows` (key, value) rows of the file `name` in
/// `dir`; the file's path.
#[cfg(test)]
pub(super) fn test_list(dir: &Path, name: &str, rows: &[(&str, i64)]) -> PathBuf {
    let file = dir.join(name);
    let mut w = Writer::create(&file).unwrap();
    for (k, v) in rows {
        w.push(&[ValueRef::Text(k.as_bytes()), ValueRef::Integer(*v)], 0)
            .unwrap();
    }
    assert_eq!(w.finish(rows.len() as u64), Some(path_of(&file)));
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(dir: &Path, rows: &[(&str, i64)]) -> PathBuf {
        test_list(dir, "E.1.sqlite", rows)
    }

    fn read(file: &Path, rows: u64) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut r = Reader::open(file, rows)?;
        let mut out = Vec::new();
        let (mut k, mut d) = (Vec::new(), Vec::new());
        while r.next_into(&mut k, &mut d)? {
            out.push((k.clone(), d.clone()));
        }
        Ok(out)
    }

    #[test]
    fn a_list_reads_back_its_keys_and_a_digest_that_follows_the_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = list(dir.path(), &[("a", 1), ("b", 2), ("c", 1)]);
        let got = read(&file, 3).unwrap();
        let keys: Vec<&[u8]> = got.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(keys, [&b"\x03a"[..], b"\x03b", b"\x03c"]);
        assert_ne!(got[0].1, got[1].1, "other values, other digest");
        // The same values under another key: the same digest but for the key.
        let again = read(&list(dir.path(), &[("a", 1)]), 1).unwrap();
        assert_eq!(again[0], got[0]);
    }

    #[test]
    fn a_torn_or_mismatched_list_is_an_error_not_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let file = list(dir.path(), &[("a", 1), ("b", 2)]);
        assert!(read(&file, 3).is_err(), "of another length");
        let path = path_of(&file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 30;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&file, 2).is_err(), "a flipped bit");
        bytes.truncate(bytes.len() - 20);
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&file, 2).is_err(), "cut short");
        // A length past any key is refused before anything is allocated.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&(u32::MAX - 1).to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        let e = read(&file, 1).unwrap_err();
        assert!(
            e.to_string().ends_with("a key longer than a row may be"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(read(&file, 2).is_err(), "missing");
    }

    #[test]
    fn a_list_of_another_length_than_the_rows_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("E.1.sqlite");
        let mut w = Writer::create(&file).unwrap();
        w.push(&[ValueRef::Text(b"a")], 0).unwrap();
        assert_eq!(w.finish(2), None);
        assert!(!path_of(&file).exists());
    }
}
