//! `entities import`'s flags for how a file is written: the source
//! settings of the same names, as one `FileDialect`.

use anyhow::anyhow;
use clap::Args;
use triggerfish_data::store::{
    parse_decimal_separator, parse_delimiter, parse_encoding, DateFormat, FileDialect, Locale,
};

/// How the file is written beyond its format.
#[derive(Args, Debug, Default)]
pub struct DialectArgs {
    /// CSV's field separator: one character, or `tab` (default: `,`; a
    /// tab for `.tsv`).
    #[arg(long)]
    delimiter: Option<String>,
    /// The file's encoding when it has no byte-order mark, e.g.
    /// `windows-1252` (default: UTF-8).
    #[arg(long)]
    encoding: Option<String>,
    /// How datetime columns are written when not in ISO 8601, in
    /// strftime's notation, e.g. `%d/%m/%Y %H:%M`.
    #[arg(long)]
    datetime_format: Option<String>,
    /// How decimal numbers are written: `.` (default) or `,` (12,50).
    #[arg(long)]
    decimal_separator: Option<String>,
    /// JSON: the fields of nested objects are columns of their own,
    /// named by their path (`Address.City`: `AddressCity`).
    #[arg(long)]
    flatten: bool,
}

impl DialectArgs {
    /// The dialect the flags say; a `format` named `tsv` separates by tabs.
    pub fn dialect(self, format: Option<&str>) -> anyhow::Result<FileDialect> {
        let tsv = format.is_some_and(|f| f.eq_ignore_ascii_case("tsv"));
        let delimiter = match self.delimiter {
            Some(d) => Some(parse_delimiter(&d).map_err(|m| anyhow!("--delimiter {m}"))?),
            None => tsv.then_some(b'\t'),
        };
        let encoding = match self.encoding {
            Some(e) => Some(parse_encoding(&e).map_err(|m| anyhow!("--encoding {m}"))?),
            None => None,
        };
        let dates = match self.datetime_format {
            Some(f) => Some(DateFormat::parse(&f).map_err(|m| anyhow!("--datetime-format {m}"))?),
            None => None,
        };
        let decimal_comma = match self.decimal_separator {
            Some(d) => {
                parse_decimal_separator(&d).map_err(|m| anyhow!("--decimal-separator {m}"))?
            }
            None => false,
        };
        Ok(FileDialect {
            delimiter,
            encoding,
            locale: Locale {
                dates,
                decimal_comma,
            },
            flatten: self.flatten,
        })
    }
}
