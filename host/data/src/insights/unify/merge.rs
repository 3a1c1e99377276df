//! The merge stage's clusters: records routed to partitions by their
//! cluster's root, then each cluster merged into one `Customer` row, its
//! members' links queued and its match keys kept for the key map.

use std::path::Path;

use rusqlite::types::ValueRef;

use super::super::keymap;
use super::super::links::{link_frame, LinkQueue};
use super::super::spill::{Frame, Partitions, Reader, Spill};
use super::matching::UnionFind;
use super::members::{choose_id, decode_member_into, load_partition, merge_field, Claimed, Member};
use super::{partitions, spilled, UnifyError};
use crate::insights::workspace::Workspace;
use crate::store::pipe;

/// Bytes of records per merge partition (held in memory while merged).
const MERGE_PARTITION_BYTES: u64 = 8 * 1024 * 1024;

/// The records of `recs` (record `i` the `i`th) routed to partitions by
/// their root's range, each tagged with its root and record number; with
/// the roots per partition.
pub(super) fn route_by_root(
    recs: Spill,
    uf: &UnionFind,
    dir: &Path,
) -> std::io::Result<(Partitions, u64)> {
    let records = u64::from(uf.len());
    let per_part = {
        let n = partitions(recs.bytes(), MERGE_PARTITION_BYTES) as u64;
        records.div_ceil(n).max(1)
    };
    let mut by_root = Partitions::new(
        dir,
        usize::try_from(records.div_ceil(per_part)).unwrap_or(1),
    )?;
    let mut frames = recs.into_reader()?;
    let mut frame = Frame::default();
    let mut rec = 0u32;
    while let Some(payload) = frames.next_frame()? {
        let root = *uf
            .parent
            .get(rec as usize)
            .ok_or_else(|| std::io::Error::other("corrupt temporary file: more records"))?;
        frame.clear();
        frame.u32(root);
        frame.u32(rec);
        frame.0.extend_from_slice(payload);
        let part = usize::try_from(u64::from(root) / per_part).unwrap_or(usize::MAX);
        by_root.write(part, &frame.0)?;
        rec += 1;
    }
    Ok((by_root, per_part))
}

/// Where merged clusters leave their links, match keys and counts.
pub(super) struct Merged<'a> {
    pub links: &'a mut LinkQueue,
    pub key_map: &'a mut keymap::Builder,
    /// Each customer's links, by customer.
    pub link_map: &'a mut keymap::Builder,
    /// The next customer number.
    pub counter: &'a mut u64,
    /// Clusters of two or more records, and their records.
    pub merges: &'a mut u64,
    pub matched_records: &'a mut u64,
}

/// Merge each cluster of `by_root` (in order of its smallest record) into
/// one `Customer` row fed to `feed`, tagged with the records merged so far
/// (for progress). `dir` holds the temporary files and names them in errors.
///
/// Kept ids come about in ascending order, and fresh ones are above them
/// all: when ids were given out before, a cluster given a fresh one waits
/// in a spill file and is fed after the rest, so that rows reach the
/// store in key order as far as they can (see `paged`'s rows set aside).
pub(super) fn merge_clusters(
    ws: &Workspace,
    by_root: Partitions,
    feed: &mut pipe::Feed,
    out: Merged<'_>,
    dir: &Path,
) -> Result<(), UnifyError> {
    let spilled = spilled(dir);
    let nf = ws.profile_fields.len();
    let mut claimed = Claimed::default();
    let mut done = 0u64;
    let mut link = Frame::default();
    let mut link_id = String::new();
    let mut cluster_keys: Vec<u64> = Vec::new();
    let mut member_recs: Vec<u32> = Vec::new();
    let mut fresh = match *out.counter {
        0 => None,
        _ => Some(Spill::new_in(dir).map_err(spilled)?),
    };
    let mut row = Frame::default();
    let mut payload: Vec<u8> = Vec::new();
    for part in by_root.into_parts() {
        let clusters = load_partition(part).map_err(spilled)?;
        // Decoded members, their vectors reused from cluster to cluster.
        let mut pool: Vec<Member<'_>> = Vec::new();
        let mut start = 0usize;
        while start < clusters.items.len() {
            let root = clusters.items[start].0;
            let mut end = start;
            member_recs.clear();
            while end < clusters.items.len() && clusters.items[end].0 == root {
                let (_, rec, a, b) = clusters.items[end];
                let n = member_recs.len();
                if n == pool.len() {
                    pool.push(Member::default());
                }
                decode_member_into(&mut pool[n], &clusters.buf[a..b], nf).map_err(spilled)?;
                member_recs.push(rec);
                end += 1;
            }
            let members = &pool[..member_recs.len()];
            let issued = *out.counter;
            let id = choose_id(members, &mut claimed, out.counter);
            done += members.len() as u64;
            match fresh.as_mut().filter(|_| *out.counter != issued) {
                Some(later) => {
                    row.clear();
                    row.str(&id);
                    for f in 0..nf {
                        row.value_ref(merge_field(members, f, ws.unification.merge[f]));
                    }
                    later.write(&row.0).map_err(spilled)?;
                }
                None => {
                    feed.value(ValueRef::Text(id.as_bytes()));
                    for f in 0..nf {
                        feed.value(merge_field(members, f, ws.unification.merge[f]));
                    }
                    feed.end_row(done)?;
                }
            }
            let customer = keymap::customer_hash(&id);
            for (m, &rec) in members.iter().zip(&member_recs) {
                let s = usize::try_from(m.src)
                    .ok()
                    .and_then(|i| ws.sources.get(i))
                    .ok_or_else(|| {
                        spilled(std::io::Error::other(
                            "corrupt temporary file: source index",
                        ))
                    })?;
                let src = u16::try_from(m.src).unwrap_or(u16::MAX);
                link_frame(&mut link, &mut link_id, (&s.name, src), m.skey, &id);
                out.links.push(rec, &link.0).map_err(spilled)?;
                payload.clear();
                payload.extend_from_slice(&src.to_le_bytes());
                payload.extend_from_slice(m.skey.as_bytes());
                out.link_map
                    .add_with(customer, &id, &payload)
                    .map_err(spilled)?;
            }
            // Members share most keys: each once per cluster.
            cluster_keys.clear();
            cluster_keys.extend(members.iter().flat_map(|m| m.keys.iter().copied()));
            cluster_keys.sort_unstable();
            cluster_keys.dedup();
            for h in &cluster_keys {
                out.key_map.add(*h, &id).map_err(spilled)?;
            }
            if members.len() > 1 {
                *out.merges += 1;
                *out.matched_records += members.len() as u64;
            }
            start = end;
        }
    }
    if let Some(later) = fresh {
        let mut rows = later.into_reader().map_err(spilled)?;
        while let Some(b) = rows.next_frame().map_err(spilled)? {
            let mut r = Reader::new(b);
            feed.value(ValueRef::Text(r.str().map_err(spilled)?.as_bytes()));
            for _ in 0..nf {
                feed.value(r.value_ref().map_err(spilled)?);
            }
            feed.end_row(done)?;
        }
    }
    Ok(())
}
