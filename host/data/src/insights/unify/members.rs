//! The records of one cluster and the customer they make: a merge
//! partition loaded, each record decoded as the map wrote it, the
//! `CustomerId` the cluster keeps or is given, and each profile field's
//! winning value under its merge policy.

use std::collections::{HashMap, HashSet};

use rusqlite::types::ValueRef;

use super::super::spill::{Reader, Spill};
use super::super::workspace::MergePolicy;
use crate::store::{EntityDb, StoreError};

/// One merge partition: payloads in one buffer, and (root, record, start,
/// end) per record, sorted by root then record.
pub(in crate::insights) struct Loaded {
    pub(in crate::insights) buf: Vec<u8>,
    pub(in crate::insights) items: Vec<(u32, u32, usize, usize)>,
}

/// One merge partition read whole, its records sorted by cluster root,
/// then record.
pub(in crate::insights) fn load_partition(part: Spill) -> std::io::Result<Loaded> {
    let mut out = Loaded {
        buf: Vec::with_capacity(usize::try_from(part.bytes()).unwrap_or(0)),
        items: Vec::with_capacity(usize::try_from(part.frames()).unwrap_or(0)),
    };
    let mut frames = part.into_reader()?;
    while let Some(b) = frames.next_frame()? {
        let mut r = Reader::new(b);
        let root = r.u32()?;
        let rec = r.u32()?;
        let payload = r.rest();
        let start = out.buf.len();
        out.buf.extend_from_slice(payload);
        out.items.push((root, rec, start, out.buf.len()));
    }
    sort_items(&mut out.items);
    Ok(out)
}

/// Sort `items` by their first two numbers. Records come to a partition in
/// order of the second, and the first spans a range about as wide as the
/// items are many: a stable counting sort by the first, checked, is linear.
fn sort_items(items: &mut Vec<(u32, u32, usize, usize)>) {
    let by_both = |items: &mut Vec<(u32, u32, usize, usize)>| {
        items.sort_unstable_by_key(|&(a, b, _, _)| (a, b));
    };
    let (Some(lo), Some(hi)) = (
        items.iter().map(|i| i.0).min(),
        items.iter().map(|i| i.0).max(),
    ) else {
        return;
    };
    let span = (hi - lo) as usize + 1;
    if span > items.len().saturating_mul(COUNTING_SORT_SPAN) {
        return by_both(items);
    }
    let mut starts = vec![0usize; span + 1];
    for i in items.iter() {
        starts[(i.0 - lo) as usize + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut sorted = vec![(0, 0, 0, 0); items.len()];
    for &i in items.iter() {
        let at = &mut starts[(i.0 - lo) as usize];
        sorted[*at] = i;
        *at += 1;
    }
    *items = sorted;
    if !items.is_sorted_by_key(|&(a, b, _, _)| (a, b)) {
        by_both(items);
    }
}

/// How much wider than the items are many the first numbers may spread
/// for [`sort_items`] to count them (a count per value).
const COUNTING_SORT_SPAN: usize = 4;

/// A record's payload as the map wrote it, borrowing its text.
pub(super) fn decode_member(b: &[u8], nf: usize) -> std::io::Result<Member<'_>> {
    let mut m = Member::default();
    decode_member_into(&mut m, b, nf)?;
    Ok(m)
}

/// [`decode_member`] into `m`, reusing its vectors.
pub(super) fn decode_member_into<'a>(
    m: &mut Member<'a>,
    b: &'a [u8],
    nf: usize,
) -> std::io::Result<()> {
    let mut r = Reader::new(b);
    m.src = i64::from(r.u16()?);
    m.skey = r.str()?;
    m.upd = r.opt_str()?;
    m.prev = r.opt_str()?;
    m.vals.clear();
    for _ in 0..nf {
        m.vals.push(r.value_ref()?);
    }
    m.keys.clear();
    for _ in 0..r.u16()? {
        m.keys.push(r.u64()?);
    }
    Ok(())
}

/// One source record of a cluster, borrowed from its merge partition.
#[derive(Default)]
pub(super) struct Member<'a> {
    /// Index of its source in the workspace.
    pub(super) src: i64,
    pub(super) skey: &'a str,
    pub(super) upd: Option<&'a str>,
    pub(super) prev: Option<&'a str>,
    /// Its profile values, already of the fields' types (the map converted
    /// them).
    pub(super) vals: Vec<ValueRef<'a>>,
    /// Its match keys (see [`super::keymap`]).
    pub(super) keys: Vec<u64>,
}

/// The ids given out during one unification. Ids are `C` and a number from
/// the counter, so a bitset holds them exactly in one bit each; anything else
/// (ids written by hand into the store) goes to a set.
#[derive(Default)]
pub(super) struct Claimed {
    pub(super) bits: Vec<u64>,
    pub(super) other: HashSet<String>,
}

impl Claimed {
    /// Marks `id` as given out; false when it already was.
    pub(super) fn insert(&mut self, id: &str) -> bool {
        let n = id
            .strip_prefix('C')
            .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok());
        let Some(n) = n else {
            return self.other.insert(id.to_owned());
        };
        let (word, bit) = (n / 64, n % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let was = self.bits[word] & (1 << bit) != 0;
        self.bits[word] |= 1 << bit;
        !was
    }
}

/// The id a cluster keeps: the previous id most of its records had (ties: the
/// smallest), unless another cluster took it this run; else a fresh one.
pub(super) fn choose_id(
    members: &[Member<'_>],
    claimed: &mut Claimed,
    counter: &mut u64,
) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in members {
        if let Some(p) = m.prev {
            *counts.entry(p).or_default() += 1;
        }
    }
    let mut candidates: Vec<(&str, usize)> = counts.into_iter().collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (id, _) in candidates {
        if claimed.insert(id) {
            return id.to_owned();
        }
    }
    loop {
        *counter += 1;
        let id = numbered_id(*counter);
        if claimed.insert(&id) {
            return id;
        }
    }
}

/// `C` and `n` in at least 8 digits, as `format!("C{n:08}")` writes it
/// (which pads one character at a time: 0.06 s of 1M rows' merge).
pub(super) fn numbered_id(n: u64) -> String {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - 8);
    let mut id = String::with_capacity(1 + digits.len() - start);
    id.push('C');
    id.extend(digits[start..].iter().map(|&d| char::from(d)));
    id
}

/// The winning value of profile field `f` in a cluster (members are in
/// priority order: source priority, then record order).
pub(super) fn merge_field<'a>(
    members: &[Member<'a>],
    f: usize,
    policy: MergePolicy,
) -> ValueRef<'a> {
    let present = members.iter().filter(|m| m.vals[f] != ValueRef::Null);
    match policy {
        MergePolicy::Priority => present.map(|m| m.vals[f]).next().unwrap_or(ValueRef::Null),
        MergePolicy::MostRecent => {
            let mut best: Option<&Member<'a>> = None;
            for m in present {
                // Strictly newer wins, so ties keep the higher priority.
                if best.is_none_or(|b| m.upd > b.upd) {
                    best = Some(m);
                }
            }
            best.map_or(ValueRef::Null, |m| m.vals[f])
        }
        MergePolicy::MostFrequent => {
            let mut tally: Vec<(ValueRef<'a>, usize)> = Vec::new();
            for m in present {
                match tally.iter_mut().find(|(v, _)| *v == m.vals[f]) {
                    Some((_, n)) => *n += 1,
                    None => tally.push((m.vals[f], 1)),
                }
            }
            let mut best: Option<(ValueRef<'a>, usize)> = None;
            for (v, n) in tally {
                if best.is_none_or(|(_, bn)| n > bn) {
                    best = Some((v, n));
                }
            }
            best.map_or(ValueRef::Null, |(v, _)| v)
        }
    }
}

const CUSTOMER_SEQ: &str = "customer_seq";

pub(super) fn next_customer_seq(store: &EntityDb) -> Result<u64, StoreError> {
    Ok(store.counter(CUSTOMER_SEQ)?.unwrap_or(0))
}

pub(super) fn save_customer_seq(store: &EntityDb, n: u64) -> Result<(), StoreError> {
    store.set_counter(CUSTOMER_SEQ, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(
        src: i64,
        upd: Option<&'static str>,
        prev: Option<&'static str>,
        v: ValueRef<'static>,
    ) -> Member<'static> {
        Member {
            src,
            skey: "k",
            upd,
            prev,
            vals: vec![v],
            keys: Vec::new(),
        }
    }

    fn text(s: &'static str) -> ValueRef<'static> {
        ValueRef::Text(s.as_bytes())
    }

    #[test]
    fn partition_items_sort_by_root_then_record_whatever_the_spread() {
        let sorted = |mut items: Vec<(u32, u32, usize, usize)>| {
            let mut expected = items.clone();
            expected.sort_unstable_by_key(|&(a, b, _, _)| (a, b));
            super::sort_items(&mut items);
            assert_eq!(items, expected);
        };
        // Records in order, roots close together (counted).
        sorted(
            (0..500u32)
                .map(|r| (100 + r % 37, r, r as usize, 0))
                .collect(),
        );
        // Records out of order within a root (counted, then sorted again).
        sorted((0..500u32).map(|r| (100 + r % 7, 500 - r, 0, 0)).collect());
        // Roots spread far apart (sorted directly).
        sorted(
            (0..500u32)
                .map(|r| (r.wrapping_mul(2_654_435_761), r, 0, 0))
                .collect(),
        );
        sorted(Vec::new());
    }

    #[test]
    fn numbered_ids_are_padded_to_eight_digits() {
        for n in [0, 1, 42, 99_999_999, 100_000_000, u64::MAX] {
            assert_eq!(numbered_id(n), format!("C{n:08}"));
        }
    }

    #[test]
    fn merge_policies() {
        let ms = vec![
            member(0, Some("2024-01-01T00:00:00Z"), None, ValueRef::Null),
            member(1, Some("2024-03-01T00:00:00Z"), None, text("b")),
            member(2, Some("2024-02-01T00:00:00Z"), None, text("c")),
            member(2, Some("2024-03-01T00:00:00Z"), None, text("c")),
        ];
        assert_eq!(merge_field(&ms, 0, MergePolicy::Priority), text("b"));
        // Two records share the newest time: the higher priority one wins.
        assert_eq!(merge_field(&ms, 0, MergePolicy::MostRecent), text("b"));
        assert_eq!(merge_field(&ms, 0, MergePolicy::MostFrequent), text("c"));
        let empty = vec![member(0, None, None, ValueRef::Null)];
        assert_eq!(
            merge_field(&empty, 0, MergePolicy::MostRecent),
            ValueRef::Null
        );
    }

    #[test]
    fn ids_are_kept_by_majority_and_never_given_twice() {
        let mut claimed = Claimed::default();
        let mut counter = 7;
        let a = vec![
            member(0, None, Some("C00000002"), ValueRef::Null),
            member(0, None, Some("C00000001"), ValueRef::Null),
            member(0, None, Some("C00000002"), ValueRef::Null),
        ];
        assert_eq!(choose_id(&a, &mut claimed, &mut counter), "C00000002");
        // A split-off part that also had C00000002 falls back to its other id.
        let b = vec![
            member(0, None, Some("C00000002"), ValueRef::Null),
            member(0, None, Some("C00000001"), ValueRef::Null),
        ];
        assert_eq!(choose_id(&b, &mut claimed, &mut counter), "C00000001");
        let c = vec![member(0, None, Some("C00000002"), ValueRef::Null)];
        assert_eq!(choose_id(&c, &mut claimed, &mut counter), "C00000008");
        let d = vec![member(0, None, None, ValueRef::Null)];
        assert_eq!(choose_id(&d, &mut claimed, &mut counter), "C00000009");
        // Ids not of the engine's form are tracked too.
        let e = vec![member(0, None, Some("legacy-7"), ValueRef::Null)];
        assert_eq!(choose_id(&e, &mut claimed, &mut counter), "legacy-7");
        assert_eq!(choose_id(&e, &mut claimed, &mut counter), "C00000010");
    }
}
