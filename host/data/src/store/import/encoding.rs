//! Files in encodings other than UTF-8. A byte-order mark says which
//! (UTF-8 or UTF-16); else the source's `encoding`, any label the WHATWG
//! Encoding Standard knows (`windows-1252`, `iso-8859-15`, `utf-16le`,
//! `shift_jis`, …); else UTF-8. `encoding_rs_io` decodes as the file is
//! read; UTF-8 passes through untouched, its mark dropped.

use std::io::Read;

pub use encoding_rs::Encoding;
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};

use super::quoted;

/// The encoding a label names. As in the standard (and browsers),
/// `latin1` and `iso-8859-1` read as `windows-1252`, their superset.
pub fn parse_encoding(label: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        format!(
            "{}: unknown encoding (e.g. utf-8, windows-1252, iso-8859-15, utf-16le)",
            quoted(label)
        )
    })
}

/// What a file that is not UTF-8 is told, with how to read it otherwise.
pub const NOT_UTF8: &str =
    "not valid UTF-8 (if the file is in another encoding, name it: encoding = \"windows-1252\")";

/// `reader`'s text as UTF-8: decoded from its byte-order mark's encoding,
/// else from `encoding`, else passed through (and checked by its reader).
/// Bytes that do not decode become U+FFFD.
pub(super) fn decoded<R: Read>(
    reader: R,
    encoding: Option<&'static Encoding>,
) -> DecodeReaderBytes<R, Vec<u8>> {
    // UTF-8 named is UTF-8 unnamed: passed through and checked. Another
    // encoding named still yields to a UTF-8 mark, which then decodes.
    let other = encoding.filter(|e| *e != encoding_rs::UTF_8);
    DecodeReaderBytesBuilder::new()
        .encoding(other)
        .utf8_passthru(other.is_none())
        .strip_bom(true)
        .bom_override(true)
        .build(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], encoding: Option<&'static Encoding>) -> Vec<u8> {
        let mut out = Vec::new();
        decoded(bytes, encoding).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn marks_then_the_encoding_named_then_utf8() {
        let zoe_1252 = b"Zo\xe9";
        assert_eq!(text(zoe_1252, None), zoe_1252, "passed through, unchecked");
        assert_eq!(text(zoe_1252, Some(encoding_rs::UTF_8)), zoe_1252);
        let latin = parse_encoding("latin1").unwrap();
        assert_eq!(latin.name(), "windows-1252");
        assert_eq!(text(zoe_1252, Some(latin)), "Zoé".as_bytes());
        assert_eq!(
            text(b"\xef\xbb\xbfZo\xc3\xa9", Some(latin)),
            "Zoé".as_bytes()
        );
        assert_eq!(text(b"\xff\xfeZ\0o\0\xe9\0", None), "Zoé".as_bytes());
        assert_eq!(
            parse_encoding("klingon"),
            Err(
                "'klingon': unknown encoding (e.g. utf-8, windows-1252, iso-8859-15, utf-16le)"
                    .into()
            )
        );
    }
}
