//! The file the pages go to: page 1 is reserved and written last, every
//! other page is numbered in the order it is written.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::format::{append_record, local_len, put_varint, Tree};
use crate::{Error, Value};

/// The highest page number the format allows.
pub const MAX_PAGES: u32 = 4_294_967_294;

/// Bytes written to the file at once.
const WRITE_BUFFER: usize = 1 << 20;

/// The database file being written.
pub struct Pages {
    file: BufWriter<File>,
    path: PathBuf,
    size: usize,
    /// The number the next page written takes.
    next: u32,
    /// An overflow page being filled.
    scratch: Vec<u8>,
}

impl Pages {
    /// Create `path` (which must not exist) with room for page 1.
    pub fn create(path: &Path, size: usize) -> Result<Self, Error> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut pages = Self {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            path: path.to_owned(),
            size,
            next: 1,
            scratch: vec![0; size],
        };
        let blank = vec![0; size];
        pages.write(&blank)?;
        Ok(pages)
    }

    /// Bytes a page holds.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Pages written so far, page 1 included.
    pub fn count(&self) -> u32 {
        self.next - 1
    }

    /// Append a page; its number.
    pub fn write(&mut self, page: &[u8]) -> Result<u32, Error> {
        if self.next > MAX_PAGES {
            return Err(Error::TooManyPages {
                path: self.path.clone(),
            });
        }
        self.file
            .write_all(page)
            .map_err(|e| Error::io(&self.path, e))?;
        let n = self.next;
        self.next += 1;
        Ok(n)
    }

    /// Append the cell of `payload` to `cell`: its size, `rowid` for a
    /// table's row, the part kept on the page, and the first page of the
    /// rest's overflow chain, written now.
    pub fn cell(
        &mut self,
        cell: &mut Vec<u8>,
        tree: Tree,
        rowid: Option<i64>,
        payload: &[u8],
    ) -> Result<(), Error> {
        put_varint(cell, payload.len() as u64);
        if let Some(rowid) = rowid {
            put_varint(cell, rowid as u64);
        }
        let local = local_len(tree, self.size, payload.len());
        cell.extend_from_slice(&payload[..local]);
        if local < payload.len() {
            let first = self.overflow(&payload[local..])?;
            cell.extend_from_slice(&first.to_be_bytes());
        }
        Ok(())
    }

    /// Append the cell of the record of `values`, whose sizes are
    /// `(header, len)` (from [`crate::format::record_len`]), to `cell`, as
    /// [`Pages::cell`] does, without building the record apart when it fits
    /// on the page whole.
    pub fn record_cell(
        &mut self,
        cell: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        (tree, rowid): (Tree, Option<i64>),
        values: &[Value<'_>],
        (header, len): (usize, usize),
    ) -> Result<(), Error> {
        if local_len(tree, self.size, len) < len {
            scratch.clear();
            append_record(scratch, values, (header, len));
            return self.cell(cell, tree, rowid, scratch);
        }
        put_varint(cell, len as u64);
        if let Some(rowid) = rowid {
            put_varint(cell, rowid as u64);
        }
        append_record(cell, values, (header, len));
        Ok(())
    }

    /// Write `rest` as a chain of overflow pages; the first one's number.
    fn overflow(&mut self, rest: &[u8]) -> Result<u32, Error> {
        let first = self.next;
        let room = self.size - 4;
        let mut chunks = rest.chunks(room).peekable();
        while let Some(chunk) = chunks.next() {
            let next = match chunks.peek() {
                Some(_) => self.next + 1,
                None => 0,
            };
            let mut page = std::mem::take(&mut self.scratch);
            page[..4].copy_from_slice(&next.to_be_bytes());
            page[4..4 + chunk.len()].copy_from_slice(chunk);
            page[4 + chunk.len()..].fill(0);
            let written = self.write(&page);
            self.scratch = page;
            written?;
        }
        Ok(first)
    }

    /// Write page 1 over its placeholder, and make the file durable when
    /// `sync`.
    pub fn finish(mut self, first: &[u8], sync: bool) -> Result<(), Error> {
        let path = self.path.clone();
        let io = |e| Error::io(&path, e);
        self.file.flush().map_err(io)?;
        let mut file = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(first).map_err(io)?;
        if sync {
            file.sync_all().map_err(io)?;
        }
        Ok(())
    }
}
