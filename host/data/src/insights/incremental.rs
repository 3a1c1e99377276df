//! Incremental unification: which records to unify again after some source
//! rows changed, so that the result is the one a full run would give.
//!
//! The touched clusters are those of the changed rows' previous records
//! (from `CustomerSourceLink`) and those holding any match key of the
//! changed rows' new values (from the [`super::keymap`]); every record of
//! those clusters (from the link map written beside the key map, or one
//! scan of `CustomerSourceLink` without it) is unified again with the
//! changed rows, and the result replaces those clusters. Records of other
//! clusters cannot be affected:
//! they share no key with a changed row. (Blocks over
//! [`super::similarity::ALL_PAIRS_UP_TO`] records compare neighbours in a
//! window, which depends on the block's other records: there the result
//! can differ from a full run, as the windowed comparison is approximate
//! anyway.)
//!
//! Anything that makes that reasoning unsafe (other settings, a change the
//! store did not track, a missing key map, too many records) unifies
//! everything instead, and says why in the log.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::types::{Value, ValueRef};
use rusqlite::OptionalExtension;

use super::fingerprint;
use super::keymap;
use super::unify::{as_text, keys_of, link_columns, Selection, UnifyError, CUSTOMER, LINK};
use super::workspace::{Workspace, CUSTOMER_ID};
use crate::odata::ColumnType;
use crate::store::pipe::Rows;
use crate::store::{EntityDb, Publication, Sink, StoreError, Table};

/// Records unified again at most; when changes touch more, everything is
/// unified (a run over that many records is no longer much cheaper, and
/// they are held in memory while planning).
pub const MAX_REUNIFIED_RECORDS: u64 = 500_000;

/// Counter: the fingerprint of the settings of the last unification.
const UNIFIED_CONFIG: &str = "unified-config";
/// Counter: the token of the last unification's key map.
const KEYMAP_TOKEN: &str = "unified-keys";

/// Counter: the data generation of `source` the last unification read.
fn generation_counter(source: &str) -> String {
    format!("unified-generation:{source}")
}

/// What to unify.
pub(super) enum Plan {
    /// Everything, and why.
    Full(&'static str),
    /// Only these records.
    Subset(Subset),
}

/// The records of the touched clusters and the changed rows.
pub(super) struct Subset {
    pub selection: Selection,
    /// The touched clusters' `CustomerId`s, replaced by the run.
    pub seeds: HashSet<String>,
    /// Their `CustomerSourceLink` rows (and those of removed rows): each
    /// link id with the [`link_digest`] of its row.
    pub links: foldhash::HashMap<String, u128>,
    /// Source rows added, changed or removed.
    pub changed: u64,
    /// The previous key map's token.
    pub token: u64,
    /// The previous run's totals, and the touched clusters' share of them.
    pub previous_merges: u64,
    pub previous_matched: u64,
    pub seed_merges: u64,
    pub seed_matched: u64,
}

/// Stage, in `publication`, what the next run needs to go incremental: the
/// settings, the generation of every source read and the key map's token.
pub(super) fn stage_state(
    ws: &Workspace,
    store: &EntityDb,
    publication: &mut Publication<'_>,
    token: u64,
) -> Result<(), StoreError> {
    for s in &ws.sources {
        let generation = store.meta(&s.entity)?.generation;
        publication.set_counter(&generation_counter(&s.name), generation);
    }
    publication.set_counter(UNIFIED_CONFIG, fingerprint::unification_settings(ws));
    publication.set_counter(KEYMAP_TOKEN, token);
    Ok(())
}

/// Decide what to unify; see the module docs. `likely` is called once the
/// cheap checks passed and a subset is likely.
pub(super) fn plan(
    ws: &Workspace,
    store: &EntityDb,
    types: &[ColumnType],
    customer_columns: &[(String, ColumnType)],
    keymap_path: &Path,
    likely: impl FnOnce(),
) -> Result<Plan, UnifyError> {
    let counter = |name: &str| store.counter(name);
    if counter(UNIFIED_CONFIG)? != Some(fingerprint::unification_settings(ws)) {
        return Ok(Plan::Full("no earlier unification with these settings"));
    }
    let shaped = |entity: &str, columns: &[(String, ColumnType)]| {
        store
            .meta(entity)
            .is_ok_and(|m| m.schema.columns == columns)
    };
    if !shaped(CUSTOMER, customer_columns) || !shaped(LINK, &link_columns()) {
        return Ok(Plan::Full("the profile fields' types changed"));
    }
    let (Some(token), Some(previous_merges), Some(previous_matched)) = (
        counter(KEYMAP_TOKEN)?,
        // The totals the pipeline records with each publication.
        counter(fingerprint::UNIFIED_STATS[3])?,
        counter(fingerprint::UNIFIED_STATS[2])?,
    ) else {
        return Ok(Plan::Full("no record of the last unification"));
    };
    if !keymap::valid(keymap_path, token) {
        return Ok(Plan::Full(
            "the key map of the last unification is missing or of another version",
        ));
    }
    // What changed, per source.
    let mut changed: Vec<Vec<Value>> = Vec::with_capacity(ws.sources.len());
    let mut count = 0u64;
    for s in &ws.sources {
        let meta = store.meta(&s.entity)?;
        if meta.schema.get(&s.key) == Some(ColumnType::Decimal) {
            return Ok(Plan::Full("a source's key is a decimal"));
        }
        let Some(since) = counter(&generation_counter(&s.name))? else {
            return Ok(Plan::Full("a source is new"));
        };
        let Some(keys) = store.changed_keys(&s.entity, since)? else {
            return Ok(Plan::Full(
                "a source changed more than can be tracked row by row",
            ));
        };
        count += keys.len() as u64;
        if count > MAX_REUNIFIED_RECORDS {
            return Ok(Plan::Full("too many rows changed"));
        }
        changed.push(keys);
    }
    // A subset is likely now: what it takes from here on is rarely for
    // nothing.
    likely();

    let conn = store.session();
    let sql = |source| StoreError::Sqlite {
        path: store.path().to_owned(),
        source,
    };
    let mut seeds: HashSet<String> = HashSet::new();
    let mut selection = Selection {
        rowids: vec![Vec::new(); ws.sources.len()],
        // Only the changed rows' keys are wanted first.
        previous: None,
    };
    let mut previous = vec![foldhash::HashMap::default(); ws.sources.len()];
    let mut rowid_of = rowid_lookups(ws, &conn).map_err(sql)?;
    {
        let mut cluster_of = conn
            .prepare_cached(&format!(
                "SELECT \"{CUSTOMER_ID}\" FROM {} WHERE \"LinkId\" = ?1",
                Table::of(LINK)
            ))
            .map_err(sql)?;
        for (si, keys) in changed.iter().enumerate() {
            let name = &ws.sources[si].name;
            for k in keys {
                let link = format!("{name}/{}", as_text(k).unwrap_or_default());
                let id = cluster_of
                    .query_row([&link], |r| r.get::<_, Option<String>>(0))
                    .optional()
                    .map_err(sql)?
                    .flatten();
                if let Some(rowid) = rowid_of[si]
                    .query_row([k], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(sql)?
                {
                    selection.rowids[si].push(rowid);
                    if let Some(id) = &id {
                        previous[si].insert(rowid, id.clone());
                    }
                }
                seeds.extend(id);
            }
        }
    }
    drop(rowid_of);
    drop(conn);

    // Clusters the changed rows' new keys reach.
    let hashes = keys_of(ws, store, types, &selection)?;
    let reached = keymap::lookup(keymap_path, token, hashes).map_err(|source| {
        UnifyError::Spill(super::spill::SpillError {
            dir: keymap_path.to_owned(),
            source,
        })
    })?;
    seeds.extend(reached);

    // Every record of the touched clusters: one scan of the links, on two
    // cores, each link's customer id looked up in a hash set (cheaper than
    // SQLite's `IN`, which searches a B-tree for each of a million rows).
    // foldhash, not SipHash: a million lookups of ids the engine made.
    let seeded: foldhash::HashSet<&[u8]> = seeds.iter().map(|s| s.as_bytes()).collect();
    let seeded_id = |v: ValueRef<'_>| matches!(v, ValueRef::Text(id) if seeded.contains(id));
    let member = |r: &rusqlite::Row<'_>| {
        let id = text(Some(&r.get_ref(0)?)).unwrap_or_default();
        let source: Option<String> = r.get(2)?;
        let key: Option<String> = r.get(3)?;
        let digest = link_digest([
            Some(id),
            source.as_deref().map(str::as_bytes),
            text(Some(&r.get_ref(4)?)),
            key.as_deref().map(str::as_bytes),
        ]);
        Ok(Member {
            customer: String::from_utf8_lossy(id).into_owned(),
            link: r.get(1)?,
            source,
            key,
            digest,
        })
    };
    let columns = [CUSTOMER_ID, "LinkId", "Source", "SourceKey", "SourceEntity"];
    let limit = usize::try_from(MAX_REUNIFIED_RECORDS).unwrap_or(usize::MAX);
    let links_path = keymap::Map::Links.path_for(store.path());
    let mapped = match keymap::links_of(&links_path, token, &seeds, limit) {
        Ok(found) => found.map(|f| members_of(ws, f)).transpose(),
        Err(e) => Err(e),
    };
    let members = match mapped {
        Ok(Some(members)) => members,
        Ok(None) => return Ok(Plan::Full("the changes touch too many records")),
        Err(e) => {
            tracing::info!(
                "scanning the links: the link map {} cannot be read: {e}",
                links_path.display()
            );
            let scanned =
                store.scan_halves(LINK, (CUSTOMER_ID, seeded_id), &columns, limit, member)?;
            let Some(members) = scanned else {
                return Ok(Plan::Full("the changes touch too many records"));
            };
            members
        }
    };
    let conn = store.session();
    let mut rowid_of = rowid_lookups(ws, &conn).map_err(sql)?;
    let source_index: HashMap<&str, usize> = ws
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut links = foldhash::HashMap::default();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for m in members {
        links.insert(m.link, m.digest);
        let si = m.source.as_deref().and_then(|s| source_index.get(s));
        let rowid = match si {
            Some(&si) => rowid_of[si]
                .query_row([m.key], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(sql)?
                .map(|rowid| (si, rowid)),
            None => None,
        };
        if let Some((si, rowid)) = rowid {
            selection.rowids[si].push(rowid);
            previous[si].insert(rowid, m.customer.clone());
        }
        *sizes.entry(m.customer).or_default() += 1;
    }
    drop(rowid_of);
    let seed_merges = sizes.values().filter(|&&n| n > 1).count() as u64;
    let seed_matched: u64 = sizes.values().filter(|&&n| n > 1).sum();
    for r in &mut selection.rowids {
        r.sort_unstable();
        r.dedup();
    }
    selection.previous = Some(previous);
    Ok(Plan::Subset(Subset {
        selection,
        seeds,
        links,
        changed: count,
        token,
        previous_merges,
        previous_matched,
        seed_merges,
        seed_matched,
    }))
}

/// The links of the link map's entries (customer, source index and source
/// key), in link id order, as the scan of `CustomerSourceLink` would find
/// them.
fn members_of(ws: &Workspace, found: Vec<keymap::LinkEntry>) -> std::io::Result<Vec<Member>> {
    let corrupt = || std::io::Error::other("corrupt link map entry");
    let mut members = Vec::with_capacity(found.len());
    for (customer, payload) in found {
        let (src, key) = payload.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let s = ws
            .sources
            .get(usize::from(u16::from_le_bytes(*src)))
            .ok_or_else(corrupt)?;
        let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
        let digest = link_digest([
            Some(customer.as_bytes()),
            Some(s.name.as_bytes()),
            Some(s.entity.as_bytes()),
            Some(key.as_bytes()),
        ]);
        members.push(Member {
            link: format!("{}/{key}", s.name),
            customer,
            source: Some(s.name.clone()),
            key: Some(key.to_owned()),
            digest,
        });
    }
    members.sort_unstable_by(|a, b| a.link.cmp(&b.link));
    Ok(members)
}

/// A link of a touched cluster, as the plan's scan keeps it.
struct Member {
    customer: String,
    link: String,
    source: Option<String>,
    key: Option<String>,
    digest: u128,
}

/// A digest of a link row's columns but its id (`CustomerId`, `Source`,
/// `SourceEntity`, `SourceKey`; a null apart from an empty text), to tell
/// a link unified again as it was (SipHash-128: a false match is as likely
/// as in [`crate::store`]'s change tracking).
pub(super) fn link_digest(columns: [Option<&[u8]>; 4]) -> u128 {
    use siphasher::sip128::{Hasher128, SipHasher13};
    use std::hash::Hasher;
    let mut h = SipHasher13::new_with_keys(0x7466_6c69_6e6b, 0x6469_6765_7374);
    for c in columns {
        match c {
            Some(b) => {
                h.write_u8(1);
                h.write_usize(b.len());
                h.write(b);
            }
            None => h.write_u8(0),
        }
    }
    h.finish128().as_u128()
}

/// A text or blob cell's bytes; `None` for a null (or a number, which no
/// link column holds).
fn text<'r>(v: Option<&ValueRef<'r>>) -> Option<&'r [u8]> {
    v.and_then(|v| v.as_bytes_or_null().ok().flatten())
}

/// Per source, a statement giving the rowid of the row with a key.
fn rowid_lookups<'c>(
    ws: &Workspace,
    conn: &'c rusqlite::Connection,
) -> rusqlite::Result<Vec<rusqlite::CachedStatement<'c>>> {
    ws.sources
        .iter()
        .map(|s| {
            conn.prepare_cached(&format!(
                "SELECT rowid FROM {} WHERE \"{}\" = ?1",
                Table::of(&s.entity),
                s.key
            ))
        })
        .collect()
}

/// A sink for the links of an incremental run that drops those put back as
/// they were (same id, same [`link_digest`]) and notes their ids, so the
/// patch neither deletes nor adds them.
pub(super) struct ChangedLinks<'a> {
    sink: &'a mut dyn Sink,
    previous: &'a foldhash::HashMap<String, u128>,
    unchanged: &'a std::cell::RefCell<foldhash::HashSet<String>>,
}

impl<'a> ChangedLinks<'a> {
    pub(super) fn new(
        sink: &'a mut dyn Sink,
        previous: &'a foldhash::HashMap<String, u128>,
        unchanged: &'a std::cell::RefCell<foldhash::HashSet<String>>,
    ) -> Self {
        Self {
            sink,
            previous,
            unchanged,
        }
    }
}

impl Sink for ChangedLinks<'_> {
    fn begin_partition(&mut self, origin: &str) -> Result<(), StoreError> {
        self.sink.begin_partition(origin)
    }

    fn push_batch(&mut self, rows: &Rows<'_>) -> Result<(), (u64, StoreError)> {
        let mut unchanged = self.unchanged.borrow_mut();
        let kept: Vec<(u64, &[ValueRef<'_>])> = rows
            .iter()
            .filter(|(_, row)| {
                let Some(id) = text(row.first()).and_then(|b| std::str::from_utf8(b).ok()) else {
                    return true;
                };
                let digest = link_digest([
                    text(row.get(1)),
                    text(row.get(2)),
                    text(row.get(3)),
                    text(row.get(4)),
                ]);
                if self.previous.get(id) == Some(&digest) {
                    unchanged.insert(id.to_owned());
                    return false;
                }
                true
            })
            .copied()
            .collect();
        match kept.is_empty() {
            true => Ok(()),
            false => self.sink.push_batch(&kept),
        }
    }

    fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)> {
        self.sink.build_key_index()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Keeps the link ids pushed.
    #[derive(Default)]
    struct Ids(Vec<String>);

    impl Sink for Ids {
        fn begin_partition(&mut self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        fn push_batch(&mut self, rows: &Rows<'_>) -> Result<(), (u64, StoreError)> {
            for (_, row) in rows {
                let id = text(row.first()).unwrap_or_default();
                self.0.push(String::from_utf8_lossy(id).into_owned());
            }
            Ok(())
        }
        fn build_key_index(&mut self) -> Result<(), (Option<(i64, u64)>, StoreError)> {
            Ok(())
        }
    }

    fn row<'a>(cells: &'a [&'a str; 5]) -> [ValueRef<'a>; 5] {
        cells.map(|c| match c {
            "" => ValueRef::Null,
            c => ValueRef::Text(c.as_bytes()),
        })
    }

    #[test]
    fn links_put_back_as_they_were_are_left_out_and_noted() {
        let digest = |c: [&str; 4]| link_digest(c.map(|c| (!c.is_empty()).then_some(c.as_bytes())));
        let previous: foldhash::HashMap<String, u128> = [
            ("crm/1", digest(["C1", "crm", "Crm", "1"])),
            ("crm/2", digest(["C1", "crm", "Crm", "2"])),
            ("crm/3", digest(["C2", "crm", "Crm", "3"])),
            ("crm/4", digest(["C2", "crm", "", "4"])),
        ]
        .into_iter()
        .map(|(l, d)| (l.to_owned(), d))
        .collect();
        let unchanged = RefCell::new(foldhash::HashSet::default());
        let mut ids = Ids::default();
        let cells = [
            ["crm/1", "C1", "crm", "Crm", "1"],   // as it was
            ["crm/2", "C3", "crm", "Crm", "2"],   // another customer
            ["crm/3", "C2", "crm", "Other", "3"], // another entity
            ["crm/4", "C2", "crm", "Crm", "4"],   // a null now text
            ["crm/5", "C1", "crm", "Crm", "5"],   // new
        ];
        let rows: Vec<[ValueRef<'_>; 5]> = cells.iter().map(row).collect();
        let tagged: Vec<(u64, &[ValueRef<'_>])> = rows.iter().map(|r| (0, &r[..])).collect();
        let mut sink = ChangedLinks::new(&mut ids, &previous, &unchanged);
        sink.push_batch(&tagged).unwrap();
        sink.push_batch(&tagged[..1]).unwrap();
        assert_eq!(ids.0, ["crm/2", "crm/3", "crm/4", "crm/5"]);
        let noted: Vec<String> = unchanged.into_inner().into_iter().collect();
        assert_eq!(noted, ["crm/1"]);
    }
}
