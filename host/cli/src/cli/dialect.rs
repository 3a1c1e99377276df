//! `entities import`'s flags for how a file is written: the source
//! settings of the same names, as one `FileDialect`.

use std::path::Path;

use anyhow::anyhow;
use clap::Args;
use triggerfish_data::store::{DialectText, FileDialect, ImportFormat};

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
    /// strftime's notation, e.g. `%d/%m/%Y %H:%M`; repeat it for several,
    /// tried in turn.
    #[arg(long)]
    datetime_format: Vec<String>,
    /// How decimal numbers are written: `.` (default) or `,` (12,50).
    #[arg(long)]
    decimal_separator: Option<String>,
    /// What numbers group their digits by three with: `,` (1,234.50),
    /// `.` (1.234,50), a space or `'` (default: none).
    #[arg(long)]
    thousands_separator: Option<String>,
    /// JSON: the fields of nested objects are columns of their own,
    /// named by their path (`Address.City`: `AddressCity`).
    #[arg(long)]
    flatten: bool,
}

impl DialectArgs {
    /// The dialect the flags say for `file`, read as `format` (given, or
    /// from its extension); an error names the flag.
    pub fn dialect(&self, format: Option<&str>, file: &Path) -> anyhow::Result<FileDialect> {
        let formats: Vec<&str> = self.datetime_format.iter().map(String::as_str).collect();
        let written = DialectText {
            delimiter: self.delimiter.as_deref(),
            encoding: self.encoding.as_deref(),
            datetime_format: &formats,
            decimal_separator: self.decimal_separator.as_deref(),
            thousands_separator: self.thousands_separator.as_deref(),
            flatten: self.flatten,
            tsv: format.is_some_and(|f| f.eq_ignore_ascii_case("tsv")),
        };
        let read_as = format
            .and_then(ImportFormat::parse)
            .or_else(|| ImportFormat::from_path(file));
        FileDialect::parse(&written, read_as)
            .map_err(|e| anyhow!("--{} {}", e.setting.replace('_', "-"), e.message))
    }
}
