//! A file source's dialect validated: `delimiter`, `encoding`,
//! `datetime_format`, `decimal_separator` and `flatten`, each checked
//! against the format its files are read as.

use super::{SourceConfig, Validator, WorkspaceError};
use crate::store::{
    parse_decimal_separator, parse_delimiter, parse_encoding, DateFormat, FileDialect,
    ImportFormat, Locale,
};

/// How the files of `s`, read as `read_as`, are written.
pub(super) fn file_dialect(
    v: &Validator,
    s: &SourceConfig,
    read_as: ImportFormat,
    key: &dyn Fn(&str) -> String,
) -> Result<FileDialect, WorkspaceError> {
    let tsv = s
        .format
        .as_ref()
        .is_some_and(|f| f.get_ref().eq_ignore_ascii_case("tsv"));
    let delimiter = match &s.delimiter {
        Some(d) if read_as != ImportFormat::Csv => {
            return Err(v.invalid(d.span(), &key("delimiter"), "`delimiter` is for CSV files"))
        }
        Some(d) => Some(
            parse_delimiter(d.get_ref()).map_err(|m| v.invalid(d.span(), &key("delimiter"), &m))?,
        ),
        None => tsv.then_some(b'\t'),
    };
    let encoding = s
        .encoding
        .as_ref()
        .map(|e| parse_encoding(e.get_ref()).map_err(|m| v.invalid(e.span(), &key("encoding"), &m)))
        .transpose()?;
    let dates = s
        .datetime_format
        .as_ref()
        .map(|f| {
            DateFormat::parse(f.get_ref())
                .map_err(|m| v.invalid(f.span(), &key("datetime_format"), &m))
        })
        .transpose()?;
    let decimal_comma = match &s.decimal_separator {
        None => false,
        Some(d) => parse_decimal_separator(d.get_ref())
            .map_err(|m| v.invalid(d.span(), &key("decimal_separator"), &m))?,
    };
    let flatten = match &s.flatten {
        Some(f) if *f.get_ref() && read_as == ImportFormat::Csv => {
            return Err(v.invalid(
                f.span(),
                &key("flatten"),
                "`flatten` is for JSON and NDJSON files: CSV does not nest",
            ))
        }
        Some(f) => *f.get_ref(),
        None => false,
    };
    Ok(FileDialect {
        delimiter,
        encoding,
        locale: Locale {
            dates,
            decimal_comma,
        },
        flatten,
    })
}
