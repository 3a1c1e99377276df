//! How a source's files are written beyond their format: CSV's field
//! separator, the text encoding, dates and decimals, and whether JSON
//! objects' fields are columns. One value, given by a source's settings
//! or `entities import`'s flags, read by every import of its files.

use super::encoding::{parse_encoding, Encoding};
use super::locale::{parse_decimal_separator, parse_thousands_separator, DateFormats, Locale};
use super::{parse_delimiter, ImportFormat};

/// A source's way of writing its files; [`PLAIN`] when nothing is said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileDialect {
    /// CSV's field separator; by default each file's
    /// ([`super::ImportFormat::default_delimiter`]).
    pub delimiter: Option<u8>,
    /// The files' encoding when they have no byte-order mark; UTF-8 when
    /// `None`.
    pub encoding: Option<&'static Encoding>,
    /// How dates and decimals are written when not in ISO 8601 and with a
    /// point.
    pub locale: Locale,
    /// JSON: the fields of objects are columns of their own, named by
    /// their path (`Address.City`: `AddressCity`).
    pub flatten: bool,
}

/// Commas (tabs for `.tsv`), UTF-8, ISO 8601 dates, decimal points,
/// nested objects kept whole.
pub static PLAIN: FileDialect = FileDialect {
    delimiter: None,
    encoding: None,
    locale: Locale {
        dates: None,
        decimal_comma: false,
        thousands: None,
    },
    flatten: false,
};

impl FileDialect {
    /// What differs from [`PLAIN`], as text for a fingerprint: empty when
    /// nothing does, so that sources which say nothing keep theirs.
    pub fn settings(&self) -> String {
        let mut out = String::new();
        if let Some(d) = self.delimiter {
            out.push_str(&format!("|delimiter {d}"));
        }
        if let Some(e) = self.encoding {
            out.push_str(&format!("|encoding {}", e.name()));
        }
        if let Some(f) = &self.locale.dates {
            out.push_str(&format!("|datetime_format {}", f.as_text()));
        }
        if self.locale.decimal_comma {
            out.push_str("|decimal_separator ,");
        }
        if let Some(t) = self.locale.thousands {
            out.push_str(&format!("|thousands_separator {t}"));
        }
        if self.flatten {
            out.push_str("|flatten");
        }
        out
    }
}

/// A dialect's settings as written: a source's values or a command's
/// flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct DialectText<'a> {
    pub delimiter: Option<&'a str>,
    pub encoding: Option<&'a str>,
    /// Tried in turn; none when empty.
    pub datetime_format: &'a [&'a str],
    pub decimal_separator: Option<&'a str>,
    pub thousands_separator: Option<&'a str>,
    pub flatten: bool,
    /// The format was named `tsv`: tab-separated unless said otherwise.
    pub tsv: bool,
}

/// A setting of a [`DialectText`] that is wrong, by its name
/// (`delimiter`, `encoding`, …), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectError {
    pub setting: &'static str,
    pub message: String,
}

impl FileDialect {
    /// The dialect `text` says, for files read as `read_as` (when known,
    /// settings for another format are refused).
    pub fn parse(
        text: &DialectText<'_>,
        read_as: Option<ImportFormat>,
    ) -> Result<Self, DialectError> {
        let wrong =
            |setting: &'static str| move |message: String| DialectError { setting, message };
        let csv = read_as.map(|f| f == ImportFormat::Csv);
        if text.delimiter.is_some() && csv == Some(false) {
            return Err(wrong("delimiter")("`delimiter` is for CSV files".into()));
        }
        if text.flatten && csv == Some(true) {
            return Err(wrong("flatten")(
                "`flatten` is for JSON and NDJSON files: CSV does not nest".into(),
            ));
        }
        let delimiter = match text.delimiter {
            Some(d) => Some(parse_delimiter(d).map_err(wrong("delimiter"))?),
            None => text.tsv.then_some(b'\t'),
        };
        let encoding = text
            .encoding
            .map(parse_encoding)
            .transpose()
            .map_err(wrong("encoding"))?;
        let dates = DateFormats::parse(text.datetime_format).map_err(wrong("datetime_format"))?;
        let decimal_comma = match text.decimal_separator {
            Some(d) => parse_decimal_separator(d).map_err(wrong("decimal_separator"))?,
            None => false,
        };
        let thousands = text
            .thousands_separator
            .map(|t| parse_thousands_separator(t, decimal_comma))
            .transpose()
            .map_err(wrong("thousands_separator"))?;
        Ok(Self {
            delimiter,
            encoding,
            locale: Locale {
                dates,
                decimal_comma,
                thousands,
            },
            flatten: text.flatten,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_as_written_make_a_dialect_or_name_the_one_that_is_wrong() {
        let written = DialectText {
            delimiter: Some(";"),
            encoding: Some("latin1"),
            datetime_format: &["%d/%m/%Y"],
            decimal_separator: Some(","),
            ..DialectText::default()
        };
        let d = FileDialect::parse(&written, Some(ImportFormat::Csv)).unwrap();
        assert_eq!(d.delimiter, Some(b';'));
        assert_eq!(d.encoding.map(Encoding::name), Some("windows-1252"));
        assert!(d.locale.decimal_comma && d.locale.dates.is_some() && !d.flatten);
        assert_eq!(
            d.settings(),
            "|delimiter 59|encoding windows-1252|datetime_format %d/%m/%Y|decimal_separator ,"
        );
        assert_eq!(PLAIN.settings(), "");
        let tsv = DialectText {
            tsv: true,
            ..DialectText::default()
        };
        assert_eq!(
            FileDialect::parse(&tsv, None).unwrap().delimiter,
            Some(b'\t')
        );
        let wrong = |text: DialectText<'_>, read_as| {
            FileDialect::parse(&text, read_as)
                .map(|_| ())
                .map_err(|e| e.setting)
        };
        let flatten = DialectText {
            flatten: true,
            ..DialectText::default()
        };
        assert_eq!(wrong(flatten, Some(ImportFormat::Csv)), Err("flatten"));
        assert_eq!(wrong(flatten, None), Ok(()), "format unknown: not checked");
        for (text, setting) in [
            (
                DialectText {
                    delimiter: Some(";"),
                    ..DialectText::default()
                },
                "delimiter",
            ),
            (
                DialectText {
                    encoding: Some("klingon"),
                    ..DialectText::default()
                },
                "encoding",
            ),
            (
                DialectText {
                    datetime_format: &["%d/%m/%Y", "%Q"],
                    ..DialectText::default()
                },
                "datetime_format",
            ),
            (
                DialectText {
                    decimal_separator: Some(";"),
                    ..DialectText::default()
                },
                "decimal_separator",
            ),
        ] {
            assert_eq!(wrong(text, Some(ImportFormat::Json)), Err(setting));
        }
    }
}
