//! An external sort of frames by a leading text key (written first with
//! [`Frame::str`](super::spill::Frame::str)), in bounded memory: frames
//! gather in a chunk of at most [`Sorter::new`]'s bytes, each full chunk is
//! sorted and written to a temporary file as a run, and the runs (and the
//! last chunk, kept in memory) are merged. Keys compare as bytes, as
//! SQLite's `BINARY` collation does, so the merged order is the order of a
//! table clustered by that key.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::path::{Path, PathBuf};

use super::spill::{Frames, Spill};

/// The most runs on disk at once (open files); more are merged into one
/// first.
pub const MAX_RUNS: usize = 256;

/// Frames being sorted.
pub struct Sorter {
    dir: PathBuf,
    limit: usize,
    chunk: Chunk,
    runs: Vec<Spill>,
}

/// Frames end to end, and each one's range.
#[derive(Default)]
struct Chunk {
    buf: Vec<u8>,
    items: Vec<(usize, usize)>,
}

impl Chunk {
    fn sort(&mut self) -> io::Result<()> {
        // Every frame's key is checked here, once, so that comparing can
        // not fail.
        for &(a, b) in &self.items {
            key_of(&self.buf[a..b])?;
        }
        let buf = &self.buf;
        let key = |&(a, b): &(usize, usize)| key_of(&buf[a..b]).unwrap_or_default();
        self.items.sort_unstable_by(|x, y| key(x).cmp(key(y)));
        Ok(())
    }
}

/// The key a frame starts with: a little-endian `u32` length, then that many
/// bytes.
fn key_of(frame: &[u8]) -> io::Result<&[u8]> {
    let short = || io::Error::other("corrupt temporary file: a sort key past its frame");
    let len: [u8; 4] = frame
        .get(..4)
        .and_then(|l| l.try_into().ok())
        .ok_or_else(short)?;
    let len = u32::from_le_bytes(len) as usize;
    frame.get(4..4 + len).ok_or_else(short)
}

impl Sorter {
    /// A sorter keeping at most `limit` bytes of frames in memory, spilling
    /// runs to `dir`.
    pub fn new(dir: &Path, limit: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            limit: limit.max(1),
            chunk: Chunk::default(),
            runs: Vec::new(),
        }
    }

    /// Add a frame (its key first).
    pub fn push(&mut self, frame: &[u8]) -> io::Result<()> {
        if !self.chunk.items.is_empty() && self.chunk.buf.len() + frame.len() > self.limit {
            self.spill()?;
        }
        let start = self.chunk.buf.len();
        self.chunk.buf.extend_from_slice(frame);
        self.chunk.items.push((start, self.chunk.buf.len()));
        Ok(())
    }

    /// Sort the chunk and write it as a run; at [`MAX_RUNS`], merge the runs
    /// into one.
    fn spill(&mut self) -> io::Result<()> {
        self.chunk.sort()?;
        let mut run = Spill::new_in(&self.dir)?;
        for &(a, b) in &self.chunk.items {
            run.write(&self.chunk.buf[a..b])?;
        }
        self.chunk.buf.clear();
        self.chunk.items.clear();
        self.runs.push(run);
        if self.runs.len() >= MAX_RUNS {
            let mut merged = Merge::of(std::mem::take(&mut self.runs), Chunk::default())?;
            let mut run = Spill::new_in(&self.dir)?;
            let mut frame = Vec::new();
            while merged.next_into(&mut frame)? {
                run.write(&frame)?;
            }
            self.runs.push(run);
        }
        Ok(())
    }

    /// Every frame pushed, in key order.
    pub fn finish(mut self) -> io::Result<Merge> {
        self.chunk.sort()?;
        Merge::of(self.runs, self.chunk)
    }
}

/// One sorted source of frames: a run on disk, or the last chunk.
enum Run {
    File(Frames),
    Memory { chunk: Chunk, at: usize },
}

impl Run {
    /// The next frame into `out`; false at the end.
    fn next_into(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        match self {
            Run::File(frames) => match frames.next_frame()? {
                Some(f) => out.extend_from_slice(f),
                None => return Ok(false),
            },
            Run::Memory { chunk, at } => match chunk.items.get(*at) {
                Some(&(a, b)) => {
                    out.extend_from_slice(&chunk.buf[a..b]);
                    *at += 1;
                }
                None => return Ok(false),
            },
        }
        Ok(true)
    }
}

/// The runs merged: frames in key order.
pub struct Merge {
    runs: Vec<Run>,
    /// Each run's current frame.
    current: Vec<Vec<u8>>,
    /// (key of the current frame, run), smallest first.
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl Merge {
    fn of(files: Vec<Spill>, last: Chunk) -> io::Result<Self> {
        let mut runs = files
            .into_iter()
            .map(|s| s.into_reader().map(Run::File))
            .collect::<io::Result<Vec<_>>>()?;
        runs.push(Run::Memory { chunk: last, at: 0 });
        let mut merge = Self {
            current: vec![Vec::new(); runs.len()],
            runs,
            heap: BinaryHeap::new(),
        };
        for i in 0..merge.runs.len() {
            merge.advance(i, Vec::new())?;
        }
        Ok(merge)
    }

    /// Read run `i`'s next frame and queue it, reusing `key`'s allocation.
    fn advance(&mut self, i: usize, mut key: Vec<u8>) -> io::Result<()> {
        if self.runs[i].next_into(&mut self.current[i])? {
            key.clear();
            key.extend_from_slice(key_of(&self.current[i])?);
            self.heap.push(Reverse((key, i)));
        }
        Ok(())
    }

    /// The next frame into `out`; false when every frame has been given.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        let Some(Reverse((key, i))) = self.heap.pop() else {
            return Ok(false);
        };
        std::mem::swap(out, &mut self.current[i]);
        self.advance(i, key)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::spill::{Frame, Reader};

    fn sorted(keys: &[String], limit: usize) -> Vec<(String, u32)> {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = Sorter::new(dir.path(), limit);
        let mut f = Frame::default();
        for (i, k) in keys.iter().enumerate() {
            f.clear();
            f.str(k);
            f.u32(i as u32);
            sorter.push(&f.0).unwrap();
        }
        let mut merged = sorter.finish().unwrap();
        let mut out = Vec::new();
        let mut frame = Vec::new();
        while merged.next_into(&mut frame).unwrap() {
            let mut r = Reader::new(&frame);
            out.push((r.str().unwrap().to_owned(), r.u32().unwrap()));
        }
        out
    }

    #[test]
    fn frames_come_out_in_byte_order_of_their_keys_in_memory_on_disk_and_past_the_run_limit() {
        // Scattered keys, with a prefix pair ("a" < "a-b" < "a/…" in bytes)
        // and a non-ASCII one.
        let mut keys: Vec<String> = (0..5000u32)
            .map(|i| format!("k{:08x}", i.wrapping_mul(2_654_435_761)))
            .collect();
        keys.extend(["a".into(), "a/1".into(), "a-b/1".into(), "é".into()]);
        let mut want: Vec<&String> = keys.iter().collect();
        want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // All in memory; a few runs; more runs than MAX_RUNS (frames are
        // 16 bytes or so: 8 a run gives over 600 runs).
        for limit in [1 << 20, 8 * 1024, 8 * 16] {
            let got = sorted(&keys, limit);
            assert_eq!(got.len(), keys.len(), "limit {limit}");
            for ((k, i), w) in got.iter().zip(&want) {
                assert_eq!(k, *w, "limit {limit}");
                assert_eq!(&keys[*i as usize], k, "payload follows its key");
            }
        }
    }

    #[test]
    fn no_frames_sort_to_none_and_a_keyless_frame_is_an_error() {
        assert!(sorted(&[], 64).is_empty());
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = Sorter::new(dir.path(), 64);
        sorter.push(&[9, 0, 0, 0, b'x']).unwrap();
        let err = sorter.finish().err().unwrap();
        assert_eq!(
            err.to_string(),
            "corrupt temporary file: a sort key past its frame"
        );
    }
}
