//! A file source's dialect validated: `delimiter`, `encoding`,
//! `datetime_format`, `decimal_separator`, `thousands_separator` and
//! `flatten`, each checked
//! against the format its files are read as, an error located at the
//! setting's value.

use super::{SourceConfig, Validator, WorkspaceError};
use crate::store::{DialectText, FileDialect, ImportFormat};

/// A setting's text, if written.
fn text(setting: &Option<toml::Spanned<String>>) -> Option<&str> {
    setting.as_ref().map(|t| t.get_ref().as_str())
}

/// How the files of `s`, read as `read_as`, are written.
pub(super) fn file_dialect(
    v: &Validator,
    s: &SourceConfig,
    read_as: ImportFormat,
    key: &dyn Fn(&str) -> String,
) -> Result<FileDialect, WorkspaceError> {
    let formats = s
        .datetime_format
        .as_ref()
        .map(|f| f.get_ref().texts())
        .unwrap_or_default();
    let written = DialectText {
        delimiter: text(&s.delimiter),
        encoding: text(&s.encoding),
        datetime_format: &formats,
        decimal_separator: text(&s.decimal_separator),
        thousands_separator: text(&s.thousands_separator),
        flatten: s.flatten.as_ref().is_some_and(|f| *f.get_ref()),
        tsv: text(&s.format).is_some_and(|f| f.eq_ignore_ascii_case("tsv")),
    };
    FileDialect::parse(&written, Some(read_as)).map_err(|e| {
        let span = match e.setting {
            "delimiter" => s.delimiter.as_ref().map(|t| t.span()),
            "encoding" => s.encoding.as_ref().map(|t| t.span()),
            "datetime_format" => s.datetime_format.as_ref().map(|t| t.span()),
            "decimal_separator" => s.decimal_separator.as_ref().map(|t| t.span()),
            "thousands_separator" => s.thousands_separator.as_ref().map(|t| t.span()),
            _ => s.flatten.as_ref().map(|t| t.span()),
        };
        v.invalid(
            span.unwrap_or_else(|| s.name.span()),
            &key(e.setting),
            &e.message,
        )
    })
}
