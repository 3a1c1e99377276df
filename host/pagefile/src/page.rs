//! One B-tree page being filled: cell pointers grow from the header, cell
//! contents from the page's end.

/// The kinds of B-tree page (the first byte of its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InteriorIndex = 0x02,
    InteriorTable = 0x05,
    LeafIndex = 0x0a,
    LeafTable = 0x0d,
}

impl Kind {
    fn interior(self) -> bool {
        matches!(self, Kind::InteriorIndex | Kind::InteriorTable)
    }

    fn header_len(self) -> usize {
        if self.interior() {
            12
        } else {
            8
        }
    }
}

/// A page under construction.
pub struct Page {
    buf: Vec<u8>,
    kind: Kind,
    /// Where the B-tree header starts: 100 on page 1, else 0.
    start: usize,
    cells: usize,
    /// Where the lowest cell's content starts.
    content: usize,
}

impl Page {
    /// An empty page of `size` bytes whose header starts at `start`.
    pub fn new(kind: Kind, size: usize, start: usize) -> Self {
        Self {
            buf: vec![0; size],
            kind,
            start,
            cells: 0,
            content: size,
        }
    }

    fn pointers_end(&self) -> usize {
        self.start + self.kind.header_len() + 2 * self.cells
    }

    /// Whether a cell of `len` bytes still fits.
    pub fn fits(&self, len: usize) -> bool {
        self.pointers_end() + 2 + len <= self.content
    }

    /// Add a cell after the others (the caller checked [`Page::fits`]).
    pub fn push(&mut self, cell: &[u8]) {
        debug_assert!(self.fits(cell.len()));
        self.content -= cell.len();
        self.buf[self.content..self.content + cell.len()].copy_from_slice(cell);
        let at = self.pointers_end();
        self.buf[at..at + 2].copy_from_slice(&(self.content as u16).to_be_bytes());
        self.cells += 1;
    }

    /// Take the last cell off the page (`None` when there is none).
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        if self.cells == 0 {
            return None;
        }
        // The last cell pushed is the lowest; the one before ends where it
        // starts.
        let end = match self.cells {
            1 => self.buf.len(),
            n => self.pointer(n - 2),
        };
        let cell = self.buf[self.content..end].to_vec();
        self.cells -= 1;
        self.content = end;
        let at = self.pointers_end();
        self.buf[at..at + 2].fill(0);
        self.buf[self.content - cell.len()..self.content].fill(0);
        Some(cell)
    }

    fn pointer(&self, i: usize) -> usize {
        let at = self.start + self.kind.header_len() + 2 * i;
        u16::from_be_bytes([self.buf[at], self.buf[at + 1]]) as usize
    }

    /// The finished page's bytes, with `right` as the right-most child of
    /// an interior page; the page is empty again after.
    pub fn finish(&mut self, right: u32) -> &[u8] {
        let h = self.start;
        self.buf[h] = self.kind as u8;
        self.buf[h + 1..h + 3].fill(0); // no freeblocks
        self.buf[h + 3..h + 5].copy_from_slice(&(self.cells as u16).to_be_bytes());
        // 65536 (an empty 64 KiB page) is written as 0.
        self.buf[h + 5..h + 7].copy_from_slice(&(self.content as u16).to_be_bytes());
        self.buf[h + 7] = 0; // no fragmented bytes
        if self.kind.interior() {
            self.buf[h + 8..h + 12].copy_from_slice(&right.to_be_bytes());
        }
        &self.buf
    }

    /// Empty the page for reuse.
    pub fn clear(&mut self) {
        self.buf.fill(0);
        self.cells = 0;
        self.content = self.buf.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_fill_from_the_end_and_pop_back_off() {
        let mut p = Page::new(Kind::LeafIndex, 512, 0);
        p.push(b"abc");
        p.push(b"de");
        assert_eq!(p.cells, 2);
        assert_eq!(p.pop().as_deref(), Some(&b"de"[..]));
        assert_eq!(p.pop().as_deref(), Some(&b"abc"[..]));
        assert_eq!(p.pop(), None);
        assert!(p.finish(0).iter().skip(1).all(|b| *b == 0 || *b == 2));
    }

    #[test]
    fn a_page_refuses_what_would_reach_its_pointers() {
        let mut p = Page::new(Kind::InteriorTable, 512, 0);
        let cell = [7u8; 100];
        let mut n = 0;
        while p.fits(cell.len()) {
            p.push(&cell);
            n += 1;
        }
        // 12 header bytes, then 102 bytes a cell.
        assert_eq!(n, (512 - 12) / 102);
    }
}
