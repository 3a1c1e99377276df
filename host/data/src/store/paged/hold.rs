//! The last rows pushed, held back from the pages a moment: a row whose key
//! jumps above those that follow (a customer id given out by an earlier
//! incremental refresh, among kept ones) is set aside when they come,
//! instead of making every row after it wait for SQLite.

use std::cmp::Ordering;
use std::collections::VecDeque;

use rusqlite::types::ValueRef;

use super::key_index::order;
use super::pipe::Slot;

/// Rows held back at most; the oldest is paged when one more comes.
pub(super) const HOLD_ROWS: usize = 64;

/// One row held, its values copied into buffers reused from row to row.
#[derive(Default)]
pub(super) struct HeldRow {
    pub(super) tag: u64,
    /// Its number among the rows pushed.
    pub(super) no: u64,
    bytes: Vec<u8>,
    cells: Vec<Slot>,
}

impl HeldRow {
    fn fill(&mut self, tag: u64, no: u64, row: &[ValueRef<'_>]) {
        (self.tag, self.no) = (tag, no);
        self.bytes.clear();
        self.cells.clear();
        for &v in row {
            self.cells.push(Slot::store(v, &mut self.bytes));
        }
    }

    /// Its values, into `out`.
    pub(super) fn values<'a>(&'a self, out: &mut Vec<ValueRef<'a>>) {
        out.clear();
        out.extend(self.cells.iter().map(|&c| c.read(&self.bytes)));
    }

    /// Its value in column `i`.
    pub(super) fn get(&self, i: usize) -> ValueRef<'_> {
        self.cells
            .get(i)
            .map_or(ValueRef::Null, |&c| c.read(&self.bytes))
    }
}

/// What to do with a row that comes below the newest held.
pub(super) enum Below {
    /// It duplicates a held row's key.
    Duplicate,
    /// Most held rows are below it: it is the odd one, set it aside.
    SetAside,
    /// Set aside these held rows (newest first), which jump above it; it
    /// is held.
    Held(Vec<HeldRow>),
}

/// Rows held back, keys ascending.
#[derive(Default)]
pub(super) struct Held {
    rows: VecDeque<HeldRow>,
    spare: Vec<HeldRow>,
}

impl Held {
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// How `key` compares with the newest held row's (column `k`).
    pub(super) fn above_newest(&self, key: ValueRef<'_>, k: usize) -> Option<Ordering> {
        self.rows.back().map(|r| order(key, r.get(k)))
    }

    /// Hold `row` (its key above every held one).
    pub(super) fn push(&mut self, tag: u64, no: u64, row: &[ValueRef<'_>]) {
        let mut held = self.spare.pop().unwrap_or_default();
        held.fill(tag, no, row);
        self.rows.push_back(held);
    }

    /// The oldest row held, to page.
    pub(super) fn pop_oldest(&mut self) -> Option<HeldRow> {
        self.rows.pop_front()
    }

    /// Take a row back to reuse its buffers.
    pub(super) fn recycle(&mut self, row: HeldRow) {
        self.spare.push(row);
    }

    /// Decide for `key` (column `k`), below the newest held row's key.
    pub(super) fn below(&mut self, key: ValueRef<'_>, k: usize) -> Below {
        let mut above = 0;
        for r in &self.rows {
            match order(key, r.get(k)) {
                Ordering::Equal => return Below::Duplicate,
                Ordering::Less => above += 1,
                Ordering::Greater => {}
            }
        }
        if above * 2 > self.rows.len() {
            return Below::SetAside;
        }
        let keep = self.rows.len() - above;
        Below::Held(self.rows.drain(keep..).rev().collect())
    }
}
