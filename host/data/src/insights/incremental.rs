//! Incremental unification: which records to unify again after some source
//! rows changed, so that the result is the one a full run would give.
//!
//! The touched clusters are those of the changed rows' previous records
//! (from `CustomerSourceLink`) and those holding any match key of the
//! changed rows' new values (from the [`super::keymap`]); every record of
//! those clusters (one scan of `CustomerSourceLink`) is unified again with
//! the changed rows, and the result replaces those clusters. Records of other clusters cannot be affected:
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
use crate::store::{EntityDb, Publication, StoreError, Table};

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
    /// Their `CustomerSourceLink` rows (and those of removed rows).
    pub links: Vec<String>,
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

/// Decide what to unify; see the module docs.
pub(super) fn plan(
    ws: &Workspace,
    store: &EntityDb,
    types: &[ColumnType],
    customer_columns: &[(String, ColumnType)],
    keymap_path: &Path,
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

    let conn = store.session();
    let sql = |source| StoreError::Sqlite {
        path: store.path().to_owned(),
        source,
    };
    let mut seeds: HashSet<String> = HashSet::new();
    let mut selection = Selection {
        rowids: vec![Vec::new(); ws.sources.len()],
    };
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
                if let Some(id) = cluster_of
                    .query_row([&link], |r| r.get::<_, Option<String>>(0))
                    .optional()
                    .map_err(sql)?
                    .flatten()
                {
                    seeds.insert(id);
                }
                if let Some(rowid) = rowid_of[si]
                    .query_row([k], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(sql)?
                {
                    selection.rowids[si].push(rowid);
                }
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

    // Every record of the touched clusters: one scan of the links, each
    // link's customer id looked up in a hash set (cheaper than SQLite's
    // `IN`, which searches a B-tree for each of a million rows).
    let conn = store.session();
    let mut rowid_of = rowid_lookups(ws, &conn).map_err(sql)?;
    let source_index: HashMap<&str, usize> = ws
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // foldhash, not SipHash: a million lookups of ids the engine made.
    let seeded: foldhash::HashSet<&[u8]> = seeds.iter().map(|s| s.as_bytes()).collect();
    let mut links = Vec::new();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    {
        let mut members = conn
            .prepare(&format!(
                "SELECT \"{CUSTOMER_ID}\", \"LinkId\", \"Source\", \"SourceKey\" FROM {}",
                Table::of(LINK)
            ))
            .map_err(sql)?;
        let mut rows = members.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let id = match r.get_ref(0).map_err(sql)? {
                ValueRef::Text(id) if seeded.contains(id) => id,
                _ => continue,
            };
            *sizes
                .entry(String::from_utf8_lossy(id).into_owned())
                .or_default() += 1;
            let link: String = r.get(1).map_err(sql)?;
            let source: Option<String> = r.get(2).map_err(sql)?;
            let key: Option<String> = r.get(3).map_err(sql)?;
            links.push(link);
            if links.len() as u64 > MAX_REUNIFIED_RECORDS {
                return Ok(Plan::Full("the changes touch too many records"));
            }
            let Some(&si) = source.as_deref().and_then(|s| source_index.get(s)) else {
                continue;
            };
            if let Some(rowid) = rowid_of[si]
                .query_row([key], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(sql)?
            {
                selection.rowids[si].push(rowid);
            }
        }
    }
    drop(rowid_of);
    let seed_merges = sizes.values().filter(|&&n| n > 1).count() as u64;
    let seed_matched: u64 = sizes.values().filter(|&&n| n > 1).sum();
    for r in &mut selection.rowids {
        r.sort_unstable();
        r.dedup();
    }
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
