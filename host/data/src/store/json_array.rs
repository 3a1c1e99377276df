//! A JSON array's elements as text, read from a stream in chunks, so that
//! each element is parsed from memory (serde_json parses a slice several
//! times faster than a reader, which it reads byte by byte). Each chunk is
//! checked as UTF-8 once, as it is read, so that the parsers need not check
//! each string.
//!
//! This is the fast path only: it checks the array's outline (brackets,
//! commas, strings) and no more. Whatever it does not expect (bytes that
//! are not UTF-8 among them), or an element larger than
//! [`MAX_ELEMENT_BYTES`], ends it with [`Unusual`], and
//! the caller reads the file again with serde_json's streaming parser, whose
//! results and errors are the reference.

use std::io::Read;

/// Bytes read from the stream at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// The largest element held whole; a larger one is left to the streaming
/// parser, which holds none whole.
pub const MAX_ELEMENT_BYTES: usize = 4 << 20;

/// What ends the split: something other than a plain array of elements in
/// UTF-8, an element larger than [`MAX_ELEMENT_BYTES`], or a failed read.
#[derive(Debug)]
pub struct Unusual;

impl From<std::io::Error> for Unusual {
    fn from(_: std::io::Error) -> Self {
        Self
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Before the opening bracket.
    Start,
    /// After an element (or the opening bracket, when `first`).
    Inside { first: bool },
    /// After the closing bracket and what follows it.
    Done,
}

/// The elements of the array a reader holds, one at a time.
pub struct Elements<R> {
    reader: R,
    /// Text read: the first `used` bytes handed out, the rest not yet.
    text: String,
    /// Where chunks are read to before they are checked: a character cut
    /// by the chunk's end (`carry` bytes) waits at its start for the rest.
    raw: Vec<u8>,
    carry: usize,
    /// Bytes of `text` handed out already; dropped once they are a chunk's
    /// worth, so that the bytes after them move once per chunk, not once
    /// per element.
    used: usize,
    eof: bool,
    state: State,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: Read> Elements<R> {
    /// Split the array `reader` holds.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            text: String::new(),
            raw: Vec::new(),
            carry: 0,
            used: 0,
            eof: false,
            state: State::Start,
        }
    }

    /// The byte at `i`, reading more when needed; `None` at the end.
    fn at(&mut self, i: usize) -> Result<Option<u8>, Unusual> {
        while i >= self.text.len() && !self.eof {
            self.read_more()?;
        }
        Ok(self.read_bytes().get(i).copied())
    }

    /// The bytes read and not dropped.
    fn read_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// Read a chunk and add its text; bytes that are not UTF-8 are
    /// [`Unusual`] (a character cut by the chunk's end waits for the next).
    fn read_more(&mut self) -> Result<(), Unusual> {
        if self.text.len().saturating_sub(self.used) > MAX_ELEMENT_BYTES {
            return Err(Unusual);
        }
        // Room for a chunk after at most 3 bytes of a cut character.
        if self.raw.len() < CHUNK_BYTES + 4 {
            self.raw.resize(CHUNK_BYTES + 4, 0);
        }
        let room = self
            .raw
            .get_mut(self.carry..self.carry + CHUNK_BYTES)
            .unwrap_or_default();
        let n = loop {
            match self.reader.read(room) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        self.eof = n == 0;
        let got = self.raw.get(..self.carry + n).unwrap_or_default();
        let (valid, cut) = match std::str::from_utf8(got) {
            Ok(text) => (text, 0),
            // A character the chunk's end cut, not at the file's end: its
            // bytes wait for the rest (what comes before it checked again,
            // which is rare: once per cut character).
            Err(e) if e.error_len().is_none() && !self.eof => {
                let (before, cut) = got.split_at(e.valid_up_to());
                (std::str::from_utf8(before).map_err(|_| Unusual)?, cut.len())
            }
            Err(_) => return Err(Unusual),
        };
        self.text.push_str(valid);
        let from = valid.len();
        self.raw.copy_within(from..from + cut, 0);
        self.carry = cut;
        Ok(())
    }

    fn skip_space(&mut self, mut i: usize) -> Result<usize, Unusual> {
        while self.at(i)?.is_some_and(is_space) {
            i += 1;
        }
        Ok(i)
    }

    /// The end (exclusive) of the string whose opening quote is at `i`.
    fn string_end(&mut self, i: usize) -> Result<usize, Unusual> {
        let mut j = i + 1;
        loop {
            let rest = self.read_bytes().get(j..).unwrap_or_default();
            match memchr::memchr2(b'"', b'\\', rest).map(|k| j + k) {
                Some(k) if self.read_bytes().get(k) == Some(&b'"') => return Ok(k + 1),
                // An escape: skip the escaped byte (enough for `\"`).
                Some(k) => {
                    j = k + 2;
                    self.at(j)?;
                }
                None => {
                    j = j.max(self.text.len());
                    if self.at(j)?.is_none() {
                        return Err(Unusual);
                    }
                }
            }
        }
    }

    /// The end (exclusive) of the element that starts at `i`.
    fn element_end(&mut self, i: usize) -> Result<usize, Unusual> {
        match self.at(i)? {
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                let mut j = i;
                loop {
                    // The next byte that matters among those read, or more read.
                    let next = self.read_bytes().get(j..).and_then(|rest| {
                        rest.iter()
                            .position(|b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']'))
                    });
                    let Some(k) = next.map(|k| j + k) else {
                        j = j.max(self.text.len());
                        self.at(j)?.ok_or(Unusual)?;
                        continue;
                    };
                    j = k;
                    match self.read_bytes().get(j).copied().unwrap_or_default() {
                        b'"' => {
                            j = self.string_end(j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(j + 1);
                            }
                        }
                    }
                    j += 1;
                }
            }
            Some(b'"') => self.string_end(i),
            Some(b',' | b']') | None => Err(Unusual),
            Some(_) => {
                let mut j = i;
                while self
                    .at(j)?
                    .is_some_and(|b| !is_space(b) && b != b',' && b != b']')
                {
                    j += 1;
                }
                Ok(j)
            }
        }
    }

    /// The next element, or `None` after the closing bracket (and nothing
    /// but white space after it).
    #[cfg(test)]
    pub fn next_element(&mut self) -> Result<Option<&str>, Unusual> {
        match self.next_start()? {
            Some(i) => self.element_at(i).map(Some),
            None => Ok(None),
        }
    }

    /// Where the next element starts, or `None` after the closing bracket
    /// (and nothing but white space after it). The element is then split
    /// with [`Elements::element_at`], or parsed from [`Elements::read_from`]
    /// and its end given to [`Elements::took`].
    pub fn next_start(&mut self) -> Result<Option<usize>, Unusual> {
        if self.used >= CHUNK_BYTES {
            if !self.text.is_char_boundary(self.used) {
                return Err(Unusual);
            }
            self.text.drain(..self.used);
            self.used = 0;
        }
        let mut i = self.skip_space(self.used)?;
        match self.state {
            State::Done => return Ok(None),
            State::Start => {
                if self.at(i)? != Some(b'[') {
                    return Err(Unusual);
                }
                i = self.skip_space(i + 1)?;
                self.state = State::Inside { first: true };
                if self.at(i)? == Some(b']') {
                    return self.close(i).map(|_| None);
                }
            }
            State::Inside { .. } => match self.at(i)? {
                Some(b',') => i = self.skip_space(i + 1)?,
                Some(b']') => return self.close(i).map(|_| None),
                _ => return Err(Unusual),
            },
        }
        Ok(Some(i))
    }

    /// The bytes read from `i` on (an element's start, from
    /// [`Elements::next_start`]), for a parser to take what it can of.
    pub fn read_from(&self, i: usize) -> &str {
        self.text.get(i..).unwrap_or_default()
    }

    /// The element parsed from [`Elements::read_from`] ended at `end`.
    pub fn took(&mut self, end: usize) {
        self.state = State::Inside { first: false };
        self.used = end.min(self.text.len());
    }

    /// The whole element that starts at `i`, reading more as needed.
    pub fn element_at(&mut self, i: usize) -> Result<&str, Unusual> {
        let end = self.element_end(i)?;
        if end - i > MAX_ELEMENT_BYTES {
            return Err(Unusual);
        }
        self.took(end);
        self.text.get(i..end).ok_or(Unusual)
    }

    /// The closing bracket at `i`: only white space may follow.
    fn close(&mut self, i: usize) -> Result<Option<&[u8]>, Unusual> {
        let after = self.skip_space(i + 1)?;
        if self.at(after)?.is_some() {
            return Err(Unusual);
        }
        self.state = State::Done;
        self.used = after;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &[u8]) -> Result<Vec<String>, Unusual> {
        split_in_reads(text, CHUNK_BYTES)
    }

    #[test]
    fn elements_come_out_whole_with_strings_escapes_and_nesting() {
        let text = br#" [ {"a": "x,]}\"y", "b": [1, {"c": null}]} ,"s\\",12.5e3,
            true , [] ,{}]
        "#;
        assert_eq!(
            split(text).unwrap(),
            [
                r#"{"a": "x,]}\"y", "b": [1, {"c": null}]}"#,
                r#""s\\""#,
                "12.5e3",
                "true",
                "[]",
                "{}"
            ]
        );
        assert_eq!(split(b"[]").unwrap(), Vec::<String>::new());
        assert_eq!(split(b" [ ] \n").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn elements_spanning_many_chunks_are_joined() {
        let long = "é".repeat(CHUNK_BYTES);
        let text = format!(r#"[{{"a": "{long}"}}, {{"b": 1}}]"#);
        let got = split(text.as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), long.len() + 9);
        assert_eq!(got[1], r#"{"b": 1}"#);
    }

    #[test]
    fn nesting_and_numbers_spanning_chunks_end_where_their_brackets_do() {
        // No string for pages: the scan for brackets crosses chunk ends.
        let numbers = vec!["[12, {\"n\": [3]}]"; CHUNK_BYTES / 8].join(",");
        let text = format!("[{{\"a\": [{numbers}]}}, [{numbers}], 7]");
        let got = split(text.as_bytes()).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], format!("{{\"a\": [{numbers}]}}"));
        assert_eq!(got[1], format!("[{numbers}]"));
        assert_eq!(got[2], "7");
        // Cut before its last bracket, the element never ends.
        let cut = &text[..text.len() - 8];
        assert!(split(cut.as_bytes()).is_err());
        // An escape as the last byte read: the quote it escapes is in the
        // next chunk, and does not end the string.
        let head = r#"[{"a": ""#;
        let pad = "x".repeat(CHUNK_BYTES - 1 - head.len());
        let text = format!(r#"{head}{pad}\"]}}"}}, 1]"#);
        assert_eq!(text.as_bytes()[CHUNK_BYTES - 1], b'\\');
        let got = split(text.as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        assert!(
            got[0].ends_with(r#"\"]}"}"#),
            "{}",
            &got[0][got[0].len() - 8..]
        );
        assert_eq!(got[1], "1");
    }

    /// A reader that gives at most `step` bytes a read.
    struct Trickle<'a> {
        rest: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.rest.len());
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest = &self.rest[n..];
            Ok(n)
        }
    }

    fn split_in_reads(text: &[u8], step: usize) -> Result<Vec<String>, Unusual> {
        let mut e = Elements::new(Trickle { rest: text, step });
        let mut out = Vec::new();
        while let Some(s) = e.next_element()? {
            out.push(s.to_owned());
        }
        Ok(out)
    }

    #[test]
    fn characters_cut_by_a_read_are_joined() {
        let text = r#"["é€😀", {"k": "ü😀x"}, "a€"]"#;
        let whole = split_in_reads(text.as_bytes(), CHUNK_BYTES).unwrap();
        assert_eq!(whole, [r#""é€😀""#, r#"{"k": "ü😀x"}"#, r#""a€""#]);
        for step in 1..8 {
            assert_eq!(
                split_in_reads(text.as_bytes(), step).unwrap(),
                whole,
                "{step}"
            );
        }
    }

    #[test]
    fn anything_but_a_plain_array_is_left_to_the_streaming_parser() {
        for text in [
            &b""[..],
            b"{}",
            b"[1,]",
            b"[,1]",
            b"[1 2]",
            b"[1] x",
            b"[1",
            b"[{\"a\": 1}",
            b"[\"open",
            b"[1,,2]",
            b"]",
            // Bytes that are not UTF-8, one cut by the end of the file.
            b"[\"a\xff\"]",
            b"[\"\xc3\"]",
            b"[1, \xe2\x82]",
            b"[\"\xed\xa0\x80\"]",
            b"[\"a\", \"\xf0\x9f\x98",
        ] {
            // Whole, and in reads that cut it anywhere.
            for step in [1, 2, 3, CHUNK_BYTES] {
                assert!(
                    split_in_reads(text, step).is_err(),
                    "{:?} should be unusual ({step})",
                    String::from_utf8_lossy(text)
                );
            }
        }
        let huge = format!("[\"{}\"]", "x".repeat(MAX_ELEMENT_BYTES + 1));
        assert!(split(huge.as_bytes()).is_err(), "over the element limit");
    }
}
