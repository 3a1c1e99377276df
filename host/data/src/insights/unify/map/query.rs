//! One source's SELECT for the map, and its reader: the key, `updated_at`,
//! the mapped and derived columns, and the row's previous customer, joined
//! in, looked up row by row, or gathered in key order and merged by row.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::super::{Selection, UnifyError, LINK};
use super::text_into;
use crate::insights::template::Template;
use crate::insights::workspace::{SourceSpec, Workspace, CUSTOMER_ID};
use crate::store::{pipe, StoreError, Table};

/// A derived field in one source's SELECT: the profile field's index, its
/// template, and the template's columns with their SELECT positions.
pub(super) type Derived<'a> = (usize, &'a Template, Vec<(&'a str, usize)>);

/// How a source's rows find the customer they had at the last unification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Previous {
    /// No customers yet.
    None,
    /// Joined in by link id, as the last column.
    Joined,
    /// Keys stored in no order (GUIDs) would have the join probe the link
    /// table at random: their customers are gathered in key order first,
    /// then merged in by rowid.
    ByRow,
    /// Looked up row by row (a decimal key's text in SQL may differ from
    /// its `LinkId`: "1.0" and "1").
    LookedUp,
    /// Given by rowid with the selection (the incremental plan found
    /// them): no link is read.
    Given,
}

/// What one source's SELECT reads, and where.
pub(super) struct SourceQuery<'w> {
    sql: String,
    /// Profile field index -> position in the SELECT (after key and
    /// `updated_at`).
    pub slot: Vec<Option<usize>>,
    pub derived: Vec<Derived<'w>>,
    /// Where the previous customer is in a row fed (the row's rowid there
    /// in the SELECT, for [`Previous::ByRow`]).
    pub prev_at: usize,
    pub previous: Previous,
    /// Values fed per row.
    pub width: usize,
    source: &'w SourceSpec,
    /// For [`Previous::Given`]: the rows' customers by rowid.
    given: Option<&'w foldhash::HashMap<i64, String>>,
}

impl<'w> SourceQuery<'w> {
    /// The SELECT of the workspace's source `si`. `decimal_key`: its key
    /// is stored as a decimal; `unordered`: its text keys are stored in no
    /// order.
    pub fn new(
        ws: &'w Workspace,
        si: usize,
        link_exists: bool,
        decimal_key: bool,
        unordered: bool,
        selection: Option<&'w Selection>,
    ) -> Self {
        let s = &ws.sources[si];
        let nf = ws.profile_fields.len();
        let mut select = vec![format!("s.\"{}\"", s.key)];
        select.push(
            s.updated_at
                .as_ref()
                .map_or("NULL".to_owned(), |u| format!("s.\"{u}\"")),
        );
        let mut slot: Vec<Option<usize>> = vec![None; nf];
        for (field, column) in &s.map {
            if let Some(i) = ws.profile_fields.iter().position(|f| f == field) {
                slot[i] = Some(select.len());
                select.push(format!("s.\"{column}\""));
            }
        }
        let mut derived: Vec<Derived<'_>> = Vec::new();
        for (field, template) in &s.derived {
            if let Some(i) = ws.profile_fields.iter().position(|f| f == field) {
                let cols = template
                    .columns()
                    .into_iter()
                    .map(|c| {
                        select.push(format!("s.\"{c}\""));
                        (c, select.len() - 1)
                    })
                    .collect();
                derived.push((i, template, cols));
            }
        }
        let given = selection.map(|sel| sel.previous.as_ref().and_then(|p| p.get(si)));
        let previous = match (link_exists, decimal_key, given) {
            (false, _, _) => Previous::None,
            (true, true, _) => Previous::LookedUp,
            (true, false, Some(Some(_))) => Previous::Given,
            // Only the rows' keys are wanted.
            (true, false, Some(None)) => Previous::None,
            (true, false, None) if unordered => Previous::ByRow,
            (true, false, None) => Previous::Joined,
        };
        let prev_at = select.len();
        let (entity, link) = (Table::of(&s.entity), Table::of(LINK));
        let mut sql = match previous {
            Previous::ByRow => {
                // The row's rowid in the customer's place, to merge by.
                select.push("s.rowid".to_owned());
                format!(
                    "SELECT {} FROM {entity} AS s ORDER BY s.rowid",
                    select.join(", ")
                )
            }
            Previous::Given => {
                // The row's rowid in the customer's place, to look it up by
                // (the selection orders the rows).
                select.push("s.rowid".to_owned());
                format!("SELECT {} FROM {entity} AS s", select.join(", "))
            }
            Previous::Joined => {
                select.push(format!("l.\"{CUSTOMER_ID}\""));
                format!(
                    "SELECT {} FROM {entity} AS s LEFT JOIN {link} AS l ON l.\"LinkId\" = ?1 || '/' || s.\"{}\"",
                    select.join(", "),
                    s.key
                )
            }
            Previous::None | Previous::LookedUp => {
                format!("SELECT {} FROM {entity} AS s", select.join(", "))
            }
        };
        // Only the selected rows (in `temp.tf_selected`), in the order a
        // full run reads them.
        if selection.is_some() {
            sql.push_str(" WHERE s.rowid IN (SELECT v FROM temp.tf_selected) ORDER BY s.rowid");
        }
        let width = select.len() + usize::from(previous == Previous::LookedUp);
        Self {
            sql,
            slot,
            derived,
            prev_at,
            previous,
            width,
            source: s,
            given: given.flatten().filter(|_| previous == Previous::Given),
        }
    }

    /// Whether rows carry their previous customer.
    pub fn has_previous(&self) -> bool {
        self.previous != Previous::None
    }

    /// Feed every row read into `feed` (on the reading thread), tagged
    /// with its place in the source's rows (from 0).
    pub fn read(
        &self,
        db: &mut Connection,
        e: &impl Fn(rusqlite::Error) -> StoreError,
        feed: &mut pipe::Feed,
    ) -> Result<(), UnifyError> {
        let name = &self.source.name;
        let mut stmt = db.prepare(&self.sql).map_err(e)?;
        let mut prev_of = match self.previous {
            Previous::LookedUp => Some(db.prepare(&previous_by_link()).map_err(e)?),
            _ => None,
        };
        let by_row = self.previous == Previous::ByRow;
        let mut by_row_stmt = match by_row {
            true => {
                let sql = previous_by_row(&self.source.entity, &self.source.key);
                Some(db.prepare(&sql).map_err(e)?)
            }
            false => None,
        };
        let mut pairs = match by_row_stmt.as_mut() {
            Some(q) => Some(q.query([name]).map_err(e)?),
            None => None,
        };
        // The pairs' current rowid (None before the first and after the
        // last) and customer.
        let (mut pair_at, mut pair_id, mut pair_has) = (None::<i64>, String::new(), false);
        let mut pairs_done = false;
        let mut rows = match self.previous {
            Previous::Joined => stmt.query([name]).map_err(e)?,
            _ => stmt.query([]).map_err(e)?,
        };
        let fed = match by_row || self.given.is_some() {
            true => self.prev_at,
            false => self.width - usize::from(prev_of.is_some()),
        };
        let (mut link, mut key) = (String::new(), String::new());
        let mut n: u64 = 0;
        while let Some(r) = rows.next().map_err(e)? {
            for i in 0..fed {
                feed.value(r.get_ref(i).map_err(e)?);
            }
            if let Some(pairs) = pairs.as_mut() {
                // Both in rowid order: move the pairs up to this row.
                let rowid: i64 = r.get(self.prev_at).map_err(e)?;
                while !pairs_done && pair_at.is_none_or(|at| at < rowid) {
                    match pairs.next().map_err(e)? {
                        Some(p) => {
                            pair_at = Some(p.get(0).map_err(e)?);
                            pair_has = text_into(p.get_ref(1).map_err(e)?, &mut pair_id);
                        }
                        None => (pairs_done, pair_at) = (true, None),
                    }
                }
                feed.value(match pair_at == Some(rowid) && pair_has {
                    true => ValueRef::Text(pair_id.as_bytes()),
                    false => ValueRef::Null,
                });
            }
            if let Some(given) = self.given {
                let rowid: i64 = r.get(self.prev_at).map_err(e)?;
                feed.value(
                    given
                        .get(&rowid)
                        .map_or(ValueRef::Null, |p| ValueRef::Text(p.as_bytes())),
                );
            }
            if let Some(q) = prev_of.as_mut() {
                text_into(r.get_ref(0).map_err(e)?, &mut key);
                link.clear();
                link.push_str(name);
                link.push('/');
                link.push_str(&key);
                let found: Option<String> =
                    q.query_row([&link], |r| r.get(0)).optional().map_err(e)?;
                feed.value(
                    found
                        .as_deref()
                        .map_or(ValueRef::Null, |p| ValueRef::Text(p.as_bytes())),
                );
            }
            feed.end_row(n)?;
            n += 1;
        }
        Ok(())
    }
}

/// A row's previous customer by its link id.
fn previous_by_link() -> String {
    format!(
        "SELECT \"{CUSTOMER_ID}\" FROM {} WHERE \"LinkId\" = ?1",
        Table::of(LINK)
    )
}

/// (rowid of a row of a source stored as `entity` with the text key `key`;
/// its previous customer), in rowid order, for the source named `?1`. The
/// link table is read in link id order and the key index probed in key
/// order, both in sequence, and SQLite's sorter (which spills to files)
/// puts the pairs in row order.
fn previous_by_row(entity: &str, key: &str) -> String {
    // CROSS JOIN keeps the link table outside: its range is one source's.
    format!(
        "SELECT s.rowid, l.\"{CUSTOMER_ID}\" FROM {} AS l CROSS JOIN {} AS s \
         WHERE l.\"LinkId\" > ?1 || '/' AND l.\"LinkId\" < ?1 || '0' \
         AND s.\"{key}\" = substr(l.\"LinkId\", length(?1) + 2) ORDER BY s.rowid",
        Table::of(LINK),
        Table::of(entity),
    )
}
