//! Dates and numbers as exports write them. ISO 8601 dates (`2024-03-01`,
//! `2024-03-01T09:30:00Z`) always read; a source's `datetime_format`, in
//! strftime's notation as chrono reads it (`%d/%m/%Y %H:%M`), is tried
//! first, for the day-first and month-first dates spreadsheets write (a
//! list of them in turn, as exports write dates and date-times apart). Its
//! `decimal_separator` may be a comma (`12,50`), as in most of Europe, and
//! its `thousands_separator` groups digits by three (`1,234,567.50`,
//! `1.234.567,50`, `1 234 567,50`, `1'234'567.50`).

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::DateTime;

use super::quoted;

/// How a source writes dates and decimal numbers in text, when not as
/// ISO 8601 and with a point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locale {
    /// Tried before ISO 8601 for datetime columns.
    pub dates: Option<DateFormats>,
    /// Decimal numbers are written `12,50`: a point is then no number's.
    pub decimal_comma: bool,
    /// What numbers may group their digits by three with (never the
    /// decimal separator).
    pub thousands: Option<char>,
}

impl Locale {
    /// `text` as a finite decimal number, written with this locale's
    /// separators.
    pub fn decimal(&self, text: &str) -> Option<f64> {
        let text = self.ungrouped(text)?;
        let value = match self.decimal_comma {
            false => text.parse::<f64>(),
            true if text.contains('.') => return None,
            true => text.replacen(',', ".", 1).parse::<f64>(),
        };
        value.ok().filter(|f| f.is_finite())
    }

    /// `text` as an integer, its digits grouped as this locale groups them.
    pub fn integer(&self, text: &str) -> Option<i64> {
        match self.thousands {
            None => text.parse().ok(),
            Some(_) => self.ungrouped(text)?.parse().ok(),
        }
    }

    /// `text` without its thousands separators: `None` when it has some
    /// but does not group its whole-number digits by three (`1,23,456`,
    /// `12,34`), which is then not a number.
    fn ungrouped<'t>(&self, text: &'t str) -> Option<Cow<'t, str>> {
        let Some(sep) = self.thousands.filter(|sep| text.contains(*sep)) else {
            return Some(Cow::Borrowed(text));
        };
        let unsigned = text.trim_start_matches(['-', '+']);
        let point = if self.decimal_comma { ',' } else { '.' };
        let whole = unsigned.split(point).next().unwrap_or_default();
        let mut groups = whole.split(sep);
        let first = groups.next().unwrap_or_default();
        let digits = |g: &str| g.bytes().all(|b| b.is_ascii_digit());
        let grouped = (1..=3).contains(&first.len())
            && digits(first)
            && groups.all(|g| g.len() == 3 && digits(g));
        let rest = &unsigned[whole.len()..];
        (grouped && !rest.contains(sep)).then(|| Cow::Owned(text.replace(sep, "")))
    }
}

/// Characters a `thousands_separator` may be.
pub const THOUSANDS_SEPARATORS: [char; 5] = [',', '.', ' ', '\'', '\u{a0}'];

/// A `thousands_separator` as configured, for decimals written with a
/// comma or not: one of [`THOUSANDS_SEPARATORS`] (a narrow no-break space,
/// U+202F, too), not the decimal separator.
pub fn parse_thousands_separator(s: &str, decimal_comma: bool) -> Result<char, String> {
    let mut chars = s.chars();
    let sep = match (chars.next(), chars.next()) {
        (Some(c), None) if THOUSANDS_SEPARATORS.contains(&c) || c == '\u{202f}' => c,
        _ => {
            return Err(format!(
                "{}: expected \",\", \".\", \" \" or \"'\" (or a no-break space)",
                quoted(s)
            ))
        }
    };
    let (point, other, example) = match decimal_comma {
        false => ('.', ',', "1.234,50"),
        true => (',', '.', "1,234.50"),
    };
    if sep == point {
        return Err(format!(
            "{}: that is the decimal separator (decimal_separator = \"{point}\"); numbers written {example} need decimal_separator = \"{other}\"",
            quoted(s)
        ));
    }
    Ok(sep)
}

/// A `decimal_separator` as configured: `.` (the default) or `,`; whether
/// it is the comma.
pub fn parse_decimal_separator(s: &str) -> Result<bool, String> {
    match s {
        "." => Ok(false),
        "," => Ok(true),
        _ => Err(format!("{}: expected \".\" or \",\"", quoted(s))),
    }
}

/// Longest `datetime_format`, in bytes.
pub const MAX_DATETIME_FORMAT_BYTES: usize = 64;

/// Most formats one `datetime_format` may list.
pub const MAX_DATETIME_FORMATS: usize = 8;

/// A source's date formats, tried in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormats(Vec<DateFormat>);

impl DateFormats {
    /// Each of `formats` checked ([`DateFormat::parse`]); `None` when
    /// there are none.
    pub fn parse(formats: &[&str]) -> Result<Option<Self>, String> {
        if formats.len() > MAX_DATETIME_FORMATS {
            return Err(format!(
                "{} formats: at most {MAX_DATETIME_FORMATS} may be listed",
                formats.len()
            ));
        }
        let parsed = formats
            .iter()
            .map(|f| DateFormat::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((!parsed.is_empty()).then_some(Self(parsed)))
    }

    /// `text` read in the first format that reads it ([`DateFormat::read`]).
    pub fn read(&self, text: &str) -> Option<String> {
        self.0.iter().find_map(|f| f.read(text))
    }

    /// The formats as written, joined by ` | `.
    pub fn as_text(&self) -> String {
        let formats: Vec<&str> = self.0.iter().map(DateFormat::as_str).collect();
        formats.join(" | ")
    }

    /// The formats quoted, for a message: `'%d/%m/%Y' or '%Y%m%d'`.
    pub fn quoted(&self) -> String {
        let formats: Vec<String> = self.0.iter().map(|f| quoted(f.as_str())).collect();
        formats.join(" or ")
    }
}

/// A checked `datetime_format`: it writes and reads back a date. Parsed
/// once; each value is then read in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    text: String,
    items: Vec<Item<'static>>,
}

impl DateFormat {
    /// `format` if it is strftime's notation and names at least a day, a
    /// month and a year (a moment written in it reads back as that day).
    pub fn parse(format: &str) -> Result<Self, String> {
        let refused = |why: &str| {
            format!(
                "{}: {why} (e.g. \"%d/%m/%Y\" or \"%m/%d/%Y %I:%M %p\")",
                quoted(format)
            )
        };
        if format.len() > MAX_DATETIME_FORMAT_BYTES {
            return Err(refused(&format!(
                "longer than {MAX_DATETIME_FORMAT_BYTES} bytes"
            )));
        }
        let Ok(items) = StrftimeItems::new(format).parse_to_owned() else {
            return Err(refused("not a strftime format"));
        };
        let checked = Self {
            text: format.to_owned(),
            items,
        };
        let sample = DateTime::parse_from_rfc3339("2024-03-21T13:45:30Z")
            .map_err(|e| refused(&e.to_string()))?;
        let mut written = String::new();
        let read = write!(written, "{}", sample.format(format))
            .ok()
            .and_then(|()| checked.read(&written));
        match read {
            Some(date) if date.starts_with("2024-03-21") => Ok(checked),
            _ => Err(refused("it does not name a day, a month and a year")),
        }
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `text` read in this format, as the store keeps dates
    /// (`YYYY-MM-DDTHH:MM:SSZ`, UTC; a time without offset is taken as
    /// UTC, a date alone as its midnight), or `None`.
    pub fn read(&self, text: &str) -> Option<String> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, self.items.iter()).ok()?;
        let utc = match parsed.to_datetime() {
            Ok(dt) => dt.naive_utc(),
            Err(_) => match parsed.to_naive_datetime_with_offset(0) {
                Ok(dt) => dt,
                Err(_) => parsed.to_naive_date().ok()?.and_hms_opt(0, 0, 0)?,
            },
        };
        let year = chrono::Datelike::year(&utc);
        (0..=9999)
            .contains(&year)
            .then(|| utc.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_with_a_point_or_a_comma() {
        let comma = Locale {
            decimal_comma: true,
            ..Locale::default()
        };
        assert_eq!(comma.decimal("12,50"), Some(12.5));
        assert_eq!(comma.decimal("-3"), Some(-3.0));
        for not in ["12.50", "1.234,50", "1,2,3", "inf", ""] {
            assert_eq!(comma.decimal(not), None, "{not}");
        }
        assert_eq!(Locale::default().decimal("12.50"), Some(12.5));
        assert_eq!(Locale::default().decimal("12,50"), None);
        assert_eq!(parse_decimal_separator(","), Ok(true));
        assert_eq!(
            parse_decimal_separator(";"),
            Err("';': expected \".\" or \",\"".into())
        );
    }

    #[test]
    fn thousands_separators_group_whole_digits_by_three() {
        let locale = |decimal_comma, sep| Locale {
            decimal_comma,
            thousands: Some(sep),
            ..Locale::default()
        };
        let (us, de, fr, ch) = (
            locale(false, ','),
            locale(true, '.'),
            locale(true, '\u{202f}'),
            locale(false, '\''),
        );
        assert_eq!(us.decimal("1,234,567.50"), Some(1_234_567.5));
        assert_eq!(us.integer("-1,234"), Some(-1234));
        assert_eq!(us.integer("1234"), Some(1234), "ungrouped still reads");
        assert_eq!(de.decimal("1.234.567,50"), Some(1_234_567.5));
        assert_eq!(de.integer("1.234"), Some(1234));
        assert_eq!(fr.decimal("1\u{202f}234,5"), Some(1234.5));
        assert_eq!(ch.integer("1'234'567"), Some(1_234_567));
        for not in [
            "1,23,456",
            "12,34",
            "1,234,",
            ",123",
            "1,234.5,6",
            "1,2345",
            "a,123",
        ] {
            assert_eq!(us.decimal(not), None, "{not}");
            assert_eq!(us.integer(not), None, "{not}");
        }
        assert_eq!(Locale::default().integer("1,234"), None);
        assert_eq!(parse_thousands_separator(",", false), Ok(','));
        assert_eq!(parse_thousands_separator(" ", true), Ok(' '));
        assert_eq!(
            parse_thousands_separator(".", false),
            Err("'.': that is the decimal separator (decimal_separator = \".\"); numbers written 1.234,50 need decimal_separator = \",\"".into())
        );
        assert_eq!(
            parse_thousands_separator("_", false),
            Err("'_': expected \",\", \".\", \" \" or \"'\" (or a no-break space)".into())
        );
    }

    #[test]
    fn day_first_month_first_with_times_and_offsets() {
        let read = |f: &str, s: &str| DateFormat::parse(f).unwrap().read(s);
        let cases = [
            ("%d/%m/%Y", "28/12/2025", Some("2025-12-28T00:00:00Z")),
            (
                "%d/%m/%Y %H:%M",
                "28/12/2025 09:05",
                Some("2025-12-28T09:05:00Z"),
            ),
            (
                "%m/%d/%Y %I:%M %p",
                "12/28/2025 09:05 PM",
                Some("2025-12-28T21:05:00Z"),
            ),
            (
                "%d.%m.%Y %H:%M %z",
                "28.12.2025 09:05 +0100",
                Some("2025-12-28T08:05:00Z"),
            ),
            ("%d %b %Y", "28 Dec 2025", Some("2025-12-28T00:00:00Z")),
            ("%d/%m/%Y", "31/02/2025", None),
            ("%d/%m/%Y", "2025-12-28", None),
        ];
        for (format, text, want) in cases {
            assert_eq!(read(format, text).as_deref(), want, "{format} {text}");
        }
        for (format, why) in [
            ("%d/%m", "it does not name a day, a month and a year"),
            ("%Q", "not a strftime format"),
            ("%H:%M", "it does not name a day, a month and a year"),
        ] {
            assert_eq!(
                DateFormat::parse(format),
                Err(format!(
                    "'{format}': {why} (e.g. \"%d/%m/%Y\" or \"%m/%d/%Y %I:%M %p\")"
                ))
            );
        }
        assert!(DateFormat::parse(&"%Y".repeat(40)).is_err());
    }
}
