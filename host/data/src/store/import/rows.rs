//! Reading a file's rows, in every format: CSV and NDJSON by line, a JSON
//! array by element, each row as read ([`Row`]) handed to a callback.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::ValueRef;

use super::content::{Content, Hashing};
use super::csv_records::{Fields, RecordError, Records};
use super::dialect::FileDialect;
use super::flat::{flat_object, flat_row};
use super::locale::Locale;
use super::objects::{FileKeys, ObjectRow};
use super::typing::{convert, convert_str, datetime_ref, infer_one, infer_text, not_a_datetime};
use super::{
    check_headers, file_error, io_error, quoted, quoted_list, too_many_columns, ImportError,
    ImportErrorKind, ImportFormat, Opener, MAX_COLUMNS,
};
use crate::odata::ColumnType;
use crate::store::row_bound::{Counting, RowBound, MAX_ROW_BYTES};
use crate::store::{json_array, pipe};

/// A JSON value as read (`null` apart): a string borrowed from the text
/// read where it holds no escape, numbers and booleans as they are, and
/// anything else (an array, an object, a flattened leaf's string) as
/// serde_json reads it, boxed: a row's values stay 32 bytes each.
#[derive(Debug, Clone)]
pub(super) enum Raw<'a> {
    Null,
    Str(std::borrow::Cow<'a, str>),
    Num(serde_json::Number),
    Bool(bool),
    Json(Box<serde_json::Value>),
}

/// One row as read: a CSV record's fields (an empty field is null), read
/// in place, or a JSON object's values in column order.
pub(super) enum Row<'r> {
    Csv(Fields<'r>),
    Json(Vec<Raw<'r>>),
}

impl Row<'_> {
    /// The type each non-null value suggests, with its column; columns
    /// marked in `settled` are skipped.
    pub(super) fn each_type(
        &self,
        settled: &[bool],
        locale: &Locale,
        mut f: impl FnMut(usize, ColumnType),
    ) {
        let open = |i: usize| !settled.get(i).copied().unwrap_or(false);
        match self {
            Row::Csv(rec) => {
                for (i, s) in rec.iter().enumerate() {
                    if !s.is_empty() && open(i) {
                        f(i, infer_text(s, locale));
                    }
                }
            }
            Row::Json(values) => {
                for (i, v) in values.iter().enumerate() {
                    if open(i) {
                        if let Some(t) = infer_one(v, locale) {
                            f(i, t);
                        }
                    }
                }
            }
        }
    }

    /// The values converted to the columns' types, into `feed`'s open row
    /// (text kept as text is copied once, into the batch), or the column
    /// that failed and why. On an error the row is left part
    /// filled, for the caller to cancel.
    pub(super) fn convert_into(
        self,
        typed: &[(String, ColumnType)],
        locale: &Locale,
        feed: &mut pipe::Feed,
    ) -> Result<(), (usize, String)> {
        match self {
            Row::Csv(rec) => {
                for (i, (s, (_, t))) in rec.iter().zip(typed).enumerate() {
                    match (s.is_empty(), t) {
                        (true, _) => feed.value(ValueRef::Null),
                        (false, ColumnType::String) => feed.value(ValueRef::Text(s.as_bytes())),
                        (false, ColumnType::DateTime) => match datetime_ref(s, locale) {
                            Some(d) => feed.value(ValueRef::Text(d.as_bytes())),
                            None => return Err((i, not_a_datetime(s, locale))),
                        },
                        (false, t) => {
                            let v = convert_str(s, *t, locale).map_err(|m| (i, m))?;
                            feed.value(ValueRef::from(&v));
                        }
                    }
                }
            }
            Row::Json(values) => {
                for (i, (v, (_, t))) in values.into_iter().zip(typed).enumerate() {
                    match (v, t) {
                        // Text kept as text goes to the batch as read.
                        (Raw::Str(s), ColumnType::String) => {
                            feed.value(ValueRef::Text(s.as_bytes()))
                        }
                        (Raw::Str(s), ColumnType::DateTime) => match datetime_ref(&s, locale) {
                            Some(d) => feed.value(ValueRef::Text(d.as_bytes())),
                            None => return Err((i, not_a_datetime(&s, locale))),
                        },
                        (Raw::Str(s), t) => {
                            let v = convert_str(&s, *t, locale).map_err(|m| (i, m))?;
                            feed.value(ValueRef::from(&v));
                        }
                        (v, t) => {
                            let v = convert(v, *t, locale).map_err(|m| (i, m))?;
                            feed.value(ValueRef::from(&v));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// One row as read, or why it could not be read.
type RawRow<'r> = Result<Row<'r>, String>;

/// One JSON object as read, or why it is not one.
pub(super) type JsonRow<'a> = Result<Vec<Raw<'a>>, String>;

/// What a row callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// The next row.
    Go,
    /// No more rows: the read ends here, without error.
    Stop,
}

/// A JSON error within one NDJSON line: the row names the line, so only
/// the column is given.
fn line_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&at) {
        Some(message) if e.line() == 1 => {
            format!("not valid JSON: {message} at column {}", e.column())
        }
        _ => format!("not valid JSON: {text}"),
    }
}

/// Read every row of a file (until `f` says [`Flow::Stop`]), calling
/// `f(row_number, row)` with values in `columns` order. A CSV header must equal `columns` when that is not empty
/// (and sets it otherwise); JSON keys not yet in `columns` are appended unless
/// `fixed`. Streams every format: CSV and NDJSON by line, a JSON array by
/// element.
///
/// A row longer than [`MAX_ROW_BYTES`] fails the file, in every format.
/// The file's bytes go to `content` as they are read, when given.
#[allow(clippy::too_many_arguments)]
pub(super) fn visit(
    path: &Path,
    opener: Option<&dyn Opener>,
    (format, dialect): (ImportFormat, &FileDialect),
    columns: &mut Vec<String>,
    fixed: bool,
    (read, content): (&AtomicU64, Option<&Content>),
    f: &mut dyn FnMut(u64, RawRow) -> Result<Flow, ImportError>,
) -> Result<(), ImportError> {
    let bound = RowBound::default();
    let mut each = |row_no, row: RawRow<'_>| {
        bound.row_end(row_no);
        f(row_no, row)
    };
    let reading = Reading {
        path,
        opener,
        format,
        dialect,
        fixed,
        read,
        content,
        bound: &bound,
    };
    let result = visit_rows(&reading, columns, &mut each);
    match (result, bound.tripped()) {
        (Err(e), Some(after)) => Err(file_error(
            path,
            ImportErrorKind::Malformed,
            e.row.or(Some(after)),
            None,
            format!(
                "longer than {} MiB (a source row may take at most {MAX_ROW_BYTES} bytes)",
                MAX_ROW_BYTES >> 20
            ),
        )),
        (result, _) => result,
    }
}

/// Bytes read from a file at a time: fewer calls, and larger runs for the
/// content hash's vector code, than the default 8 KiB.
const READ_BYTES: usize = 128 * 1024;

/// What [`visit_rows`] reads, and how: [`visit`]'s arguments, with the
/// bound each read is held to.
#[derive(Clone, Copy)]
struct Reading<'a> {
    path: &'a Path,
    opener: Option<&'a dyn Opener>,
    format: ImportFormat,
    dialect: &'a FileDialect,
    fixed: bool,
    read: &'a AtomicU64,
    content: Option<&'a Content>,
    bound: &'a RowBound,
}

/// A source file as its rows are read from it: plain, or decoded.
enum FileReader<'a> {
    Plain(Counting<'a, Hashing<'a>>),
    Gzip(Counting<'a, crate::store::gzip::Decoder<'a, Hashing<'a>>>),
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            FileReader::Plain(r) => r.read(buf),
            FileReader::Gzip(r) => r.read(buf),
        }
    }
}

/// [`visit`], with each read held to `reading.bound`.
fn visit_rows(
    reading: &Reading<'_>,
    columns: &mut Vec<String>,
    f: &mut dyn FnMut(u64, RawRow) -> Result<Flow, ImportError>,
) -> Result<(), ImportError> {
    let Reading {
        path,
        opener,
        format,
        dialect,
        fixed,
        read,
        content,
        bound,
    } = *reading;
    let FileDialect {
        delimiter,
        encoding,
        flatten,
        ..
    } = *dialect;
    // A gzip file's progress is its compressed bytes, counted under the
    // decoder; the bound holds the decoded bytes, counted here into this.
    let decoded_bytes = AtomicU64::new(0);
    let gzip = crate::store::gzip::is_gzip(path);
    let open = || -> Result<_, ImportError> {
        let file = match opener {
            Some(o) => o.open(path)?,
            None => std::fs::File::open(path).map_err(|e| io_error(path, &e))?,
        };
        bound.restart();
        if let Some(c) = content {
            c.restart(file.metadata().ok().map(|m| m.len()));
        }
        let file = Hashing { file, content };
        let inner = match gzip {
            true => FileReader::Gzip(Counting {
                inner: crate::store::gzip::decoder(file, read),
                read: &decoded_bytes,
                bound,
            }),
            false => FileReader::Plain(Counting {
                inner: file,
                read,
                bound,
            }),
        };
        Ok(std::io::BufReader::with_capacity(
            READ_BYTES,
            super::encoding::decoded(inner, encoding),
        ))
    };
    let mut reader = open()?;
    match format {
        ImportFormat::Csv => {
            // Excel's `sep=;` line names the separator; one given wins.
            let directed = separator_line(&mut reader).map_err(|e| io_error(path, &e))?;
            let chosen = delimiter.or(directed);
            let delimiter = chosen.unwrap_or_else(|| ImportFormat::default_delimiter(path));
            let held = reader.buffer().to_vec();
            let mut records = Records::new(reader.into_inner(), &held, delimiter);
            let headers: Vec<String> = match records.next() {
                Ok(h) => h
                    .iter()
                    .flat_map(|h| h.iter())
                    .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
                    .collect(),
                Err(e) => return Err(csv_error(path, e, None)),
            };
            if headers.len() > MAX_COLUMNS {
                return Err(too_many_columns(path, None));
            }
            if let (None, [header]) = (chosen, headers.as_slice()) {
                if let Some(sep) = [';', '\t', '|'].into_iter().find(|c| header.contains(*c)) {
                    return Err(schema_error(
                        path,
                        format!(
                            "the header is one column, {}: if its fields are separated by {sep:?}, set delimiter = {:?} (`--delimiter` for `entities import`)",
                            quoted(header),
                            sep.to_string()
                        ),
                    ));
                }
            }
            let headers =
                super::naming::csv_columns(&headers).map_err(|m| schema_error(path, m))?;
            if columns.is_empty() {
                *columns = headers;
            } else if *columns != headers {
                return Err(schema_error(
                    path,
                    format!(
                        "its columns ({}) differ from the other files' ({})",
                        quoted_list(&headers),
                        quoted_list(columns)
                    ),
                ));
            }
            // Each row is read in place.
            for row_no in 1u64.. {
                let row = match records.next() {
                    Ok(None) => break,
                    Ok(Some(fields)) => Ok(Row::Csv(fields)),
                    Err(e) => {
                        let err = csv_error(path, e, Some(row_no));
                        if err.kind != ImportErrorKind::Malformed {
                            return Err(err);
                        }
                        Err(err.message)
                    }
                };
                if f(row_no, row)? == Flow::Stop {
                    break;
                }
            }
            Ok(())
        }
        ImportFormat::Ndjson => {
            use std::io::BufRead;
            let mut reader = reader;
            // Each line is read in place in the buffer; one that runs past
            // it is copied here.
            let mut long = Vec::new();
            let mut keys = FileKeys::default();
            let mut reading = (columns, &mut keys, f);
            for row_no in 1u64.. {
                let io = |e: std::io::Error| {
                    let mut err = io_error(path, &e);
                    err.row = Some(row_no);
                    err
                };
                let found = {
                    let unread = reader.fill_buf().map_err(io)?;
                    if unread.is_empty() {
                        break;
                    }
                    memchr::memchr(b'\n', unread)
                };
                let (bytes, used) = match found {
                    Some(i) => (reader.buffer().get(..i).unwrap_or_default(), i + 1),
                    None => {
                        long.clear();
                        reader.read_until(b'\n', &mut long).map_err(io)?;
                        if long.last() == Some(&b'\n') {
                            long.pop();
                        }
                        (long.as_slice(), 0)
                    }
                };
                // Checked once: a line's strings are then taken as they lie.
                let line = std::str::from_utf8(bytes).map_err(|_| {
                    io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "stream did not contain valid UTF-8",
                    ))
                })?;
                let line = line.strip_suffix('\r').unwrap_or(line);
                let flow = ndjson_row(line, row_no, &mut reading, (path, bound), (fixed, flatten))?;
                reader.consume(used);
                if flow == Flow::Stop {
                    break;
                }
            }
            check_headers(reading.0).map_err(|m| schema_error(path, m))?;
            Ok(())
        }
        ImportFormat::Json => {
            let before = read.load(Ordering::Relaxed);
            let skip = match array_from_slices(reader.into_inner(), columns, (fixed, flatten), f)? {
                Fast::Done => return check_headers(columns).map_err(|m| schema_error(path, m)),
                Fast::Unusual { rows } => rows,
            };
            // The streaming parser reads it again, handing out only the
            // rows after those already handed out.
            read.store(before, Ordering::Relaxed);
            let mut de = serde_json::Deserializer::from_reader(open()?);
            let mut stopped = None;
            let rows = ArrayRows {
                path,
                columns,
                fixed,
                flatten,
                keys: &mut FileKeys::default(),
                bound,
                skip,
                f,
                stopped: &mut stopped,
            };
            let streamed =
                serde::Deserializer::deserialize_seq(&mut de, rows).and_then(|()| de.end());
            match stopped {
                Some(Some(e)) => return Err(e),
                Some(None) => return check_headers(columns).map_err(|m| schema_error(path, m)),
                None => {}
            }
            streamed.map_err(|e| {
                if e.classify() == serde_json::error::Category::Io {
                    // The read failed below the parser: say why as for any file.
                    return io_error(path, &std::io::Error::from(e));
                }
                let (kind, message) = match e.classify() {
                    serde_json::error::Category::Data => (
                        ImportErrorKind::Schema,
                        format!("expected a JSON array of objects ({e})"),
                    ),
                    // serde_json's words for bytes that are not UTF-8.
                    _ if e.to_string().starts_with("invalid unicode code point") => (
                        ImportErrorKind::Encoding,
                        format!("{}: {e}", super::encoding::NOT_UTF8),
                    ),
                    _ => (ImportErrorKind::Schema, format!("not valid JSON: {e}")),
                };
                file_error(path, kind, None, None, message)
            })?;
            check_headers(columns).map_err(|m| schema_error(path, m))?;
            Ok(())
        }
    }
}

/// What one NDJSON line's row needs: the columns, the keys met, and the
/// row callback.
type NdjsonReading<'c, 'k, 'f> = (
    &'c mut Vec<String>,
    &'k mut FileKeys,
    &'f mut dyn FnMut(u64, RawRow) -> Result<Flow, ImportError>,
);

/// Hand NDJSON line `row_no` (its end taken off) to the callback as a row;
/// a blank line is none.
fn ndjson_row(
    line: &str,
    row_no: u64,
    (columns, keys, f): &mut NdjsonReading<'_, '_, '_>,
    (path, bound): (&Path, &RowBound),
    (fixed, flatten): (bool, bool),
) -> Result<Flow, ImportError> {
    if line.trim().is_empty() {
        bound.row_end(row_no);
        return Ok(Flow::Go);
    }
    // The usual flat row in one pass; anything else as below.
    if let Some(row) = (!flatten).then(|| flat_row(line, columns)).flatten() {
        return f(row_no, Ok(Row::Json(row)));
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let mut overflow = false;
    let object = ObjectRow {
        keys,
        columns,
        fixed,
        flatten,
        not_object: "expected a JSON object",
        overflow: &mut overflow,
    };
    let row = match serde::de::DeserializeSeed::deserialize(object, &mut de)
        .and_then(|row| de.end().map(|()| row))
    {
        Ok(row) => row.map(Row::Json),
        Err(e) => Err(line_error(&e)),
    };
    if overflow {
        return Err(too_many_columns(path, Some(row_no)));
    }
    if let Some(clash) = keys.clash.take() {
        return Err(row_schema_error(path, row_no, clash));
    }
    f(row_no, row)
}

/// The separator a CSV file's first line names, as Excel writes it
/// (`sep=;`), that line then skipped.
fn separator_line(reader: &mut impl std::io::BufRead) -> std::io::Result<Option<u8>> {
    let head = reader.fill_buf()?;
    let line = match head {
        [b's' | b'S', b'e' | b'E', b'p' | b'P', b'=', sep, rest @ ..]
            if super::parse_delimiter(&char::from(*sep).to_string()).is_ok() =>
        {
            match rest {
                [b'\n', ..] => Some((*sep, 6)),
                [b'\r', b'\n', ..] => Some((*sep, 7)),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(line.map(|(sep, len)| {
        reader.consume(len);
        sep
    }))
}

/// How the fast read of a JSON array ended.
enum Fast {
    /// Every row was handed out (or the callback asked to stop).
    Done,
    /// It met something it leaves to the streaming parser, after handing
    /// out `rows` rows.
    Unusual { rows: u64 },
}

/// Read a JSON array's elements as slices ([`json_array`]) and hand each
/// one to `f` as a row, as [`ArrayRows`] does; anything unusual (a syntax
/// error, too many columns, a failed read) is left to it.
fn array_from_slices(
    reader: impl std::io::Read,
    columns: &mut Vec<String>,
    (fixed, flatten): (bool, bool),
    f: &mut dyn FnMut(u64, RawRow) -> Result<Flow, ImportError>,
) -> Result<Fast, ImportError> {
    let mut elements = json_array::Elements::new(reader);
    let mut keys = FileKeys::default();
    let mut rows = 0u64;
    loop {
        let unusual = Ok(Fast::Unusual { rows });
        let start = match elements.next_start() {
            Ok(Some(start)) => start,
            Ok(None) => return Ok(Fast::Done),
            Err(_) => return unusual,
        };
        // The usual flat object parsed where it lies in what is read (no
        // split first); anything else, or one that runs past what is read,
        // split whole and read as below.
        let parsed = (!flatten)
            .then(|| flat_object(elements.read_from(start), columns))
            .flatten();
        if let Some((row, len)) = parsed {
            rows += 1;
            if f(rows, Ok(Row::Json(row)))? == Flow::Stop {
                return Ok(Fast::Done);
            }
            elements.took(start + len);
            continue;
        }
        let Ok(text) = elements.element_at(start) else {
            return unusual;
        };
        if let Some(row) = (!flatten).then(|| flat_row(text, columns)).flatten() {
            rows += 1;
            if f(rows, Ok(Row::Json(row)))? == Flow::Stop {
                return Ok(Fast::Done);
            }
            continue;
        }
        let mut overflow = false;
        let object = ObjectRow {
            keys: &mut keys,
            columns: &mut *columns,
            fixed,
            flatten,
            not_object: "expected an object",
            overflow: &mut overflow,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let row = match serde::de::DeserializeSeed::deserialize(object, &mut de)
            .and_then(|row| de.end().map(|()| row))
        {
            Ok(row) if !overflow && keys.clash.is_none() => row,
            _ => return unusual,
        };
        rows += 1;
        if f(rows, row.map(Row::Json))? == Flow::Stop {
            return Ok(Fast::Done);
        }
    }
}

/// A JSON array read one element at a time (constant memory, like CSV and
/// NDJSON): each element is handed to the row callback as it is parsed.
struct ArrayRows<'a> {
    path: &'a Path,
    columns: &'a mut Vec<String>,
    fixed: bool,
    flatten: bool,
    keys: &'a mut FileKeys,
    /// Told of the rows skipped (`f` is told of the others).
    bound: &'a RowBound,
    /// Rows parsed but not handed to `f` (handed out before).
    skip: u64,
    f: &'a mut dyn FnMut(u64, RawRow) -> Result<Flow, ImportError>,
    /// Set when the callback stopped the parse: with its error, or with
    /// none when it asked to stop.
    stopped: &'a mut Option<Option<ImportError>>,
}

impl<'de> serde::de::Visitor<'de> for ArrayRows<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row_no = 0u64;
        loop {
            let mut overflow = false;
            let object = ObjectRow {
                keys: &mut *self.keys,
                columns: &mut *self.columns,
                fixed: self.fixed,
                flatten: self.flatten,
                not_object: "expected an object",
                overflow: &mut overflow,
            };
            let next = seq.next_element_seed(object);
            row_no += 1;
            let clash = self.keys.clash.take();
            let handled = match (overflow, clash) {
                (true, _) => Err(too_many_columns(self.path, Some(row_no))),
                (false, Some(clash)) => Err(row_schema_error(self.path, row_no, clash)),
                (false, None) => match next? {
                    Some(_) if row_no <= self.skip => {
                        self.bound.row_end(row_no);
                        Ok(Flow::Go)
                    }
                    Some(row) => (self.f)(row_no, row.map(Row::Json)),
                    None => break,
                },
            };
            match handled {
                Ok(Flow::Go) => {}
                Ok(Flow::Stop) => {
                    *self.stopped = Some(None);
                    return Err(serde::de::Error::custom("stopped by the row handler"));
                }
                Err(e) => {
                    *self.stopped = Some(Some(e));
                    return Err(serde::de::Error::custom("stopped by the row handler"));
                }
            }
        }
        Ok(())
    }
}

/// A problem with the file's shape (columns, format), for no row.
fn schema_error(path: &Path, message: String) -> ImportError {
    file_error(path, ImportErrorKind::Schema, None, None, message)
}

/// A problem with the file's shape found at a row (keys naming one column).
fn row_schema_error(path: &Path, row: u64, message: String) -> ImportError {
    file_error(path, ImportErrorKind::Schema, Some(row), None, message)
}

fn csv_error(path: &Path, e: RecordError, row: Option<u64>) -> ImportError {
    match e {
        RecordError::Io(io) => {
            let mut err = io_error(path, &io);
            err.row = err.row.or(row);
            err
        }
        RecordError::Utf8 => file_error(
            path,
            ImportErrorKind::Encoding,
            row,
            None,
            super::encoding::NOT_UTF8.into(),
        ),
        RecordError::Fields { len, expected } => file_error(
            path,
            ImportErrorKind::Malformed,
            row,
            None,
            format!("{len} fields where the header has {expected}"),
        ),
    }
}
