//! Column types: the type each value suggests, the types a column's values
//! settle on, and converting text and JSON values to a column's type.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rusqlite::types::Value;

use super::dialect::PLAIN;
use super::locale::Locale;
use super::quoted;
use super::rows::{Raw, Row};
use crate::odata::{is_datetime, normalized_datetime, ColumnType};

/// The types the values of each column suggest, as rows are seen (text
/// once values disagree: text and anything else stays text).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Typing {
    inferred: Vec<Option<ColumnType>>,
}

impl Typing {
    /// Take in the types of a row's values, but for `settled` columns.
    pub(super) fn observe(&mut self, row: &Row<'_>, settled: &[bool], locale: &Locale) {
        row.each_type(settled, locale, |i, t| {
            if self.inferred.len() <= i {
                self.inferred.resize(i + 1, None);
            }
            self.inferred[i] = Some(match self.inferred[i] {
                None => t,
                Some(a) if a == t => a,
                Some(ColumnType::Integer) if t == ColumnType::Decimal => ColumnType::Decimal,
                Some(ColumnType::Decimal) if t == ColumnType::Integer => ColumnType::Decimal,
                Some(_) => ColumnType::String,
            });
        });
    }

    /// Columns whose type no further value can change: those given one,
    /// and text (text and anything else is text).
    pub(super) fn settled(
        &self,
        columns: &[String],
        given: &BTreeMap<String, ColumnType>,
    ) -> Vec<bool> {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                given.contains_key(c)
                    || self.inferred.get(i).copied().flatten() == Some(ColumnType::String)
            })
            .collect()
    }

    /// `columns` with their types: given, else inferred (text when never
    /// seen).
    pub(super) fn typed(
        &self,
        columns: &[String],
        given: &BTreeMap<String, ColumnType>,
    ) -> Vec<(String, ColumnType)> {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let t = given.get(c).copied().unwrap_or_else(|| {
                    let inferred = self.inferred.get(i).copied().flatten();
                    inferred.unwrap_or(ColumnType::String)
                });
                (c.clone(), t)
            })
            .collect()
    }
}

/// The type one value suggests (`None` for null).
pub(super) fn infer_one(v: &Raw<'_>, locale: &Locale) -> Option<ColumnType> {
    Some(match v {
        Raw::Null => return None,
        Raw::Str(s) if is_date(s, locale) => ColumnType::DateTime,
        Raw::Str(_) => ColumnType::String,
        Raw::Bool(_) => ColumnType::Boolean,
        Raw::Num(n) if n.is_i64() => ColumnType::Integer,
        Raw::Num(_) => ColumnType::Decimal,
        Raw::Json(v) => match &**v {
            serde_json::Value::String(s) if is_date(s, locale) => ColumnType::DateTime,
            _ => ColumnType::String,
        },
    })
}

/// The type a file's text suggests, its decimals written as `locale` says.
pub(super) fn infer_text(s: &str, locale: &Locale) -> ColumnType {
    let comma = locale.decimal_comma;
    let t = s.trim();
    let digits = t.trim_start_matches(['-', '+']);
    // Leading zeros (postal codes, phone numbers) keep the text as it is.
    let fraction = if comma { "0," } else { "0." };
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with(fraction);
    if leading_zero {
        ColumnType::String
    } else if locale.integer(t).is_some() {
        ColumnType::Integer
    } else if locale.decimal(t).is_some() && t.chars().any(|c| c.is_ascii_digit()) {
        ColumnType::Decimal
    } else if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        ColumnType::Boolean
    } else if is_date(t, locale) {
        ColumnType::DateTime
    } else {
        ColumnType::String
    }
}

/// Whether `text` is a date: in ISO 8601, or in the source's
/// `datetime_format`.
fn is_date(text: &str, locale: &Locale) -> bool {
    is_datetime(text)
        || locale
            .dates
            .as_ref()
            .is_some_and(|d| d.read(text).is_some())
}

/// `text` as a value of type `t`, as a file's text would be read (a
/// database column that arrives as text goes the same way).
pub(crate) fn convert_text(text: String, t: ColumnType) -> Result<Value, String> {
    convert_text_in(text, t, &PLAIN.locale)
}

/// [`convert_text`], dates and decimals read as `locale` writes them.
fn convert_text_in(text: String, t: ColumnType, locale: &Locale) -> Result<Value, String> {
    match t {
        ColumnType::String => Ok(Value::Text(text)),
        ColumnType::DateTime => match datetime_ref(&text, locale) {
            // Text already as stored is kept, not copied.
            Some(Cow::Borrowed(d)) if d.len() == text.len() => Ok(Value::Text(text)),
            Some(d) => Ok(Value::Text(d.into_owned())),
            None => Err(not_a_datetime(&text, locale)),
        },
        _ => convert_str(&text, t, locale),
    }
}

/// Text read from a file as a datetime, borrowed when already as stored;
/// `None` when it is not one (then [`convert_str`] says why).
pub(super) fn datetime_ref<'s>(s: &'s str, locale: &Locale) -> Option<Cow<'s, str>> {
    let s = s.trim();
    match &locale.dates {
        Some(d) => d.read(s).map(Cow::Owned).or_else(|| normalized_datetime(s)),
        None => normalized_datetime(s),
    }
}

/// A JSON value as a value of type `t`: numbers and booleans as they are,
/// anything else by its text.
pub(super) fn convert(v: Raw<'_>, t: ColumnType, locale: &Locale) -> Result<Value, String> {
    match (t, v) {
        (_, Raw::Null) => Ok(Value::Null),
        (t, Raw::Str(s)) => convert_text_in(s.into_owned(), t, locale),
        (ColumnType::Integer, Raw::Num(n)) => n
            .as_i64()
            .map(Value::Integer)
            .ok_or_else(|| format!("{n} is not an integer")),
        (ColumnType::Decimal, Raw::Num(n)) => n
            .as_f64()
            .map(Value::Real)
            .ok_or_else(|| format!("{n} is not a number")),
        (ColumnType::Boolean, Raw::Bool(b)) => Ok(Value::Integer(i64::from(b))),
        (t, Raw::Num(n)) => convert_text_in(n.to_string(), t, locale),
        (t, Raw::Bool(b)) => convert_text_in(b.to_string(), t, locale),
        (t, Raw::Json(v)) => match *v {
            serde_json::Value::String(s) => convert_text_in(s, t, locale),
            other => convert_text_in(other.to_string(), t, locale),
        },
    }
}

/// Text read from a file as a value of type `t`.
pub(super) fn convert_str(s: &str, t: ColumnType, locale: &Locale) -> Result<Value, String> {
    match t {
        ColumnType::String => Ok(Value::Text(s.to_owned())),
        ColumnType::Integer => {
            locale
                .integer(s.trim())
                .map(Value::Integer)
                .ok_or_else(|| match locale.thousands {
                    Some(t) => format!(
                        "{} is not an integer (with thousands_separator {}, as 1{t}234)",
                        quoted(s),
                        quoted(&t.to_string())
                    ),
                    None => format!("{} is not an integer", quoted(s)),
                })
        }
        ColumnType::Decimal => {
            locale
                .decimal(s.trim())
                .map(Value::Real)
                .ok_or_else(|| match locale.decimal_comma {
                    true => format!(
                        "{} is not a decimal number (with decimal_separator ',', as 12,50)",
                        quoted(s)
                    ),
                    false => format!("{} is not a decimal number", quoted(s)),
                })
        }
        ColumnType::Boolean => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Integer(1)),
            "false" | "0" | "no" => Ok(Value::Integer(0)),
            _ => Err(format!("{} is not a boolean (true/false)", quoted(s))),
        },
        ColumnType::DateTime => datetime_ref(s, locale)
            .map(|d| Value::Text(d.into_owned()))
            .ok_or_else(|| not_a_datetime(s, locale)),
    }
}

/// Why `s` is not a datetime, as the source's formats read one.
pub(super) fn not_a_datetime(s: &str, locale: &Locale) -> String {
    match &locale.dates {
        Some(d) => format!(
            "{} is not a date or date-time in datetime_format {} (nor ISO 8601, e.g. 2024-03-01)",
            quoted(s),
            d.quoted()
        ),
        None => format!("{} is not a date or date-time (expected e.g. 2024-03-01 or 2024-03-01T09:30:00Z; set datetime_format for others)", quoted(s)),
    }
}
