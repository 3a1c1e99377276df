//! Unification quality against a known truth: the `truth.csv` that
//! `demo generate` writes (`source,key,person` per record) compared with the
//! clusters in `CustomerSourceLink`, as pairwise precision and recall.

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;

use crate::generate::{pair_scores, Scores};
use triggerfish_data::insights::unify::LINK;
use triggerfish_data::store::{EntityDb, StoreError, Table};

/// Why scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{}: {source}", path.display())]
    Truth { path: PathBuf, source: csv::Error },
    #[error("{}, line {line}: expected source,key,person", path.display())]
    Shape { path: PathBuf, line: u64 },
    #[error(transparent)]
    EntityDb(#[from] StoreError),
    #[error("record {link} of the truth is not in {LINK}: refresh the workspace first")]
    Missing { link: String },
}

/// Score the clusters in `store` against the truth file.
pub fn score_store(store: &EntityDb, truth: &Path) -> Result<Scores, ScoreError> {
    let sql = |source| StoreError::Sqlite {
        path: store.path().to_owned(),
        source,
    };
    let mut reader = csv::Reader::from_path(truth).map_err(|source| ScoreError::Truth {
        path: truth.to_owned(),
        source,
    })?;
    let conn = store.session();
    let mut get = conn
        .prepare(&format!(
            "SELECT \"CustomerId\" FROM {} WHERE \"LinkId\" = ?1",
            Table::of(LINK)
        ))
        .map_err(sql)?;
    let mut assignments = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|source| ScoreError::Truth {
            path: truth.to_owned(),
            source,
        })?;
        let (Some(source), Some(key), Some(person)) = (rec.get(0), rec.get(1), rec.get(2)) else {
            return Err(ScoreError::Shape {
                path: truth.to_owned(),
                line: n as u64 + 2,
            });
        };
        let link = format!("{source}/{key}");
        let cluster: Option<String> = get
            .query_row([&link], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        let cluster = cluster.ok_or(ScoreError::Missing { link })?;
        assignments.push((cluster, person.to_owned()));
    }
    Ok(pair_scores(assignments))
}
