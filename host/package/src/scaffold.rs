//! `triggerfish plugin new`: a ready-to-build plugin folder in one language:
//! the WIT, a handler that posts a card, `plugin.toml`, a README and a test
//! fixture.

use std::path::{Path, PathBuf};

use crate::build::HOST_WIT;
use crate::manifest::{check_name, Language};

/// One template file: its path in the new folder and its text.
type File = (&'static str, &'static str);

const RUST: &[File] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];
const PYTHON: &[File] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("README.md", include_str!("../templates/python/README.md")),
    (".gitignore", include_str!("../templates/python/gitignore")),
];
const JS: &[File] = &[
    ("plugin.js", include_str!("../templates/js/plugin.js")),
    ("package.json", include_str!("../templates/js/package.json")),
    ("README.md", include_str!("../templates/js/README.md")),
    (".gitignore", include_str!("../templates/js/gitignore")),
];
const C: &[File] = &[
    ("plugin.c", include_str!("../templates/c/plugin.c")),
    ("README.md", include_str!("../templates/c/README.md")),
    (".gitignore", include_str!("../templates/c/gitignore")),
];

const FIXTURE: &str = r#"{
  "trigger": "data-source-refresh-failed",
  "payload": {
    "id": "evt-fixture-1",
    "occurred_at": "2026-01-01T00:00:00Z",
    "source": "crm-contacts",
    "error": "row 17: 'Birthdate' is not a date",
    "permanent": true,
    "row": 17,
    "field": "Birthdate"
  }
}
"#;

/// Why scaffolding failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{0}")]
    BadName(String),
    #[error("{0} already exists; pick another name or folder")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Create `parent/name` as a new plugin in `lang`; returns the folder.
pub fn new(lang: Language, name: &str, parent: &Path) -> Result<PathBuf, ScaffoldError> {
    check_name(name).map_err(ScaffoldError::BadName)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let files = match lang {
        Language::Rust => RUST,
        Language::Python => PYTHON,
        Language::Js => JS,
        Language::C => C,
    };
    let manifest = format!(
        r#"name = "{name}"
version = "0.1.0"
description = "Posts an Adaptive Card to a Teams channel for each event."
language = "{lang}"
triggers = ["data-source-refresh-failed"]

[grants]        # what the plugin asks for; the host config stays the authority
teams = ["ops"]

[config]        # defaults, used by `triggerfish plugin test`
channel = "ops"
"#
    );
    let generated: [(&str, String); 3] = [
        ("plugin.toml", manifest),
        ("wit/plugin.wit", HOST_WIT.to_owned()),
        ("fixtures/refresh-failed.json", FIXTURE.to_owned()),
    ];
    let all = files
        .iter()
        .map(|(p, t)| (*p, t.replace("{{name}}", name)))
        .chain(generated);
    for (rel, text) in all {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io { path, source })?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_scaffolds_a_valid_manifest_and_no_placeholder() {
        let tmp = tempfile::tempdir().unwrap();
        for &lang in Language::ALL {
            let name = format!("hello-{lang}");
            let dir = new(lang, &name, tmp.path()).unwrap();
            let m = crate::manifest::Manifest::load(&dir).unwrap();
            assert_eq!((m.name.as_str(), m.language), (name.as_str(), lang));
            for entry in walk(&dir) {
                let text = std::fs::read_to_string(&entry).unwrap();
                assert!(!text.contains("{{name}}"), "{}", entry.display());
            }
            let again = new(lang, &name, tmp.path()).unwrap_err().to_string();
            assert!(again.contains("already exists"), "{again}");
        }
        let bad = new(Language::C, "Bad Name", tmp.path())
            .unwrap_err()
            .to_string();
        assert!(bad.contains("'Bad Name' is not a plugin name"), "{bad}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
