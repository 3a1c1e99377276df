//! The key map: every match key of the last unification (an exact rule's
//! key hash, or the block hash of a rule that compares pairs) with the
//! customers whose records have it, sorted by hash, in a file next to the
//! store. Incremental unification looks the keys of changed rows up here to
//! find the clusters they touch, without reading every row.
//!
//! Hashes are 64 bits: a collision only adds a cluster to those unified
//! again, which changes nothing in the result. Engine ids (`C` and eight or
//! more digits) are kept as numbers, so an entry takes about 17 bytes.
//!
//! The link map is written the same way beside it: each customer's links
//! (source and key) under a hash of the customer's id, so that the records
//! of the touched clusters are found without scanning every link.
//!
//! The file starts with a token that the store holds too (set when the
//! unification that wrote it was published): a file from another run is
//! never trusted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::spill::{Frame, Frames, Partitions, Spill};

mod installed;

use installed::Installed;

/// Entries per partition while building (sorted in memory, about 40 bytes
/// each).
const ENTRIES_PER_PARTITION: u64 = 250_000;

/// Which map a file holds; each starts with its own header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    /// Match keys: (key hash, customer).
    Keys,
    /// Each customer's links: ([`customer_hash`], customer, the link's
    /// source index and key).
    Links,
}

impl Map {
    /// What the header frame starts with.
    /// (4: entries may carry a payload after the id, a text id has its
    /// length; 3: key hashes are `unify::KeyHasher`'s, stable across
    /// builds; 2 used std's `DefaultHasher`, whose algorithm Rust does not
    /// promise to keep.)
    fn magic(self) -> &'static str {
        match self {
            Map::Keys => "triggerfish key map 4",
            Map::Links => "triggerfish link map 1",
        }
    }

    /// The file of this map beside the store at `store_path`.
    pub fn path_for(self, store_path: &Path) -> PathBuf {
        let mut name = store_path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "store".into());
        name.push(match self {
            Map::Keys => ".keys",
            Map::Links => ".links",
        });
        store_path.with_file_name(name)
    }
}

/// The key map of the store at `store_path`.
pub fn path_for(store_path: &Path) -> PathBuf {
    Map::Keys.path_for(store_path)
}

/// Where a customer's links are in the link map: a hash of its id.
pub fn customer_hash(id: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x006c_696e_6b6d_6170, 0x6375_7374);
    h.write(id.as_bytes());
    h.finish()
}

/// Where a new key map is written before its unification is published.
fn next_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// A customer id as stored: a tag, then the engine id's number, or the
/// text's length (u32) and the text.
fn encode(id: &str, out: &mut Vec<u8>) {
    let number = id
        .strip_prefix('C')
        // As `format!("C{n:08}")` writes it: 8 digits, or more without a
        // leading zero.
        .filter(|d| d.len() == 8 || (d.len() > 8 && !d.starts_with('0')))
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok());
    match (number, u32::try_from(id.len())) {
        (Some(n), _) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        (None, Ok(len)) => {
            out.push(1);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(id.as_bytes());
        }
        // Ids come from the store's text values, far below 4 GiB.
        (None, Err(_)) => out.push(2),
    }
}

/// Customer ids as entries hold them.
fn encoded(ids: &HashSet<String>) -> HashSet<Vec<u8>> {
    ids.iter()
        .map(|id| {
            let mut v = Vec::new();
            encode(id, &mut v);
            v
        })
        .collect()
}

fn corrupt() -> std::io::Error {
    std::io::Error::other("corrupt key map entry")
}

fn decode_id(b: &[u8]) -> std::io::Result<String> {
    match b.split_first() {
        Some((0, n)) => {
            let n: [u8; 8] = n.try_into().map_err(|_| corrupt())?;
            Ok(format!("C{:08}", u64::from_le_bytes(n)))
        }
        Some((1, text)) => {
            String::from_utf8(text.get(4..).ok_or_else(corrupt)?.to_vec()).map_err(|_| corrupt())
        }
        _ => Err(corrupt()),
    }
}

/// An entry's hash, encoded id and payload.
fn split(b: &[u8]) -> std::io::Result<(u64, &[u8], &[u8])> {
    let (h, rest) = b.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let id_len = match rest.first() {
        Some(0) => 9,
        Some(1) => {
            let len = rest.get(1..5).ok_or_else(corrupt)?;
            let len: [u8; 4] = len.try_into().map_err(|_| corrupt())?;
            5 + usize::try_from(u32::from_le_bytes(len)).map_err(|_| corrupt())?
        }
        _ => return Err(corrupt()),
    };
    if rest.len() < id_len {
        return Err(corrupt());
    }
    let (id, payload) = rest.split_at(id_len);
    Ok((u64::from_le_bytes(*h), id, payload))
}

/// The order of two entries: by hash, then by encoded id and payload.
fn ordered(a: &[u8], b: &[u8]) -> std::io::Result<std::cmp::Ordering> {
    let ((ha, _, _), (hb, _, _)) = (split(a)?, split(b)?);
    Ok(ha.cmp(&hb).then_with(|| a[8..].cmp(&b[8..])))
}

/// A delta is folded into a new whole map once it would be more than this
/// share of the whole map's bytes (1/8): a lookup reads both.
const DELTA_SHARE: u64 = 8;
/// A delta is folded into a new whole map once it would drop more customers
/// than this: a lookup holds their ids in memory.
pub const MAX_DELTA_DROPPED: usize = 250_000;

/// Collects (hash, customer) entries, partitioned by hash range.
pub struct Builder {
    map: Map,
    parts: Partitions,
    frame: Frame,
    /// Bytes of the entries added, as a file holds them.
    bytes: u64,
}

/// A key map written by [`Builder::finish`], to install once its
/// unification is published.
#[derive(Debug)]
pub struct Written {
    from: PathBuf,
    to: PathBuf,
    /// A delta made void by a new whole map.
    stale: Option<PathBuf>,
}

impl Written {
    /// Put the new file in place (and remove a delta it makes void).
    pub fn install(&self) -> std::io::Result<()> {
        std::fs::rename(&self.from, &self.to)?;
        if let Some(stale) = &self.stale {
            // A delta left behind names another token: it is ignored.
            let _ = std::fs::remove_file(stale);
        }
        Ok(())
    }

    /// The file installed.
    pub fn target(&self) -> &Path {
        &self.to
    }

    /// True when the whole map was written, not a delta.
    pub fn is_whole(&self) -> bool {
        self.stale.is_some()
    }
}

impl Builder {
    /// A builder of `map` for about `expected` entries, spilling in `dir`.
    pub fn new(map: Map, dir: &Path, expected: u64) -> std::io::Result<Self> {
        let n = usize::try_from(expected.div_ceil(ENTRIES_PER_PARTITION)).unwrap_or(usize::MAX);
        Ok(Self {
            map,
            parts: Partitions::new(dir, n)?,
            frame: Frame::default(),
            bytes: 0,
        })
    }

    /// Record that customer `id` has a record with key `hash`.
    pub fn add(&mut self, hash: u64, id: &str) -> std::io::Result<()> {
        self.add_with(hash, id, &[])
    }

    /// Record an entry of customer `id` under `hash`, carrying `payload`.
    pub fn add_with(&mut self, hash: u64, id: &str, payload: &[u8]) -> std::io::Result<()> {
        // The top bits pick the partition, so partitions are hash ranges.
        let n = self.parts.len() as u128;
        let part = ((u128::from(hash) * n) >> 64) as usize;
        self.frame.clear();
        self.frame.0.extend_from_slice(&hash.to_le_bytes());
        encode(id, &mut self.frame.0);
        self.frame.0.extend_from_slice(payload);
        self.bytes += 4 + self.frame.0.len() as u64;
        self.parts.write(part, &self.frame.0)
    }

    /// Write the key map of the store at `path` with `token`, beside the
    /// installed one, to install with [`Written::install`]: the entries
    /// added, and, when `previous` names the installed map's token and the
    /// customers replaced, its entries but theirs. That is a delta when it
    /// stays small beside the whole map, else a new whole map.
    pub fn finish(
        self,
        path: &Path,
        token: u64,
        previous: Option<(u64, &HashSet<String>)>,
    ) -> std::io::Result<Written> {
        let whole = |file: &Path| Written {
            from: next_path(file),
            to: file.to_owned(),
            stale: Some(installed::delta_path(file)),
        };
        let Some((previous, replaced)) = previous else {
            let out = whole(path);
            self.write_whole(&out.from, token, Kept::new(Vec::new())?)?;
            return Ok(out);
        };
        let replaced = encoded(replaced);
        let map = Installed::open(path, previous, self.map.magic())?;
        let (mut dropped, delta_bytes, delta) = match map.delta {
            Some(d) => (d.dropped, d.bytes, Some(d.entries)),
            None => (HashSet::new(), 0, None),
        };
        dropped.extend(replaced.iter().cloned());
        let next_bytes = delta_bytes + self.bytes + 16 * replaced.len() as u64;
        let small = dropped.len() <= MAX_DELTA_DROPPED
            && next_bytes.saturating_mul(DELTA_SHARE) <= map.base_bytes;
        if !small {
            let out = whole(path);
            let mut sources = vec![(map.base, vec![&dropped])];
            sources.extend(delta.map(|d| (d, vec![&replaced])));
            self.write_whole(&out.from, token, Kept::new(sources)?)?;
            return Ok(out);
        }
        let target = installed::delta_path(path);
        let out = Written {
            from: next_path(&target),
            to: target,
            stale: None,
        };
        let header = installed::Header {
            magic: self.map.magic().to_owned(),
            token,
            base_token: map.base_token,
            dropped: u32::try_from(dropped.len()).unwrap_or(u32::MAX),
        };
        let mut file = header.create(&out.from)?;
        let mut ids: Vec<&Vec<u8>> = dropped.iter().collect();
        ids.sort_unstable();
        for id in ids {
            file.write(id)?;
        }
        let kept = Kept::new(delta.map(|d| (d, vec![&replaced])).into_iter().collect())?;
        self.merge_into(&mut file, kept)?;
        file.finish()?;
        Ok(out)
    }

    /// A whole map at `out`: its header, then the entries.
    fn write_whole(self, out: &Path, token: u64, kept: Kept<'_>) -> std::io::Result<()> {
        let mut file = Spill::create(out)?;
        let mut header = Frame::default();
        header.str(self.map.magic());
        header.u128(u128::from(token));
        file.write(&header.0)?;
        self.merge_into(&mut file, kept)?;
        file.finish()
    }

    /// The entries added, sorted, merged with those `kept`.
    fn merge_into(self, file: &mut Spill, mut kept: Kept<'_>) -> std::io::Result<()> {
        for part in self.parts.into_parts() {
            // Frames in one buffer: (hash, start, end) per entry.
            let mut buf: Vec<u8> = Vec::new();
            let mut entries: Vec<(u64, usize, usize)> = Vec::new();
            let mut frames = part.into_reader()?;
            while let Some(b) = frames.next_frame()? {
                let (h, _, _) = split(b)?;
                let start = buf.len();
                buf.extend_from_slice(b);
                entries.push((h, start, buf.len()));
            }
            let bytes = |&(_, a, b): &(u64, usize, usize)| &buf[a..b];
            entries.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| bytes(x).cmp(bytes(y))));
            entries.dedup_by(|x, y| bytes(x) == bytes(y));
            for e in &entries {
                let frame = bytes(e);
                while let Some(p) = kept.smallest() {
                    if ordered(p, frame)? != std::cmp::Ordering::Less {
                        break;
                    }
                    file.write(p)?;
                    kept.advance()?;
                }
                file.write(frame)?;
            }
        }
        while let Some(p) = kept.smallest() {
            file.write(p)?;
            kept.advance()?;
        }
        Ok(())
    }
}

/// Entries kept from an installed map, in order: from each of its files,
/// those whose customer none of that file's sets drops.
struct Kept<'s> {
    sources: Vec<Source<'s>>,
    /// Which source holds the smallest head, found once per move.
    first: Option<usize>,
}

struct Source<'s> {
    frames: Frames,
    skip: Vec<&'s HashSet<Vec<u8>>>,
    head: Option<Vec<u8>>,
}

impl<'s> Kept<'s> {
    fn new(files: Vec<(Frames, Vec<&'s HashSet<Vec<u8>>>)>) -> std::io::Result<Self> {
        let mut sources = Vec::with_capacity(files.len());
        for (mut frames, skip) in files {
            let head = installed::next_kept(&mut frames, &skip)?;
            sources.push(Source { frames, skip, head });
        }
        let first = first(&sources)?;
        Ok(Self { sources, first })
    }

    /// The next entry kept.
    fn smallest(&self) -> Option<&[u8]> {
        self.first.and_then(|i| self.sources[i].head.as_deref())
    }

    /// Move past the next entry kept.
    fn advance(&mut self) -> std::io::Result<()> {
        if let Some(i) = self.first {
            let s = &mut self.sources[i];
            s.head = installed::next_kept(&mut s.frames, &s.skip)?;
            self.first = first(&self.sources)?;
        }
        Ok(())
    }
}

/// Which of `sources` holds the smallest head.
fn first(sources: &[Source<'_>]) -> std::io::Result<Option<usize>> {
    let mut best: Option<(usize, &[u8])> = None;
    for (i, s) in sources.iter().enumerate() {
        let Some(h) = s.head.as_deref() else { continue };
        best = match best {
            Some((_, b)) if ordered(b, h)? != std::cmp::Ordering::Greater => best,
            _ => Some((i, h)),
        };
    }
    Ok(best.map(|(i, _)| i))
}

/// True when `path` (with its delta, if any) is the key map with `token`.
pub fn valid(path: &Path, token: u64) -> bool {
    Installed::open(path, token, Map::Keys.magic()).is_ok()
}

/// The customers having any of `hashes`, from the key map at `path`.
pub fn lookup(path: &Path, token: u64, mut hashes: Vec<u64>) -> std::io::Result<HashSet<String>> {
    hashes.sort_unstable();
    hashes.dedup();
    let mut found = HashSet::new();
    find(path, token, Map::Keys, &hashes, |id, _| {
        found.insert(decode_id(id)?);
        Ok(())
    })?;
    Ok(found)
}

/// A customer of the link map and one entry's payload.
pub type LinkEntry = (String, Vec<u8>);

/// The payloads of the entries of `customers` in the link map at `path`,
/// with their customer; `None` once there are more than `limit`.
pub fn links_of(
    path: &Path,
    token: u64,
    customers: &HashSet<String>,
    limit: usize,
) -> std::io::Result<Option<Vec<LinkEntry>>> {
    let mut hashes: Vec<u64> = customers.iter().map(|c| customer_hash(c)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let wanted = encoded(customers);
    let mut found = Vec::new();
    let mut over = false;
    find(path, token, Map::Links, &hashes, |id, payload| {
        // Another customer's entry under the same hash is not one of these.
        if wanted.contains(id) {
            over |= found.len() >= limit;
            if !over {
                found.push((decode_id(id)?, payload.to_vec()));
            }
        }
        Ok(())
    })?;
    Ok((!over).then_some(found))
}

/// Call `f` with each entry of the map at `path` (its whole file but the
/// customers its delta drops, then its delta) whose hash is in `hashes`
/// (sorted).
fn find(
    path: &Path,
    token: u64,
    map: Map,
    hashes: &[u64],
    mut f: impl FnMut(&[u8], &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let installed = Installed::open(path, token, map.magic())?;
    let (dropped, delta) = match installed.delta {
        Some(d) => (d.dropped, Some(d.entries)),
        None => (HashSet::new(), None),
    };
    let none = HashSet::new();
    for (mut frames, skip) in [(Some(installed.base), &dropped), (delta, &none)]
        .into_iter()
        .filter_map(|(f, s)| f.map(|f| (f, s)))
    {
        let mut want = hashes.iter().copied().peekable();
        while want.peek().is_some() {
            let Some(b) = frames.next_frame()? else {
                break;
            };
            let (h, id, payload) = split(b)?;
            while want.next_if(|&w| w < h).is_some() {}
            if want.peek() == Some(&h) && !skip.contains(id) {
                f(id, payload)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn builds_patches_and_looks_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keys");
        let mut b = Builder::new(Map::Keys, dir.path(), 3 * ENTRIES_PER_PARTITION).unwrap();
        let entries = [
            (u64::MAX, "C00000003"),
            (5, "C00000001"),
            (5, "legacy-2"),
            (5, "C00000001"),
            (1 << 60, "legacy-2"),
        ];
        for (h, id) in entries {
            b.add(h, id).unwrap();
        }
        b.finish(&path, 7, None).unwrap().install().unwrap();
        let ids = |hashes: &[u64], token| {
            let mut v: Vec<String> = lookup(&path, token, hashes.to_vec())
                .unwrap()
                .into_iter()
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&[5], 7), ["C00000001", "legacy-2"]);
        assert_eq!(ids(&[1 << 60, u64::MAX, 9], 7), ["C00000003", "legacy-2"]);
        assert!(lookup(&path, 8, vec![5]).is_err());
        // Patch: legacy-2 is recomputed and now holds key 9 only. Beside a
        // map this small, the patch is a whole map.
        let mut b = Builder::new(Map::Keys, dir.path(), 1).unwrap();
        b.add(9, "legacy-2").unwrap();
        let dropped: HashSet<String> = ["legacy-2".to_owned()].into();
        let written = b.finish(&path, 8, Some((7, &dropped))).unwrap();
        assert!(written.is_whole());
        // Not installed yet: the map is still the one with token 7.
        assert!(valid(&path, 7) && !valid(&path, 8));
        written.install().unwrap();
        assert_eq!(ids(&[5], 8), ["C00000001"]);
        assert_eq!(ids(&[9, 1 << 60], 8), ["legacy-2"]);
        assert_eq!(ids(&[u64::MAX], 8), ["C00000003"]);
        assert!(valid(&path, 8) && !valid(&path, 7));
    }

    /// Every (hash, customer) of the installed map with `token`.
    fn entries(path: &Path, token: u64) -> BTreeSet<(u64, String)> {
        let map = Installed::open(path, token, Map::Keys.magic()).unwrap();
        let mut out = BTreeSet::new();
        let (dropped, delta) = match map.delta {
            Some(d) => (d.dropped, Some(d.entries)),
            None => (HashSet::new(), None),
        };
        let mut read = |mut frames: Frames, skip: &HashSet<Vec<u8>>| {
            while let Some(b) = frames.next_frame().unwrap() {
                let (h, id, _) = split(b).unwrap();
                if !skip.contains(id) {
                    assert!(out.insert((h, decode_id(id).unwrap())), "twice: {h}");
                }
            }
        };
        read(map.base, &dropped);
        if let Some(d) = delta {
            read(d, &HashSet::new());
        }
        out
    }

    #[test]
    fn small_patches_are_deltas_until_they_are_folded_into_a_whole_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keys");
        let id = |n: u64| format!("C{n:08}");
        // A model of the map: 3,000 customers with three keys each.
        let mut model: BTreeSet<(u64, String)> = BTreeSet::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut b = Builder::new(Map::Keys, dir.path(), 9_000).unwrap();
        for c in 0..3_000 {
            for _ in 0..3 {
                let h = next();
                b.add(h, &id(c)).unwrap();
                model.insert((h, id(c)));
            }
        }
        let written = b.finish(&path, 1, None).unwrap();
        assert!(written.is_whole());
        written.install().unwrap();
        assert_eq!(entries(&path, 1), model);
        let whole_len = std::fs::metadata(&path).unwrap().len();
        // Rounds of 40 customers replaced (some again, some new), each
        // with two keys, one shared with a customer kept.
        let (mut deltas, mut wholes, mut fresh, mut base) = (0, 0, 3_000u64, 1);
        for round in 2..40u64 {
            let mut replaced = HashSet::new();
            let mut b = Builder::new(Map::Keys, dir.path(), 80).unwrap();
            let mut added = Vec::new();
            for i in 0..40 {
                let c = match i % 4 {
                    0 => {
                        fresh += 1;
                        fresh
                    }
                    _ => next() % 3_000,
                };
                replaced.insert(id(c));
                let shared = model.iter().nth((next() % 100) as usize).unwrap().0;
                for h in [next(), shared] {
                    b.add(h, &id(c)).unwrap();
                    added.push((h, id(c)));
                }
            }
            model.retain(|(_, c)| !replaced.contains(c));
            model.extend(added);
            let written = b
                .finish(&path, round, Some((round - 1, &replaced)))
                .unwrap();
            match written.is_whole() {
                true => wholes += 1,
                false => deltas += 1,
            }
            written.install().unwrap();
            assert_eq!(entries(&path, round), model, "round {round}");
            assert!(valid(&path, round));
            // A whole map voids the delta; a delta voids the one before.
            assert_eq!(installed::delta_path(&path).exists(), !written.is_whole());
            // The token before is still valid only for the whole map a
            // delta patches.
            assert_eq!(
                valid(&path, round - 1),
                !written.is_whole() && round - 1 == base
            );
            if written.is_whole() {
                base = round;
            }
        }
        // A delta grows each round until it is folded, and folded again.
        assert!(
            deltas > 20 && wholes >= 2,
            "{deltas} deltas, {wholes} whole maps"
        );
        assert!(std::fs::metadata(&path).unwrap().len() > whole_len / 2);
    }

    #[test]
    fn a_delta_over_another_map_or_of_another_run_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keys");
        let build = |token, previous: Option<(u64, &HashSet<String>)>, n: u64| {
            let mut b = Builder::new(Map::Keys, dir.path(), n).unwrap();
            for h in 0..n {
                b.add(h * 7919, &format!("C{:08}", h % 500)).unwrap();
            }
            b.finish(&path, token, previous).unwrap()
        };
        build(1, None, 5_000).install().unwrap();
        let replaced: HashSet<String> = ["C00000003".to_owned()].into();
        let delta = build(2, Some((1, &replaced)), 1);
        assert!(!delta.is_whole());
        delta.install().unwrap();
        assert!(valid(&path, 2));
        // A delta of another run than the store names is ignored: the whole
        // map alone is checked.
        assert!(valid(&path, 1) && !valid(&path, 3));
        // The whole map it patches replaced by another one: not trusted.
        let kept = std::fs::read(installed::delta_path(&path)).unwrap();
        build(9, None, 5_000).install().unwrap();
        std::fs::write(installed::delta_path(&path), kept).unwrap();
        assert!(!valid(&path, 2));
        let err = lookup(&path, 2, vec![7919]).unwrap_err();
        assert!(err
            .to_string()
            .ends_with("is not the key map of the last unification"));
        assert!(valid(&path, 9));
    }

    #[test]
    fn the_link_map_gives_each_customers_payloads_and_no_one_elses() {
        let dir = tempfile::tempdir().unwrap();
        let path = Map::Links.path_for(&dir.path().join("s"));
        let mut b = Builder::new(Map::Links, dir.path(), 10).unwrap();
        // "legacy-2" shares C00000001's hash: its entries must not come back
        // for C00000001.
        let h = customer_hash("C00000001");
        b.add_with(h, "C00000001", b"\x00\x00k1").unwrap();
        b.add_with(h, "C00000001", b"\x01\x00k2").unwrap();
        b.add_with(h, "legacy-2", b"\x00\x00k3").unwrap();
        b.add_with(customer_hash("C00000002"), "C00000002", b"")
            .unwrap();
        b.finish(&path, 5, None).unwrap().install().unwrap();
        let of = |ids: &[&str], limit| {
            let ids: HashSet<String> = ids.iter().map(|s| s.to_string()).collect();
            links_of(&path, 5, &ids, limit).unwrap().map(|mut v| {
                v.sort();
                v
            })
        };
        assert_eq!(
            of(&["C00000001"], 10),
            Some(vec![
                ("C00000001".to_owned(), b"\x00\x00k1".to_vec()),
                ("C00000001".to_owned(), b"\x01\x00k2".to_vec()),
            ])
        );
        assert_eq!(
            of(&["C00000002", "nobody"], 10),
            Some(vec![("C00000002".to_owned(), Vec::new())])
        );
        // More entries than the limit: no answer.
        assert_eq!(of(&["C00000001"], 1), None);
        // A key map is not a link map, and the other way round.
        assert!(links_of(&path, 5, &HashSet::new(), 1).is_ok());
        assert!(!valid(&path, 5));
        // A patch drops the customer's entries and adds its new ones.
        let mut b = Builder::new(Map::Links, dir.path(), 1).unwrap();
        b.add_with(h, "C00000001", b"\x00\x00k9").unwrap();
        let replaced: HashSet<String> = ["C00000001".to_owned()].into();
        b.finish(&path, 6, Some((5, &replaced)))
            .unwrap()
            .install()
            .unwrap();
        let ids: HashSet<String> = ["C00000001".to_owned(), "legacy-2".to_owned()].into();
        let mut v = links_of(&path, 6, &ids, 10).unwrap().unwrap();
        v.sort();
        assert_eq!(
            v,
            [
                ("C00000001".to_owned(), b"\x00\x00k9".to_vec()),
                ("legacy-2".to_owned(), b"\x00\x00k3".to_vec()),
            ]
        );
    }

    #[test]
    fn a_key_map_of_another_version_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.keys");
        let mut file = Spill::create(&path).unwrap();
        let mut header = Frame::default();
        header.str("triggerfish key map 2");
        header.u128(7);
        file.write(&header.0).unwrap();
        file.finish().unwrap();
        assert!(!valid(&path, 7));
        let err = lookup(&path, 7, vec![1]).unwrap_err();
        assert!(err
            .to_string()
            .ends_with("is not the key map of the last unification"));
    }

    #[test]
    fn only_canonical_engine_ids_are_kept_as_numbers() {
        for id in [
            "C00000001",
            "C123456789",
            "C000000001",
            "C18446744073709551616",
            "C1",
            "C0000000x",
            "c00000001",
            "",
        ] {
            let mut v = Vec::new();
            encode(id, &mut v);
            assert_eq!(decode_id(&v).unwrap(), id);
        }
    }
}
