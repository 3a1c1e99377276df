//! Unification: map source rows onto profile fields ([`map`]), match them
//! by rules into clusters ([`matching`]), merge each cluster into one
//! `Customer` ([`merge`], [`members`]), and record which source rows form
//! which customer in `CustomerSourceLink`.
//!
//! Rows stream through anonymous temporary files next to the store
//! ([`super::spill`]): match keys hashed into partitions grouped one at a
//! time, then records routed to partitions by cluster. Memory holds the
//! union-find (4 bytes per record) and one partition, never all the rows. A
//! cluster keeps the `CustomerId` most of its records had at the previous
//! refresh; new clusters take fresh ids from a persisted counter, so an id is
//! never reused for another customer.

use std::path::Path;
use std::time::Instant;

use rusqlite::types::Value;

use super::incremental::{self, ChangedLinks, Plan};
use super::keymap;
use super::links::{LinkQueue, Places};
use super::spill::{Partitions, Spill, SpillError, MAX_PARTITIONS};
use super::workspace::{Workspace, CUSTOMER_ID};
use crate::odata::ColumnType;
use crate::store::{pipe, EntityDb, Publication, RowSink, Sink, StoreError};

mod map;
mod matching;
mod members;
mod merge;

pub(super) use map::as_text;
use map::{map_records, profile_types};
use matching::{match_records, UnionFind};
pub(super) use members::load_partition;
use members::{decode_member, next_customer_seq, save_customer_seq};
use merge::{merge_clusters, route_by_root, Merged};

/// The unified profiles entity.
pub const CUSTOMER: &str = "Customer";
/// Which source row belongs to which customer.
pub const LINK: &str = "CustomerSourceLink";

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 20_000;

/// What a unification did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnifyReport {
    pub source_rows: u64,
    pub profiles: u64,
    /// Records in a cluster of two or more.
    pub matched_records: u64,
    /// Clusters of two or more records.
    pub merges: u64,
    /// Pairs compared one by one (rules with fuzzy fields or guards).
    pub comparisons: u64,
    pub map_ms: u64,
    pub match_ms: u64,
    pub merge_ms: u64,
    pub duration_ms: u64,
    /// Set when only the clusters touched by changed rows were recomputed.
    pub incremental: Option<Reunified>,
}

/// What an incremental unification recomputed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reunified {
    /// Source rows added, changed or removed since the last unification.
    pub changed_rows: u64,
    /// Records unified again (those rows and the clusters they touch).
    pub records: u64,
    /// Finding them: not part of the report's `map_ms`.
    pub plan_ms: u64,
}

/// Why unification failed.
#[derive(Debug, thiserror::Error)]
pub enum UnifyError {
    #[error(transparent)]
    EntityDb(#[from] StoreError),
    #[error("source '{source_name}' has no data yet (entity '{entity}'): refresh it first")]
    NoData { source_name: String, entity: String },
    #[error(
        "source '{source_name}': column '{column}' (mapped to {field}) is not in entity '{entity}'"
    )]
    MissingColumn {
        source_name: String,
        entity: String,
        column: String,
        field: String,
    },
    #[error(
        "more than {} source rows: unification indexes records with 32 bits",
        u32::MAX
    )]
    TooManyRows,
    #[error(transparent)]
    Spill(#[from] SpillError),
    /// The inserting side of a pipe failed; its own error is the one
    /// reported, never this.
    #[error(transparent)]
    Stopped(#[from] pipe::Stopped),
}

/// Phases, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Phase {
    Map,
    Match,
    Merge,
}

impl Phase {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Progress callback: phase, done, total.
pub type Progress<'a> = &'a mut dyn FnMut(Phase, u64, u64);

/// Wraps an I/O error on the temporary files in `dir`.
fn spilled(dir: &Path) -> impl Fn(std::io::Error) -> UnifyError + Copy + '_ {
    move |source| {
        UnifyError::Spill(SpillError {
            dir: dir.to_owned(),
            source,
        })
    }
}

fn sql(store: &EntityDb) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: store.path().to_owned(),
        source,
    }
}

/// Rows to unify, by rowid, per source (indexed like the workspace's).
#[derive(Debug, Default)]
pub(super) struct Selection {
    pub rowids: Vec<Vec<i64>>,
    /// Per source, the customer each selected row's link named at the
    /// last unification, by rowid (a row missing had none), as the
    /// incremental plan found them; the map then reads no link. `None`:
    /// the rows' previous customers are not wanted.
    pub previous: Option<Vec<foldhash::HashMap<i64, String>>>,
}

/// Run map, match and merge, staging `Customer` and `CustomerSourceLink` in
/// `publication` (readers see them once it is published).
///
/// Unless `full`, only the clusters touched by source rows changed since
/// the last unification are recomputed when that can be done exactly (see
/// the `incremental` module), and published as a patch.
///
/// Working data goes to anonymous temporary files next to the store, split
/// into partitions that fit in a few megabytes each: memory holds the
/// union-find (4 bytes per record) and one partition at a time.
pub fn unify(
    ws: &Workspace,
    publication: &mut Publication<'_>,
    full: bool,
    progress: Progress<'_>,
) -> Result<UnifyReport, UnifyError> {
    let store = publication.store();
    let started = Instant::now();
    let types = profile_types(ws, store)?;
    let dir = store.temp_dir();
    let spilled = spilled(&dir);
    let mut columns = vec![(CUSTOMER_ID.to_owned(), ColumnType::String)];
    columns.extend(ws.profile_fields.iter().cloned().zip(types.iter().copied()));
    let keymap_path = keymap::path_for(store.path());
    let plan = match full {
        true => Plan::Full("asked for"),
        // The patched files start as copies of the live ones, made while
        // the plan and the map run.
        false => incremental::plan(ws, store, &types, &columns, &keymap_path, || {
            publication.copy_ahead(CUSTOMER);
            publication.copy_ahead(LINK);
        })?,
    };
    let plan_ms = ms_since(started);
    let mapping = Instant::now();
    let subset = match &plan {
        Plan::Full(why) => {
            tracing::info!("unifying every record: {why}");
            None
        }
        Plan::Subset(s) => Some(s),
    };
    let mut report = UnifyReport::default();

    // Map: every source row (or the selected ones), in priority order, to
    // the records file; match keys to the key partitions.
    let selection = subset.map(|s| &s.selection);
    let total = rows_to_map(ws, store, selection);
    // A key of a rule that compares pairs carries its values: weigh it more.
    let weight: u64 = ws
        .unification
        .rules
        .iter()
        .map(|r| {
            if r.compares_pairs() {
                PAIR_KEY_WEIGHT
            } else {
                1
            }
        })
        .sum();
    let expected_keys = total.saturating_mul(weight);
    let mut keys =
        Partitions::new(&dir, partitions(expected_keys, KEYS_PER_PARTITION)).map_err(spilled)?;
    let mut recs = Spill::new_in(&dir).map_err(spilled)?;
    let mapped = map_records(ws, store, &types, &mut recs, &mut keys, selection, progress)?;
    let records = mapped.records;
    report.source_rows = u64::from(records);
    report.map_ms = ms_since(mapping);

    // Match: equal keys of one rule are one cluster, transitively; rules
    // with fuzzy fields or guards compare the pairs of each block.
    let t = Instant::now();
    let mut uf = UnionFind::new(records);
    report.comparisons = match_records(ws, keys, &mut uf, progress).map_err(spilled)?;
    uf.flatten();
    report.match_ms = ms_since(t);

    // Merge: records routed to partitions by root range, each partition's
    // clusters merged in order of their smallest record.
    let t = Instant::now();
    let (by_root, per_part) = route_by_root(recs, &uf, &dir).map_err(spilled)?;
    drop(uf);
    let mut counter = next_customer_seq(store)?;
    let first_seq = counter;
    // Links go in in link id order, their table's, as far as it is cheap
    // (see `links`): sorted when some source's keys are stored in no order.
    let mut links = match mapped.unordered.contains(&true) {
        true => LinkQueue::by_id(&dir),
        false => {
            let sources: Vec<(&str, u32, u32)> = mapped
                .ranges
                .iter()
                .filter_map(|&(si, a, b)| ws.sources.get(si).map(|s| (s.name.as_str(), a, b)))
                .collect();
            let places = Places::new(&sources);
            LinkQueue::by_record(&dir, by_root.len(), per_part, places).map_err(spilled)?
        }
    };
    let mut key_map =
        keymap::Builder::new(keymap::Map::Keys, &dir, expected_keys).map_err(spilled)?;
    let mut link_map = keymap::Builder::new(keymap::Map::Links, &dir, total).map_err(spilled)?;
    let produce_customers = |feed: &mut pipe::Feed| {
        let out = Merged {
            links: &mut links,
            key_map: &mut key_map,
            link_map: &mut link_map,
            counter: &mut counter,
            merges: &mut report.merges,
            matched_records: &mut report.matched_records,
        };
        merge_clusters(ws, by_root, feed, out, &dir)
    };
    // Clusters are merged on a thread of their own while this one inserts.
    let fill_customers = |sink: &mut dyn Sink| {
        let mut told = 0u64;
        pipe::run_batches(produce_customers, |rows| {
            sink.push_batch(rows).map_err(|(_, e)| e)?;
            let done = rows.last().map_or(told, |&(done, _)| done);
            if done >= told + PROGRESS_EVERY {
                told = done;
                progress(Phase::Merge, done, u64::from(records));
            }
            Ok(())
        })
    };
    report.profiles = match subset {
        Some(s) => publication.patch_entity_with(
            CUSTOMER,
            s.seeds.iter().map(|id| Value::Text(id.clone())),
            |sink: &mut RowSink<'_>| fill_customers(sink),
        )?,
        None => publication.replace_entity_paged_with(
            CUSTOMER,
            CUSTOMER_ID,
            &columns,
            fill_customers,
        )?,
    };
    let fill_links = |sink: &mut dyn Sink| links.insert(sink, ws, &spilled);
    // The key map and what the next run needs to go incremental, made
    // current when this publication is. The key map is written on a thread
    // of its own while this one inserts the links and the engine goes on;
    // the publication waits for it.
    let token = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), started);
    let writing = {
        let (path, previous) = (
            keymap_path.clone(),
            subset.map(|s| (s.token, s.seeds.clone())),
        );
        let links_path = keymap::Map::Links.path_for(store.path());
        let write = move || {
            let previous = previous.as_ref().map(|(t, s)| (*t, s));
            let keys = key_map.finish(&path, token, previous)?;
            // Without the link map, the next run finds links by a scan.
            let links = link_map
                .finish(&links_path, token, previous)
                .inspect_err(|e| {
                    tracing::info!(
                        "the link map {} is not kept (links are found by a scan until the next \
                         full unification writes it): {e}",
                        links_path.display()
                    )
                })
                .ok();
            Ok::<_, std::io::Error>((keys, links))
        };
        std::thread::Builder::new()
            .name("tf-keymap".to_owned())
            .spawn(write)
            .map_err(spilled)?
    };
    let linked = match subset {
        // Links put back as they were are left out of the patch: most
        // of the touched clusters' links keep their customer.
        Some(s) => {
            let unchanged = std::cell::RefCell::new(foldhash::HashSet::default());
            publication
                .patch_entity_with(
                    LINK,
                    s.links
                        .keys()
                        .filter(|l| !unchanged.borrow().contains(*l))
                        .map(|l| Value::Text(l.clone())),
                    |sink: &mut RowSink<'_>| {
                        fill_links(&mut ChangedLinks::new(sink, &s.links, &unchanged))
                    },
                )
                .map(drop)
        }
        None => publication
            .replace_entity_paged_with(LINK, "LinkId", &link_columns(), fill_links)
            .map(drop),
    };
    let written = move || match writing.join() {
        Ok(written) => written,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if let Err(e) = linked {
        drop(written());
        return Err(e);
    }
    // The file written, handed from the wait before the commit to the
    // install after it.
    let installing = std::rc::Rc::new(std::cell::RefCell::new(None));
    let (failed, wrote) = (keymap_path.clone(), installing.clone());
    publication.before_publish(move || {
        let file = written().map_err(|source| StoreError::Io {
            path: failed,
            source,
        })?;
        *wrote.borrow_mut() = Some(file);
        Ok(())
    });
    if counter != first_seq {
        save_customer_seq(store, counter)?;
    }
    if let Some(s) = subset {
        report.incremental = Some(Reunified {
            changed_rows: s.changed,
            records: u64::from(records),
            plan_ms,
        });
        report.merges = (s.previous_merges + report.merges).saturating_sub(s.seed_merges);
        report.matched_records =
            (s.previous_matched + report.matched_records).saturating_sub(s.seed_matched);
        report.source_rows = rows_to_map(ws, store, None);
    }
    incremental::stage_state(ws, store, publication, token)?;
    publication.after_publish(move || {
        let Some((keys, links)) = installing.borrow_mut().take() else {
            return;
        };
        tracing::debug!(whole = keys.is_whole(), "installing the key map");
        for file in std::iter::once(keys).chain(links) {
            if let Err(e) = file.install() {
                tracing::warn!(
                    "cannot install {} (the next refresh unifies everything or scans the links): {e}",
                    file.target().display()
                );
            }
        }
    });

    progress(Phase::Merge, u64::from(records), u64::from(records));
    report.merge_ms = ms_since(t);
    report.duration_ms = ms_since(started);
    tracing::info!(
        records,
        pairs_compared = report.comparisons,
        "unification matched"
    );
    Ok(report)
}

/// How many rows the map reads: the selected ones, or every source row.
fn rows_to_map(ws: &Workspace, store: &EntityDb, selection: Option<&Selection>) -> u64 {
    match selection {
        Some(s) => s.rowids.iter().map(|r| r.len() as u64).sum(),
        None => ws
            .unification
            .priority
            .iter()
            .filter_map(|&i| store.meta(&ws.sources[i].entity).ok())
            .map(|m| m.rows)
            .sum(),
    }
}

/// The columns of `CustomerSourceLink`.
pub(super) fn link_columns() -> Vec<(String, ColumnType)> {
    ["LinkId", CUSTOMER_ID, "Source", "SourceEntity", "SourceKey"]
        .into_iter()
        .map(|c| (c.to_owned(), ColumnType::String))
        .collect()
}

/// The match keys of the selected rows (see [`super::keymap`]).
pub(super) fn keys_of(
    ws: &Workspace,
    store: &EntityDb,
    types: &[ColumnType],
    selection: &Selection,
) -> Result<Vec<u64>, UnifyError> {
    let dir = store.temp_dir();
    let spilled = spilled(&dir);
    let mut keys = Partitions::new(&dir, 1).map_err(spilled)?;
    let mut recs = Spill::new_in(&dir).map_err(spilled)?;
    map_records(
        ws,
        store,
        types,
        &mut recs,
        &mut keys,
        Some(selection),
        &mut |_, _, _| {},
    )?;
    let mut out = Vec::new();
    let mut frames = recs.into_reader().map_err(spilled)?;
    while let Some(b) = frames.next_frame().map_err(spilled)? {
        let m = decode_member(b, ws.profile_fields.len()).map_err(spilled)?;
        out.extend(m.keys);
    }
    Ok(out)
}

/// Match keys per key partition (each partition's distinct keys are held in
/// memory while it is read).
const KEYS_PER_PARTITION: u64 = 250_000;
/// How many plain keys one key of a pair-comparing rule counts as, for
/// sizing partitions (it holds its fuzzy and guard values).
const PAIR_KEY_WEIGHT: u64 = 8;

/// How many partitions `amount` needs at `per` each.
fn partitions(amount: u64, per: u64) -> usize {
    usize::try_from(amount.div_ceil(per.max(1)))
        .unwrap_or(MAX_PARTITIONS)
        .clamp(1, MAX_PARTITIONS)
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::Table;

    /// Two text columns of every `CustomerSourceLink` row, in their order.
    fn link_pairs(store: &EntityDb, a: &str, b: &str) -> Vec<(String, String)> {
        let conn = store.session();
        let sql = format!("SELECT {a}, {b} FROM {} ORDER BY 1, 2", Table::of(LINK));
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// Unify one source's rows under `rules` (TOML); the clusters as sorted
    /// lists of row ids.
    fn clusters(rows: &[[&str; 6]], rules: &str) -> Vec<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[[sources]]\nname = \"s\"\npath = \"s.csv\"\nkey = \"Id\"\n\
             [sources.map]\nEmail = \"Email\"\nPhone = \"Phone\"\n\
             FirstName = \"First\"\nLastName = \"Last\"\nPostalCode = \"Zip\"\n{}",
            rules.replace("insights.", "")
        );
        let ws = super::super::workspace::parse_workspace_file(&dir.path().join("t.toml"), &toml)
            .unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let cols: Vec<(String, ColumnType)> = ["Id", "Email", "Phone", "First", "Last", "Zip"]
            .iter()
            .map(|c| (c.to_string(), ColumnType::String))
            .collect();
        let values = rows.iter().map(|r| {
            Ok(r.iter()
                .map(|v| {
                    if v.is_empty() {
                        Value::Null
                    } else {
                        Value::Text((*v).into())
                    }
                })
                .collect())
        });
        store.replace_entity("S", "Id", &cols, values).unwrap();
        let mut p = store.publication();
        unify(&ws, &mut p, false, &mut |_, _, _| {}).unwrap();
        p.publish().unwrap();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for (c, k) in link_pairs(&store, "CustomerId", "SourceKey") {
            match groups.last_mut() {
                Some((last, ks)) if *last == c => ks.push(k),
                _ => groups.push((c, vec![k])),
            }
        }
        let mut out: Vec<Vec<String>> = groups.into_iter().map(|(_, k)| k).collect();
        out.sort();
        out
    }

    /// One source `s` (entity `S`: a key `Id` of `key_type`, an `Email`)
    /// matched on e-mail, on a new store.
    struct EmailSource {
        _dir: tempfile::TempDir,
        ws: Workspace,
        store: EntityDb,
        cols: Vec<(String, ColumnType)>,
    }

    impl EmailSource {
        fn new(key_type: ColumnType) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let toml = "[[sources]]\nname = \"s\"\npath = \"s.csv\"\nkey = \"Id\"\n\
                 [sources.map]\nEmail = \"Email\"\n\
                 [[unification.rules]]\nfields = [\"Email\"]\n";
            let ws =
                super::super::workspace::parse_workspace_file(&dir.path().join("t.toml"), toml)
                    .unwrap();
            let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
            let cols = vec![
                ("Id".to_owned(), key_type),
                ("Email".to_owned(), ColumnType::String),
            ];
            Self {
                _dir: dir,
                ws,
                store,
                cols,
            }
        }

        /// Replace the source's rows: (key, e-mail).
        fn load(&self, rows: impl IntoIterator<Item = (Value, String)>) {
            let values = rows
                .into_iter()
                .map(|(k, e)| Ok::<_, StoreError>(vec![k, Value::Text(e)]));
            self.store
                .replace_entity("S", "Id", &self.cols, values)
                .unwrap();
        }

        /// A full unification, published.
        fn unify_all(&self) {
            let mut p = self.store.publication();
            unify(&self.ws, &mut p, true, &mut |_, _, _| {}).unwrap();
            p.publish().unwrap();
        }
    }

    /// A decimal key's text in SQL ("2.0") is not its `LinkId`'s: the
    /// previous customer is looked up row by row, and ids stay put.
    #[test]
    fn decimal_keys_keep_their_customers_from_one_full_unification_to_the_next() {
        let src = EmailSource::new(ColumnType::Decimal);
        let load = |rows: &[(f64, &str)]| {
            src.load(rows.iter().map(|(k, e)| (Value::Real(*k), (*e).to_owned())));
        };
        let ids = || link_pairs(&src.store, "LinkId", "CustomerId");
        let run = || src.unify_all();
        load(&[(1.5, "a@x"), (2.0, "b@x"), (3.0, "c@x")]);
        run();
        let first = ids();
        assert_eq!(first.len(), 3);
        // Record 1.5 leaves and b's twin arrives: b keeps its customer, the
        // newcomer joins it, and c keeps its own.
        load(&[(4.0, "b@x"), (2.0, "b@x"), (3.0, "c@x")]);
        run();
        let second = ids();
        let of = |ids: &[(String, String)], link: &str| {
            ids.iter().find(|(l, _)| l == link).map(|(_, c)| c.clone())
        };
        assert!(of(&first, "s/2").is_some(), "{first:?}");
        assert_eq!(
            of(&second, "s/2"),
            of(&first, "s/2"),
            "{first:?} -> {second:?}"
        );
        assert_eq!(of(&second, "s/4"), of(&first, "s/2"), "{second:?}");
        assert_eq!(
            of(&second, "s/3"),
            of(&first, "s/3"),
            "{first:?} -> {second:?}"
        );
    }

    /// A full unification after the first gives fresh ids (above every kept
    /// one) to new clusters among kept ones: those are fed last, so that
    /// customers reach their file in key order, none set aside.
    #[test]
    fn fresh_ids_among_kept_ones_come_last_and_customers_stay_in_key_order() {
        let src = EmailSource::new(ColumnType::String);
        let load = |rows: &[(&str, &str)]| {
            src.load(
                rows.iter()
                    .map(|(k, e)| (Value::Text((*k).into()), (*e).to_owned())),
            );
        };
        load(&[("k1", "a@x"), ("k3", "b@x"), ("k5", "c@x"), ("k7", "d@x")]);
        src.unify_all();
        // Newcomers between kept customers' records.
        load(&[
            ("k1", "a@x"),
            ("k2", "new1@x"),
            ("k3", "b@x"),
            ("k4", "new2@x"),
            ("k5", "c@x"),
            ("k7", "d@x"),
        ]);
        src.unify_all();
        let in_rowid_order: Vec<String> = src
            .store
            .read_snapshot(|c| {
                let sql = format!(
                    "SELECT CustomerId FROM {} ORDER BY rowid",
                    Table::of(CUSTOMER)
                );
                let mut stmt = c.prepare(&sql)?;
                let ids = stmt.query_map([], |r| r.get(0))?;
                ids.collect()
            })
            .unwrap();
        assert_eq!(
            in_rowid_order,
            [
                "C00000001",
                "C00000002",
                "C00000003",
                "C00000004",
                "C00000005",
                "C00000006"
            ]
        );
        let ids = link_pairs(&src.store, "LinkId", "CustomerId");
        let of = |link: &str| ids.iter().find(|(l, _)| l == link).map(|(_, c)| c.as_str());
        assert_eq!(
            (of("s/k2"), of("s/k4")),
            (Some("C00000005"), Some("C00000006"))
        );
    }

    /// Keys stored in no order (GUIDs): previous customers are gathered in
    /// key order and merged in by row; ids stay put as with ordered keys.
    #[test]
    fn scattered_keys_keep_their_customers_from_one_full_unification_to_the_next() {
        let src = EmailSource::new(ColumnType::String);
        let store = &src.store;
        let load = |rows: &[(String, String)]| {
            src.load(
                rows.iter()
                    .map(|(k, e)| (Value::Text(k.clone()), e.clone())),
            );
        };
        let run = || src.unify_all();
        // Pairs of records share an e-mail: one customer each pair.
        let keys = crate::store::scattered_keys(3000, 3);
        let rows: Vec<(String, String)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), format!("p{}@x", i / 2)))
            .collect();
        load(&rows);
        run();
        let first: HashMap<String, String> = link_pairs(store, "LinkId", "CustomerId")
            .into_iter()
            .collect();
        assert_eq!(first.len(), 3000);
        // Rows stored in another order, every tenth gone, and a newcomer
        // sharing the first pair's e-mail.
        let mut again: Vec<(String, String)> = rows
            .iter()
            .rev()
            .enumerate()
            .filter(|(i, _)| i % 10 != 0)
            .map(|(_, r)| r.clone())
            .collect();
        again.push(("new".into(), "p0@x".into()));
        load(&again);
        assert!(store.session().keys_stored_unordered("S", "Id").unwrap());
        run();
        let second: HashMap<String, String> = link_pairs(store, "LinkId", "CustomerId")
            .into_iter()
            .collect();
        assert_eq!(second.len(), again.len());
        for (k, _) in &again[..again.len() - 1] {
            let link = format!("s/{k}");
            assert_eq!(second.get(&link), first.get(&link), "{link}");
        }
        let pair_of_new = format!("s/{}", keys[0]);
        assert_eq!(second.get("s/new"), first.get(&pair_of_new));
    }

    #[test]
    fn derived_fields_let_sources_that_split_names_differently_match() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[[sources]]\nname = \"a\"\npath = \"a.csv\"\nkey = \"Id\"\n\
             [sources.map]\nFirstName = \"{Name|word 1}\"\nLastName = \"{Name|word -1}\"\n\
             FullName = \"{Name}\"\nPostalCode = \"Zip\"\n\
             [[sources]]\nname = \"b\"\npath = \"b.csv\"\nkey = \"Id\"\n\
             [sources.map]\nFirstName = \"First\"\nLastName = \"Last\"\n\
             FullName = \"{First} {Last}\"\nPostalCode = \"Zip\"\n\
             [unification]\npriority = [\"b\", \"a\"]\n\
             [[unification.rules]]\nfields = [\"FirstName\", \"LastName\", \"PostalCode\"]\n";
        let ws = super::super::workspace::parse_workspace_file(&dir.path().join("t.toml"), toml)
            .unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        let put = |entity: &str, cols: &[&str], rows: &[&[&str]]| {
            let cols: Vec<(String, ColumnType)> = cols
                .iter()
                .map(|c| (c.to_string(), ColumnType::String))
                .collect();
            let values = rows
                .iter()
                .map(|r| {
                    Ok(r.iter()
                        .map(|v| Value::Text((*v).into()))
                        .collect::<Vec<_>>())
                })
                .collect::<Vec<_>>();
            store.replace_entity(entity, "Id", &cols, values).unwrap();
        };
        put(
            "A",
            &["Id", "Name", "Zip"],
            &[
                &["a1", "Ann Marie Lee", "75001"],
                &["a2", "Bob Stone", "75002"],
            ],
        );
        put(
            "B",
            &["Id", "First", "Last", "Zip"],
            &[&["b1", "Ann", "Lee", "75001"]],
        );
        let mut p = store.publication();
        unify(&ws, &mut p, false, &mut |_, _, _| {}).unwrap();
        p.publish().unwrap();
        let conn = store.session();
        let customers: Vec<(String, String, String)> = conn
            .prepare(&format!(
                "SELECT FirstName, LastName, FullName FROM {} ORDER BY FirstName",
                Table::of(CUSTOMER)
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            customers,
            [
                ("Ann".into(), "Lee".into(), "Ann Lee".into()),
                ("Bob".into(), "Stone".into(), "Bob Stone".into()),
            ]
        );
    }

    #[test]
    fn match_rules_table() {
        const EMAIL: &str = "[[insights.unification.rules]]\nfields = [\"Email\"]\n";
        const PHONE: &str = "[[insights.unification.rules]]\nfields = [\"Phone\"]\n";
        const NAME_ZIP: &str =
            "[[insights.unification.rules]]\nfields = [\"FirstName\", \"LastName\", \"PostalCode\"]\n";
        const FUZZY_NAME_ZIP: &str = "[[insights.unification.rules]]\nfields = [\"FirstName\", \"LastName\", \"PostalCode\"]\nprecision = { FirstName = \"high\", LastName = \"high\" }\n";
        let all = format!("{EMAIL}{PHONE}{NAME_ZIP}");
        type Case<'a> = (&'a str, Vec<[&'a str; 6]>, String, Vec<Vec<&'a str>>);
        let cases: Vec<Case> = vec![
            (
                "e-mail: case, spaces and +tags",
                vec![
                    ["a", "Ann@Example.com", "", "", "", ""],
                    ["b", " ann+shop@example.COM ", "", "", "", ""],
                    ["c", "anne@example.com", "", "", "", ""],
                ],
                EMAIL.into(),
                vec![vec!["a", "b"], vec!["c"]],
            ),
            (
                "phone: national and international forms",
                vec![
                    ["a", "", "+33 6 12 34 56 78", "", "", ""],
                    ["b", "", "06.12.34.56.78", "", "", ""],
                    ["c", "", "06 12 34 56 79", "", "", ""],
                ],
                PHONE.into(),
                vec![vec!["a", "b"], vec!["c"]],
            ),
            (
                "transitive: a~b by e-mail, b~c by phone",
                vec![
                    ["a", "x@example.com", "", "", "", ""],
                    ["b", "X@example.com", "0611111111", "", "", ""],
                    ["c", "", "+33 611 111 111", "", "", ""],
                ],
                all.clone(),
                vec![vec!["a", "b", "c"]],
            ),
            (
                "a rule needs every field: no postal code, no match",
                vec![
                    ["a", "", "", "Élodie", "Lefèvre", "69003"],
                    ["b", "", "", "elodie ", "LEFEVRE", "69 003"],
                    ["c", "", "", "Elodie", "Lefevre", ""],
                ],
                NAME_ZIP.into(),
                vec![vec!["a", "b"], vec!["c"]],
            ),
            (
                "empty values never match each other",
                vec![["a", "", "", "", "", ""], ["b", "  ", "n/a", "", "", ""]],
                all.clone(),
                vec![vec!["a"], vec!["b"]],
            ),
            (
                "fuzzy names within one postal code: typos match, other names do not",
                vec![
                    ["a", "", "", "Marie", "Dubois", "75001"],
                    ["b", "", "", "Maire", "Duboiss", "75001"],
                    ["c", "", "", "Marie", "Dubois", "75002"],
                    ["d", "", "", "Mario", "Durand", "75001"],
                ],
                FUZZY_NAME_ZIP.into(),
                vec![vec!["a", "b"], vec!["c"], vec!["d"]],
            ),
            (
                "fuzzy: a letter doubled and an accent, with a guard one side lacks",
                vec![
                    [
                        "a",
                        "edufour241994@post.example",
                        "",
                        "Esmee",
                        "Dufour",
                        "55729",
                    ],
                    ["b", "", "", "Esmée", "Duufour", "55729"],
                ],
                format!("{FUZZY_NAME_ZIP}guards = [\"Email\"]\n"),
                vec![vec!["a", "b"]],
            ),
            (
                "a guard: the same name and postal code with two e-mails is two people",
                vec![
                    ["a", "jean@example.com", "", "Jean", "Martin", "75001"],
                    ["b", "jm@example.com", "", "Jean", "Martin", "75001"],
                    ["c", "JEAN@example.com", "", "Jean", "Martin", "75001"],
                    ["d", "", "", "Jean", "Martin", "13008"],
                ],
                format!("{NAME_ZIP}guards = [\"Email\"]\n"),
                vec![vec!["a", "c"], vec!["b"], vec!["d"]],
            ),
            (
                "the same name elsewhere is another person",
                vec![
                    ["a", "", "", "Jean", "Martin", "75001"],
                    ["b", "", "", "Jean", "Martin", "13008"],
                ],
                all,
                vec![vec!["a"], vec!["b"]],
            ),
        ];
        for (what, rows, rules, expected) in cases {
            let got = clusters(&rows, &rules);
            let expected: Vec<Vec<String>> = expected
                .into_iter()
                .map(|g| g.into_iter().map(str::to_owned).collect())
                .collect();
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn an_empty_source_unifies_into_no_customers() {
        assert!(clusters(
            &[],
            "[[insights.unification.rules]]\nfields = [\"Email\"]\n"
        )
        .is_empty());
    }

    /// Fuzzy values are compared on their first 256 characters; guards on
    /// the whole value (by digest).
    #[test]
    fn long_values_are_compared_by_their_head_and_guards_by_the_whole() {
        let long = |tail: &str| -> &'static str {
            Box::leak(format!("{}{tail}", "dubois".repeat(100)).into_boxed_str())
        };
        let email = |tail: &str| -> &'static str {
            Box::leak(format!("{}{tail}@example.com", "x".repeat(5000)).into_boxed_str())
        };
        let rows = vec![
            ["a", email("1"), "", "Marie", long("a"), "75001"],
            ["b", "", "", "Marie", long("b"), "75001"],
            ["c", email("2"), "", "Marie", long("c"), "75001"],
        ];
        let rules = "[[insights.unification.rules]]\nfields = [\"FirstName\", \"LastName\", \"PostalCode\"]\n\
                     precision = { LastName = \"high\" }\nguards = [\"Email\"]\n";
        // a~b and b~c by name (equal heads); a and c conflict on e-mail,
        // but b links them transitively.
        assert_eq!(clusters(&rows, rules), vec![vec!["a", "b", "c"]]);
        let rows = vec![
            ["a", email("1"), "", "Marie", long("a"), "75001"],
            ["c", email("2"), "", "Marie", long("c"), "75001"],
        ];
        assert_eq!(clusters(&rows, rules), vec![vec!["a"], vec!["c"]]);
    }
}
