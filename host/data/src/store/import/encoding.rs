//! Files in encodings other than UTF-8. A byte-order mark says which
//! (UTF-8 or UTF-16); else the source's `encoding`, any label the WHATWG
//! Encoding Standard knows (`windows-1252`, `iso-8859-15`, `utf-16le`,
//! `shift_jis`, …); else UTF-8. `encoding_rs` decodes as the file is read;
//! UTF-8 passes through untouched, its mark dropped (its reader checks it).
//!
//! Nothing is replaced: bytes the encoding cannot read fail the import,
//! naming their offset ([`Undecodable::Malformed`]), and a file named as a
//! single-byte encoding whose text is UTF-8 is refused rather than read as
//! mojibake (`Ã©` for `é`).

use std::io::Read;

pub use encoding_rs::Encoding;
use encoding_rs::{Decoder, DecoderResult};

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

/// Bytes read from the file per decoding step.
const DECODE_CHUNK: usize = 16 * 1024;

/// Decoded bytes kept before the next ones, longer than any sequence.
const KEPT_BYTES: usize = 8;

/// Why a file's bytes could not be read as text in its encoding.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    /// Bytes that are not text in the encoding.
    #[error("not valid {encoding} at byte {at} ({bytes}): is the file in another encoding?")]
    Malformed {
        encoding: &'static str,
        /// Offset in the file (after any decompression), from 0.
        at: u64,
        /// The bytes, in hex.
        bytes: String,
    },
    /// Text that is UTF-8, in a file named as a single-byte encoding.
    #[error(
        "the file is UTF-8, not {encoding} (its first non-ASCII text, {sample} at byte {at}, is UTF-8): remove the encoding setting (`encoding`, `--encoding` for `entities import`)"
    )]
    Utf8 {
        encoding: &'static str,
        at: u64,
        /// The first non-ASCII character, quoted.
        sample: String,
    },
}

/// What the reader does with the file's bytes.
enum Mode {
    /// Not read yet: the byte-order mark decides.
    Start,
    /// UTF-8: handed out as they are.
    Pass,
    /// Another encoding, decoded to UTF-8.
    Decode(Decoder),
}

/// A file's text as UTF-8, decoded from its byte-order mark's encoding,
/// else from the encoding named, else passed through (and checked by its
/// reader). See the module's notes.
pub(super) struct Decoded<R> {
    inner: R,
    named: Option<&'static Encoding>,
    mode: Mode,
    /// Bytes read from `inner` not yet handed out or decoded:
    /// `input[start..end]`, at file offset `offset` + `start`.
    input: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
    /// Decoded text not yet handed out: `out[out_start..out_end]`.
    out: Vec<u8>,
    out_start: usize,
    out_end: usize,
    /// The first non-ASCII bytes are still to be checked for UTF-8.
    check_utf8: bool,
    /// The decoder was told the input ended.
    finished: bool,
}

/// `reader`'s text as UTF-8 (see [`Decoded`]).
pub(super) fn decoded<R: Read>(reader: R, encoding: Option<&'static Encoding>) -> Decoded<R> {
    Decoded {
        inner: reader,
        // UTF-8 named is UTF-8 unnamed: passed through and checked.
        named: encoding.filter(|e| *e != encoding_rs::UTF_8),
        mode: Mode::Start,
        input: Vec::new(),
        start: 0,
        end: 0,
        offset: 0,
        eof: false,
        out: Vec::new(),
        out_start: 0,
        out_end: 0,
        check_utf8: false,
        finished: false,
    }
}

impl<R: Read> Decoded<R> {
    /// Read more of the file after the bytes still held.
    fn fill(&mut self) -> std::io::Result<()> {
        // The last bytes decoded stay, to show a sequence cut by a read.
        let from = self.start.saturating_sub(KEPT_BYTES);
        if from > 0 {
            self.input.copy_within(from..self.end, 0);
            self.offset += from as u64;
            self.end -= from;
            self.start -= from;
        }
        if self.input.len() < self.end + DECODE_CHUNK {
            self.input.resize(self.end + DECODE_CHUNK, 0);
        }
        let n = self.inner.read(&mut self.input[self.end..])?;
        self.end += n;
        self.eof = n == 0;
        Ok(())
    }

    /// Choose the mode from the first bytes: a mark, else the encoding.
    fn start(&mut self) -> std::io::Result<()> {
        while self.end - self.start < 3 && !self.eof {
            self.fill()?;
        }
        let held = &self.input[self.start..self.end];
        let encoding = match Encoding::for_bom(held) {
            Some((encoding, mark)) => {
                self.start += mark;
                Some(encoding).filter(|e| *e != encoding_rs::UTF_8)
            }
            None => {
                self.check_utf8 = self.named.is_some_and(Encoding::is_single_byte);
                self.named
            }
        };
        self.mode = match encoding {
            Some(e) => {
                self.out.resize(DECODE_CHUNK * 3, 0);
                Mode::Decode(e.new_decoder_without_bom_handling())
            }
            None => Mode::Pass,
        };
        Ok(())
    }

    /// The file offset of `input[i]`.
    fn at(&self, i: usize) -> u64 {
        self.offset + i as u64
    }

    /// Refuse UTF-8 text in a file named as a single-byte encoding: the
    /// held bytes from the first non-ASCII one on are UTF-8 (a sequence
    /// cut at the end aside), so the encoding named would make mojibake.
    /// True when the first sequence is cut: more must be read to tell.
    fn refuse_utf8(&mut self) -> std::io::Result<bool> {
        let held = &self.input[self.start..self.end];
        let Some(first) = held.iter().position(|b| !b.is_ascii()) else {
            return Ok(false);
        };
        let text = match std::str::from_utf8(&held[first..]) {
            Ok(text) => text,
            Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
                std::str::from_utf8(&held[first..first + e.valid_up_to()]).unwrap_or_default()
            }
            Err(e) if e.error_len().is_none() && !self.eof => return Ok(true),
            Err(_) => {
                self.check_utf8 = false;
                return Ok(false);
            }
        };
        self.check_utf8 = false;
        let sample: String = text.chars().take(1).collect();
        Err(invalid(Undecodable::Utf8 {
            encoding: self.named.map_or("UTF-8", Encoding::name),
            at: self.at(self.start + first),
            sample: quoted(&sample),
        }))
    }
}

fn invalid(e: Undecodable) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if matches!(self.mode, Mode::Start) {
            self.start()?;
        }
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.out[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            // Only set when decoding.
            let cut = self.check_utf8 && self.refuse_utf8()?;
            let Mode::Decode(decoder) = &mut self.mode else {
                // UTF-8: what is held first, then straight from the file.
                if self.start < self.end {
                    let n = buf.len().min(self.end - self.start);
                    buf[..n].copy_from_slice(&self.input[self.start..self.start + n]);
                    self.start += n;
                    return Ok(n);
                }
                return self.inner.read(buf);
            };
            if self.finished {
                return Ok(0);
            }
            if (self.start == self.end || cut) && !self.eof {
                self.fill()?;
                continue;
            }
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(
                &self.input[self.start..self.end],
                &mut self.out,
                self.eof,
            );
            self.start += read;
            (self.out_start, self.out_end) = (0, written);
            match result {
                DecoderResult::InputEmpty => self.finished = self.eof,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(bad, after) => {
                    let end = self.start - usize::from(after);
                    let first = end.saturating_sub(usize::from(bad));
                    let bytes = self.input[first..end]
                        .iter()
                        .map(|b| format!("0x{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    return Err(invalid(Undecodable::Malformed {
                        encoding: decoder.encoding().name(),
                        at: self.at(end).saturating_sub(u64::from(bad)),
                        bytes,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], encoding: Option<&'static Encoding>) -> Vec<u8> {
        let mut out = Vec::new();
        decoded(bytes, encoding).read_to_end(&mut out).unwrap();
        out
    }

    /// Hands out one byte per read, to split every sequence.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn error(bytes: &[u8], label: &str) -> String {
        let encoding = parse_encoding(label).unwrap();
        let mut out = Vec::new();
        let e = decoded(bytes, Some(encoding))
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let by_trickle = decoded(Trickle(bytes), Some(encoding))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(e.to_string(), by_trickle.to_string(), "split reads");
        e.get_ref()
            .and_then(|e| e.downcast_ref::<Undecodable>())
            .map(ToString::to_string)
            .unwrap()
    }

    #[test]
    fn bytes_the_encoding_cannot_read_fail_naming_their_offset() {
        assert_eq!(
            error(b"Id,Name\n1,\x82\xff\n", "shift_jis"),
            "not valid Shift_JIS at byte 10 (0x82 0xff): is the file in another encoding?"
        );
        assert_eq!(
            error(b"\xff\xfeI\0d\0\n", "utf-8"),
            "not valid UTF-16LE at byte 6 (0x0a): is the file in another encoding?",
        );
        assert_eq!(
            error(b"I\0d\0\x00\xdc", "utf-16le"),
            "not valid UTF-16LE at byte 4 (0x00 0xdc): is the file in another encoding?",
        );
    }

    #[test]
    fn utf8_text_named_as_a_single_byte_encoding_is_refused() {
        let utf8 = "Id,Name\n1,Zoé\n2,Chloë\n".as_bytes();
        assert_eq!(
            error(utf8, "windows-1252"),
            "the file is UTF-8, not windows-1252 (its first non-ASCII text, 'é' at byte 12, is UTF-8): remove the encoding setting (`encoding`, `--encoding` for `entities import`)"
        );
        let late = [&b"Id,Name\n"[..], &b"1,Ann\n".repeat(10_000), utf8].concat();
        assert!(error(&late, "iso-8859-15").starts_with("the file is UTF-8, not ISO-8859-15"));
        // Text in the encoding named reads, however it is split.
        let latin = b"Id,Name\n1,Zo\xe9 \xc3\xa0 Caf\xe9\n";
        let want = "Id,Name\n1,Zoé Ã\u{a0} Café\n".as_bytes();
        let windows_1252 = Some(encoding_rs::WINDOWS_1252);
        assert_eq!(text(latin, windows_1252), want);
        let mut out = Vec::new();
        decoded(Trickle(latin), windows_1252)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, want);
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
