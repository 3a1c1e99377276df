//! Partitions: each import of a source entity (each file of a glob, each
//! refresh of a database source) is a partition with an id, its origin, its
//! row count and its time. An entity imported from several files keeps which
//! partition each key came from in `"ent_<entity>__parts"`; an entity held
//! whole (one file, a database, the engine's output, a writable entity) has
//! one partition covering every row.

use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{EntityDb, StoreError};

/// The partition registry.
pub const PARTITIONS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _tf_partitions (
    entity TEXT NOT NULL,
    n INTEGER NOT NULL,
    id TEXT NOT NULL,
    origin TEXT NOT NULL,
    rows INTEGER NOT NULL,
    refreshed_at TEXT NOT NULL,
    PRIMARY KEY (entity, n)
);
";

/// The id of the one partition of an entity held whole.
pub const WHOLE: &str = "all";

/// One partition of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// `<generation>-<n>`: valid until the entity's next import.
    pub id: String,
    /// A file (relative to the source's folder), `postgres: <relation>`, or
    /// `entity` for an entity held whole.
    pub origin: String,
    pub rows: u64,
    /// RFC 3339, UTC.
    pub refreshed_at: String,
}

/// The table of keys by partition of `entity`.
pub(super) fn members(entity: &str) -> String {
    format!("\"ent_{entity}__parts\"")
}

/// Its staging table, filled during an import.
pub(super) fn members_staging(entity: &str) -> String {
    format!("\"ent_{entity}__parts_staging\"")
}

/// What an import noted of its partitions: (origin, first row count) for
/// each. With more than one, the import kept each key's partition.
#[derive(Debug, Default)]
pub(super) struct Noted {
    pub starts: Vec<(String, u64)>,
}

/// Record the partitions of `entity`'s import that was just swapped in
/// (inside its transaction): its registry rows and key table replace the
/// old ones. An import that noted none leaves the entity held whole.
/// `in_file`: the import went to a file of its own, which holds its key
/// table under its final name already.
pub(super) fn record(
    tx: &rusqlite::Transaction<'_>,
    entity: &str,
    noted: &Noted,
    total: u64,
    in_file: bool,
) -> rusqlite::Result<()> {
    tx.execute_batch(PARTITIONS_SCHEMA)?;
    tx.execute("DELETE FROM _tf_partitions WHERE entity = ?1", [entity])?;
    tx.execute_batch(&format!("DROP TABLE IF EXISTS main.{}", members(entity)))?;
    if noted.starts.is_empty() {
        return Ok(());
    }
    let generation: i64 = tx.query_row(
        "SELECT generation FROM _tf_entities WHERE name = ?1",
        [entity],
        |r| r.get(0),
    )?;
    let now = crate::event::now_rfc3339();
    for (i, (origin, start)) in noted.starts.iter().enumerate() {
        let end = noted.starts.get(i + 1).map_or(total, |(_, s)| *s);
        let n = i as i64 + 1;
        tx.execute(
            "INSERT INTO _tf_partitions (entity, n, id, origin, rows, refreshed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                entity,
                n,
                format!("{generation}-{n}"),
                origin,
                i64::try_from(end.saturating_sub(*start)).unwrap_or(i64::MAX),
                now
            ],
        )?;
    }
    if noted.starts.len() > 1 && !in_file {
        tx.execute_batch(&format!(
            "ALTER TABLE {} RENAME TO {}",
            members_staging(entity),
            members(entity)
        ))?;
    }
    Ok(())
}

/// How a page is restricted to one partition.
pub(super) enum Restriction {
    /// The partition is every row.
    None,
    /// Only keys in partition `n` of the key table.
    Keys(i64),
}

impl EntityDb {
    /// The partitions of `entity`, in import order.
    pub fn partitions(&self, entity: &str) -> Result<Vec<Partition>, StoreError> {
        let meta = self.meta(entity)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, origin, rows, refreshed_at FROM _tf_partitions WHERE entity = ?1 ORDER BY n",
            )
            .map_err(|e| self.sql(e))?;
        let parts = stmt
            .query_map([entity], |r| {
                Ok(Partition {
                    id: r.get(0)?,
                    origin: r.get(1)?,
                    rows: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    refreshed_at: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        if !parts.is_empty() {
            return Ok(parts);
        }
        let updated: String = conn
            .query_row(
                "SELECT updated_at FROM _tf_entities WHERE name = ?1",
                [entity],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .unwrap_or_default();
        Ok(vec![Partition {
            id: WHOLE.into(),
            origin: "entity".into(),
            rows: meta.rows,
            refreshed_at: updated,
        }])
    }

    /// How to restrict a page of `entity` to partition `id`.
    pub(super) fn restriction(&self, entity: &str, id: &str) -> Result<Restriction, StoreError> {
        let unknown = || StoreError::UnknownPartition {
            entity: entity.to_owned(),
            partition: super::quoted(id),
        };
        // (n of `id`, partitions of the entity): an entity with several
        // has its key table; one with none is held whole, as `all`.
        let (n, count): (Option<i64>, i64) = self
            .conn()
            .query_row(
                "SELECT (SELECT n FROM _tf_partitions WHERE entity = ?1 AND id = ?2),
                        (SELECT count(*) FROM _tf_partitions WHERE entity = ?1)",
                params![entity, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))?;
        match n {
            Some(n) if count > 1 => Ok(Restriction::Keys(n)),
            Some(_) => Ok(Restriction::None),
            None if count == 0 && id == WHOLE => Ok(Restriction::None),
            None => Err(unknown()),
        }
    }
}

/// SQL and parameters restricting the rows of `entity`'s table to
/// partition `n`: one key lookup per row the page visits (correlated), so a
/// page costs about the same whatever page it is. (`IN (SELECT …)` rebuilt
/// the partition's key set for every page: 99x slower, BENCHMARKS.md.)
pub(super) fn keys_in(entity: &str, key: &str, n: i64) -> (String, Vec<Value>) {
    (
        format!(
            "EXISTS (SELECT 1 FROM {} AS _tf_m WHERE _tf_m.k = {}.\"{key}\" AND _tf_m.p = ?)",
            members(entity),
            super::Table::of(entity)
        ),
        vec![Value::Integer(n)],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{import, ImportSpec, PageLimits, PageRequest};

    fn import_files(db: &EntityDb, dir: &std::path::Path, files: &[std::path::PathBuf]) {
        let types = BTreeMap::new();
        import(
            &ImportSpec {
                root: Some(dir),
                ..ImportSpec::new(files, &types, "Id")
            },
            db,
            "Orders",
        )
        .unwrap();
    }

    #[test]
    fn each_file_is_a_partition_that_pages_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        let mut files = Vec::new();
        // Files of more than one insert chunk (eight rows) after the first,
        // whose rows are noted by partition a chunk at a time.
        for (f, ids) in [("a.csv", 0..5), ("b.csv", 5..25), ("c.csv", 25..34)] {
            let mut text = "Id,Amount\n".to_owned();
            for i in ids {
                // Integer keys are the table's rowid: partitions must not
                // rely on insertion order.
                text.push_str(&format!("{},{i}\n", 100 - i));
            }
            let path = dir.path().join(f);
            std::fs::write(&path, text).unwrap();
            files.push(path);
        }
        import_files(&db, dir.path(), &files);
        let parts = db.partitions("Orders").unwrap();
        let shown: Vec<(&str, u64)> = parts.iter().map(|p| (p.origin.as_str(), p.rows)).collect();
        assert_eq!(shown, [("a.csv", 5), ("b.csv", 20), ("c.csv", 9)]);
        let mut seen = Vec::new();
        let mut skip = None;
        loop {
            let page = db
                .get_page(
                    "t",
                    "Orders",
                    &PageRequest {
                        top: Some(3),
                        skip,
                        partition: Some(parts[1].id.clone()),
                        ..PageRequest::default()
                    },
                )
                .unwrap();
            seen.extend(page.items.iter().map(|i| i["Amount"].as_i64().unwrap()));
            match page.next_skip {
                Some(n) => skip = Some(n),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, (5..25).collect::<Vec<i64>>());

        // A new import: new ids; the old ones are refused by name.
        import_files(&db, dir.path(), &files[..1]);
        let parts2 = db.partitions("Orders").unwrap();
        assert_eq!(parts2.len(), 1);
        assert_ne!(parts2[0].id, parts[0].id);
        let err = db
            .get_page(
                "t",
                "Orders",
                &PageRequest {
                    partition: Some(parts[1].id.clone()),
                    ..PageRequest::default()
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("entity 'Orders' has no partition '{}' (partitions change with each import; list them again)", parts[1].id)
        );
        let all = db
            .get_page(
                "t",
                "Orders",
                &PageRequest {
                    partition: Some(parts2[0].id.clone()),
                    ..PageRequest::default()
                },
            )
            .unwrap();
        assert_eq!(all.items.len(), 5);
    }

    #[test]
    fn an_entity_held_whole_has_one_partition() {
        let dir = tempfile::tempdir().unwrap();
        let db = EntityDb::open(&dir.path().join("s.sqlite"), PageLimits::default()).unwrap();
        db.replace_entity(
            "Customer",
            "Id",
            &[("Id".into(), crate::odata::ColumnType::String)],
            vec![Ok(vec![Value::Text("a".into())])],
        )
        .unwrap();
        let parts = db.partitions("Customer").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].id.as_str(), parts[0].rows), (WHOLE, 1));
        assert!(db.partitions("Nope").is_err());
    }
}
