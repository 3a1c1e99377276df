//! Tokens of a `$filter` with their character positions.

use super::QueryOptionError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Dec(f64),
    DateTime(String),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: u32,
    /// The text as written, for error messages.
    pub text: String,
}

fn err(option: &'static str, pos: usize, message: String) -> QueryOptionError {
    QueryOptionError {
        option,
        position: u32::try_from(pos).unwrap_or(u32::MAX),
        message,
    }
}

/// Split `text` into tokens, refusing text longer than
/// [`super::MAX_QUERY_OPTION_BYTES`] before looking at it.
pub(super) fn lex(option: &'static str, text: &str) -> Result<Vec<Token>, QueryOptionError> {
    super::check_length(option, text)?;
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(err(option, start, "unterminated string literal".into()))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // A date-time starts with four digits and a dash.
                let is_date = chars.len() >= i + 5
                    && chars[i..i + 4].iter().all(char::is_ascii_digit)
                    && chars[i + 4] == '-';
                if is_date {
                    while i < chars.len()
                        && (chars[i].is_ascii_alphanumeric()
                            || matches!(chars[i], '-' | ':' | '.' | '+'))
                    {
                        i += 1;
                    }
                    let raw: String = chars[start..i].iter().collect();
                    match super::normalize_datetime(&raw) {
                        Some(d) => Tok::DateTime(d),
                        None => {
                            return Err(err(
                                option,
                                start,
                                format!("'{raw}' is not a date-time (expected e.g. 2024-03-01 or 2024-03-01T09:30:00Z)"),
                            ))
                        }
                    }
                } else {
                    i += 1;
                    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                        i += 1;
                    }
                    let raw: String = chars[start..i].iter().collect();
                    if raw.contains('.') {
                        match raw.parse::<f64>() {
                            Ok(x) if x.is_finite() => Tok::Dec(x),
                            _ => {
                                return Err(err(option, start, format!("'{raw}' is not a number")))
                            }
                        }
                    } else {
                        match raw.parse::<i64>() {
                            Ok(n) => Tok::Int(n),
                            Err(_) => {
                                return Err(err(option, start, format!("'{raw}' is out of range")))
                            }
                        }
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                Tok::Ident(chars[start..i].iter().collect())
            }
            other => {
                return Err(err(
                    option,
                    start,
                    format!("unexpected character '{other}'"),
                ))
            }
        };
        out.push(Token {
            tok,
            pos: u32::try_from(start).unwrap_or(u32::MAX),
            text: chars[start..i].iter().collect(),
        });
    }
    Ok(out)
}
