//! The SQLite 3 file format's encodings: varints, records, the split of a
//! payload between a page and its overflow chain, and the 100-byte header.
//! Reference: <https://www.sqlite.org/fileformat2.html>.

use crate::Value;

/// The largest number of bytes a varint takes.
pub const MAX_VARINT: usize = 9;

/// Append `v` as a SQLite varint (big-endian, 7 bits a byte, the ninth
/// byte 8 bits).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v <= 0x7f {
        out.push(v as u8);
        return;
    }
    let (bytes, n) = varint(v);
    out.extend_from_slice(&bytes[..n]);
}

/// `v` as a varint: its bytes, and how many it takes.
fn varint(v: u64) -> ([u8; MAX_VARINT], usize) {
    let mut buf = [0u8; MAX_VARINT];
    if v > 0x00ff_ffff_ffff_ffff {
        buf[8] = v as u8;
        let mut w = v >> 8;
        for b in buf[..8].iter_mut().rev() {
            *b = (w & 0x7f) as u8 | 0x80;
            w >>= 7;
        }
        return (buf, MAX_VARINT);
    }
    let mut n = 0;
    let mut w = v;
    while w != 0 {
        buf[n] = (w & 0x7f) as u8 | 0x80;
        n += 1;
        w >>= 7;
    }
    buf[0] &= 0x7f;
    buf[..n].reverse();
    (buf, n.max(1))
}

/// Bytes `v` takes as a varint.
pub fn varint_len(v: u64) -> usize {
    match v {
        0..=0x7f => 1,
        _ if v > 0x00ff_ffff_ffff_ffff => MAX_VARINT,
        _ => (64 - v.leading_zeros() as usize).div_ceil(7),
    }
}

/// A value's serial type and the bytes of its body.
fn serial_type(v: &Value<'_>) -> (u64, usize) {
    match *v {
        Value::Null => (0, 0),
        Value::Integer(0) => (8, 0),
        Value::Integer(1) => (9, 0),
        Value::Integer(i) => match i {
            -0x80..=0x7f => (1, 1),
            -0x8000..=0x7fff => (2, 2),
            -0x80_0000..=0x7f_ffff => (3, 3),
            -0x8000_0000..=0x7fff_ffff => (4, 4),
            -0x8000_0000_0000..=0x7fff_ffff_ffff => (5, 6),
            _ => (6, 8),
        },
        Value::Real(_) => (7, 8),
        Value::Text(s) => (13 + 2 * s.len() as u64, s.len()),
        Value::Utf8(s) => (13 + 2 * s.len() as u64, s.len()),
        Value::Blob(b) => (12 + 2 * b.len() as u64, b.len()),
    }
}

/// Replace `out` with the record of `values` (header of serial types,
/// then the bodies).
pub fn record(out: &mut Vec<u8>, values: &[Value<'_>]) {
    out.clear();
    let sizes = record_len(values);
    append_record(out, values, sizes);
}

/// The sizes of the record of `values`: its header, and all of it.
pub fn record_len(values: &[Value<'_>]) -> (usize, usize) {
    let (types, body) = values.iter().fold((0, 0), |(t, b), v| {
        let (ty, len) = serial_type(v);
        (t + varint_len(ty), b + len)
    });
    // The header's size counts its own varint.
    let mut header = types + 1;
    while types + varint_len(header as u64) != header {
        header = types + varint_len(header as u64);
    }
    (header, header + body)
}

/// Append the record of `values`, whose sizes `(header, len)` are
/// [`record_len`]'s, written in place: the record's room is made once.
pub fn append_record(out: &mut Vec<u8>, values: &[Value<'_>], (header, len): (usize, usize)) {
    let start = out.len();
    out.resize(start + len, 0);
    let record = &mut out[start..];
    let mut h = write_varint(record, 0, header as u64);
    let mut b = header;
    for v in values {
        let (ty, n) = serial_type(v);
        h = write_varint(record, h, ty);
        let body = &mut record[b..b + n];
        match *v {
            Value::Null | Value::Integer(0) | Value::Integer(1) => {}
            Value::Integer(i) => body.copy_from_slice(&i.to_be_bytes()[8 - n..]),
            Value::Real(f) => body.copy_from_slice(&f.to_bits().to_be_bytes()),
            Value::Text(s) => body.copy_from_slice(s.as_bytes()),
            Value::Utf8(s) | Value::Blob(s) => body.copy_from_slice(s),
        }
        b += n;
    }
}

/// Write `v` as a varint into `buf` at `at`; the index after it.
#[inline]
fn write_varint(buf: &mut [u8], at: usize, v: u64) -> usize {
    if v <= 0x7f {
        buf[at] = v as u8;
        return at + 1;
    }
    let (bytes, n) = varint(v);
    buf[at..at + n].copy_from_slice(&bytes[..n]);
    at + n
}

/// Which kind of B-tree a payload is stored in: the split between the
/// page and the overflow chain differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// A table's leaves (rows).
    Table,
    /// An index's pages, leaf or interior (entries).
    Index,
}

/// Bytes of a `len`-byte payload kept on the page itself, with pages of
/// `usable` bytes; the rest goes to overflow pages.
pub fn local_len(tree: Tree, usable: usize, len: usize) -> usize {
    let max = match tree {
        Tree::Table => usable - 35,
        Tree::Index => (usable - 12) * 64 / 255 - 23,
    };
    if len <= max {
        return len;
    }
    let min = (usable - 12) * 32 / 255 - 23;
    let k = min + (len - min) % (usable - 4);
    if k <= max {
        k
    } else {
        min
    }
}

/// What the file's first 100 bytes say.
pub struct Header {
    pub page_size: u32,
    pub pages: u32,
    pub wal: bool,
}

/// The SQLite version the header names as the last writer (3.45.0's
/// number; SQLite only reports it).
const WRITER_VERSION: u32 = 3_045_000;

impl Header {
    /// The 100 bytes.
    pub fn bytes(&self) -> [u8; 100] {
        let mut h = [0u8; 100];
        h[..16].copy_from_slice(b"SQLite format 3\0");
        // 65536 is written as 1.
        let size = if self.page_size == 65536 {
            1
        } else {
            self.page_size as u16
        };
        h[16..18].copy_from_slice(&size.to_be_bytes());
        let version = if self.wal { 2 } else { 1 };
        h[18] = version;
        h[19] = version;
        h[20] = 0; // reserved bytes per page
        h[21] = 64; // payload fractions, fixed by the format
        h[22] = 32;
        h[23] = 32;
        h[24..28].copy_from_slice(&1u32.to_be_bytes()); // change counter
        h[28..32].copy_from_slice(&self.pages.to_be_bytes());
        // 32..40: no freelist.
        h[40..44].copy_from_slice(&1u32.to_be_bytes()); // schema cookie
        h[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format
        h[56..60].copy_from_slice(&1u32.to_be_bytes()); // UTF-8
        h[92..96].copy_from_slice(&1u32.to_be_bytes()); // valid-for = change counter
        h[96..100].copy_from_slice(&WRITER_VERSION.to_be_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_the_format_boundaries() {
        for (v, bytes) in [
            (0u64, vec![0x00]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x00]),
            (0x3fff, vec![0xff, 0x7f]),
            (0x4000, vec![0x81, 0x80, 0x00]),
            (u64::MAX, vec![0xff; 9]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes, "{v:#x}");
            assert_eq!(varint_len(v), bytes.len(), "{v:#x}");
        }
        for shift in 0..64 {
            let v = 1u64 << shift;
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "1 << {shift}");
        }
    }

    #[test]
    fn a_record_header_counts_its_own_size() {
        let mut out = Vec::new();
        record(
            &mut out,
            &[Value::Integer(0), Value::Text("ab"), Value::Null],
        );
        assert_eq!(out, [4, 8, 17, 0, b'a', b'b']);
        // Text given as its bytes is the same text.
        let mut bytes = Vec::new();
        record(
            &mut bytes,
            &[Value::Integer(0), Value::Utf8(b"ab"), Value::Null],
        );
        assert_eq!(bytes, out);
        // 126 one-byte types: 127 with the size byte, still one byte.
        let many = vec![Value::Null; 126];
        record(&mut out, &many);
        assert_eq!(out[0], 127);
        // 127 types: the size needs two bytes, 129 in all.
        let many = vec![Value::Null; 127];
        record(&mut out, &many);
        assert_eq!(&out[..2], &[0x81, 0x01]);
        // A text of 100 bytes: serial type 213, two bytes in the header.
        let text = "x".repeat(100);
        record(&mut out, &[Value::Text(&text), Value::Real(0.5)]);
        assert_eq!(&out[..4], &[4, 0x81, 0x55, 7]);
        assert_eq!(&out[4..104], text.as_bytes());
        assert_eq!(&out[104..], &0.5f64.to_bits().to_be_bytes());
    }

    #[test]
    fn integers_take_the_smallest_serial_type() {
        let mut out = Vec::new();
        record(&mut out, &[Value::Integer(-129)]);
        assert_eq!(out, [2, 2, 0xff, 0x7f]);
        record(&mut out, &[Value::Integer(i64::MIN)]);
        assert_eq!(out[1], 6);
        assert_eq!(&out[2..], &i64::MIN.to_be_bytes());
    }
}
