//! The map stage: each source row (or each selected one), in priority
//! order, read on a thread of its own ([`query`]); its profile values typed,
//! derived and normalised; the record to the records file and each rule's
//! match key to the key partitions.

use std::hash::Hasher;

use rusqlite::types::{Value, ValueRef};

use super::super::normalize::{normalize_into, Buffers, Normalizer};
use super::super::similarity::{self, Precision};
use super::super::spill::{Frame, Partitions, Spill};
use super::{
    rows_to_map, spilled, sql, Phase, Progress, Selection, UnifyError, LINK, PROGRESS_EVERY,
};
use crate::insights::workspace::Workspace;
use crate::odata::ColumnType;
use crate::store::{pipe, EntityDb, StoreError};

mod query;

use query::SourceQuery;

/// [`text_into`] as a new string.
pub(in crate::insights) fn as_text(v: &Value) -> Option<String> {
    let mut text = String::new();
    text_into(ValueRef::from(v), &mut text).then_some(text)
}

/// Where the map finds a profile value of the current row.
#[derive(Clone, Copy)]
enum Cell {
    Null,
    /// The row's own value at this position.
    Row(usize),
    /// An integer read for a decimal field.
    Real(f64),
    /// Text in the field's buffer: a number read for a text field, a
    /// derived value, or invalid UTF-8 made valid.
    Converted,
}

/// Put the text a normaliser sees for `v` (and a key's text in `LinkId`)
/// into `out`; false, with `out` empty, when it has none.
fn text_into(v: ValueRef<'_>, out: &mut String) -> bool {
    use std::fmt::Write as _;
    out.clear();
    match v {
        ValueRef::Null | ValueRef::Blob(_) => return false,
        ValueRef::Integer(n) => {
            let _ = write!(out, "{n}");
        }
        ValueRef::Real(x) => {
            let _ = write!(out, "{x}");
        }
        ValueRef::Text(t) => out.push_str(&String::from_utf8_lossy(t)),
    }
    true
}

/// A profile value of the current row, its text checked once.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
}

impl<'a> Val<'a> {
    fn as_ref(self) -> ValueRef<'a> {
        match self {
            Val::Null => ValueRef::Null,
            Val::Integer(n) => ValueRef::Integer(n),
            Val::Real(x) => ValueRef::Real(x),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
        }
    }
}

/// The normalised text of a profile value, in `buffers` (`number` holds a
/// number's text); `None` when nothing is left to compare.
fn normalized<'b>(
    chain: &[Normalizer],
    v: Val<'_>,
    number: &mut String,
    buffers: &'b mut Buffers,
) -> Option<&'b str> {
    match v {
        Val::Null => None,
        Val::Text(t) => normalize_into(chain, t, buffers),
        v => {
            text_into(v.as_ref(), number);
            normalize_into(chain, number, buffers)
        }
    }
}

/// Write a key's text (or a number's; empty for none) to `frame`, invalid
/// UTF-8 made valid.
fn frame_text(frame: &mut Frame, v: ValueRef<'_>, number: &mut String) {
    match v {
        ValueRef::Text(t) => frame.str(&String::from_utf8_lossy(t)),
        v => {
            text_into(v, number);
            frame.str(number);
        }
    }
}

/// [`frame_text`] as an optional text: none for NULL.
fn frame_opt_text(frame: &mut Frame, v: ValueRef<'_>, number: &mut String) {
    match v {
        ValueRef::Null | ValueRef::Blob(_) => frame.opt_str(None),
        ValueRef::Text(t) => frame.opt_str(Some(&String::from_utf8_lossy(t))),
        v => {
            text_into(v, number);
            frame.opt_str(Some(number));
        }
    }
}

/// The profile field types: a field's type when every source mapping it
/// agrees, decimal for integer and decimal, string otherwise.
pub(super) fn profile_types(
    ws: &Workspace,
    store: &EntityDb,
) -> Result<Vec<ColumnType>, UnifyError> {
    let mut types: Vec<Option<ColumnType>> = vec![None; ws.profile_fields.len()];
    for s in &ws.sources {
        let meta = store.meta(&s.entity).map_err(|e| match e {
            StoreError::UnknownEntity(_) => UnifyError::NoData {
                source_name: s.name.clone(),
                entity: s.entity.clone(),
            },
            e => e.into(),
        })?;
        for (field, column) in &s.map {
            let t = meta
                .schema
                .get(column)
                .ok_or_else(|| UnifyError::MissingColumn {
                    source_name: s.name.clone(),
                    entity: s.entity.clone(),
                    column: column.clone(),
                    field: field.clone(),
                })?;
            let Some(i) = ws.profile_fields.iter().position(|f| f == field) else {
                continue;
            };
            types[i] = Some(match (types[i], t) {
                (None, t) => t,
                (Some(a), b) if a == b => a,
                (Some(ColumnType::Integer), ColumnType::Decimal)
                | (Some(ColumnType::Decimal), ColumnType::Integer) => ColumnType::Decimal,
                _ => ColumnType::String,
            });
        }
        // Derived fields are text; the columns they read must exist.
        for (field, template) in &s.derived {
            for column in template.columns() {
                if meta.schema.get(column).is_none() {
                    return Err(UnifyError::MissingColumn {
                        source_name: s.name.clone(),
                        entity: s.entity.clone(),
                        column: column.to_owned(),
                        field: field.clone(),
                    });
                }
            }
            if let Some(i) = ws.profile_fields.iter().position(|f| f == field) {
                types[i] = Some(ColumnType::String);
            }
        }
    }
    Ok(types
        .into_iter()
        .map(|t| t.unwrap_or(ColumnType::String))
        .collect())
}

/// A 128-bit hash of a rule's key parts: two keys are equal when their
/// hashes are (a collision among a billion keys has odds of about 1e-21).
/// SipHash-1-3 with fixed keys over a specified encoding, so the hashes the
/// key map keeps mean the same to the next build.
struct KeyHasher(siphasher::sip128::SipHasher13);

impl KeyHasher {
    fn new(rule: usize) -> Self {
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x7472_6967, 0x6669_7368);
        h.write(&(rule as u64).to_le_bytes());
        Self(h)
    }

    /// Add the next part (length-prefixed, so parts cannot run together).
    fn part(&mut self, s: &str) {
        self.0.write(&(s.len() as u64).to_le_bytes());
        self.0.write(s.as_bytes());
    }

    fn finish(&self) -> u128 {
        use siphasher::sip128::Hasher128 as _;
        self.0.finish128().as_u128()
    }
}

/// [`KeyHasher`] over whole parts.
fn key_hash(rule: usize, parts: &[&str]) -> u128 {
    let mut h = KeyHasher::new(rule);
    parts.iter().for_each(|p| h.part(p));
    h.finish()
}

/// What the map found besides the records it wrote.
pub(super) struct Mapped {
    pub records: u32,
    /// Per source: its text keys are stored in no order (see
    /// [`keys_unordered`]).
    pub unordered: Vec<bool>,
    /// Each source's records, in priority order: (source index, first
    /// record, the record after its last).
    pub ranges: Vec<(usize, u32, u32)>,
}

/// Stream every source's rows to `recs` (in record order) and their match
/// keys to `keys`.
pub(super) fn map_records(
    ws: &Workspace,
    store: &EntityDb,
    types: &[ColumnType],
    recs: &mut Spill,
    keys: &mut Partitions,
    selection: Option<&Selection>,
    progress: Progress<'_>,
) -> Result<Mapped, UnifyError> {
    let total = rows_to_map(ws, store, selection);
    let dir = store.temp_dir();
    let spilled = spilled(&dir);
    // (Asked before taking the connection, which `meta` needs too.)
    let link_exists = store.meta(LINK).is_ok();
    let decimal_key: Vec<bool> = ws
        .sources
        .iter()
        .map(|s| {
            store
                .meta(&s.entity)
                .ok()
                .and_then(|m| m.schema.get(&s.key))
                == Some(ColumnType::Decimal)
        })
        .collect();
    let unordered: Vec<bool> = (0..ws.sources.len())
        .map(|si| keys_unordered(ws, store, si))
        .collect();
    let mut conn = store.session();
    let e = sql(store);
    let mut rec: u32 = 0;
    let mut ranges = Vec::with_capacity(ws.unification.priority.len());
    for &si in &ws.unification.priority {
        let first = rec;
        let src = u16::try_from(si).map_err(|_| UnifyError::TooManyRows)?;
        let query = SourceQuery::new(
            ws,
            si,
            link_exists,
            decimal_key[si],
            unordered[si],
            selection,
        );
        if let Some(sel) = selection {
            let rowids = sel.rowids.get(si).map_or(&[][..], Vec::as_slice);
            conn.temp_set("tf_selected", "INTEGER", rowids)
                .map_err(&e)?;
        }
        // SQLite reads on a thread of its own, workers map its rows, and
        // this thread writes them in order.
        let db: &mut rusqlite::Connection = &mut conn;
        let (e, q) = (&e, &query);
        let nparts = keys.len();
        let mappers: Vec<RowMapper<'_>> = (0..map_workers())
            .map(|_| RowMapper::new(ws, types))
            .collect();
        pipe::run_worked(
            move |feed: &mut pipe::Feed| q.read(db, e, feed),
            mappers,
            |mapper, rows, out| {
                for &(n, r) in rows {
                    if r.len() != q.width {
                        return Err(spilled(std::io::Error::other(
                            "a source row of another width",
                        )));
                    }
                    let at = u64::from(first)
                        .checked_add(n)
                        .and_then(|at| u32::try_from(at).ok())
                        .ok_or(UnifyError::TooManyRows)?;
                    mapper.map_row(q, (src, at), r, nparts, out);
                }
                Ok(())
            },
            |mapped| {
                let before = rec;
                let written = write_mapped(mapped, keys, recs).map_err(spilled)?;
                rec = rec.checked_add(written).ok_or(UnifyError::TooManyRows)?;
                if u64::from(before) / PROGRESS_EVERY != u64::from(rec) / PROGRESS_EVERY {
                    progress(Phase::Map, u64::from(rec), total);
                }
                Ok(())
            },
        )?;
        ranges.push((si, first, rec));
    }
    if selection.is_some() {
        conn.execute_batch("DROP TABLE IF EXISTS temp.tf_selected")
            .map_err(&e)?;
    }
    progress(Phase::Map, u64::from(rec), total);
    Ok(Mapped {
        records: rec,
        unordered,
        ranges,
    })
}

/// Threads mapping rows while one reads them and another writes: one a
/// core, from 2 to 4.
fn map_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(2, 4)
}

/// Add one mapped frame to `out`: a match key for key partition `part`, or
/// (none) a record. Each is a tag byte, the partition, the length and the
/// bytes.
fn put_mapped(out: &mut Vec<u8>, part: Option<u32>, bytes: &[u8]) {
    out.push(u8::from(part.is_some()));
    out.extend_from_slice(&part.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Write the frames of [`put_mapped`] to `keys` and `recs`; how many
/// records there were.
fn write_mapped(
    mut mapped: &[u8],
    keys: &mut Partitions,
    recs: &mut Spill,
) -> std::io::Result<u32> {
    let cut = || std::io::Error::other("a mapped frame cut short");
    let mut records = 0;
    while let Some((head, rest)) = mapped.split_first_chunk::<9>() {
        let [is_key, p0, p1, p2, p3, l0, l1, l2, l3] = *head;
        let part = u32::from_le_bytes([p0, p1, p2, p3]);
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let (bytes, rest) = rest.split_at_checked(len).ok_or_else(cut)?;
        match is_key {
            1 => keys.write(part as usize, bytes)?,
            _ => {
                recs.write(bytes)?;
                records += 1;
            }
        }
        mapped = rest;
    }
    match mapped.is_empty() {
        true => Ok(records),
        false => Err(cut()),
    }
}

/// Maps rows to records and match keys, with buffers reused from row to
/// row: the row's own text is borrowed, and only what is converted or
/// normalised is written, into these.
struct RowMapper<'w> {
    ws: &'w Workspace,
    types: &'w [ColumnType],
    /// Per profile field: where its value is, and its converted text.
    cells: Vec<Cell>,
    converted: Vec<String>,
    number: String,
    buffers: Buffers,
    fuzzy_parts: Vec<String>,
    hashes: Vec<u64>,
    frame: Frame,
    key: Frame,
}

impl<'w> RowMapper<'w> {
    fn new(ws: &'w Workspace, types: &'w [ColumnType]) -> Self {
        let nf = ws.profile_fields.len();
        Self {
            ws,
            types,
            cells: vec![Cell::Null; nf],
            converted: vec![String::new(); nf],
            number: String::new(),
            buffers: Buffers::default(),
            fuzzy_parts: Vec::new(),
            hashes: Vec::new(),
            frame: Frame::default(),
            key: Frame::default(),
        }
    }

    /// Map row `r` of source `src`, read by `q`, to record `rec`: each
    /// rule's match key (for one of `nparts` key partitions), then the
    /// record, to `out` ([`put_mapped`]).
    fn map_row(
        &mut self,
        q: &SourceQuery<'_>,
        (src, rec): (u16, u32),
        r: &[ValueRef<'_>],
        nparts: usize,
        out: &mut Vec<u8>,
    ) {
        let at = |i: usize| r.get(i).copied().unwrap_or(ValueRef::Null);
        self.profile_cells(q, &at);
        let Self {
            ws,
            cells,
            converted,
            number,
            buffers,
            fuzzy_parts,
            hashes,
            frame,
            key,
            ..
        } = self;
        // Each text checked once here; invalid UTF-8 made valid in its buffer.
        let vals: Vec<Val<'_>> = cells
            .iter()
            .zip(converted.iter_mut())
            .map(|(c, buf)| match *c {
                Cell::Null => Val::Null,
                Cell::Row(p) => match at(p) {
                    ValueRef::Null | ValueRef::Blob(_) => Val::Null,
                    ValueRef::Integer(n) => Val::Integer(n),
                    ValueRef::Real(x) => Val::Real(x),
                    ValueRef::Text(t) => match std::str::from_utf8(t) {
                        Ok(s) => Val::Text(s),
                        Err(_) => {
                            *buf = String::from_utf8_lossy(t).into_owned();
                            let buf: &String = buf;
                            Val::Text(buf)
                        }
                    },
                },
                Cell::Real(x) => Val::Real(x),
                Cell::Converted => {
                    let buf: &String = buf;
                    Val::Text(buf)
                }
            })
            .collect();
        let normalizers = &ws.unification.normalizers;
        hashes.clear();
        'rules: for (ri, rule) in ws.unification.rules.iter().enumerate() {
            let mut hasher = KeyHasher::new(ri);
            fuzzy_parts.clear();
            for (&f, p) in rule.fields.iter().zip(&rule.precision) {
                let Some(n) = normalized(&normalizers[f], vals[f], number, buffers) else {
                    continue 'rules;
                };
                match p {
                    Precision::Exact => hasher.part(n),
                    Precision::Similar(_) => {
                        fuzzy_parts.push(similarity::head(n).to_owned());
                    }
                }
            }
            let h = hasher.finish();
            key.clear();
            key.u16(u16::try_from(ri).unwrap_or(u16::MAX));
            key.u128(h);
            key.u32(rec);
            if rule.compares_pairs() {
                key.u16(u16::try_from(fuzzy_parts.len()).unwrap_or(0));
                for p in fuzzy_parts.iter() {
                    key.str(p);
                }
                key.u16(u16::try_from(rule.guards.len()).unwrap_or(0));
                for &g in &rule.guards {
                    // A digest: guards compare for equality only.
                    let digest = normalized(&normalizers[g], vals[g], number, buffers)
                        .map(|v| format!("{:032x}", key_hash(usize::MAX, &[v])))
                        .unwrap_or_default();
                    key.str(&digest);
                }
            }
            // The high half: the low one places keys in the match's tables.
            let part = ((h >> 64) as u64 % nparts.max(1) as u64) as u32;
            put_mapped(out, Some(part), &key.0);
            hashes.push(h as u64);
        }
        frame.clear();
        frame.u16(src);
        frame_text(frame, at(0), number);
        frame_opt_text(frame, at(1), number);
        // Joined or looked up, the previous customer is the last column.
        frame_opt_text(
            frame,
            if q.has_previous() {
                at(q.prev_at)
            } else {
                ValueRef::Null
            },
            number,
        );
        for v in &vals {
            frame.value_ref(v.as_ref());
        }
        frame.u16(u16::try_from(hashes.len()).unwrap_or(u16::MAX));
        for h in hashes.iter() {
            frame.0.extend_from_slice(&h.to_le_bytes());
        }
        put_mapped(out, None, &frame.0);
    }

    /// Each profile value as the field's type: the row's own value, or a
    /// conversion (or a derived field's text) in the field's buffer.
    fn profile_cells<'r>(&mut self, q: &SourceQuery<'_>, at: &dyn Fn(usize) -> ValueRef<'r>) {
        for (i, sl) in q.slot.iter().enumerate() {
            self.cells[i] = match sl {
                None => Cell::Null,
                Some(p) => match (at(*p), self.types[i]) {
                    (ValueRef::Null, _) => Cell::Null,
                    (
                        v @ (ValueRef::Integer(_) | ValueRef::Real(_)),
                        ColumnType::String | ColumnType::DateTime,
                    ) => {
                        text_into(v, &mut self.converted[i]);
                        Cell::Converted
                    }
                    (ValueRef::Integer(n), ColumnType::Decimal) => Cell::Real(n as f64),
                    _ => Cell::Row(*p),
                },
            };
        }
        for (i, template, cols) in &q.derived {
            let mut texts: Vec<(&str, Option<String>)> = Vec::with_capacity(cols.len());
            for (c, p) in cols {
                let mut text = String::new();
                let some = text_into(at(*p), &mut text);
                texts.push((c, some.then_some(text)));
            }
            let get = |name: &str| {
                texts
                    .iter()
                    .find(|(c, _)| *c == name)
                    .and_then(|(_, v)| v.clone())
            };
            self.cells[*i] = match template.render(&get) {
                Some(t) => {
                    self.converted[*i] = t;
                    Cell::Converted
                }
                None => Cell::Null,
            };
        }
    }
}

/// Whether source `si` has text keys stored in no order (GUIDs; see
/// [`crate::store::SAMPLE_ROWS`]): then its link ids do not follow its
/// records. Only a matter of speed, so a failure to tell is "no".
fn keys_unordered(ws: &Workspace, store: &EntityDb, si: usize) -> bool {
    let Some(s) = ws.sources.get(si) else {
        return false;
    };
    // Keys of text: a link id ends with the key as it is stored.
    let text = store
        .meta(&s.entity)
        .ok()
        .and_then(|m| m.schema.get(&s.key))
        .is_some_and(|t| matches!(t, ColumnType::String | ColumnType::DateTime));
    text && store
        .session()
        .keys_stored_unordered(&s.entity, &s.key)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key map keeps these hashes from one build to the next: a change
    /// of algorithm or encoding needs a new key map version (`keymap::MAGIC`).
    #[test]
    fn match_key_hashes_are_pinned() {
        assert_eq!(key_hash(0, &["ann@example.com"]), PINNED_EMAIL);
        assert_eq!(key_hash(2, &["ann", "lee", "75001"]), PINNED_NAME);
        // Parts are length-prefixed and the rule counts.
        assert_ne!(key_hash(2, &["annl", "ee"]), key_hash(2, &["ann", "lee"]));
        assert_ne!(key_hash(1, &["x"]), key_hash(0, &["x"]));
    }
    const PINNED_EMAIL: u128 = 271151666262990980004340668518967519557;
    const PINNED_NAME: u128 = 75329291585496044032926946258779601429;
}
