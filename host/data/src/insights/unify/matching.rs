//! The match stage: records joined into clusters by equal match keys, one
//! key partition at a time, and the pairs of rules with fuzzy fields or
//! guards compared block by block.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::super::similarity::{self, link_block, Candidate, Clusters};
use super::super::spill::{Partitions, Reader};
use super::{Phase, Progress, PROGRESS_EVERY};
use crate::insights::workspace::Workspace;

/// Disjoint sets over record indices; the smallest index is the root.
pub(super) struct UnionFind {
    /// Each record's parent (its root, once [`UnionFind::flatten`]ed).
    pub parent: Vec<u32>,
}

impl Clusters for UnionFind {
    fn joined(&mut self, a: u32, b: u32) -> bool {
        self.find(a) == self.find(b)
    }
    fn join(&mut self, a: u32, b: u32) {
        self.union(a, b);
    }
}

impl UnionFind {
    pub(super) fn new(n: u32) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    /// Records held.
    pub(super) fn len(&self) -> u32 {
        self.parent.len() as u32
    }

    /// Point every record straight at its root. A parent is never above its
    /// child, so one pass in index order finds every root already set.
    pub(super) fn flatten(&mut self) {
        for i in 0..self.parent.len() {
            let p = self.parent[i] as usize;
            self.parent[i] = self.parent[p];
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// Joins two sets; true when they were apart.
    pub(super) fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi as usize] = lo;
        true
    }
}

/// Hashes keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type PrehashedMap<V> = HashMap<u128, V, BuildHasherDefault<Prehashed>>;

/// Read the key partitions one by one, joining records into `uf`; the pairs
/// compared one by one.
pub(super) fn match_records(
    ws: &Workspace,
    keys: Partitions,
    uf: &mut UnionFind,
    progress: Progress<'_>,
) -> std::io::Result<u64> {
    let rules = &ws.unification.rules;
    let thresholds: Vec<Vec<f64>> = rules
        .iter()
        .map(|r| r.similar_fields().map(|(_, t)| t).collect())
        .collect();
    let mut comparisons = 0u64;
    let mut warned = false;
    let mut seen = 0u64;
    let read_list = |r: &mut Reader<'_>| -> std::io::Result<Vec<String>> {
        let n = r.u16()?;
        (0..n).map(|_| r.str().map(str::to_owned)).collect()
    };
    for part in keys.into_parts() {
        let mut firsts: PrehashedMap<u32> = PrehashedMap::default();
        let mut blocks: PrehashedMap<(usize, Vec<Candidate>)> = PrehashedMap::default();
        let mut frames = part.into_reader()?;
        while let Some(b) = frames.next_frame()? {
            let mut r = Reader::new(b);
            let rule = usize::from(r.u16()?);
            let h = r.u128()?;
            let rec = r.u32()?;
            if rec >= uf.len() || rule >= rules.len() {
                return Err(std::io::Error::other("corrupt temporary file: key"));
            }
            if rules[rule].compares_pairs() {
                let fuzzy = read_list(&mut r)?;
                let guards = read_list(&mut r)?;
                let (_, block) = blocks.entry(h).or_insert_with(|| (rule, Vec::new()));
                block.push(Candidate { rec, fuzzy, guards });
                if block.len() >= similarity::MAX_BLOCK_RECORDS {
                    if !warned {
                        warned = true;
                        tracing::warn!(
                            rule = %rules[rule].name,
                            "a block holds more than {} records: it is compared in chunks, so some pairs are not compared",
                            similarity::MAX_BLOCK_RECORDS
                        );
                    }
                    block.sort_unstable_by_key(|c| c.rec);
                    comparisons += link_block(block, &thresholds[rule], uf);
                    block.clear();
                }
            } else {
                match firsts.entry(h) {
                    Entry::Occupied(e) => {
                        uf.union(*e.get(), rec);
                    }
                    Entry::Vacant(v) => {
                        v.insert(rec);
                    }
                }
            }
            seen += 1;
            if seen.is_multiple_of(PROGRESS_EVERY) {
                progress(Phase::Match, seen, 0);
            }
        }
        drop(firsts);
        for (_, (rule, mut block)) in blocks {
            // By record, so the result does not depend on the map's order.
            block.sort_unstable_by_key(|c| c.rec);
            comparisons += link_block(&mut block, &thresholds[rule], uf);
        }
    }
    Ok(comparisons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_find_joins_transitively_with_the_smallest_root() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(4, 2));
        assert!(uf.union(2, 5));
        assert!(!uf.union(5, 4));
        assert_eq!(uf.find(5), 2);
        assert_eq!(uf.find(0), 0);
    }
}
