//! How a source's files are written beyond their format: CSV's field
//! separator, the text encoding, dates and decimals, and whether JSON
//! objects' fields are columns. One value, given by a source's settings
//! or `entities import`'s flags, read by every import of its files.

use super::encoding::Encoding;
use super::locale::Locale;

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
            out.push_str(&format!("|datetime_format {}", f.as_str()));
        }
        if self.locale.decimal_comma {
            out.push_str("|decimal_separator ,");
        }
        if self.flatten {
            out.push_str("|flatten");
        }
        out
    }
}
