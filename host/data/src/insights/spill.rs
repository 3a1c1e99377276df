//! Unification's working data on disk: anonymous temporary files (deleted by
//! the system when closed) of length-prefixed frames, written and read
//! sequentially, optionally split into partitions so that one partition at a
//! time fits in a few megabytes of memory. Frames are encoded by [`Frame`] and
//! decoded by [`Reader`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;

/// Write buffer per spill file.
const BUFFER: usize = 64 * 1024;
/// The most partitions a spill is split into (open files at once).
pub const MAX_PARTITIONS: usize = 256;
/// The largest frame: a record bigger than this is refused rather than read
/// back into memory (values are bounded far below this by the import).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// An I/O error on the temporary files, naming their folder.
#[derive(Debug, thiserror::Error)]
#[error("unification's temporary files in {}: {source}", dir.display())]
pub struct SpillError {
    pub dir: PathBuf,
    pub source: io::Error,
}

/// One temporary file of frames.
pub struct Spill {
    out: BufWriter<File>,
    frames: u64,
    bytes: u64,
}

impl Spill {
    /// A new, empty spill file in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER, tempfile::tempfile_in(dir)?),
            frames: 0,
            bytes: 0,
        })
    }

    /// A new file of frames at `path` (replacing one there), to keep.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER, File::create(path)?),
            frames: 0,
            bytes: 0,
        })
    }

    /// Flush a file made by [`Spill::create`] to disk.
    pub fn finish(self) -> io::Result<()> {
        self.out
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    }

    /// Append one frame.
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&n| n as usize <= MAX_FRAME_BYTES)
            .ok_or_else(|| io::Error::other("a record is too large to spill"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(frame)?;
        self.frames += 1;
        self.bytes += 4 + u64::from(len);
        Ok(())
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finish writing and read the frames back, in order.
    pub fn into_reader(self) -> io::Result<Frames> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Frames::new(file))
    }
}

/// The frames of a spill, read in order.
pub struct Frames {
    input: BufReader<File>,
    /// A frame read across the buffer's end.
    buf: Vec<u8>,
    /// Bytes of the buffer the last frame returned from it took.
    taken: usize,
}

impl Frames {
    fn new(file: File) -> Self {
        Self {
            input: BufReader::with_capacity(BUFFER, file),
            buf: Vec::new(),
            taken: 0,
        }
    }

    /// The frames of a file made by [`Spill::create`].
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self::new(File::open(path)?))
    }

    /// The next frame, or `None` at the end.
    pub fn next_frame(&mut self) -> io::Result<Option<&[u8]>> {
        self.input.consume(std::mem::take(&mut self.taken));
        // A frame whole in the buffer is returned from it, without a copy.
        let buffered = self.input.fill_buf()?;
        if let Some(head) = buffered.first_chunk::<4>() {
            let len = u32::from_le_bytes(*head) as usize;
            if len > MAX_FRAME_BYTES {
                return Err(io::Error::other("corrupt temporary file: frame too large"));
            }
            if buffered.len() >= 4 + len {
                self.taken = 4 + len;
                return Ok(Some(&self.input.buffer()[4..4 + len]));
            }
        }
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(io::Error::other("corrupt temporary file: frame too large"));
        }
        self.buf.resize(len, 0);
        self.input.read_exact(&mut self.buf)?;
        Ok(Some(&self.buf))
    }
}

/// Spill files split into partitions.
pub struct Partitions {
    parts: Vec<Spill>,
}

impl Partitions {
    /// `n` partitions (at least 1, at most [`MAX_PARTITIONS`]) in `dir`.
    pub fn new(dir: &Path, n: usize) -> io::Result<Self> {
        let n = n.clamp(1, MAX_PARTITIONS);
        Ok(Self {
            parts: (0..n)
                .map(|_| Spill::new_in(dir))
                .collect::<io::Result<_>>()?,
        })
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Never empty; for clippy.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Append a frame to partition `i` (modulo the count).
    pub fn write(&mut self, i: usize, frame: &[u8]) -> io::Result<()> {
        let n = self.parts.len();
        self.parts[i % n].write(frame)
    }

    /// The partitions, to read one after another.
    pub fn into_parts(self) -> Vec<Spill> {
        self.parts
    }
}

/// A frame being built.
#[derive(Default)]
pub struct Frame(pub Vec<u8>);

impl Frame {
    pub fn clear(&mut self) {
        self.0.clear();
    }
    pub fn u16(&mut self, n: u16) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    pub fn u32(&mut self, n: u32) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    pub fn u128(&mut self, n: u128) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        let n = b.len().min(u32::MAX as usize);
        self.0.extend_from_slice(&b[..n]);
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }
    /// A value (text must be UTF-8).
    pub fn value_ref(&mut self, v: ValueRef<'_>) {
        match v {
            ValueRef::Null => self.0.push(0),
            ValueRef::Integer(n) => {
                self.0.push(1);
                self.0.extend_from_slice(&n.to_le_bytes());
            }
            ValueRef::Real(x) => {
                self.0.push(2);
                self.0.extend_from_slice(&x.to_le_bytes());
            }
            ValueRef::Text(s) => {
                self.0.push(3);
                self.bytes(s);
            }
            ValueRef::Blob(b) => {
                self.0.push(4);
                self.bytes(b);
            }
        }
    }
}

/// Reads what a [`Frame`] wrote, in the same order.
pub struct Reader<'a> {
    b: &'a [u8],
}

fn corrupt() -> io::Error {
    io::Error::other("corrupt temporary file: frame shorter than its fields")
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| corrupt())
    }
    pub fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> io::Result<u128> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> io::Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt())
    }
    pub fn opt_str(&mut self) -> io::Result<Option<&'a str>> {
        match self.take(1)?[0] {
            0 => Ok(None),
            _ => self.str().map(Some),
        }
    }
    /// A value, borrowing its text. Text is not checked again for UTF-8:
    /// [`Frame::value_ref`] wrote it valid.
    pub fn value_ref(&mut self) -> io::Result<ValueRef<'a>> {
        Ok(match self.take(1)?[0] {
            0 => ValueRef::Null,
            1 => ValueRef::Integer(i64::from_le_bytes(self.array()?)),
            2 => ValueRef::Real(f64::from_le_bytes(self.array()?)),
            3 => ValueRef::Text(self.bytes()?),
            4 => ValueRef::Blob(self.bytes()?),
            _ => return Err(corrupt()),
        })
    }
    /// What is left of the frame.
    pub fn rest(&self) -> &'a [u8] {
        self.b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Partitions::new(dir.path(), 3).unwrap();
        let mut f = Frame::default();
        for i in 0..10u32 {
            f.clear();
            f.u32(i);
            f.opt_str(i.is_multiple_of(2).then_some("é"));
            f.value_ref(ValueRef::Real(f64::from(i) / 2.0));
            f.value_ref(ValueRef::Null);
            f.u128(u128::MAX - u128::from(i));
            parts.write(i as usize, &f.0).unwrap();
        }
        let mut seen = Vec::new();
        for p in parts.into_parts() {
            let mut frames = p.into_reader().unwrap();
            while let Some(b) = frames.next_frame().unwrap() {
                let mut r = Reader::new(b);
                let i = r.u32().unwrap();
                assert_eq!(r.opt_str().unwrap(), i.is_multiple_of(2).then_some("é"));
                assert_eq!(r.value_ref().unwrap(), ValueRef::Real(f64::from(i) / 2.0));
                assert_eq!(r.value_ref().unwrap(), ValueRef::Null);
                assert_eq!(r.u128().unwrap(), u128::MAX - u128::from(i));
                assert!(r.rest().is_empty());
                seen.push(i);
            }
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn frames_across_the_read_buffer_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut spill = Spill::create(&path).unwrap();
        // Sizes that end exactly on, just before and just past the read
        // buffer's end, and frames bigger than the buffer.
        let sizes: Vec<usize> = (0..400)
            .map(|i| match i % 7 {
                0 => BUFFER - 4,
                1 => BUFFER + 3,
                2 => 3 * BUFFER,
                _ => (i * 131) % 5_000,
            })
            .collect();
        for (i, &n) in sizes.iter().enumerate() {
            spill.write(&vec![i as u8; n]).unwrap();
        }
        spill.finish().unwrap();
        let mut frames = Frames::open(&path).unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            let b = frames.next_frame().unwrap().unwrap();
            assert_eq!(b.len(), n, "frame {i}");
            assert!(b.iter().all(|&x| x == i as u8), "frame {i}");
        }
        assert!(frames.next_frame().unwrap().is_none());
        // A frame whose length says more than the limit is refused.
        std::fs::write(&path, u32::MAX.to_le_bytes()).unwrap();
        let err = Frames::open(&path).unwrap().next_frame().unwrap_err();
        assert_eq!(err.to_string(), "corrupt temporary file: frame too large");
    }

    #[test]
    fn a_truncated_frame_is_an_error_not_a_panic() {
        let mut f = Frame::default();
        f.str("hello");
        let mut r = Reader::new(&f.0[..6]);
        assert!(r.str().is_err());
        assert!(Reader::new(&[9]).value_ref().is_err());
    }
}
