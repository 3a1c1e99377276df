//! Several entities replaced as one: each is written to its staging table
//! (committed, but invisible to readers, who read the live tables), and
//! [`Publication::publish`] swaps them all in one transaction. A reader sees
//! every entity of the old generation or every one of the new, never a mix.

use std::sync::Arc;

use super::{EntityDb, EntityMeta, RowSink, StoreError, Table};
use crate::odata::{ColumnType, Schema};

/// One entity written but not yet published.
struct Staged {
    entity: String,
    key: String,
    columns: Vec<(String, ColumnType)>,
    rows: u64,
}

/// Entities replaced together; see the module docs. Dropped unpublished, it
/// removes its staging tables and the live data stays as it was.
pub struct Publication<'a> {
    store: &'a EntityDb,
    staged: Vec<Staged>,
}

impl EntityDb {
    /// Start replacing several entities as one.
    pub fn publication(&self) -> Publication<'_> {
        Publication {
            store: self,
            staged: Vec::new(),
        }
    }
}

impl<'a> Publication<'a> {
    /// The store written to.
    pub fn store(&self) -> &'a EntityDb {
        self.store
    }

    /// Stage new rows for `entity`, pushed by `fill` (see
    /// [`EntityDb::replace_entity_with`]; [`pushing`](super::pushing) pushes rows of an
    /// iterator); readers see them once published.
    pub fn replace_entity_with<E: From<StoreError>>(
        &mut self,
        entity: &str,
        key: &str,
        columns: &[(String, ColumnType)],
        fill: impl FnOnce(&mut RowSink<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let store = self.store;
        let mut conn = store.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| store.sql(e))?;
        let rows = store.fill_staging(&tx, entity, key, columns, fill)?;
        tx.commit().map_err(|e| store.sql(e))?;
        self.staged.retain(|s| s.entity != entity);
        self.staged.push(Staged {
            entity: entity.to_owned(),
            key: key.to_owned(),
            columns: columns.to_vec(),
            rows,
        });
        Ok(rows)
    }

    /// The table holding `entity`'s newest rows for the engine's own SQL:
    /// its staging table when staged here, else the live one.
    pub fn table(&self, entity: &str) -> String {
        if self.staged.iter().any(|s| s.entity == entity) {
            Table::staging(entity)
        } else {
            Table::of(entity).to_string()
        }
    }

    /// What `entity` will be once published: as staged here, else as the
    /// store has it (generation 0 while staged).
    pub fn meta(&self, entity: &str) -> Result<Arc<EntityMeta>, StoreError> {
        match self.staged.iter().find(|s| s.entity == entity) {
            Some(s) => Ok(Arc::new(EntityMeta {
                name: s.entity.clone(),
                key: s.key.clone(),
                schema: Schema {
                    columns: s.columns.clone(),
                },
                generation: 0,
                rows: s.rows,
            })),
            None => self.store.meta(entity),
        }
    }

    /// Entities staged so far, in staging order.
    pub fn entities(&self) -> Vec<&str> {
        self.staged.iter().map(|s| s.entity.as_str()).collect()
    }

    /// Make every staged entity live, in one transaction.
    pub fn publish(mut self) -> Result<(), StoreError> {
        let store = self.store;
        let staged = std::mem::take(&mut self.staged);
        if staged.is_empty() {
            return Ok(());
        }
        let result = (|| {
            let mut conn = store.conn();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| store.sql(e))?;
            for s in &staged {
                store.swap_in(&tx, &s.entity, &s.key, &s.columns, s.rows)?;
            }
            tx.commit().map_err(|e| store.sql(e))
        })();
        for s in &staged {
            store.forget(&s.entity);
        }
        if result.is_err() {
            self.staged = staged;
        }
        result
    }
}

impl Drop for Publication<'_> {
    fn drop(&mut self) {
        let conn = self.store.conn();
        for s in &self.staged {
            let sql = format!("DROP TABLE IF EXISTS {}", Table::staging(&s.entity));
            if let Err(e) = conn.execute_batch(&sql) {
                tracing::warn!(entity = %s.entity, "cannot drop an unpublished staging table: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pushing;
    use rusqlite::types::Value;

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("Id".to_owned(), ColumnType::String),
            ("N".to_owned(), ColumnType::Integer),
        ]
    }

    fn rows(n: i64) -> Vec<Result<Vec<Value>, StoreError>> {
        (0..n)
            .map(|i| Ok(vec![Value::Text(format!("r{i}")), Value::Integer(i)]))
            .collect()
    }

    #[test]
    fn staged_entities_stay_invisible_until_published_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        store.replace_entity("A", "Id", &cols(), rows(1)).unwrap();
        let mut p = store.publication();
        p.replace_entity_with("A", "Id", &cols(), pushing(rows(3)))
            .unwrap();
        p.replace_entity_with("B", "Id", &cols(), pushing(rows(2)))
            .unwrap();
        assert_eq!(p.table("A"), "\"ent_A__staging\"");
        assert_eq!(p.table("C"), "\"ent_C\"");
        assert_eq!(p.meta("A").unwrap().rows, 3);
        // Readers still see the old A and no B.
        assert_eq!(store.meta("A").unwrap().rows, 1);
        assert!(matches!(store.meta("B"), Err(StoreError::UnknownEntity(_))));
        p.publish().unwrap();
        assert_eq!(store.meta("A").unwrap().rows, 3);
        assert_eq!(store.meta("A").unwrap().generation, 2);
        assert_eq!(store.meta("B").unwrap().rows, 2);
    }

    #[test]
    fn an_unpublished_publication_leaves_the_live_data_and_no_staging_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
        store.replace_entity("A", "Id", &cols(), rows(1)).unwrap();
        {
            let mut p = store.publication();
            p.replace_entity_with("A", "Id", &cols(), pushing(rows(5)))
                .unwrap();
        }
        assert_eq!(store.meta("A").unwrap().rows, 1);
        let staging: i64 = store
            .session()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE '%staging%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(staging, 0);
    }
}
