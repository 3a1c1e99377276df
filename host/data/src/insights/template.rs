//! Derived profile fields: a map entry whose value holds `{…}` builds the
//! field from columns, e.g. `FullName = "{FirstName} {LastName}"` or
//! `LastName = "{Name|word -1}"`.
//!
//! Syntax: literal text, and `{Column}` or `{Column|filter|…}` where a filter
//! is `word N` (the Nth whitespace-separated word, 1-based; negative counts
//! from the end), `upper`, `lower` or `trim`. `{{` and `}}` are literal
//! braces. A missing (null) column reads as empty; a result that is empty
//! after trimming is null.

use std::fmt;

/// Longest template accepted.
pub const MAX_TEMPLATE_CHARS: usize = 512;
/// Most `{…}` parts in one template.
pub const MAX_PARTS: usize = 32;

/// One transformation of a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Word(i32),
    Upper,
    Lower,
    Trim,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Column { name: String, filters: Vec<Filter> },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A template error, at a 0-based character position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

/// Whether a map value is a template rather than a column name.
pub fn is_template(value: &str) -> bool {
    value.contains('{') || value.contains('}')
}

impl Template {
    /// Parse a template; every error names its position.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let err = |position: usize, message: String| TemplateError { position, message };
        if text.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(err(
                MAX_TEMPLATE_CHARS,
                format!("longer than {MAX_TEMPLATE_CHARS} characters"),
            ));
        }
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    literal.push(chars[i]);
                    i += 2;
                }
                ('}', _) => return Err(err(i, "'}' without '{' (write '}}' for a brace)".into())),
                ('{', _) => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .map(|p| i + p)
                        .ok_or_else(|| err(i, "'{' is never closed".into()))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(column_part(&inner, i + 1)?);
                    if parts.len() > MAX_PARTS * 2 {
                        return Err(err(i, format!("more than {MAX_PARTS} parts")));
                    }
                    i = close + 1;
                }
                (c, _) => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if !parts.iter().any(|p| matches!(p, Part::Column { .. })) {
            return Err(err(
                0,
                "names no column (write e.g. \"{FirstName} {LastName}\")".into(),
            ));
        }
        Ok(Self { parts })
    }

    /// The columns it reads, in order of first use.
    pub fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.parts {
            if let Part::Column { name, .. } = p {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// The value for one row; `get` gives a column's text (None for null).
    pub fn render(&self, get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Column { name, filters } => {
                    let mut v = get(name).unwrap_or_default();
                    for f in filters {
                        v = apply(f, &v);
                    }
                    out.push_str(&v);
                }
            }
        }
        let trimmed = out.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_owned())
    }
}

fn apply(f: &Filter, v: &str) -> String {
    match f {
        Filter::Upper => v.to_uppercase(),
        Filter::Lower => v.to_lowercase(),
        Filter::Trim => v.trim().to_owned(),
        Filter::Word(n) => {
            let words: Vec<&str> = v.split_whitespace().collect();
            let index = if *n > 0 {
                usize::try_from(*n - 1).ok()
            } else {
                words.len().checked_sub(n.unsigned_abs() as usize)
            };
            index
                .and_then(|i| words.get(i))
                .map(|w| (*w).to_owned())
                .unwrap_or_default()
        }
    }
}

fn column_part(inner: &str, at: usize) -> Result<Part, TemplateError> {
    let err = |offset: usize, message: String| TemplateError {
        position: at + offset,
        message,
    };
    let mut pieces = inner.split('|');
    let written = pieces.next().unwrap_or("").trim();
    // A column as the file's header writes it, or as its column is named.
    let Some(name) = crate::store::column_name(written) else {
        return Err(err(0, format!("'{written}' is not a column name")));
    };
    let mut filters = Vec::new();
    let mut offset = inner.find('|').unwrap_or(inner.len());
    for piece in pieces {
        offset += 1;
        let words: Vec<&str> = piece.split_whitespace().collect();
        let filter = match words.as_slice() {
            ["upper"] => Filter::Upper,
            ["lower"] => Filter::Lower,
            ["trim"] => Filter::Trim,
            ["word", n] => match n.parse::<i32>() {
                Ok(n) if n != 0 && n.unsigned_abs() <= 1000 => Filter::Word(n),
                _ => {
                    return Err(err(
                        offset,
                        format!(
                            "'word {n}': expected a word number, 1 for the first, -1 for the last"
                        ),
                    ))
                }
            },
            _ => {
                return Err(err(
                    offset,
                    format!(
                        "unknown filter '{}' (expected word N, upper, lower or trim)",
                        piece.trim()
                    ),
                ))
            }
        };
        filters.push(filter);
        offset += piece.len();
    }
    Ok(Part::Column {
        name: name.into_owned(),
        filters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, row: &[(&str, Option<&str>)]) -> Option<String> {
        let t = Template::parse(t).unwrap();
        t.render(&|c| {
            row.iter()
                .find(|(k, _)| *k == c)
                .and_then(|(_, v)| v.map(str::to_owned))
        })
    }

    #[test]
    fn joins_and_splits() {
        let row = [
            ("First", Some("Ann")),
            ("Last", Some("Lee")),
            ("Name", Some("  Mary Ann  Smith ")),
        ];
        assert_eq!(render("{First} {Last}", &row).as_deref(), Some("Ann Lee"));
        assert_eq!(render("{Name|word 1}", &row).as_deref(), Some("Mary"));
        assert_eq!(
            render("{Name|word -1|upper}", &row).as_deref(),
            Some("SMITH")
        );
        assert_eq!(render("{Name|word 9}", &row), None);
        assert_eq!(render("{{{First}}}", &row).as_deref(), Some("{Ann}"));
        assert_eq!(render("{First} {Missing}", &row).as_deref(), Some("Ann"));
        assert_eq!(render("{Missing} {Other}", &row), None);
        assert_eq!(
            Template::parse("{Name|word 1} {Name|lower} {First}")
                .unwrap()
                .columns(),
            ["Name", "First"]
        );
    }

    #[test]
    fn errors_name_the_position() {
        for (t, want) in [
            ("{First", "at character 0: '{' is never closed"),
            ("First}", "at character 5: '}' without '{'"),
            ("{名前}", "at character 1: '名前' is not a column name"),
            ("{Name|wurd 1}", "at character 6: unknown filter 'wurd 1'"),
            (
                "{Name|word 0}",
                "at character 6: 'word 0': expected a word number",
            ),
            ("plain text", "at character 0: names no column"),
        ] {
            let e = Template::parse(t).unwrap_err().to_string();
            assert!(e.starts_with(want), "{t}: {e}");
        }
    }
}
