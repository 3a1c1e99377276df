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
//! The file starts with a token that the store holds too (set when the
//! unification that wrote it was published): a file from another run is
//! never trusted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::spill::{Frame, Frames, Partitions, Reader, Spill};

/// Entries per partition while building (sorted in memory, about 40 bytes
/// each).
const ENTRIES_PER_PARTITION: u64 = 250_000;
/// What the header frame starts with.
/// (3: key hashes are `unify::KeyHasher`'s, stable across builds; 2 used std's
/// `DefaultHasher`, whose algorithm Rust does not promise to keep.)
const MAGIC: &str = "triggerfish key map 3";

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

/// A customer id as stored: a tag, then the engine id's number or the text.
fn encode(id: &str, out: &mut Vec<u8>) {
    let number = id
        .strip_prefix('C')
        // As `format!("C{n:08}")` writes it: 8 digits, or more without a
        // leading zero.
        .filter(|d| d.len() == 8 || (d.len() > 8 && !d.starts_with('0')))
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok());
    match number {
        Some(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        None => {
            out.push(1);
            out.extend_from_slice(id.as_bytes());
        }
    }
}

fn decode_id(b: &[u8]) -> std::io::Result<String> {
    let corrupt = || std::io::Error::other("corrupt key map entry");
    match b.split_first() {
        Some((0, n)) => {
            let n: [u8; 8] = n.try_into().map_err(|_| corrupt())?;
            Ok(format!("C{:08}", u64::from_le_bytes(n)))
        }
        Some((1, text)) => String::from_utf8(text.to_vec()).map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

/// An entry's hash and encoded id.
fn split(b: &[u8]) -> std::io::Result<(u64, &[u8])> {
    if b.len() < 9 {
        return Err(std::io::Error::other("corrupt key map entry"));
    }
    let (h, id) = b.split_at(8);
    let h: [u8; 8] = h
        .try_into()
        .map_err(|_| std::io::Error::other("corrupt key map entry"))?;
    Ok((u64::from_le_bytes(h), id))
}

/// The order of two entries: by hash, then by encoded id.
fn ordered(a: &[u8], b: &[u8]) -> std::io::Result<std::cmp::Ordering> {
    let ((ha, ia), (hb, ib)) = (split(a)?, split(b)?);
    Ok(ha.cmp(&hb).then_with(|| ia.cmp(ib)))
}

/// Collects (hash, customer) entries, partitioned by hash range.
pub struct Builder {
    parts: Partitions,
    frame: Frame,
}

impl Builder {
    /// A builder for about `expected` entries, spilling in `dir`.
    pub fn new(dir: &Path, expected: u64) -> std::io::Result<Self> {
        let n = usize::try_from(expected.div_ceil(ENTRIES_PER_PARTITION)).unwrap_or(usize::MAX);
        Ok(Self {
            parts: Partitions::new(dir, n)?,
            frame: Frame::default(),
        })
    }

    /// Record that customer `id` has a record with key `hash`.
    pub fn add(&mut self, hash: u64, id: &str) -> std::io::Result<()> {
        // The top bits pick the partition, so partitions are hash ranges.
        let n = self.parts.len() as u128;
        let part = ((u128::from(hash) * n) >> 64) as usize;
        self.frame.clear();
        self.frame.0.extend_from_slice(&hash.to_le_bytes());
        encode(id, &mut self.frame.0);
        self.parts.write(part, &self.frame.0)
    }

    /// Write the key map to `out` with `token`: the entries added, and,
    /// when `previous` is given, that file's entries except those of the
    /// customers listed (a patch of the previous map).
    pub fn finish(
        self,
        out: &Path,
        token: u64,
        previous: Option<(&Path, u64, &HashSet<String>)>,
    ) -> std::io::Result<()> {
        let mut file = Spill::create(out)?;
        let mut header = Frame::default();
        header.str(MAGIC);
        header.u128(u128::from(token));
        file.write(&header.0)?;
        let mut old = match previous {
            Some((path, token, dropped)) => {
                let dropped: HashSet<Vec<u8>> = dropped
                    .iter()
                    .map(|id| {
                        let mut v = Vec::new();
                        encode(id, &mut v);
                        v
                    })
                    .collect();
                Some((open(path, token)?, dropped))
            }
            None => None,
        };
        // The previous map's next entry kept, as a whole frame.
        let mut pending: Option<Vec<u8>> = None;
        let mut next_old = |pending: &mut Option<Vec<u8>>| -> std::io::Result<()> {
            *pending = None;
            if let Some((frames, dropped)) = old.as_mut() {
                while let Some(b) = frames.next_frame()? {
                    let (_, id) = split(b)?;
                    if !dropped.contains(id) {
                        *pending = Some(b.to_vec());
                        break;
                    }
                }
            }
            Ok(())
        };
        next_old(&mut pending)?;
        for part in self.parts.into_parts() {
            // Frames in one buffer: (hash, start, end) per entry.
            let mut buf: Vec<u8> = Vec::new();
            let mut entries: Vec<(u64, usize, usize)> = Vec::new();
            let mut frames = part.into_reader()?;
            while let Some(b) = frames.next_frame()? {
                let (h, _) = split(b)?;
                let start = buf.len();
                buf.extend_from_slice(b);
                entries.push((h, start, buf.len()));
            }
            let bytes = |&(_, a, b): &(u64, usize, usize)| &buf[a..b];
            entries.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| bytes(x).cmp(bytes(y))));
            entries.dedup_by(|x, y| bytes(x) == bytes(y));
            for e in &entries {
                let frame = bytes(e);
                while let Some(p) = pending.as_ref() {
                    if ordered(p, frame)? != std::cmp::Ordering::Less {
                        break;
                    }
                    file.write(p)?;
                    next_old(&mut pending)?;
                }
                file.write(frame)?;
            }
        }
        while let Some(p) = pending.as_ref() {
            file.write(p)?;
            next_old(&mut pending)?;
        }
        file.finish()
    }
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

/// The customers having any of `hashes`, from the key map at `path`.
pub fn lookup(path: &Path, token: u64, mut hashes: Vec<u64>) -> std::io::Result<HashSet<String>> {
    hashes.sort_unstable();
    hashes.dedup();
    let mut found = HashSet::new();
    let mut frames = open(path, token)?;
    let mut want = hashes.into_iter().peekable();
    while want.peek().is_some() {
        let Some(b) = frames.next_frame()? else {
            break;
        };
        let (h, id) = split(b)?;
        while want.next_if(|&w| w < h).is_some() {}
        if want.peek() == Some(&h) {
            found.insert(decode_id(id)?);
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
        b.finish(&path, 7, None).unwrap();
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
        // Patch: legacy-2 is recomputed and now holds key 9 only.
        let next = next_path(&path);
        let mut b = Builder::new(dir.path(), 1).unwrap();
        b.add(9, "legacy-2").unwrap();
        let dropped: HashSet<String> = ["legacy-2".to_owned()].into();
        b.finish(&next, 8, Some((&path, 7, &dropped))).unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(ids(&[5], 8), ["C00000001"]);
        assert_eq!(ids(&[9, 1 << 60], 8), ["legacy-2"]);
        assert_eq!(ids(&[u64::MAX], 8), ["C00000003"]);
        assert!(valid(&path, 8) && !valid(&path, 7));
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
