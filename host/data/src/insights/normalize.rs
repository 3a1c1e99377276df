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
        let mut out = String::with_capacity(s.len());
        self.apply_into(s, &mut out);
        out
    }

    /// Apply this step, appending the result to `out`.
    pub fn apply_into(self, s: &str, out: &mut String) {
        match self {
            Self::Trim => out.push_str(s.trim()),
            Self::Casefold => lower_into(s, out),
            Self::Whitespace => {
                let start = out.len();
                for word in s.split_whitespace() {
                    if out.len() > start {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
            }
            Self::Ascii => s.chars().for_each(|c| crate::text::fold_latin(c, out)),
            Self::Alphanumeric => out.extend(s.chars().filter(|c| c.is_alphanumeric())),
            Self::Phone => {
                let digits = s.bytes().filter(u8::is_ascii_digit).count();
                let skip = digits.saturating_sub(9);
                out.extend(
                    s.bytes()
                        .filter(u8::is_ascii_digit)
                        .skip(skip)
                        .map(char::from),
                );
            }
            Self::Email => {
                let start = out.len();
                lower_into(s.trim(), out);
                // The `+tag` of the part before the first `@`, if any.
                let e = &out[start..];
                if let Some(at) = e.find('@') {
                    if let Some(plus) = e[..at].find('+') {
                        out.replace_range(start + plus..start + at, "");
                    }
                }
            }
            Self::Postal => out.extend(
                s.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_uppercase()),
            ),
        }
    }
}

/// Lower-case `s` onto `out` (Unicode rules, with a fast path for ASCII).
fn lower_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
    } else {
        out.push_str(&s.to_lowercase());
    }
}

/// Apply a chain of normalisers; `None` when nothing is left to compare.
pub fn normalize(chain: &[Normalizer], value: &str) -> Option<String> {
    let mut buffers = Buffers::default();
    normalize_into(chain, value, &mut buffers).map(str::to_owned)
}

/// Working space for [`normalize_into`], reused from value to value.
#[derive(Default)]
pub struct Buffers {
    out: String,
    scratch: String,
}

/// [`normalize`] without allocating once `buffers` has grown: the result
/// borrows from `buffers`.
pub fn normalize_into<'b>(
    chain: &[Normalizer],
    value: &str,
    buffers: &'b mut Buffers,
) -> Option<&'b str> {
    let Buffers { out, scratch } = buffers;
    out.clear();
    match chain.split_first() {
        _ if value.is_ascii() && ascii_words_into(chain, value, out) => {}
        None => out.push_str(value),
        Some((first, rest)) => {
            first.apply_into(value, out);
            for n in rest {
                scratch.clear();
                n.apply_into(out, scratch);
                std::mem::swap(out, scratch);
            }
        }
    }
    (!out.trim().is_empty()).then_some(out.as_str())
}

/// The default chain for names and the like (trim, whitespace, ascii,
/// casefold, in any order and any subset) on ASCII `value`, in one pass;
/// false, with nothing written, when `chain` has another step.
fn ascii_words_into(chain: &[Normalizer], value: &str, out: &mut String) -> bool {
    use Normalizer::*;
    if !chain
        .iter()
        .all(|n| matches!(n, Trim | Whitespace | Ascii | Casefold))
    {
        return false;
    }
    if chain.contains(&Whitespace) {
        for word in value.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    } else if chain.contains(&Trim) {
        out.push_str(value.trim());
    } else {
        out.push_str(value);
    }
    if chain.contains(&Casefold) {
        out.make_ascii_lowercase();
    }
    true
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
    fn reused_buffers_keep_nothing_of_the_previous_value() {
        let mut b = Buffers::default();
        let chains: &[&[Normalizer]] = &[
            &[Trim, Whitespace, Ascii, Casefold],
            &[Email],
            &[Phone],
            &[Postal],
        ];
        let inputs = [
            "  A much longer   Value+tag@Example.org 0612345678 ",
            "x+y@z",
            "Zoë",
            "",
            "+44 20 7946 0958",
        ];
        for chain in chains {
            for input in inputs {
                let fresh = normalize(chain, input);
                let reused = normalize_into(chain, input, &mut b).map(str::to_owned);
                assert_eq!(reused, fresh, "{chain:?} {input:?}");
            }
        }
        assert_eq!(normalize(&[Email], "a+b+c@d+e@F"), Some("a@d+e@f".into()));
    }

    /// The one-pass path for ASCII gives what the steps give one by one, for
    /// every order and subset of the steps it covers.
    #[test]
    fn ascii_words_equal_the_steps_in_any_order() {
        fn orders(left: Vec<Normalizer>, chain: Vec<Normalizer>, all: &mut Vec<Vec<Normalizer>>) {
            all.push(chain.clone());
            for (i, &n) in left.iter().enumerate() {
                let mut rest = left.clone();
                rest.remove(i);
                let mut next = chain.clone();
                next.push(n);
                orders(rest, next, all);
            }
        }
        let mut chains = Vec::new();
        orders(
            vec![Trim, Whitespace, Ascii, Casefold],
            Vec::new(),
            &mut chains,
        );
        assert_eq!(chains.len(), 65);
        let inputs = [
            "",
            " ",
            "Ann",
            "  Jean   ERIC ",
            "\tO'Brien\x0b-Smith\r\n",
            "a\x0cb\x1fc\x1cD",
            "MiXeD 123 _!",
        ];
        let mut b = Buffers::default();
        for chain in &chains {
            for input in inputs {
                let stepwise = chain.iter().fold(input.to_owned(), |v, n| n.apply(&v));
                let stepwise = (!stepwise.trim().is_empty()).then_some(stepwise);
                let one_pass = normalize_into(chain, input, &mut b).map(str::to_owned);
                assert_eq!(one_pass, stepwise, "{chain:?} {input:?}");
            }
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
