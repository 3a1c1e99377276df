//! Outbox delivery: the exact request or message is written under
//! `state_dir/outbox/` instead of being sent. It is how the product runs with
//! no external service, not a test double.

use std::io::Write;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

/// A directory of outgoing messages, one file each.
#[derive(Debug, Clone)]
pub struct Outbox {
    root: PathBuf,
}

impl Outbox {
    /// The outbox under a state directory.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join("outbox"),
        }
    }

    /// Write `content` to `<root>/<folder>/<stem>[-n].<ext>`, never
    /// overwriting an earlier file. Returns the path written.
    pub fn write(
        &self,
        folder: &str,
        stem: &str,
        ext: &str,
        content: &[u8],
    ) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(self.root.join(folder))?;
        let dir = Dir::open_ambient_dir(self.root.join(folder), ambient_authority())?;
        let stem = sanitize(stem);
        for n in 0..10_000u32 {
            let name = if n == 0 {
                format!("{stem}.{ext}")
            } else {
                format!("{stem}-{n}.{ext}")
            };
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            match dir.open_with(&name, &opts) {
                Ok(mut f) => {
                    f.write_all(content)?;
                    f.sync_all()?;
                    return Ok(self.root.join(folder).join(name));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "too many outbox files named {stem}.* in {}",
            self.root.join(folder).display()
        )))
    }
}

/// Keep file names to a safe alphabet.
fn sanitize(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') {
        format!("_{cleaned}")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites_and_sanitizes() {
        let tmp = std::env::temp_dir().join(format!("tf-outbox-{}", std::process::id()));
        let ob = Outbox::new(&tmp);
        let a = ob.write("teams/ops", "../evt 1", "json", b"a").unwrap();
        let b = ob.write("teams/ops", "../evt 1", "json", b"b").unwrap();
        assert_ne!(a, b);
        assert!(
            a.ends_with("teams/ops/.._evt_1.json") || a.ends_with("teams/ops/_.._evt_1.json"),
            "{}",
            a.display()
        );
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        std::fs::remove_dir_all(&tmp).ok();
    }
}
