//! The manifest packed into the component itself, as a custom section, so a
//! plugin is one file: loadable as is, signable, pushable as one OCI layer.

use crate::manifest::Manifest;

/// The custom section's name.
pub const SECTION: &str = "triggerfish-manifest";
/// Largest manifest section read back.
pub const MAX_SECTION_BYTES: usize = 64 * 1024;

const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Why a component could not be packed or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SectionError {
    #[error("not a WebAssembly component (a core module or another file?)")]
    NotAComponent,
    #[error("malformed component: {0}")]
    Malformed(String),
    #[error("the packed manifest is larger than {MAX_SECTION_BYTES} bytes")]
    TooLarge,
    #[error("the packed manifest is invalid: {0}")]
    Invalid(String),
}

/// One top-level section: id, and the byte range of the whole section.
struct Section {
    id: u8,
    start: usize,
    body: std::ops::Range<usize>,
}

fn leb_u32(bytes: &[u8], at: &mut usize) -> Result<u32, SectionError> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes
            .get(*at)
            .ok_or_else(|| SectionError::Malformed(format!("truncated at byte {at}")))?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(value)
                .map_err(|_| SectionError::Malformed(format!("size too large at byte {at}")));
        }
    }
    Err(SectionError::Malformed(format!("bad LEB128 at byte {at}")))
}

fn leb_encode(mut v: u32, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sections(bytes: &[u8]) -> Result<Vec<Section>, SectionError> {
    if bytes.get(..8) != Some(&COMPONENT_HEADER[..]) {
        return Err(SectionError::NotAComponent);
    }
    let mut at = 8;
    let mut out = Vec::new();
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        at += 1;
        let len = leb_u32(bytes, &mut at)? as usize;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                SectionError::Malformed(format!("section at byte {start} overruns the file"))
            })?;
        out.push(Section {
            id,
            start,
            body: at..end,
        });
        at = end;
    }
    Ok(out)
}

/// The name of a custom section and where its payload starts.
fn custom_name<'a>(bytes: &'a [u8], s: &Section) -> Option<(&'a str, usize)> {
    if s.id != 0 {
        return None;
    }
    let mut at = s.body.start;
    let len = leb_u32(bytes, &mut at).ok()? as usize;
    let name = bytes.get(at..at.checked_add(len)?)?;
    Some((std::str::from_utf8(name).ok()?, at + len))
}

/// The component with `manifest` packed in, replacing any earlier one.
pub fn pack(component: &[u8], manifest: &Manifest) -> Result<Vec<u8>, SectionError> {
    let payload = manifest.to_json();
    if payload.len() > MAX_SECTION_BYTES {
        return Err(SectionError::TooLarge);
    }
    let mut out = Vec::with_capacity(component.len() + payload.len() + 64);
    out.extend_from_slice(&COMPONENT_HEADER);
    for s in sections(component)? {
        if custom_name(component, &s).is_some_and(|(n, _)| n == SECTION) {
            continue;
        }
        out.extend_from_slice(&component[s.start..s.body.end]);
    }
    let mut body = Vec::new();
    leb_encode(SECTION.len() as u32, &mut body);
    body.extend_from_slice(SECTION.as_bytes());
    body.extend_from_slice(&payload);
    out.push(0);
    leb_encode(body.len() as u32, &mut out);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The manifest packed into a component, if there is one.
pub fn read(component: &[u8]) -> Result<Option<Manifest>, SectionError> {
    for s in sections(component)? {
        if let Some((SECTION, payload)) = custom_name(component, &s) {
            let data = &component[payload..s.body.end];
            if data.len() > MAX_SECTION_BYTES {
                return Err(SectionError::TooLarge);
            }
            return Manifest::from_json(data)
                .map(Some)
                .map_err(SectionError::Invalid);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str) -> Manifest {
        Manifest::parse(&format!(
            "name = \"{name}\"\nversion = \"1.2.3\"\nlanguage = \"c\"\n[grants]\nteams = [\"ops\"]\n"
        ))
        .unwrap()
    }

    #[test]
    fn pack_then_read_and_repack_replaces() {
        // The smallest component: header and one unrelated custom section.
        let mut c = COMPONENT_HEADER.to_vec();
        c.extend_from_slice(&[0, 4, 3, b'a', b'b', b'c']);
        assert_eq!(read(&c).unwrap(), None);
        let once = pack(&c, &manifest("one")).unwrap();
        assert_eq!(read(&once).unwrap().unwrap().name, "one");
        let twice = pack(&once, &manifest("two")).unwrap();
        assert_eq!(read(&twice).unwrap().unwrap().name, "two");
        assert_eq!(twice.windows(3).filter(|w| w == b"abc").count(), 1);
        assert_eq!(
            twice
                .windows(SECTION.len())
                .filter(|w| *w == SECTION.as_bytes())
                .count(),
            1
        );
    }

    #[test]
    fn refuses_modules_and_truncated_files() {
        let module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        assert_eq!(read(&module), Err(SectionError::NotAComponent));
        let mut c = COMPONENT_HEADER.to_vec();
        c.extend_from_slice(&[0, 200, 1, 3]);
        assert!(matches!(read(&c), Err(SectionError::Malformed(_))));
    }
}
