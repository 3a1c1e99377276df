//! Gzip-compressed source files (`name.csv.gz`, `name.ndjson.gz`, …): read
//! through a decoder, with progress counted in the file's own (compressed)
//! bytes and the row bound ([`super::row_bound`]) applied to the bytes it
//! decodes, so a row that compresses well is bounded like any other. A
//! stream that does not decode is a malformed file, named as such.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

/// Whether `path` names a gzip file (its extension is `gz`).
pub fn is_gzip(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// The error a decoder's failure becomes: not the file's encoding nor a
/// failed read, but a stream that is not gzip.
#[derive(Debug, thiserror::Error)]
#[error("not a valid gzip stream ({0})")]
pub struct Corrupt(String);

/// The decoded bytes of a gzip file.
pub type Decoder<'a, R> = Decoded<MultiGzDecoder<Tally<'a, R>>>;

/// The decoded bytes of the gzip stream `file` (every member, as `gzip -d`
/// reads them), adding the compressed bytes read to `read`.
pub fn decoder<R: Read>(file: R, read: &AtomicU64) -> Decoder<'_, R> {
    Decoded(MultiGzDecoder::new(Tally { inner: file, read }))
}

/// Counts the bytes read from the file, for progress.
pub struct Tally<'a, R> {
    inner: R,
    read: &'a AtomicU64,
}

impl<R: Read> Read for Tally<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), FromFile(e)))?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A failed read of the file itself, passed through the decoder as it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FromFile(std::io::Error);

/// A decoder whose own errors are [`Corrupt`].
pub struct Decoded<R>(R);

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<FromFile>()) {
                return e;
            }
            std::io::Error::new(std::io::ErrorKind::InvalidData, Corrupt(e.to_string()))
        })
    }
}
