//! A CSV file's records, read as the `csv` crate's reader reads them with
//! `flexible(false)` (RFC 4180 quotes doubled inside quoted fields; `\r`,
//! `\n` or `\r\n` ending a record; blank lines skipped; a leading UTF-8 BOM
//! dropped), but each record found in place: a line without a quote is
//! split at its delimiters with `memchr` and its text checked once. The
//! first record, and any record with a quote, goes through `csv_core`, the
//! `csv` crate's own state machine. A test reads tricky files both ways.

use std::io::Read;

use csv_core::ReadRecordResult;

/// Bytes read from the file at a time (the buffer grows for a longer
/// record; the file's reader bounds how far).
const READ_BYTES: usize = 128 * 1024;

/// Why a record could not be read.
#[derive(Debug)]
pub(super) enum RecordError {
    /// The file could not be read.
    Io(std::io::Error),
    /// A field is not UTF-8.
    Utf8,
    /// The record has `len` fields and the first one `expected`.
    Fields { len: usize, expected: usize },
}

/// One record's fields, borrowed from the reader.
#[derive(Clone, Copy)]
pub(super) struct Fields<'a> {
    text: &'a str,
    ranges: &'a [(usize, usize)],
}

impl<'a> Fields<'a> {
    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        let text = self.text;
        self.ranges
            .iter()
            .map(move |&(a, b)| text.get(a..b).unwrap_or_default())
    }
}

/// Where the current record's text is.
#[derive(Clone, Copy)]
enum Held {
    /// `buf[start..end]`, fields separated by one delimiter byte.
    InPlace(usize, usize),
    /// `csv_core`'s output (quotes taken off), `out[..len]`.
    Core(usize),
}

/// A CSV file's records, one at a time ([`Records::next`]).
pub(super) struct Records<R> {
    inner: R,
    /// Bytes read and not yet used are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// `csv_core` has read (it drops a BOM on its first read only).
    core_read: bool,
    /// `csv_core` reported the end.
    done: bool,
    delimiter: u8,
    /// Whether a record without a quote may be split in place.
    in_place: bool,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    ranges: Vec<(usize, usize)>,
    /// The first record's field count.
    expected: Option<usize>,
}

impl<R: Read> Records<R> {
    /// Read `inner`'s records, after the bytes `held` already taken from
    /// it, with fields separated by `delimiter`.
    pub fn new(inner: R, held: &[u8], delimiter: u8) -> Self {
        let mut buf = vec![0; READ_BYTES.max(held.len() * 2)];
        buf[..held.len()].copy_from_slice(held);
        let core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        Self {
            inner,
            end: held.len(),
            buf,
            start: 0,
            eof: false,
            core_read: false,
            done: false,
            delimiter,
            in_place: delimiter.is_ascii() && !matches!(delimiter, b'"' | b'\r' | b'\n'),
            core,
            out: vec![0; 1024],
            ends: vec![0; 64],
            ranges: Vec::new(),
            expected: None,
        }
    }

    /// The next record (the first is the header), `None` at the end. A
    /// record with the wrong number of fields, or that is not UTF-8, is
    /// consumed: the next call reads the one after it.
    pub fn next(&mut self) -> Result<Option<Fields<'_>>, RecordError> {
        let held = match self.expected.is_some() && self.in_place {
            true => self.split_in_place()?,
            false => None,
        };
        let held = match held {
            Some(h) => h,
            None => match self.through_core()? {
                Some(h) => h,
                None => return Ok(None),
            },
        };
        let len = self.ranges.len();
        match self.expected {
            None => self.expected = Some(len),
            Some(expected) if expected != len => {
                return Err(RecordError::Fields { len, expected });
            }
            Some(_) => {}
        }
        let text = match held {
            Held::InPlace(a, b) => self.buf.get(a..b),
            Held::Core(n) => self.out.get(..n),
        };
        let text = std::str::from_utf8(text.unwrap_or_default()).map_err(|_| RecordError::Utf8)?;
        // A field's bounds must fall between characters (they do when split
        // at an ASCII delimiter).
        if let Held::Core(_) = held {
            if !self
                .ranges
                .iter()
                .all(|&(a, b)| text.is_char_boundary(a) && text.is_char_boundary(b))
            {
                return Err(RecordError::Utf8);
            }
        }
        Ok(Some(Fields {
            text,
            ranges: &self.ranges,
        }))
    }

    /// Read more of the file into the buffer, keeping `buf[start..end]`
    /// (moved to the front); false at the end of the file.
    fn fill(&mut self) -> Result<bool, RecordError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let room = self.buf.get_mut(self.end..).unwrap_or_default();
        let n = loop {
            match self.inner.read(room) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RecordError::Io(e)),
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// The next record split in place, when it has no quote (blank lines
    /// before it skipped); `None` when it has one or the file has no more
    /// (for `csv_core` to read or end).
    fn split_in_place(&mut self) -> Result<Option<Held>, RecordError> {
        // Bytes after `start` known to hold no line end or quote.
        let mut clear = 0;
        loop {
            let unread = self.buf.get(self.start..self.end).unwrap_or_default();
            let blank = unread
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            if blank > 0 {
                self.start += blank;
                clear = 0;
                continue;
            }
            let unread = self.buf.get(self.start..self.end).unwrap_or_default();
            let found = unread
                .get(clear..)
                .and_then(|rest| memchr::memchr3(b'\n', b'\r', b'"', rest))
                .map(|i| clear + i);
            let line = match found {
                Some(i) if unread.get(i) == Some(&b'"') => return Ok(None),
                Some(i) => i,
                None if self.eof => match unread.len() {
                    0 => return Ok(None),
                    n => n,
                },
                None => {
                    // `fill` keeps the unread bytes, so `clear` still holds.
                    clear = unread.len();
                    self.fill()?;
                    continue;
                }
            };
            let (a, b) = (self.start, self.start + line);
            self.ranges.clear();
            let fields = self.buf.get(a..b).unwrap_or_default();
            let mut from = 0;
            for at in memchr::memchr_iter(self.delimiter, fields) {
                self.ranges.push((from, at));
                from = at + 1;
            }
            self.ranges.push((from, fields.len()));
            // The line end is consumed; a `\n` after a `\r` is a blank line.
            self.start = (b + 1).min(self.end);
            return Ok(Some(Held::InPlace(a, b)));
        }
    }

    /// The next record through `csv_core`; `None` at the end of the file.
    fn through_core(&mut self) -> Result<Option<Held>, RecordError> {
        if self.done {
            return Ok(None);
        }
        let (mut outlen, mut endlen) = (0, 0);
        loop {
            let input = self.buf.get(self.start..self.end).unwrap_or_default();
            // The first read sees a BOM whole, and more (after a BOM,
            // `csv_core` takes no input for the end of the file).
            let least = if self.core_read { 1 } else { 4 };
            if input.len() < least && !self.eof {
                self.fill()?;
                continue;
            }
            self.core_read = true;
            let (res, nin, nout, nend) = self.core.read_record(
                input,
                self.out.get_mut(outlen..).unwrap_or_default(),
                self.ends.get_mut(endlen..).unwrap_or_default(),
            );
            self.start += nin;
            outlen += nout;
            endlen += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    self.fill()?;
                }
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => {
                    self.ranges.clear();
                    let mut from = 0;
                    for &end in self.ends.get(..endlen).unwrap_or_default() {
                        self.ranges.push((from, end));
                        from = end;
                    }
                    return Ok(Some(Held::Core(outlen)));
                }
                ReadRecordResult::End => {
                    self.done = true;
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a read gives: each record's fields, or its error.
    #[derive(Debug, PartialEq)]
    enum Got {
        Record(Vec<String>),
        Fields(usize, usize),
        Utf8,
    }

    /// The records as this reader reads `data`, fed `chunk` bytes a read.
    fn ours(data: &[u8], delimiter: u8, chunk: usize) -> Vec<Got> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Records::new(Trickle(data, chunk), &[], delimiter);
        let mut got = Vec::new();
        loop {
            match r.next() {
                Ok(None) => break,
                Ok(Some(f)) => got.push(Got::Record(f.iter().map(str::to_owned).collect())),
                Err(RecordError::Fields { len, expected }) => got.push(Got::Fields(len, expected)),
                Err(RecordError::Utf8) => got.push(Got::Utf8),
                Err(RecordError::Io(e)) => panic!("{e}"),
            }
        }
        got
    }

    /// The records as the `csv` crate reads `data` (the header first).
    fn theirs(data: &[u8], delimiter: u8) -> Vec<Got> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(false)
            .has_headers(false)
            .delimiter(delimiter)
            .from_reader(data);
        let mut rec = csv::StringRecord::new();
        let mut got = Vec::new();
        loop {
            match rdr.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => got.push(Got::Record(rec.iter().map(str::to_owned).collect())),
                Err(e) => match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => got.push(Got::Fields(*len as usize, *expected_len as usize)),
                    csv::ErrorKind::Utf8 { .. } => got.push(Got::Utf8),
                    _ => panic!("{e}"),
                },
            }
        }
        got
    }

    const CASES: &[&[u8]] = &[
        b"",
        b"\n\n",
        b"a,b\n1,2\n",
        b"a,b\n1,2",
        b"a,b\r\n1,2\r\n3,4\r\n",
        b"a,b\r1,2\r3,4",
        b"a,b\n\n\r\n1,2\n\n",
        b"\xef\xbb\xbfa,b\n1,2\n",
        b"\xef\xbb\xbf\"a\",b\n1,2\n",
        b"a,b\n\xef\xbb\xbf1,2\n",
        b"a,b\n\xef\xbb\xbf\"1\",2\n",
        b"a,b\n\"1,5\",2\n3,\"x\"\"y\"\n",
        b"a,b\n\"multi\nline\",2\n3,4\n",
        b"a,b\n\"multi\r\nline\",2\r\n3,4\r\n",
        b"a,b\nx\"y,2\n",
        b"a,b\n\"x\"y,2\n",
        b"a,b\n\"open,2\n3,4\n",
        b"a,b\n1,2,3\n4,5\n6\n7,8\n",
        b"a,b\n,\n,,\n",
        b"a,b\n \t, \n",
        b"a,b\nJos\xc3\xa9,M\xc3\xbcller\n",
        b"a,b\nbad\xff,2\n3,4\n",
        b"a,b\n\"bad\xff\",2\n3,4\n",
        b"a,b\nbad\xff,2,3\n",
        b"a,b\n\xc3,\xa9\n",
        b"a,b\n\"\xc3\",\"\xa9\"\n",
        b"a\n1\n\n2\n",
        b"a,b\n1,2\n\"3\",4",
        b"a,b\n1,2\n\"3\",\"4",
        b"\"a\nb\",c\n1,2\n",
        b"a,b\n1,\"\"\n\"\",2\n",
    ];

    #[test]
    fn reads_as_the_csv_crate_does_in_any_read_size() {
        for data in CASES {
            let want = theirs(data, b',');
            for chunk in [1, 2, 3, 7, 64, usize::MAX] {
                assert_eq!(
                    ours(data, b',', chunk),
                    want,
                    "{:?} read {chunk} bytes at a time",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    #[test]
    fn reads_other_delimiters_as_the_csv_crate_does() {
        for delimiter in [b';', b'\t', b'|', b'"', b'\n', b'\r', 0xe9] {
            for data in CASES {
                let data = data
                    .iter()
                    .map(|&b| if b == b',' { delimiter } else { b })
                    .collect::<Vec<_>>();
                assert_eq!(
                    ours(&data, delimiter, 5),
                    theirs(&data, delimiter),
                    "{:?} separated by {delimiter:#x}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }

    #[test]
    fn reads_the_csv_fuzz_corpus_as_the_csv_crate_does() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/source_csv");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            for delimiter in [b',', b';'] {
                assert_eq!(
                    ours(&data, delimiter, 13),
                    theirs(&data, delimiter),
                    "{} separated by {:?}",
                    path.display(),
                    char::from(delimiter)
                );
            }
            files += 1;
        }
        assert!(files >= 100, "{files} files in {}", dir.display());
    }

    #[test]
    fn a_record_longer_than_the_buffer_is_read_whole() {
        let long = "x".repeat(3 * READ_BYTES);
        let data = format!("a,b\n{long},1\n\"{long}\",2\n3,4\n");
        assert_eq!(
            ours(data.as_bytes(), b',', usize::MAX),
            theirs(data.as_bytes(), b',')
        );
    }

    #[test]
    fn a_failed_read_is_an_io_error() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk gone"))
            }
        }
        let mut r = Records::new(Failing, b"a,b\n1,", b',');
        assert!(matches!(r.next(), Ok(Some(f)) if f.iter().count() == 2));
        assert!(matches!(r.next(), Err(RecordError::Io(e)) if e.to_string() == "disk gone"));
    }
}
