//! B-trees built bottom-up from keys in order. Each level keeps one page
//! being filled; a page that is full waits ("held") until the next cell
//! comes, so that the last page of a level can take a cell back from it
//! and no page but the root is ever left without a cell.

use crate::format::put_varint;
use crate::page::{Kind, Page};
use crate::pages::Pages;
use crate::Error;

/// A full page waiting for its level's next cell.
struct Held {
    page: Page,
    /// Its right-most child (interior pages; 0 for leaves).
    right: u32,
    /// What goes up to the parent with it: the largest rowid under it, or
    /// the index entry that follows it.
    up: Vec<u8>,
}

struct Level {
    page: Page,
    held: Option<Held>,
}

/// The interior levels over a tree's leaves: cells of a child's page
/// number and a key (a rowid varint, or an index entry's cell).
struct Interior {
    kind: Kind,
    size: usize,
    levels: Vec<Level>,
    cell: Vec<u8>,
}

fn invariant(what: &'static str) -> Error {
    Error::Invariant(what)
}

impl Interior {
    fn new(kind: Kind, size: usize) -> Self {
        Self {
            kind,
            size,
            levels: Vec::new(),
            cell: Vec::new(),
        }
    }

    /// Add `child` with `key` to level `k`.
    fn add(&mut self, pages: &mut Pages, k: usize, child: u32, key: &[u8]) -> Result<(), Error> {
        if k == self.levels.len() {
            self.levels.push(Level {
                page: Page::new(self.kind, self.size, 0),
                held: None,
            });
        }
        if let Some(mut held) = self.levels[k].held.take() {
            let n = pages.write(held.page.finish(held.right))?;
            self.add(pages, k + 1, n, &held.up)?;
        }
        self.cell.clear();
        self.cell.extend_from_slice(&child.to_be_bytes());
        self.cell.extend_from_slice(key);
        let level = &mut self.levels[k];
        if level.page.fits(self.cell.len()) {
            level.page.push(&self.cell);
        } else {
            let full = std::mem::replace(&mut level.page, Page::new(self.kind, self.size, 0));
            level.held = Some(Held {
                page: full,
                right: child,
                up: key.to_vec(),
            });
        }
        Ok(())
    }

    /// Close level `k` and those above with `right` as level `k`'s last
    /// child; the root's page number.
    fn finish(&mut self, pages: &mut Pages, k: usize, right: u32) -> Result<u32, Error> {
        if k == self.levels.len() {
            return Ok(right);
        }
        let held = self.levels[k].held.take();
        let mut page = std::mem::replace(&mut self.levels[k].page, Page::new(self.kind, 0, 0));
        if let Some(mut held) = held {
            // The level's last page is empty: the held page gives it its
            // last cell back.
            let last = held.page.pop().ok_or(invariant("a held page has cells"))?;
            let (child, key) = last.split_at(4);
            let child = u32::from_be_bytes(
                child
                    .try_into()
                    .map_err(|_| invariant("an interior cell starts with a page number"))?,
            );
            let n = pages.write(held.page.finish(child))?;
            self.add(pages, k + 1, n, key)?;
            self.cell.clear();
            self.cell.extend_from_slice(&held.right.to_be_bytes());
            self.cell.extend_from_slice(&held.up);
            page.push(&self.cell);
        }
        let n = pages.write(page.finish(right))?;
        self.finish(pages, k + 1, n)
    }
}

/// A table's B-tree: rows in rowid order on its leaves.
pub struct TableTree {
    leaf: Page,
    last_rowid: i64,
    interior: Interior,
    key: Vec<u8>,
}

impl TableTree {
    pub fn new(size: usize) -> Self {
        Self {
            leaf: Page::new(Kind::LeafTable, size, 0),
            last_rowid: 0,
            interior: Interior::new(Kind::InteriorTable, size),
            key: Vec::new(),
        }
    }

    /// Add the cell of the row `rowid`, above every rowid added before.
    pub fn add(&mut self, pages: &mut Pages, rowid: i64, cell: &[u8]) -> Result<(), Error> {
        if !self.leaf.fits(cell.len()) {
            let n = pages.write(self.leaf.finish(0))?;
            self.leaf.clear();
            self.key.clear();
            put_varint(&mut self.key, self.last_rowid as u64);
            self.interior.add(pages, 0, n, &self.key)?;
        }
        self.leaf.push(cell);
        self.last_rowid = rowid;
        Ok(())
    }

    /// Write what is left; the root's page number.
    pub fn finish(mut self, pages: &mut Pages) -> Result<u32, Error> {
        let n = pages.write(self.leaf.finish(0))?;
        self.interior.finish(pages, 0, n)
    }
}

/// An index's B-tree: entries in order, each once, on leaves and interior
/// pages alike.
pub struct IndexTree {
    leaf: Page,
    held: Option<Held>,
    interior: Interior,
    size: usize,
}

impl IndexTree {
    pub fn new(size: usize) -> Self {
        Self {
            leaf: Page::new(Kind::LeafIndex, size, 0),
            held: None,
            interior: Interior::new(Kind::InteriorIndex, size),
            size,
        }
    }

    /// Add an entry's cell, above every entry added before.
    pub fn add(&mut self, pages: &mut Pages, cell: &[u8]) -> Result<(), Error> {
        if let Some(mut held) = self.held.take() {
            let n = pages.write(held.page.finish(0))?;
            self.interior.add(pages, 0, n, &held.up)?;
        }
        if self.leaf.fits(cell.len()) {
            self.leaf.push(cell);
        } else {
            let full = std::mem::replace(&mut self.leaf, Page::new(Kind::LeafIndex, self.size, 0));
            self.held = Some(Held {
                page: full,
                right: 0,
                up: cell.to_vec(),
            });
        }
        Ok(())
    }

    /// Write what is left; the root's page number.
    pub fn finish(mut self, pages: &mut Pages) -> Result<u32, Error> {
        if let Some(mut held) = self.held.take() {
            let last = held.page.pop().ok_or(invariant("a held leaf has cells"))?;
            let n = pages.write(held.page.finish(0))?;
            self.interior.add(pages, 0, n, &last)?;
            self.leaf.push(&held.up);
        }
        let n = pages.write(self.leaf.finish(0))?;
        self.interior.finish(pages, 0, n)
    }
}
