//! A key map as installed: the file written by the last whole unification
//! and, after incremental ones, a delta beside it (the customers whose
//! entries of that file no longer count, and their entries since), so that
//! an incremental run writes what it changed rather than every entry.
//!
//! A delta's header names its own token and the token of the file it
//! patches: a delta from another run is ignored, and a file that is not the
//! one it patches makes the pair untrusted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::super::spill::{Frame, Frames, Reader, Spill};
use super::split;

/// What a delta's header frame starts with.
pub(super) const DELTA_MAGIC: &str = "triggerfish key map delta 1";

/// The delta beside the key map at `path`.
pub(super) fn delta_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".delta");
    PathBuf::from(p)
}

/// Entries of an installed key map, read in order.
pub(super) struct Installed {
    /// The whole map's entries, after its header.
    pub base: Frames,
    pub base_token: u64,
    /// The whole map's size in bytes.
    pub base_bytes: u64,
    pub delta: Option<Delta>,
}

/// A delta over the whole map, positioned at its first entry.
pub(super) struct Delta {
    /// Customers (encoded ids) whose entries in the whole map are void.
    pub dropped: HashSet<Vec<u8>>,
    pub entries: Frames,
    /// The delta's size in bytes.
    pub bytes: u64,
}

impl Installed {
    /// The key map at `path` whose token is `token`: a delta with that token
    /// over the whole map it names, or the whole map alone.
    pub fn open(path: &Path, token: u64, magic: &str) -> std::io::Result<Self> {
        let delta_file = delta_path(path);
        // A delta of another run, or one that cannot be read, is not this
        // map's; the whole map alone may still be.
        if let Ok(Some((header, frames))) = read_delta(&delta_file) {
            if header.token == token && header.magic == magic {
                let mut delta = frames;
                let dropped = read_dropped(&mut delta, header.dropped)?;
                let (base, base_bytes) = open_whole(path, header.base_token, magic)?;
                return Ok(Self {
                    base,
                    base_token: header.base_token,
                    base_bytes,
                    delta: Some(Delta {
                        dropped,
                        entries: delta,
                        bytes: file_len(&delta_file),
                    }),
                });
            }
        }
        let (base, base_bytes) = open_whole(path, token, magic)?;
        Ok(Self {
            base,
            base_token: token,
            base_bytes,
            delta: None,
        })
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The entries of the whole key map at `path`, after checking its token,
/// and its size.
pub(super) fn open_whole(path: &Path, token: u64, magic: &str) -> std::io::Result<(Frames, u64)> {
    let mut frames = Frames::open(path)?;
    let ok = match frames.next_frame()? {
        Some(b) => {
            let mut r = Reader::new(b);
            r.str()? == magic && r.u128()? == u128::from(token)
        }
        None => false,
    };
    if !ok {
        return Err(std::io::Error::other(format!(
            "{} is not the key map of the last unification",
            path.display()
        )));
    }
    Ok((frames, file_len(path)))
}

/// A delta's header.
pub(super) struct Header {
    /// The magic of the map's whole file.
    pub magic: String,
    pub token: u64,
    pub base_token: u64,
    /// How many dropped customers follow the header.
    pub dropped: u32,
}

impl Header {
    /// Start a delta file at `path` with this header.
    pub fn create(&self, path: &Path) -> std::io::Result<Spill> {
        let mut file = Spill::create(path)?;
        let mut frame = Frame::default();
        frame.str(DELTA_MAGIC);
        frame.str(&self.magic);
        frame.u128(u128::from(self.token));
        frame.u128(u128::from(self.base_token));
        frame.u32(self.dropped);
        file.write(&frame.0)?;
        Ok(file)
    }
}

/// The delta at `path` positioned after its header, or `None` when there
/// is none.
fn read_delta(path: &Path) -> std::io::Result<Option<(Header, Frames)>> {
    let mut frames = match Frames::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let corrupt = || std::io::Error::other(format!("{} is not a key map delta", path.display()));
    let b = frames.next_frame()?.ok_or_else(corrupt)?;
    let mut r = Reader::new(b);
    if r.str()? != DELTA_MAGIC {
        return Err(corrupt());
    }
    let magic = r.str()?.to_owned();
    let token = u64::try_from(r.u128()?).map_err(|_| corrupt())?;
    let base_token = u64::try_from(r.u128()?).map_err(|_| corrupt())?;
    let dropped = r.u32()?;
    Ok(Some((
        Header {
            magic,
            token,
            base_token,
            dropped,
        },
        frames,
    )))
}

/// The `n` dropped customers that follow a delta's header.
fn read_dropped(frames: &mut Frames, n: u32) -> std::io::Result<HashSet<Vec<u8>>> {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > super::MAX_DELTA_DROPPED {
        return Err(std::io::Error::other(
            "corrupt key map delta: too many dropped",
        ));
    }
    let mut dropped = HashSet::with_capacity(n);
    for _ in 0..n {
        let id = frames
            .next_frame()?
            .ok_or_else(|| std::io::Error::other("corrupt key map delta: cut short"))?;
        dropped.insert(id.to_vec());
    }
    Ok(dropped)
}

/// The next entry of `frames` whose customer is not in any of `skip`.
pub(super) fn next_kept(
    frames: &mut Frames,
    skip: &[&HashSet<Vec<u8>>],
) -> std::io::Result<Option<Vec<u8>>> {
    while let Some(b) = frames.next_frame()? {
        let (_, id, _) = split(b)?;
        if !skip.iter().any(|s| s.contains(id)) {
            return Ok(Some(b.to_vec()));
        }
    }
    Ok(None)
}
