//! The usual JSON row read in one pass over its bytes: a flat object whose
//! keys are columns already, each once and unescaped, with scalar values.
//! serde_json's visitor per key ([`super::objects::ObjectRow`]) took half
//! of a JSON row's parse. Anything else gives `None`, and the row is read
//! by the serde path as before: the same values, and the same errors.

use std::borrow::Cow;

use super::rows::Raw;

/// Most columns the fast path tracks (one bit each); wider rows take the
/// serde path.
pub const MAX_FLAT_COLUMNS: usize = 128;

/// `text`, one JSON object, as a row in `columns` order, when it is flat,
/// every key names a column exactly (at most once) and it is valid JSON;
/// `None` otherwise.
pub(super) fn flat_row<'a>(text: &'a str, columns: &[String]) -> Option<Vec<Raw<'a>>> {
    let (row, end) = flat_object(text, columns)?;
    (skip_ws(text.as_bytes(), end) == text.len()).then_some(row)
}

/// [`flat_row`] of the object that starts `text` (after white space), and
/// the index after its closing brace: what follows it is not read. `None`
/// too when `text` ends before the object does.
pub(super) fn flat_object<'a>(text: &'a str, columns: &[String]) -> Option<(Vec<Raw<'a>>, usize)> {
    if columns.len() > MAX_FLAT_COLUMNS {
        return None;
    }
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(b, at + 1);
    let mut row = vec![Raw::Null; columns.len()];
    if b.get(at) == Some(&b'}') {
        return Some((row, at + 1));
    }
    let mut seen = 0u128;
    let mut next = 0;
    loop {
        if b.get(at) != Some(&b'"') {
            return None;
        }
        // A key with no escape: column `next`'s name first, as keys
        // mostly come in the columns' order.
        let (key, after) = plain_string(text, at + 1)?;
        let i = match columns.get(next) {
            Some(name) if name == key => next,
            _ => columns.iter().position(|c| c == key)?,
        };
        if seen & (1 << i) != 0 {
            return None;
        }
        seen |= 1 << i;
        at = skip_ws(b, after);
        if b.get(at) != Some(&b':') {
            return None;
        }
        let (value, after) = scalar(text, skip_ws(b, at + 1))?;
        *row.get_mut(i)? = value;
        next = i + 1;
        at = skip_ws(b, after);
        match b.get(at) {
            Some(b',') => at = skip_ws(b, at + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    Some((row, at + 1))
}

/// The index of the first byte from `at` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Bytes that end a plain string's scan: its quote, an escape, or a
/// control character (which JSON refuses unescaped).
const STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        stop[c] = true;
        c += 1;
    }
    stop[b'"' as usize] = true;
    stop[b'\\' as usize] = true;
    stop
};

/// The index of the first byte from `at` in [`STOP`], eight bytes at a
/// time (most strings in a row are short: word tests beat a vector
/// search's set-up, and a byte loop's branch per byte).
fn stop_at(b: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `v` that is zero (exact for the lowest).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    while let Some(word) = b.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let x = u64::from_le_bytes(word);
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let escape = zero(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let hits = (quote | escape | control) & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    while !STOP[usize::from(*b.get(at)?)] {
        at += 1;
    }
    Some(at)
}

/// The string whose text starts at `start` (after its quote), when it has
/// no escape and no control character, and the index after its closing
/// quote.
fn plain_string(text: &str, start: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let end = stop_at(b, start)?;
    if b.get(end) != Some(&b'"') {
        return None;
    }
    Some((text.get(start..end)?, end + 1))
}

/// The scalar value at `at`, and the index after it; `None` for an object,
/// an array or anything that is not JSON.
fn scalar(text: &str, at: usize) -> Option<(Raw<'_>, usize)> {
    let b = text.as_bytes();
    let literal = |word: &str, raw: Raw<'static>| {
        b.get(at..at + word.len())
            .filter(|w| *w == word.as_bytes())
            .map(|_| (raw, at + word.len()))
    };
    match *b.get(at)? {
        b'"' => match plain_string(text, at + 1) {
            Some((s, after)) => Some((Raw::Str(Cow::Borrowed(s)), after)),
            None => escaped_string(b, at),
        },
        b'n' => literal("null", Raw::Null),
        b't' => literal("true", Raw::Bool(true)),
        b'f' => literal("false", Raw::Bool(false)),
        b'-' | b'0'..=b'9' => {
            let len = b
                .get(at..)?
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .unwrap_or(b.len() - at);
            let token = text.get(at..at + len)?;
            if let Some(n) = integer(token) {
                return Some((Raw::Num(n), at + len));
            }
            match serde_json::from_str(token).ok()? {
                serde_json::Value::Number(n) => Some((Raw::Num(n), at + len)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `token` as serde_json reads it when it is a plain integer of at most
/// 18 digits (no leading zero, not `-0`); `None` for anything else.
fn integer(token: &str) -> Option<serde_json::Number> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, token),
    };
    let d = digits.as_bytes();
    let plain = !d.is_empty()
        && d.len() <= 18
        && d.iter().all(u8::is_ascii_digit)
        && (d[0] != b'0' || d.len() == 1);
    if !plain {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    match negative {
        false => Some(serde_json::Number::from(n)),
        true if n > 0 => Some(serde_json::Number::from(-n)),
        // serde_json reads -0 as a float.
        true => None,
    }
}

/// A string with escapes, its quote at `at`, decoded by serde_json (which
/// refuses a bad escape or a control character).
fn escaped_string<'a>(b: &[u8], at: usize) -> Option<(Raw<'a>, usize)> {
    let mut end = at + 1;
    loop {
        end += memchr::memchr2(b'"', b'\\', b.get(end..)?)?;
        match b[end] {
            b'\\' => end += 2,
            _ => break,
        }
    }
    let s: String = serde_json::from_slice(b.get(at..=end)?).ok()?;
    Some((Raw::Str(Cow::Owned(s)), end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::import::objects::{FileKeys, ObjectRow};

    fn columns() -> Vec<String> {
        ["Id", "Name", "Amount", "Active", "Note"]
            .map(String::from)
            .to_vec()
    }

    /// The row as the serde path reads it, or its error.
    fn by_serde(text: &str, columns: &[String]) -> Result<String, String> {
        let mut columns = columns.to_vec();
        let (mut keys, mut overflow) = (FileKeys::default(), false);
        let object = ObjectRow {
            columns: &mut columns,
            fixed: true,
            flatten: false,
            keys: &mut keys,
            not_object: "not an object",
            overflow: &mut overflow,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        match serde::de::DeserializeSeed::deserialize(object, &mut de)
            .and_then(|row| de.end().map(|()| row))
        {
            Ok(Ok(row)) => Ok(format!("{row:?}")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn a_flat_row_is_read_as_the_serde_path_reads_it() {
        let cols = columns();
        for text in [
            r#"{"Id":"a1","Name":"Léa","Amount":40.86,"Active":true,"Note":null}"#,
            r#"  { "Note" : "x" , "Id" : "b" }  "#,
            "{}",
            " {\t}\r\n",
            r#"{"Id":"tab\tand \"quote\" and \u00e9","Amount":-0}"#,
            r#"{"Id":"","Amount":1e3,"Active":false}"#,
            r#"{"Amount":18446744073709551615}"#,
            r#"{"Amount":-9223372036854775808}"#,
            r#"{"Amount":123456789012345678901234567890}"#,
            r#"{"Amount":0.1e-2,"Name":"\\"}"#,
            r#"{"Name":"\\\\\"","Id":"z"}"#,
            r#"{"Amount":0,"Id":"0"}"#,
            r#"{"Amount":-7,"Active":123456789012345678}"#,
            r#"{"Amount":-123456789012345678,"Active":1234567890123456789}"#,
            r#"{"Amount":-1.5e+2,"Active":2E-1}"#,
            r#"{"Note":"Ünïcödé ✓","Name":"two  spaces"}"#,
            r#"{"Id":"a","Name":"b","Amount":1,"Active":null,"Note":"e"}"#,
            r#"{"Note":"e","Active":null,"Amount":1,"Name":"b","Id":"a"}"#,
        ] {
            let fast = flat_row(text, &cols).map(|r| format!("{r:?}"));
            assert_eq!(
                fast.as_ref().ok_or(text),
                Ok(&by_serde(text, &cols).unwrap()),
                "{text}"
            );
            // With more after the object, and cut short.
            let more = format!("{text},\n{text}");
            let end = skip_ws(text.as_bytes(), 0).max(text.trim_end().len());
            let object = flat_object(&more, &cols);
            assert_eq!(
                object.map(|(r, at)| (format!("{r:?}"), at)),
                Some((fast.unwrap(), end)),
                "{text}"
            );
            for cut in (0..end).filter(|&c| more.is_char_boundary(c)) {
                assert!(
                    flat_object(&more[..cut], &cols).is_none(),
                    "{text} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn anything_unusual_is_left_to_the_serde_path() {
        let cols = columns();
        for text in [
            // Not rows the fast path reads: keys it cannot place, nesting.
            r#"{"Id":"a","Id":"b"}"#,
            r#"{"Other":"a"}"#,
            r#"{"I\u0064":"a"}"#,
            r#"{"Id":{"x":1}}"#,
            r#"{"Id":[1]}"#,
        ] {
            assert_eq!(
                flat_row(text, &cols).map(|r| format!("{r:?}")),
                None,
                "{text}"
            );
        }
        for text in [
            // Not JSON, or not an object: the serde path says why.
            r#"{"Id":"a",}"#,
            r#"{"Id":"a" "Name":"b"}"#,
            r#"{"Id":"a"} x"#,
            r#"{"Id":"a""#,
            r#"{"Id":"a"#,
            r#"{"Id":nul}"#,
            r#"{"Id":nullx}"#,
            r#"{"Id":truefalse}"#,
            r#"{"Amount":01}"#,
            r#"{"Amount":1.}"#,
            r#"{"Amount":--1}"#,
            r#"{"Amount":1e999}"#,
            r#"{"Amount":+1}"#,
            "{\"Id\":\"a\u{1}b\"}",
            r#"{"Id":"bad \x escape"}"#,
            r#"{"Id":"\ud800"}"#,
            "[1]",
            "\"Id\"",
            "",
            "{",
            "{\"Id\":\"a\"}\u{a0}",
        ] {
            assert_eq!(
                flat_row(text, &cols).map(|r| format!("{r:?}")),
                None,
                "{text}"
            );
            assert!(by_serde(text, &cols).is_err(), "{text}");
        }
    }

    #[test]
    fn the_word_scan_stops_where_the_byte_scan_does() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        for stop in 0u8..=255 {
            for len in 0..20 {
                for lead in [b'a', 0xc3, 0x7f, 0x80, 0xff, 0x21, 0x1f + 1] {
                    let mut s = vec![lead; len];
                    s.push(stop);
                    s.extend_from_slice(&bytes);
                    let by_byte = s.iter().position(|&c| STOP[usize::from(c)]);
                    assert_eq!(stop_at(&s, 0), by_byte, "{lead:#x} x{len}, {stop:#x}");
                }
            }
        }
        assert_eq!(stop_at(b"abcdefghijklmnop", 0), None);
        assert_eq!(stop_at(b"abcdefghijklmn\\", 3), Some(14));
    }

    #[test]
    fn a_column_named_with_a_quote_is_never_predicted() {
        let cols = vec!["A\"B".to_owned(), "Id".to_owned()];
        for text in [r#"{"A\"B":1}"#, r#"{"A":1}"#, r#"{"A":1,"Id":"x"}"#] {
            assert!(flat_row(text, &cols).is_none(), "{text}");
        }
        assert!(flat_row(r#"{"Id":"x"}"#, &cols).is_some());
    }

    #[test]
    fn a_value_as_read_takes_32_bytes() {
        assert!(std::mem::size_of::<Raw<'_>>() <= 32);
    }

    #[test]
    fn rows_wider_than_the_bit_set_take_the_serde_path() {
        let cols: Vec<String> = (0..=MAX_FLAT_COLUMNS).map(|i| format!("C{i}")).collect();
        assert!(flat_row(r#"{"C0":"a"}"#, &cols).is_none());
        assert!(flat_row(r#"{"C0":"a"}"#, &cols[..MAX_FLAT_COLUMNS]).is_some());
    }
}
