//! The key map: every match key of the last unification (an exact rule's
//! key hash, or the block hash of a rule that compares pairs) with the
//! customers whose records have it, and every customer's
//! [`member_hash`] with the `LinkId`s of its records, sorted by hash, in a
//! file next to the store. Incremental unification looks the keys of
//! changed rows up here to find the clusters they touch, and then their
//! records, without reading every row.
//!
//! The file starts with a token that the store holds too (set when the
//! unification that wrote it was published): a file from another run is
//! never trusted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::spill::{Frame, Frames, Partitions, Reader, Spill};

/// Entries per partition while building (sorted in memory, about 64 bytes
/// each with the id's allocation).
const ENTRIES_PER_PARTITION: u64 = 100_000;
/// What the header frame starts with.
const MAGIC: &str = "triggerfish key map 1";

/// The key map of the store at `store_path`.
pub fn path_for(store_path: &Path) -> PathBuf {
    let mut name = store_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".keys");
    store_path.with_file_name(name)
}

/// Where a new key map is written before its unification is published.
pub fn next_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// The hash under which customer `id`'s records are listed.
pub fn member_hash(id: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |seed: u8| {
        let mut h = std::hash::DefaultHasher::new();
        (seed, "members of", id).hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// What a patch of the previous key map leaves out: entries whose value is
/// one of `values` (recomputed customers) or whose hash is one of `hashes`
/// (their member lists).
pub struct Dropped<'a> {
    pub values: &'a HashSet<String>,
    pub hashes: &'a HashSet<u128>,
}

/// Collects (hash, value) entries, partitioned by hash range.
pub struct Builder {
    parts: Partitions,
    frame: Frame,
    entries: u64,
}

impl Builder {
    /// A builder for about `expected` entries, spilling in `dir`.
    pub fn new(dir: &Path, expected: u64) -> std::io::Result<Self> {
        let n = usize::try_from(expected.div_ceil(ENTRIES_PER_PARTITION)).unwrap_or(usize::MAX);
        Ok(Self {
            parts: Partitions::new(dir, n)?,
            frame: Frame::default(),
            entries: 0,
        })
    }

    /// Record `value` under `hash`: a customer id under a key its records
    /// have, or a `LinkId` under its customer's [`member_hash`].
    pub fn add(&mut self, hash: u128, value: &str) -> std::io::Result<()> {
        // The top bits pick the partition, so partitions are hash ranges.
        let n = self.parts.len() as u128;
        let part = (((hash >> 64) * n) >> 64) as usize;
        self.frame.clear();
        self.frame.u128(hash);
        self.frame.str(value);
        self.entries += 1;
        self.parts.write(part, &self.frame.0)
    }

    /// Write the key map to `out` with `token`: the entries added, and,
    /// when `previous` is given, that file's entries except those dropped (a
    /// patch of the previous map).
    pub fn finish(
        self,
        out: &Path,
        token: u64,
        previous: Option<(&Path, u64, Dropped<'_>)>,
    ) -> std::io::Result<()> {
        let mut file = Spill::create(out)?;
        let mut header = Frame::default();
        header.str(MAGIC);
        header.u128(u128::from(token));
        file.write(&header.0)?;
        let mut old = match previous {
            Some((path, token, dropped)) => Some((open(path, token)?, dropped)),
            None => None,
        };
        let mut pending: Option<(u128, String)> = None;
        let mut next_old = |pending: &mut Option<(u128, String)>| -> std::io::Result<()> {
            *pending = None;
            if let Some((frames, dropped)) = old.as_mut() {
                while let Some(b) = frames.next_frame()? {
                    let (h, id) = decode(b)?;
                    if !dropped.values.contains(id) && !dropped.hashes.contains(&h) {
                        *pending = Some((h, id.to_owned()));
                        break;
                    }
                }
            }
            Ok(())
        };
        next_old(&mut pending)?;
        let mut frame = Frame::default();
        let mut put = |h: u128, id: &str| {
            frame.clear();
            frame.u128(h);
            frame.str(id);
            file.write(&frame.0)
        };
        for part in self.parts.into_parts() {
            // Values in one buffer: (hash, start, end) per entry.
            let mut text = String::new();
            let mut entries: Vec<(u128, usize, usize)> = Vec::new();
            let mut frames = part.into_reader()?;
            while let Some(b) = frames.next_frame()? {
                let (h, id) = decode(b)?;
                let start = text.len();
                text.push_str(id);
                entries.push((h, start, text.len()));
            }
            let value = |&(_, a, b): &(u128, usize, usize)| &text[a..b];
            entries.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| value(x).cmp(value(y))));
            entries.dedup_by(|x, y| x.0 == y.0 && value(x) == value(y));
            for e in &entries {
                let (h, id) = (e.0, value(e));
                while let Some((oh, oid)) = pending
                    .as_ref()
                    .filter(|(oh, oid)| (*oh, oid.as_str()) < (h, id))
                {
                    put(*oh, oid)?;
                    next_old(&mut pending)?;
                }
                put(h, id)?;
            }
        }
        while let Some((oh, oid)) = pending.as_ref() {
            put(*oh, oid)?;
            next_old(&mut pending)?;
        }
        file.finish()
    }
}

fn decode(b: &[u8]) -> std::io::Result<(u128, &str)> {
    let mut r = Reader::new(b);
    Ok((r.u128()?, r.str()?))
}

/// The entries of the key map at `path`, after checking its token.
fn open(path: &Path, token: u64) -> std::io::Result<Frames> {
    let mut frames = Frames::open(path)?;
    let ok = match frames.next_frame()? {
        Some(b) => {
            let mut r = Reader::new(b);
            r.str()? == MAGIC && r.u128()? == u128::from(token)
        }
        None => false,
    };
    if !ok {
        return Err(std::io::Error::other(format!(
            "{} is not the key map of the last unification",
            path.display()
        )));
    }
    Ok(frames)
}

/// True when `path` is the key map with `token`.
pub fn valid(path: &Path, token: u64) -> bool {
    open(path, token).is_ok()
}

/// The entries under any of `hashes` in the key map at `path`, by hash.
pub fn lookup(
    path: &Path,
    token: u64,
    mut hashes: Vec<u128>,
) -> std::io::Result<Vec<(u128, String)>> {
    hashes.sort_unstable();
    hashes.dedup();
    let mut found = Vec::new();
    let mut frames = open(path, token)?;
    let mut want = hashes.into_iter().peekable();
    while want.peek().is_some() {
        let Some(b) = frames.next_frame()? else {
            break;
        };
        let (h, id) = decode(b)?;
        while want.next_if(|&w| w < h).is_some() {}
        if want.peek() == Some(&h) {
            found.push((h, id.to_owned()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_patches_and_looks_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keys");
        let mut b = Builder::new(dir.path(), 3 * ENTRIES_PER_PARTITION).unwrap();
        for (h, id) in [
            (u128::MAX, "C3"),
            (5, "C1"),
            (5, "C2"),
            (5, "C1"),
            (1 << 100, "C2"),
        ] {
            b.add(h, id).unwrap();
        }
        b.finish(&path, 7, None).unwrap();
        let ids = |hashes: &[u128], token| {
            let mut v: Vec<String> = lookup(&path, token, hashes.to_vec())
                .unwrap()
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&[5], 7), ["C1", "C2"]);
        assert_eq!(ids(&[1 << 100, u128::MAX, 9], 7), ["C2", "C3"]);
        assert!(lookup(&path, 8, vec![5]).is_err());
        // Patch: C2 is recomputed and now holds key 9 only.
        let next = next_path(&path);
        let mut b = Builder::new(dir.path(), 1).unwrap();
        b.add(9, "C2").unwrap();
        let values: HashSet<String> = ["C2".to_owned()].into();
        let hashes: HashSet<u128> = [u128::MAX].into();
        let dropped = Dropped {
            values: &values,
            hashes: &hashes,
        };
        b.finish(&next, 8, Some((&path, 7, dropped))).unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(ids(&[5], 8), ["C1"]);
        assert_eq!(ids(&[9, 1 << 100], 8), ["C2"]);
        assert!(ids(&[u128::MAX], 8).is_empty());
        assert!(valid(&path, 8) && !valid(&path, 7));
    }
}
