//! The last rows pushed, held back from the pages a moment: a row whose key
//! jumps above those that follow (a customer id given out by an earlier
//! incremental refresh, among kept ones) is set aside when they come,
//! instead of making every row after it wait for SQLite.

use std::cmp::Ordering;
use std::collections::VecDeque;

use rusqlite::types::ValueRef;

use super::key_index::order;

/// Rows held back at most; the oldest is paged when one more comes.
pub(super) const HOLD_ROWS: usize = 64;

/// One row held, its values copied into buffers reused from row to row.
#[derive(Default)]
pub(super) struct HeldRow {
    pub(super) tag: u64,
    /// Its number among the rows pushed.
    pub(super) no: u64,
    bytes: Vec<u8>,
    cells: Vec<Cell>,
}

#[derive(Clone, Copy)]
enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

impl HeldRow {
    fn fill(&mut self, tag: u64, no: u64, row: &[ValueRef<'_>]) {
        (self.tag, self.no) = (tag, no);
        self.bytes.clear();
        self.cells.clear();
        for v in row {
            let mut copy = |b: &[u8]| {
                let a = self.bytes.len();
                self.bytes.extend_from_slice(b);
                (a, self.bytes.len())
            };
            self.cells.push(match *v {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Integer(n),
                ValueRef::Real(f) => Cell::Real(f),
                ValueRef::Text(t) => {
                    let (a, b) = copy(t);
                    Cell::Text(a, b)
                }
                ValueRef::Blob(t) => {
                    let (a, b) = copy(t);
                    Cell::Blob(a, b)
                }
            });
        }
    }

    fn value(&self, c: Cell) -> ValueRef<'_> {
        let bytes = |a: usize, b: usize| self.bytes.get(a..b).unwrap_or_default();
        match c {
            Cell::Null => ValueRef::Null,
            Cell::Integer(n) => ValueRef::Integer(n),
            Cell::Real(f) => ValueRef::Real(f),
            Cell::Text(a, b) => ValueRef::Text(bytes(a, b)),
            Cell::Blob(a, b) => ValueRef::Blob(bytes(a, b)),
        }
    }

    /// Its values, into `out`.
    pub(super) fn values<'a>(&'a self, out: &mut Vec<ValueRef<'a>>) {
        out.clear();
        out.extend(self.cells.iter().map(|&c| self.value(c)));
    }

    /// Its value in column `i`.
    pub(super) fn get(&self, i: usize) -> ValueRef<'_> {
        self.cells.get(i).map_or(ValueRef::Null, |&c| self.value(c))
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
