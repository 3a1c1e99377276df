//! Unification's links (`CustomerSourceLink` rows) between merge and
//! insert. The link table is kept in link id order (source name, `/`,
//! source key), so links go in best in that order:
//! - when every source stores its keys in order, records come in link id
//!   order already (per source), and links wait by their place in link id
//!   order ([`LinkQueue::by_record`], sources taken in order of name):
//!   each range sorted in memory, nothing else;
//! - when some source's keys come in no order (GUIDs), links are sorted by
//!   link id ([`LinkQueue::by_id`], through [`Sorter`]).

use std::io;

use rusqlite::types::ValueRef;

use super::sorter::Sorter;
use super::spill::{Frame, Partitions, Reader};
use super::unify::{load_partition, UnifyError};
use super::workspace::Workspace;
use crate::store::Sink;

/// Links handed to the store at once (so that it inserts several to a
/// statement).
const LINK_GROUP_ROWS: usize = 256;
/// Links held in memory to be sorted at once (while a merge partition is
/// held too): the rest wait sorted on disk.
const LINK_SORT_BYTES: usize = 4 * 1024 * 1024;

/// Links waiting to be inserted.
pub(super) enum LinkQueue {
    ByRecord {
        parts: Partitions,
        per_part: u64,
        frame: Frame,
        places: Places,
    },
    ById(Sorter),
}

impl LinkQueue {
    /// Links in record order within each source, sources in `places`'
    /// order: `parts` partitions of `per_part` records.
    pub(super) fn by_record(
        dir: &std::path::Path,
        parts: usize,
        per_part: u64,
        places: Places,
    ) -> io::Result<Self> {
        Ok(Self::ByRecord {
            parts: Partitions::new(dir, parts)?,
            per_part: per_part.max(1),
            frame: Frame::default(),
            places,
        })
    }

    /// Links in link id order.
    pub(super) fn by_id(dir: &std::path::Path) -> Self {
        Self::ById(Sorter::new(dir, LINK_SORT_BYTES))
    }

    /// Queue the link of record `rec`: `link` holds its link id, customer
    /// id, source index and source key, written by [`link_frame`].
    pub(super) fn push(&mut self, rec: u32, link: &[u8]) -> io::Result<()> {
        match self {
            Self::ByRecord {
                parts,
                per_part,
                frame,
                places,
            } => {
                let rec = places.of(rec);
                frame.clear();
                // Sorted by the first two (see `load_partition`).
                frame.u32(rec);
                frame.u32(rec);
                frame.0.extend_from_slice(link);
                let part = usize::try_from(u64::from(rec) / *per_part).unwrap_or(usize::MAX);
                parts.write(part, &frame.0)
            }
            Self::ById(sorter) => sorter.push(link),
        }
    }

    /// Insert every queued link into `sink`, in the queue's order.
    pub(super) fn insert(
        self,
        sink: &mut dyn Sink,
        ws: &Workspace,
        spilled: &impl Fn(io::Error) -> UnifyError,
    ) -> Result<(), UnifyError> {
        let mut group = Group::default();
        match self {
            Self::ByRecord { parts, .. } => {
                for part in parts.into_parts() {
                    let loaded = load_partition(part).map_err(spilled)?;
                    for &(_, _, a, b) in &loaded.items {
                        group.add(&loaded.buf[a..b], sink, ws, spilled)?;
                    }
                }
            }
            Self::ById(sorter) => {
                let mut sorted = sorter.finish().map_err(spilled)?;
                let mut frame = Vec::new();
                while sorted.next_into(&mut frame).map_err(spilled)? {
                    group.add(&frame, sink, ws, spilled)?;
                }
            }
        }
        group.flush(sink, ws, spilled)
    }
}

/// Where each record's link goes in link id order: records come source by
/// source in priority order; link ids (source name, `/`, key) put sources
/// in order of name.
#[derive(Debug, Default)]
pub(super) struct Places {
    /// Per source's record range: (first record, the record after its
    /// last, its first place).
    ranges: Vec<(u32, u32, u32)>,
}

impl Places {
    /// From the sources' record ranges, in record order: (name, first
    /// record, the record after its last).
    pub(super) fn new(sources: &[(&str, u32, u32)]) -> Self {
        let mut by_name: Vec<&(&str, u32, u32)> = sources.iter().collect();
        // As link ids sort: by the name followed by `/`.
        let id_prefix = |name: &str| {
            name.bytes()
                .chain(std::iter::once(b'/'))
                .collect::<Vec<u8>>()
        };
        by_name.sort_by_cached_key(|&&(name, first, _)| (id_prefix(name), first));
        let mut place = 0u32;
        let mut ranges: Vec<(u32, u32, u32)> = by_name
            .into_iter()
            .map(|&(_, first, end)| {
                let r = (first, end, place);
                place = place.saturating_add(end.saturating_sub(first));
                r
            })
            .collect();
        ranges.sort_unstable();
        Self { ranges }
    }

    /// The place of record `rec` (itself when no range holds it).
    fn of(&self, rec: u32) -> u32 {
        let i = self.ranges.partition_point(|r| r.1 <= rec);
        match self.ranges.get(i) {
            Some(&(first, end, place)) if (first..end).contains(&rec) => place + (rec - first),
            _ => rec,
        }
    }
}

/// Write a link for [`LinkQueue::push`]: its link id first (the sort key,
/// see [`Sorter`]), then the customer id, source index and source key.
pub(super) fn link_frame(
    link: &mut Frame,
    id: &mut String,
    source: (&str, u16),
    skey: &str,
    cid: &str,
) {
    id.clear();
    id.push_str(source.0);
    id.push('/');
    id.push_str(skey);
    link.clear();
    link.str(id);
    link.str(cid);
    link.u16(source.1);
    link.str(skey);
}

/// Links gathered to be inserted [`LINK_GROUP_ROWS`] at a time.
#[derive(Default)]
struct Group {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Group {
    fn add(
        &mut self,
        link: &[u8],
        sink: &mut dyn Sink,
        ws: &Workspace,
        spilled: &impl Fn(io::Error) -> UnifyError,
    ) -> Result<(), UnifyError> {
        self.buf.extend_from_slice(link);
        self.ends.push(self.buf.len());
        if self.ends.len() >= LINK_GROUP_ROWS {
            self.flush(sink, ws, spilled)?;
        }
        Ok(())
    }

    /// Insert the links gathered.
    fn flush(
        &mut self,
        sink: &mut dyn Sink,
        ws: &Workspace,
        spilled: &impl Fn(io::Error) -> UnifyError,
    ) -> Result<(), UnifyError> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let corrupt = || spilled(io::Error::other("corrupt temporary file: source index"));
        let mut cells: Vec<[ValueRef<'_>; 5]> = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            let mut r = Reader::new(self.buf.get(start..end).ok_or_else(corrupt)?);
            start = end;
            let id = r.str().map_err(spilled)?;
            let cid = r.str().map_err(spilled)?;
            let src = usize::from(r.u16().map_err(spilled)?);
            let skey = r.str().map_err(spilled)?;
            let s = ws.sources.get(src).ok_or_else(corrupt)?;
            cells.push([
                ValueRef::Text(id.as_bytes()),
                ValueRef::Text(cid.as_bytes()),
                ValueRef::Text(s.name.as_bytes()),
                ValueRef::Text(s.entity.as_bytes()),
                ValueRef::Text(skey.as_bytes()),
            ]);
        }
        let rows: Vec<(u64, &[ValueRef<'_>])> = cells.iter().map(|c| (0, c.as_slice())).collect();
        sink.push_batch(&rows)
            .map_err(|(_, e)| UnifyError::from(e))?;
        self.buf.clear();
        self.ends.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Places;

    #[test]
    fn records_take_their_place_in_link_id_order() {
        // Priority: web (records 0..3), crm (3..5), a (5..6), a-b (6..8).
        let places = Places::new(&[("web", 0, 3), ("crm", 3, 5), ("a", 5, 6), ("a-b", 6, 8)]);
        let of: Vec<u32> = (0..9).map(|r| places.of(r)).collect();
        // "a-b/" < "a/" < "crm/" < "web/": a-b at 0..2, a at 2, crm 3..5, web 5..8.
        assert_eq!(of, [5, 6, 7, 3, 4, 2, 0, 1, 8]);
    }
}
