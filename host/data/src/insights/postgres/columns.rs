//! Columns as read from the server: the store type of each PostgreSQL
//! type, how its values are read from the driver, and what is said of a row
//! that cannot be read.

use rusqlite::types::{Value, ValueRef};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;

use super::session::describe_error;
use crate::odata::ColumnType;
use crate::store::{convert_text, pipe, quoted};

/// A column as read.
#[derive(Debug, Clone)]
pub(super) struct Col {
    pub(super) name: String,
    pub(super) ty: ColumnType,
    pub(super) read: Read,
    /// Its expression in the `SELECT` list.
    pub(super) expr: String,
}

/// How a column's values are read from the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Str,
    Timestamp,
    TimestampTz,
    Date,
    /// Cast to text by the server, converted to the type as file text is.
    Text(ColumnType),
}

/// The store type of a PostgreSQL type, and how to read it when the driver
/// decodes it (`None`: read its text).
pub(super) fn natural_type(ty: &Type) -> (ColumnType, Option<Read>) {
    let known = [
        (Type::INT2, ColumnType::Integer, Some(Read::I16)),
        (Type::INT4, ColumnType::Integer, Some(Read::I32)),
        (Type::INT8, ColumnType::Integer, Some(Read::I64)),
        (Type::FLOAT4, ColumnType::Decimal, Some(Read::F32)),
        (Type::FLOAT8, ColumnType::Decimal, Some(Read::F64)),
        (Type::NUMERIC, ColumnType::Decimal, None),
        (Type::BOOL, ColumnType::Boolean, Some(Read::Bool)),
        (Type::TIMESTAMP, ColumnType::DateTime, Some(Read::Timestamp)),
        (
            Type::TIMESTAMPTZ,
            ColumnType::DateTime,
            Some(Read::TimestampTz),
        ),
        (Type::DATE, ColumnType::DateTime, Some(Read::Date)),
        (Type::TEXT, ColumnType::String, Some(Read::Str)),
        (Type::VARCHAR, ColumnType::String, Some(Read::Str)),
        (Type::BPCHAR, ColumnType::String, Some(Read::Str)),
        (Type::NAME, ColumnType::String, Some(Read::Str)),
    ];
    known
        .into_iter()
        .find(|(t, _, _)| t == ty)
        .map_or((ColumnType::String, None), |(_, c, r)| (c, r))
}

/// A date-time as the store holds it (UTC, to the second), as
/// [`crate::store::normalize_datetime`] writes it.
fn datetime_text(t: time::OffsetDateTime) -> Result<String, String> {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .map_err(|e| format!("cannot be written as a date-time: {e}"))
}

/// A column's value as `T`, or why it cannot be read.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, String> {
    row.try_get::<_, Option<T>>(i)
        .map_err(|e| format!("cannot be read: {}", describe_error(&e, None)))
}

impl Read {
    /// The `i`th value of `row` into `feed`'s open row: text as borrowed
    /// from the row, other values as [`Read::value`] makes them.
    pub(super) fn feed(self, row: &Row, i: usize, feed: &mut pipe::Feed) -> Result<(), String> {
        match self {
            Read::Str => feed.value(get::<&str>(row, i)?.map_or(ValueRef::Null, ValueRef::from)),
            other => feed.value(ValueRef::from(&other.value(row, i)?)),
        }
        Ok(())
    }

    pub(super) fn value(self, row: &Row, i: usize) -> Result<Value, String> {
        let finite = |f: f64| {
            if f.is_finite() {
                Ok(Value::Real(f))
            } else {
                Err(format!("{f} is not a decimal number"))
            }
        };
        Ok(match self {
            Read::I16 => get::<i16>(row, i)?.map_or(Value::Null, |n| Value::Integer(n.into())),
            Read::I32 => get::<i32>(row, i)?.map_or(Value::Null, |n| Value::Integer(n.into())),
            Read::I64 => get::<i64>(row, i)?.map_or(Value::Null, Value::Integer),
            Read::F32 => match get::<f32>(row, i)? {
                Some(f) => finite(f.into())?,
                None => Value::Null,
            },
            Read::F64 => match get::<f64>(row, i)? {
                Some(f) => finite(f)?,
                None => Value::Null,
            },
            Read::Bool => get::<bool>(row, i)?.map_or(Value::Null, |b| Value::Integer(b.into())),
            Read::Str => get::<String>(row, i)?.map_or(Value::Null, Value::Text),
            Read::Timestamp => match get::<time::PrimitiveDateTime>(row, i)? {
                Some(t) => Value::Text(datetime_text(t.assume_utc())?),
                None => Value::Null,
            },
            Read::TimestampTz => match get::<time::OffsetDateTime>(row, i)? {
                Some(t) => Value::Text(datetime_text(t)?),
                None => Value::Null,
            },
            Read::Date => match get::<time::Date>(row, i)? {
                Some(d) => Value::Text(datetime_text(d.midnight().assume_utc())?),
                None => Value::Null,
            },
            Read::Text(t) => match get::<String>(row, i)? {
                Some(s) => convert_text(s, t)?,
                None => Value::Null,
            },
        })
    }
}

/// What is wrong with one row.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) field: String,
    pub(super) message: String,
    /// The row's key, described for the message, when it could be read.
    pub(super) key: Option<String>,
}

impl Problem {
    /// The message for row number `row`.
    pub(super) fn describe(&self, row: u64) -> String {
        format!(
            "row {row}{}, field '{}': {}",
            self.key.as_deref().unwrap_or(""),
            self.field,
            self.message
        )
    }
}

/// ` (key 'c5')`, for a message about a row.
fn key_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(n) => format!(" (key {n})"),
        Value::Real(f) => format!(" (key {f})"),
        Value::Text(s) => format!(" (key {})", quoted(s)),
        Value::Blob(_) => String::new(),
    }
}

/// The key of a row that could not be converted, when it can be read.
pub(super) fn row_key(row: &Row, col: &Col, i: usize) -> Option<String> {
    col.read
        .value(row, i)
        .ok()
        .map(|v| key_of(&v))
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_from_postgres() {
        assert_eq!(
            natural_type(&Type::INT8),
            (ColumnType::Integer, Some(Read::I64))
        );
        assert_eq!(natural_type(&Type::NUMERIC), (ColumnType::Decimal, None));
        assert_eq!(
            natural_type(&Type::TIMESTAMPTZ),
            (ColumnType::DateTime, Some(Read::TimestampTz))
        );
        assert_eq!(natural_type(&Type::UUID), (ColumnType::String, None));
        assert_eq!(natural_type(&Type::JSONB), (ColumnType::String, None));
    }

    #[test]
    fn datetimes_are_stored_as_files_store_them() {
        let t = time::macros::datetime!(2024-03-02 10:00:00.250 +02:00);
        assert_eq!(datetime_text(t).unwrap(), "2024-03-02T08:00:00Z");
        assert_eq!(
            crate::store::normalize_datetime("2024-03-02T10:00:00+02:00").unwrap(),
            "2024-03-02T08:00:00Z"
        );
    }
}
