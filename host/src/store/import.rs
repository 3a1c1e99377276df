//! Reading CSV, JSON (an array of objects) and NDJSON files into typed rows:
//! types inferred per column or given; a bad row is named by number and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::types::Value;

use crate::odata::{normalize_datetime, ColumnType};

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Json,
    Ndjson,
}

impl ImportFormat {
    /// From a file extension (`csv`, `json`, `ndjson`/`jsonl`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            _ => None,
        }
    }

    /// Parse a format name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::from_path(Path::new(&format!("x.{s}")))
    }
}

/// A file that could not be read as typed rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), row.map(|r| format!(": row {r}")).unwrap_or_default(), field.as_ref().map(|f| format!(", field '{f}'")).unwrap_or_default())]
pub struct ImportError {
    pub file: PathBuf,
    /// 1-based data row (CSV: not counting the header).
    pub row: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

/// Typed rows read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedData {
    /// Columns in file order, with their types.
    pub columns: Vec<(String, ColumnType)>,
    /// One value per column per row.
    pub rows: Vec<Vec<Value>>,
    /// Rows skipped as malformed (at most the tolerance).
    pub rejected: Vec<ImportError>,
}

#[derive(Debug, Clone)]
enum Raw {
    Null,
    Text(String),
    Json(serde_json::Value),
}

/// Read `path` into typed rows. `types` fixes the type of some columns; the
/// others are inferred. `key` must be present in every row. Up to `tolerance`
/// malformed rows are skipped and reported in `rejected`; one more fails.
pub fn parse_file(
    path: &Path,
    format: Option<ImportFormat>,
    types: &BTreeMap<String, ColumnType>,
    key: &str,
    tolerance: usize,
) -> Result<ParsedData, ImportError> {
    let err = |row: Option<u64>, field: Option<&str>, message: String| ImportError {
        file: path.to_owned(),
        row,
        field: field.map(str::to_owned),
        message,
    };
    let format = format
        .or_else(|| ImportFormat::from_path(path))
        .ok_or_else(|| {
            err(
                None,
                None,
                "unknown format (expected a .csv, .json or .ndjson file)".into(),
            )
        })?;
    let bytes = std::fs::read(path).map_err(|e| err(None, None, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        err(
            None,
            None,
            format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let (columns, raw_rows) = match format {
        ImportFormat::Csv => read_csv(text).map_err(|(row, m)| err(row, None, m))?,
        ImportFormat::Json => read_json(text).map_err(|(row, m)| err(row, None, m))?,
        ImportFormat::Ndjson => read_ndjson(text).map_err(|(row, m)| err(row, None, m))?,
    };
    if !columns.iter().any(|c| c == key) {
        return Err(err(
            None,
            Some(key),
            format!(
                "key field '{key}' is not in the file (fields: {})",
                columns.join(", ")
            ),
        ));
    }
    for t in types.keys() {
        if !columns.contains(t) {
            return Err(err(
                None,
                Some(t),
                format!("a type is given for '{t}', which is not in the file"),
            ));
        }
    }
    let typed: Vec<(String, ColumnType)> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = types
                .get(c)
                .copied()
                .unwrap_or_else(|| infer(raw_rows.iter().map(|r| &r[i])));
            (c.clone(), t)
        })
        .collect();
    let key_index = columns.iter().position(|c| c == key).unwrap_or(0);
    let mut rows = Vec::with_capacity(raw_rows.len());
    let mut rejected = Vec::new();
    for (n, raw) in raw_rows.into_iter().enumerate() {
        let row_no = n as u64 + 1;
        let converted: Result<Vec<Value>, ImportError> = raw
            .into_iter()
            .zip(&typed)
            .map(|(v, (name, t))| convert(v, *t).map_err(|m| err(Some(row_no), Some(name), m)))
            .collect();
        let converted = converted.and_then(|vals| {
            if matches!(vals[key_index], Value::Null) {
                Err(err(Some(row_no), Some(key), "the key is empty".into()))
            } else {
                Ok(vals)
            }
        });
        match converted {
            Ok(vals) => rows.push(vals),
            Err(e) if rejected.len() < tolerance => rejected.push(e),
            Err(e) => {
                let mut e = e;
                if tolerance > 0 {
                    e.message = format!("{} (more than {tolerance} malformed rows)", e.message);
                }
                return Err(e);
            }
        }
    }
    Ok(ParsedData {
        columns: typed,
        rows,
        rejected,
    })
}

type Table = (Vec<String>, Vec<Vec<Raw>>);

fn read_csv(text: &str) -> Result<Table, (Option<u64>, String)> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| (None, format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    check_headers(&headers).map_err(|m| (None, m))?;
    let mut rows = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| (Some(n as u64 + 1), e.to_string()))?;
        rows.push(
            rec.iter()
                .map(|s| {
                    if s.is_empty() {
                        Raw::Null
                    } else {
                        Raw::Text(s.to_owned())
                    }
                })
                .collect(),
        );
    }
    Ok((headers, rows))
}

fn check_headers(headers: &[String]) -> Result<(), String> {
    for (i, h) in headers.iter().enumerate() {
        if !super::valid_identifier(h) {
            return Err(format!(
                "column {} is named '{h}': expected letters, digits and '_', not starting with a digit",
                i + 1
            ));
        }
        if headers[..i].contains(h) {
            return Err(format!("column '{h}' appears twice"));
        }
    }
    Ok(())
}

fn objects_to_table(
    objs: Vec<(u64, serde_json::Map<String, serde_json::Value>)>,
) -> Result<Table, (Option<u64>, String)> {
    let mut columns: Vec<String> = Vec::new();
    for (_, o) in &objs {
        for k in o.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    check_headers(&columns).map_err(|m| (None, m))?;
    let rows = objs
        .into_iter()
        .map(|(_, mut o)| {
            columns
                .iter()
                .map(|c| match o.remove(c) {
                    None | Some(serde_json::Value::Null) => Raw::Null,
                    Some(v) => Raw::Json(v),
                })
                .collect()
        })
        .collect();
    Ok((columns, rows))
}

fn read_json(text: &str) -> Result<Table, (Option<u64>, String)> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (None, format!("not valid JSON: {e}")))?;
    let serde_json::Value::Array(items) = v else {
        return Err((None, "expected a JSON array of objects".into()));
    };
    let mut objs = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        match item {
            serde_json::Value::Object(o) => objs.push((n as u64 + 1, o)),
            _ => return Err((Some(n as u64 + 1), "expected an object".into())),
        }
    }
    objects_to_table(objs)
}

fn read_ndjson(text: &str) -> Result<Table, (Option<u64>, String)> {
    let mut objs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(o)) => objs.push((n as u64 + 1, o)),
            Ok(_) => return Err((Some(n as u64 + 1), "expected a JSON object".into())),
            Err(e) => return Err((Some(n as u64 + 1), format!("not valid JSON: {e}"))),
        }
    }
    objects_to_table(objs)
}

/// The narrowest type every non-null value fits.
fn infer<'a>(values: impl Iterator<Item = &'a Raw>) -> ColumnType {
    let mut current: Option<ColumnType> = None;
    for v in values {
        let t = match v {
            Raw::Null => continue,
            Raw::Json(serde_json::Value::Bool(_)) => ColumnType::Boolean,
            Raw::Json(serde_json::Value::Number(n)) if n.is_i64() => ColumnType::Integer,
            Raw::Json(serde_json::Value::Number(_)) => ColumnType::Decimal,
            Raw::Json(serde_json::Value::String(s)) => {
                if normalize_datetime(s).is_some() {
                    ColumnType::DateTime
                } else {
                    ColumnType::String
                }
            }
            Raw::Json(_) => ColumnType::String,
            Raw::Text(s) => infer_text(s),
        };
        current = Some(match (current, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(ColumnType::Integer), ColumnType::Decimal)
            | (Some(ColumnType::Decimal), ColumnType::Integer) => ColumnType::Decimal,
            _ => return ColumnType::String,
        });
    }
    current.unwrap_or(ColumnType::String)
}

fn infer_text(s: &str) -> ColumnType {
    let t = s.trim();
    let digits = t.trim_start_matches(['-', '+']);
    // Leading zeros (postal codes, phone numbers) keep the text as it is.
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if leading_zero {
        ColumnType::String
    } else if t.parse::<i64>().is_ok() {
        ColumnType::Integer
    } else if t.parse::<f64>().is_ok_and(f64::is_finite) && t.chars().any(|c| c.is_ascii_digit()) {
        ColumnType::Decimal
    } else if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        ColumnType::Boolean
    } else if normalize_datetime(t).is_some() {
        ColumnType::DateTime
    } else {
        ColumnType::String
    }
}

fn convert(v: Raw, t: ColumnType) -> Result<Value, String> {
    let text_of = |v: &Raw| -> Option<String> {
        match v {
            Raw::Text(s) => Some(s.clone()),
            Raw::Json(serde_json::Value::String(s)) => Some(s.clone()),
            Raw::Json(other) => Some(other.to_string()),
            Raw::Null => None,
        }
    };
    match (t, v) {
        (_, Raw::Null) => Ok(Value::Null),
        (ColumnType::String, Raw::Json(serde_json::Value::String(s)))
        | (ColumnType::String, Raw::Text(s)) => Ok(Value::Text(s)),
        (ColumnType::String, v) => Ok(Value::Text(text_of(&v).unwrap_or_default())),
        (ColumnType::Integer, Raw::Json(serde_json::Value::Number(n))) => n
            .as_i64()
            .map(Value::Integer)
            .ok_or_else(|| format!("{n} is not an integer")),
        (ColumnType::Integer, v) => {
            let s = text_of(&v).unwrap_or_default();
            s.trim()
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| format!("'{s}' is not an integer"))
        }
        (ColumnType::Decimal, Raw::Json(serde_json::Value::Number(n))) => n
            .as_f64()
            .map(Value::Real)
            .ok_or_else(|| format!("{n} is not a number")),
        (ColumnType::Decimal, v) => {
            let s = text_of(&v).unwrap_or_default();
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::Real)
                .ok_or_else(|| format!("'{s}' is not a decimal number"))
        }
        (ColumnType::Boolean, Raw::Json(serde_json::Value::Bool(b))) => {
            Ok(Value::Integer(i64::from(b)))
        }
        (ColumnType::Boolean, v) => {
            let s = text_of(&v).unwrap_or_default();
            match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Value::Integer(1)),
                "false" | "0" | "no" => Ok(Value::Integer(0)),
                _ => Err(format!("'{s}' is not a boolean (true/false)")),
            }
        }
        (ColumnType::DateTime, v) => {
            let s = text_of(&v).unwrap_or_default();
            normalize_datetime(s.trim())
                .map(Value::Text)
                .ok_or_else(|| format!("'{s}' is not a date or date-time (expected e.g. 2024-03-01 or 2024-03-01T09:30:00Z)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn csv_types_are_inferred() {
        let (_d, p) = write(
            "c.csv",
            "Id,Name,Age,Score,Vip,Joined\n1,Ann,34,1.5,true,2024-03-01\n2,Bob,,2,false,2024-03-02T10:00:00+02:00\n",
        );
        let d = parse_file(&p, None, &BTreeMap::new(), "Id", 0).unwrap();
        let types: Vec<ColumnType> = d.columns.iter().map(|c| c.1).collect();
        assert_eq!(
            types,
            [
                ColumnType::Integer,
                ColumnType::String,
                ColumnType::Integer,
                ColumnType::Decimal,
                ColumnType::Boolean,
                ColumnType::DateTime
            ]
        );
        assert_eq!(d.rows[1][2], Value::Null);
        assert_eq!(d.rows[1][5], Value::Text("2024-03-02T08:00:00Z".into()));
        assert_eq!(d.rows[0][4], Value::Integer(1));
    }

    #[test]
    fn bad_row_is_named_with_row_and_field() {
        let (_d, p) = write("c.csv", "Id,Age\n1,34\n2,abc\n");
        let mut types = BTreeMap::new();
        types.insert("Age".to_string(), ColumnType::Integer);
        let e = parse_file(&p, None, &types, "Id", 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: row 2, field 'Age': 'abc' is not an integer",
                p.display()
            )
        );
        let ok = parse_file(&p, None, &types, "Id", 1).unwrap();
        assert_eq!(ok.rows.len(), 1);
        assert_eq!(ok.rejected.len(), 1);
    }

    #[test]
    fn json_and_ndjson() {
        let (_d, p) = write(
            "c.json",
            r#"[{"Id":"a","N":1,"B":true},{"Id":"b","N":2.5,"X":"y"}]"#,
        );
        let d = parse_file(&p, None, &BTreeMap::new(), "Id", 0).unwrap();
        assert_eq!(
            d.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["Id", "N", "B", "X"]
        );
        assert_eq!(d.columns[1].1, ColumnType::Decimal);
        assert_eq!(d.rows[1][2], Value::Null);
        let (_d2, p2) = write("c.ndjson", "{\"Id\":1}\n\n{\"Id\":2}\nnot json\n");
        let e = parse_file(&p2, None, &BTreeMap::new(), "Id", 0).unwrap_err();
        assert_eq!(e.row, Some(4));
    }

    #[test]
    fn missing_key_and_bad_headers() {
        let (_d, p) = write("c.csv", "Id,Name\n,Ann\n");
        let e = parse_file(&p, None, &BTreeMap::new(), "Id", 0).unwrap_err();
        assert_eq!(e.message, "the key is empty");
        let (_d, p) = write("c.csv", "Id,First Name\n1,Ann\n");
        let e = parse_file(&p, None, &BTreeMap::new(), "Id", 0).unwrap_err();
        assert!(e.message.contains("column 2 is named 'First Name'"), "{e}");
        let (_d, p) = write("c.csv", "Id,Name\n1,Ann\n");
        let e = parse_file(&p, None, &BTreeMap::new(), "Key", 0).unwrap_err();
        assert!(
            e.message.starts_with("key field 'Key' is not in the file"),
            "{e}"
        );
    }

    #[test]
    fn datetimes_normalize_to_utc_seconds() {
        assert_eq!(
            normalize_datetime("2024-03-01").as_deref(),
            Some("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            normalize_datetime("2024-03-01T09:30:00.75+01:00").as_deref(),
            Some("2024-03-01T08:30:00Z")
        );
        assert_eq!(
            normalize_datetime("2024-03-01 09:30:00").as_deref(),
            Some("2024-03-01T09:30:00Z")
        );
        assert_eq!(normalize_datetime("yesterday"), None);
    }
}
