//! Fuzzy matching: how similar two normalised values must be for a rule's
//! field to match, and how the records of one block are compared.
//!
//! Similarity is Jaro-Winkler (the `strsim` crate) of the normalised values,
//! from 0 (nothing alike) to 1 (equal). A block is the set of records whose
//! exact fields are equal; within it, every pair is compared when the block
//! is small, and each record with its nearest neighbours in sorted order
//! otherwise, so comparisons stay linear in the number of records.

/// Similarity a `high` precision field needs: one dropped, doubled or
/// swapped letter in a name of five letters or more passes (`Dufour`/
/// `Duufour` is 0.918), and so do `Marie`/`Mario` (0.92) and `Martin`/
/// `Martine` (0.97): another field or a guard must tell those apart.
pub const HIGH: f64 = 0.90;
/// Similarity a `medium` precision field needs.
pub const MEDIUM: f64 = 0.85;
/// Similarity a `low` precision field needs.
pub const LOW: f64 = 0.80;

/// Blocks of at most this many records compare every pair.
pub const ALL_PAIRS_UP_TO: usize = 64;
/// In bigger blocks, each record meets this many following records in the
/// order of each fuzzy field (the sorted-neighbourhood method).
pub const WINDOW: usize = 16;
/// Records held from one block at a time; a bigger block is compared in
/// chunks of this size (pairs across chunks are missed), with a warning.
pub const MAX_BLOCK_RECORDS: usize = 50_000;
/// Characters of a value that are compared; the rest is ignored, so a huge
/// value cannot make a comparison slow.
pub const MAX_COMPARED_CHARS: usize = 256;

/// How a rule's field matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Precision {
    /// Equal after normalisation.
    Exact,
    /// Jaro-Winkler similarity at least this (0 < t < 1).
    Similar(f64),
}

impl Precision {
    /// `exact`, `high`, `medium`, `low`, or a threshold in (0, 1].
    pub fn parse_level(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(Self::Exact),
            "high" => Some(Self::Similar(HIGH)),
            "medium" => Some(Self::Similar(MEDIUM)),
            "low" => Some(Self::Similar(LOW)),
            _ => None,
        }
    }

    /// A numeric threshold; 1 means exact.
    pub fn from_threshold(t: f64) -> Option<Self> {
        if t == 1.0 {
            Some(Self::Exact)
        } else if t > 0.0 && t < 1.0 {
            Some(Self::Similar(t))
        } else {
            None
        }
    }
}

/// The part of a value that is compared: its first [`MAX_COMPARED_CHARS`].
pub fn head(s: &str) -> &str {
    match s.char_indices().nth(MAX_COMPARED_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Jaro-Winkler similarity of two normalised values (at most
/// [`MAX_COMPARED_CHARS`] of each).
pub fn similarity(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(head(a), head(b))
}

/// One record of a block: its index, its fuzzy fields' values (their
/// compared heads) and its guards' values (a digest of each, empty when the
/// record has none), so a block's memory does not grow with value sizes.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub rec: u32,
    pub fuzzy: Vec<String>,
    pub guards: Vec<String>,
}

/// True when `a` and `b` match: every fuzzy value similar enough, and no
/// guard where both have a value and the values differ.
pub fn matches(a: &Candidate, b: &Candidate, thresholds: &[f64]) -> bool {
    let conflict = a
        .guards
        .iter()
        .zip(&b.guards)
        .any(|(x, y)| !x.is_empty() && !y.is_empty() && x != y);
    !conflict
        && thresholds
            .iter()
            .zip(a.fuzzy.iter().zip(&b.fuzzy))
            .all(|(&t, (x, y))| x == y || similarity(x, y) >= t)
}

/// Where matching pairs go: a union-find over record indices.
pub trait Clusters {
    /// True when `a` and `b` are already in one cluster.
    fn joined(&mut self, a: u32, b: u32) -> bool;
    /// Put `a` and `b` in one cluster.
    fn join(&mut self, a: u32, b: u32);
}

/// Compare the records of one block, joining each matching pair that is not
/// already in one cluster; the comparisons made.
pub fn link_block(block: &mut [Candidate], thresholds: &[f64], clusters: &mut dyn Clusters) -> u64 {
    let mut compared = 0u64;
    let mut visit = |a: &Candidate, b: &Candidate, compared: &mut u64| {
        if clusters.joined(a.rec, b.rec) {
            return;
        }
        *compared += 1;
        if matches(a, b, thresholds) {
            clusters.join(a.rec, b.rec);
        }
    };
    let n = block.len();
    if n <= ALL_PAIRS_UP_TO {
        for i in 0..n {
            for j in i + 1..n {
                visit(&block[i], &block[j], &mut compared);
            }
        }
        return compared;
    }
    // One pass per fuzzy field (a guard-only rule sorts by its guards, so
    // records with equal guards are neighbours).
    let passes = thresholds.len().max(1);
    for pass in 0..passes {
        if thresholds.is_empty() {
            block.sort_unstable_by(|a, b| a.guards.cmp(&b.guards));
        } else {
            block.sort_unstable_by(|a, b| a.fuzzy[pass].cmp(&b.fuzzy[pass]));
        }
        for i in 0..n {
            for j in i + 1..n.min(i + 1 + WINDOW) {
                visit(&block[i], &block[j], &mut compared);
            }
        }
    }
    compared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(rec: u32, fuzzy: &[&str], guards: &[&str]) -> Candidate {
        Candidate {
            rec,
            fuzzy: fuzzy.iter().map(|s| s.to_string()).collect(),
            guards: guards.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn levels_and_thresholds() {
        assert_eq!(
            Precision::parse_level("high"),
            Some(Precision::Similar(HIGH))
        );
        assert_eq!(Precision::parse_level("exact"), Some(Precision::Exact));
        assert_eq!(Precision::parse_level("fuzzy"), None);
        assert_eq!(Precision::from_threshold(1.0), Some(Precision::Exact));
        assert_eq!(
            Precision::from_threshold(0.9),
            Some(Precision::Similar(0.9))
        );
        assert_eq!(Precision::from_threshold(0.0), None);
        assert_eq!(Precision::from_threshold(1.5), None);
    }

    #[test]
    fn typos_pass_high_and_other_names_do_not() {
        for (a, b) in [
            ("dubois", "duobis"),
            ("dubois", "duboiss"),
            ("dubois", "dubis"),
            ("marie", "maire"),
            ("marie", "mraie"),
            ("genevieve", "genevive"),
            ("dufour", "duufour"),
        ] {
            assert!(similarity(a, b) >= HIGH, "{a}/{b}: {}", similarity(a, b));
        }
        for (a, b) in [("dubois", "durand"), ("anna", "hugo"), ("leroy", "lemoine")] {
            assert!(similarity(a, b) < HIGH, "{a}/{b}: {}", similarity(a, b));
        }
    }

    #[test]
    fn guards_veto_only_when_both_have_a_value() {
        let t = [HIGH];
        let a = cand(0, &["dubois"], &["a@x.com"]);
        assert!(!matches(&a, &cand(1, &["duboiss"], &["b@x.com"]), &t));
        assert!(matches(&a, &cand(1, &["duboiss"], &[""]), &t));
        assert!(matches(&a, &cand(1, &["duboiss"], &["a@x.com"]), &t));
    }

    struct Links(Vec<(u32, u32)>);

    impl Clusters for Links {
        fn joined(&mut self, _: u32, _: u32) -> bool {
            false
        }
        fn join(&mut self, a: u32, b: u32) {
            self.0.push((a.min(b), a.max(b)));
        }
    }

    #[test]
    fn big_blocks_compare_neighbours_not_every_pair() {
        let mut block: Vec<Candidate> = (0..1000u32)
            .map(|i| cand(i, &[&format!("name{i:04}")], &[]))
            .collect();
        block.push(cand(1000, &["name0500x"], &[]));
        let mut links = Links(Vec::new());
        let compared = link_block(&mut block, &[0.97], &mut links);
        assert!(compared <= 1001 * WINDOW as u64, "{compared}");
        assert!(links.0.contains(&(500, 1000)), "{:?}", links.0);
    }

    #[test]
    fn huge_values_are_cut_before_comparing() {
        let a = "x".repeat(1_000_000);
        let b = format!("{}y", "x".repeat(999_999));
        assert_eq!(similarity(&a, &b), 1.0);
    }
}
