//! The reader every import reads its files through. It counts the bytes
//! read, for progress, and refuses to read far past the end of the last
//! row, so that one huge row (a line without end, a string of gigabytes)
//! cannot take the host's memory, whatever format parses it.

use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most bytes one row of a source file may take: a CSV record, an NDJSON
/// line or an element of a JSON array. A file with a longer row fails.
/// The check allows for what the parsers buffer ahead: a row up to this size
/// is always read, and one over it by more than twice `READ_AHEAD_BYTES`
/// never is. Blank space before a row counts as part of it.
pub const MAX_ROW_BYTES: u64 = 8 << 20;

/// What the parsers may have read ahead of the row they hand out (their
/// buffers: 8 KiB each for `BufReader` and csv, 64 KiB for a JSON array's
/// chunks).
pub const READ_AHEAD_BYTES: u64 = 128 << 10;

/// The error a read returns once a row has gone past the bound.
#[derive(Debug, thiserror::Error)]
#[error("a row longer than {MAX_ROW_BYTES} bytes")]
struct RowTooLong;

/// Where the rows of one reading of a file end: set at each row's end,
/// checked by [`Counting`] at each read.
#[derive(Debug, Default)]
pub struct RowBound {
    /// Bytes read of this file so far.
    fed: Cell<u64>,
    /// Reads may not go past this many bytes of the file.
    until: Cell<u64>,
    /// The last row handed out (the parser's number for it).
    last_row: Cell<u64>,
    /// Set when a read was refused.
    tripped: Cell<bool>,
}

impl RowBound {
    /// A new reading of the file starts: nothing read, no row yet.
    pub fn restart(&self) {
        self.fed.set(0);
        self.until.set(MAX_ROW_BYTES + READ_AHEAD_BYTES);
        self.last_row.set(0);
        self.tripped.set(false);
    }

    /// Row `row` was read whole: the next one may take [`MAX_ROW_BYTES`].
    pub fn row_end(&self, row: u64) {
        self.last_row.set(row);
        self.until
            .set(self.fed.get() + MAX_ROW_BYTES + READ_AHEAD_BYTES);
    }

    /// The row that went past the bound (the one after the last handed
    /// out), if a read was refused.
    pub fn tripped(&self) -> Option<u64> {
        self.tripped.get().then(|| self.last_row.get() + 1)
    }
}

/// A reader that adds the bytes it hands out to an import's count, and
/// refuses to read past its [`RowBound`].
pub struct Counting<'a, R> {
    pub inner: R,
    pub read: &'a AtomicU64,
    pub bound: &'a RowBound,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let fed = self.bound.fed.get();
        // One byte past the bound is asked for, to tell a row that ends
        // right at it (the next read finds the end) from one that goes on.
        let room = self.bound.until.get().saturating_sub(fed).saturating_add(1);
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..take).unwrap_or_default())?;
        if fed + n as u64 > self.bound.until.get() {
            self.bound.tripped.set(true);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                RowTooLong,
            ));
        }
        self.bound.fed.set(fed + n as u64);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bound: &RowBound, data: &[u8], rows_at: &[(usize, u64)]) -> (usize, bool) {
        let read = AtomicU64::new(0);
        bound.restart();
        let mut r = Counting {
            inner: data,
            read: &read,
            bound,
        };
        let mut got = 0;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(&(_, row)) = rows_at.iter().rev().find(|(at, _)| *at <= got) {
                if bound.last_row.get() < row {
                    bound.row_end(row);
                }
            }
            match r.read(&mut buf) {
                Ok(0) => return (got, false),
                Ok(n) => got += n,
                Err(e) => {
                    assert_eq!(e.to_string(), "a row longer than 8388608 bytes");
                    return (got, true);
                }
            }
        }
    }

    #[test]
    fn a_read_past_the_last_rows_end_plus_the_bound_is_refused() {
        let limit = (MAX_ROW_BYTES + READ_AHEAD_BYTES) as usize;
        let bound = RowBound::default();
        // One row no longer than the bound is read whole.
        assert_eq!(read_all(&bound, &vec![b'x'; limit], &[]), (limit, false));
        assert_eq!(bound.tripped(), None);
        // One byte more is not, and names the first row.
        assert_eq!(read_all(&bound, &vec![b'x'; limit + 1], &[]), (limit, true));
        assert_eq!(bound.tripped(), Some(1));
        // Rows that end in time may add up to any size; the bound is reset
        // at each row's end and names the row after the last.
        let data = vec![b'x'; 3 * limit];
        let ends = [(limit / 2, 1), (limit, 2), (2 * limit, 3)];
        assert_eq!(read_all(&bound, &data, &ends), (3 * limit, false));
        let ends = [(limit / 2, 1), (limit, 2)];
        assert_eq!(read_all(&bound, &data, &ends), (2 * limit, true));
        assert_eq!(bound.tripped(), Some(3));
        // A new reading starts afresh.
        bound.restart();
        assert_eq!(bound.tripped(), None);
    }
}
