//! Value normalisers applied before match rules compare fields.

/// One normalisation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Normalizer {
    /// Strip leading and trailing white space.
    Trim,
    /// Lower-case (Unicode case folding, approximately).
    #[strum(to_string = "casefold", serialize = "lowercase")]
    Casefold,
    /// Collapse runs of white space to one space.
    Whitespace,
    /// Fold accented Latin letters to ASCII (`é` → `e`, `ß` → `ss`).
    #[strum(to_string = "ascii", serialize = "unaccent")]
    Ascii,
    /// Keep letters and digits only.
    Alphanumeric,
    /// Keep digits only; drop a leading international prefix (`+33 6…` → `6…`
    /// is NOT done: digits only, then the last 9 digits, so national and
    /// international forms of one number match).
    #[strum(to_string = "phone", serialize = "digits")]
    Phone,
    /// Trim and lower-case an address; drop a `+tag` from the local part.
    Email,
    /// Upper-case letters and digits only (postal codes).
    Postal,
}

impl Normalizer {
    /// Parse a normaliser name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// All names, for error messages.
    pub const NAMES: &'static str =
        "trim, casefold, whitespace, ascii, alphanumeric, phone, email, postal";

    /// The default normalisers for a profile field, by its name.
    pub fn defaults_for(field: &str) -> Vec<Normalizer> {
        let f = field.to_ascii_lowercase();
        if f.contains("email") {
            vec![Self::Email]
        } else if f.contains("phone") || f.contains("mobile") {
            vec![Self::Phone]
        } else if f.contains("postal") || f.contains("zip") {
            vec![Self::Postal]
        } else {
            vec![Self::Trim, Self::Whitespace, Self::Ascii, Self::Casefold]
        }
    }

    /// Apply this step.
    pub fn apply(self, s: &str) -> String {
        match self {
            Self::Trim => s.trim().to_owned(),
            Self::Casefold if s.is_ascii() => s.to_ascii_lowercase(),
            Self::Casefold => s.to_lowercase(),
            Self::Whitespace => {
                let mut out = String::with_capacity(s.len());
                for word in s.split_whitespace() {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
                out
            }
            Self::Ascii => {
                let mut out = String::with_capacity(s.len());
                s.chars().for_each(|c| fold_latin(c, &mut out));
                out
            }
            Self::Alphanumeric => s.chars().filter(|c| c.is_alphanumeric()).collect(),
            Self::Phone => {
                let digits: String = s.chars().filter(char::is_ascii_digit).collect();
                let n = digits.len();
                if n > 9 {
                    digits[n - 9..].to_owned()
                } else {
                    digits
                }
            }
            Self::Email => {
                let e = s.trim().to_lowercase();
                match e.split_once('@') {
                    Some((local, domain)) => {
                        let local = local.split('+').next().unwrap_or(local);
                        format!("{local}@{domain}")
                    }
                    None => e,
                }
            }
            Self::Postal => s
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        }
    }
}

/// Apply a chain of normalisers; `None` when nothing is left to compare.
pub fn normalize(chain: &[Normalizer], value: &str) -> Option<String> {
    let mut s = value.to_owned();
    for n in chain {
        s = n.apply(&s);
    }
    (!s.trim().is_empty()).then_some(s)
}

/// Fold a Latin letter to ASCII with `deunicode` (`é` → `e`, `ß` → `ss`,
/// `ł` → `l`, `œ` → `oe`). Only the Latin blocks are folded: other scripts
/// are kept as they are, so names in them are not transliterated into
/// accidental matches.
fn fold_latin(c: char, out: &mut String) {
    let latin = ('\u{00C0}'..='\u{024F}').contains(&c) || ('\u{1E00}'..='\u{1EFF}').contains(&c);
    if !latin {
        out.push(c);
        return;
    }
    match deunicode::deunicode_char(c) {
        Some(folded) if !folded.is_empty() && folded.bytes().all(|b| b.is_ascii_alphabetic()) => {
            out.push_str(folded)
        }
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Normalizer::*;

    #[test]
    fn normalisers_table() {
        let table: &[(&[Normalizer], &str, Option<&str>)] = &[
            (&[Trim], "  Ann ", Some("Ann")),
            (&[Casefold], "ÉLODIE", Some("élodie")),
            (
                &[Trim, Whitespace, Ascii, Casefold],
                "  Jean   Éric ",
                Some("jean eric"),
            ),
            (
                &[Email],
                " Ann.Smith+news@Example.COM ",
                Some("ann.smith@example.com"),
            ),
            (&[Email], "not-an-email", Some("not-an-email")),
            (&[Phone], "+33 6 12 34 56 78", Some("612345678")),
            (&[Phone], "06.12.34.56.78", Some("612345678")),
            (&[Phone], "(555) 010-2000", Some("550102000")),
            (&[Postal], "sw1a 1aa", Some("SW1A1AA")),
            (&[Alphanumeric], "O'Brien-Smith", Some("OBrienSmith")),
            (
                &[Ascii],
                "Straße Łódź Œuvre Škoda Čech",
                Some("Strasse Lodz OEuvre Skoda Cech"),
            ),
            (&[Ascii, Casefold], "Søren Ærø", Some("soren aero")),
            (&[Ascii], "Αθήνα 東京", Some("Αθήνα 東京")),
            (&[Trim], "   ", None),
            (&[Phone], "n/a", None),
        ];
        for (chain, input, expected) in table {
            assert_eq!(
                normalize(chain, input).as_deref(),
                *expected,
                "{chain:?} {input:?}"
            );
        }
    }

    #[test]
    fn defaults_by_field_name() {
        assert_eq!(Normalizer::defaults_for("Email"), vec![Email]);
        assert_eq!(Normalizer::defaults_for("MobilePhone"), vec![Phone]);
        assert_eq!(Normalizer::defaults_for("PostalCode"), vec![Postal]);
        assert_eq!(
            Normalizer::defaults_for("LastName"),
            vec![Trim, Whitespace, Ascii, Casefold]
        );
    }
}
