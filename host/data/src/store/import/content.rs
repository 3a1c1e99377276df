//! A file's bytes hashed as an import reads them: the content half of a
//! source's fingerprint, so that a changed source's files are read once.

use std::cell::{Cell, RefCell};
use std::io::Read;

/// The BLAKE3 hash of the bytes read from one file since it was opened.
#[derive(Default)]
pub struct Content {
    hasher: RefCell<blake3::Hasher>,
    hashed: Cell<u64>,
    /// The file's size when it was opened.
    size: Cell<Option<u64>>,
}

impl Content {
    /// Start again: the file was opened (again), `size` bytes long.
    pub(super) fn restart(&self, size: Option<u64>) {
        self.hasher.borrow_mut().reset();
        self.hashed.set(0);
        self.size.set(size);
    }

    /// The digest, when every byte of the file was read (a reader may
    /// stop short, or the file may have grown).
    pub fn digest(&self) -> Option<[u8; 32]> {
        (self.size.get() == Some(self.hashed.get()))
            .then(|| *self.hasher.borrow().finalize().as_bytes())
    }
}

/// A file whose bytes go to a [`Content`] as they are read.
pub(super) struct Hashing<'a> {
    pub file: std::fs::File,
    pub content: Option<&'a Content>,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Some(c) = self.content {
            c.hasher
                .borrow_mut()
                .update(buf.get(..n).unwrap_or_default());
            c.hashed.set(c.hashed.get() + n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_needs_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        let content = Content::default();
        let open = || {
            content.restart(Some(11));
            Hashing {
                file: std::fs::File::open(&p).unwrap(),
                content: Some(&content),
            }
        };
        let mut r = open();
        let mut buf = [0u8; 5];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(content.digest(), None, "read short");
        // Opened again: counted from the start.
        let mut r = open();
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(
            content.digest(),
            Some(*blake3::hash(b"hello world").as_bytes())
        );
    }
}
