//! Small text helpers shared by every layer.

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `crm-contacts` -> `CrmContacts`: the ASCII letters and digits, each run
/// of them starting upper-case; everything else dropped.
pub fn pascal_case(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Fold a Latin letter to ASCII with `deunicode` (`é` → `e`, `ß` → `ss`,
/// `ł` → `l`, `œ` → `oe`). Only the Latin blocks are folded: other scripts
/// are kept as they are, so names in them are not transliterated into
/// accidental matches.
pub fn fold_latin(c: char, out: &mut String) {
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
    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(super::truncate("héllo", 2), "h");
        assert_eq!(super::truncate("héllo", 3), "hé");
        assert_eq!(super::truncate("abc", 10), "abc");
    }
}
