//! `plugin.toml`: what a plugin is and what it asks for. The host
//! configuration stays the authority over grants; the manifest only requests.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use triggerfish_data::event::TriggerKind;

/// The manifest's file name in a plugin folder.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// The world every plugin targets, and the version this host serves.
pub const WORLD: &str = "triggerfish:plugin/plugin@0.1.1";
/// Longest plugin name.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Most entries in one grant list, or config keys.
pub const MAX_LIST_ENTRIES: usize = 256;
/// Longest manifest file read.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// The languages `plugin new` and `plugin build` know.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    Js,
    C,
}

impl Language {
    /// Every language, in the order the docs list them.
    pub const ALL: &'static [Language] = <Language as strum::VariantArray>::VARIANTS;

    /// The name used in `plugin.toml` and on the command line.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Capabilities a plugin asks for (same keys as `[plugins.grants]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requested {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities_write: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_hosts: Vec<String>,
}

impl Requested {
    /// Each grant kind with its config key and values.
    pub fn kinds(&self) -> [(&'static str, &[String]); 6] {
        [
            ("teams", &self.teams),
            ("email_groups", &self.email_groups),
            ("email_domains", &self.email_domains),
            ("entities", &self.entities),
            ("entities_write", &self.entities_write),
            ("outbound_hosts", &self.outbound_hosts),
        ]
    }
}

/// A plugin's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub language: Language,
    /// The WIT world, `triggerfish:plugin/plugin@0.1.x`.
    #[serde(default = "default_world")]
    pub world: String,
    /// Triggers the plugin is written for.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Grants the plugin asks for.
    #[serde(default)]
    pub grants: Requested,
    /// Default `[plugins.config]` values, used by `plugin test`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

fn default_world() -> String {
    WORLD.to_owned()
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// Read and check `DIR/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = read_bounded(&path)?;
        Self::parse(&text).map_err(|message| ManifestError::Invalid { path, message })
    }

    /// Parse and check manifest text (TOML); the error names line and key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        m.check()?;
        Ok(m)
    }

    /// Parse the JSON form packed into a component.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        m.check()?;
        Ok(m)
    }

    /// The JSON form packed into a component.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The triggers, parsed.
    pub fn trigger_kinds(&self) -> Vec<TriggerKind> {
        self.triggers
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        check_name(&self.name).map_err(|e| format!("key `name`: {e}"))?;
        if !is_version(&self.version) {
            return Err(format!(
                "key `version`: '{}' is not a version (expected MAJOR.MINOR.PATCH, e.g. \"0.1.0\")",
                self.version
            ));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "key `description`: longer than {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        let Some(version) = self.world.strip_prefix("triggerfish:plugin/plugin@") else {
            return Err(format!(
                "key `world`: '{}' is not a Triggerfish world (expected \"{WORLD}\")",
                self.world
            ));
        };
        if !version.starts_with("0.1.") || !is_version(version) {
            return Err(format!(
                "key `world`: this host serves triggerfish:plugin@0.1.x, not @{version}"
            ));
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if t.parse::<TriggerKind>().is_err() {
                let known: Vec<&str> = TriggerKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "key `triggers[{i}]`: unknown trigger '{t}' (known: {})",
                    known.join(", ")
                ));
            }
        }
        for (kind, values) in self.grants.kinds() {
            if values.len() > MAX_LIST_ENTRIES {
                return Err(format!(
                    "key `grants.{kind}`: more than {MAX_LIST_ENTRIES} entries"
                ));
            }
            if let Some(bad) = values.iter().find(|v| v.is_empty() || v.len() > 253) {
                return Err(format!("key `grants.{kind}`: '{bad}' is not a valid entry"));
            }
        }
        if self.config.len() > MAX_LIST_ENTRIES {
            return Err(format!("key `config`: more than {MAX_LIST_ENTRIES} keys"));
        }
        Ok(())
    }
}

/// A plugin name: lower-case letters, digits and `-`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a plugin name (lower-case letters, digits and '-', \
             starting with a letter, at most {MAX_NAME_CHARS} characters)"
        ))
    }
}

fn is_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.chars().all(|c| c.is_ascii_digit()))
}

/// Read a small text file, refusing one over [`MAX_MANIFEST_BYTES`].
fn read_bounded(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read as _;
    let read = |e| ManifestError::Read {
        path: path.to_owned(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::Invalid {
            path: path.to_owned(),
            message: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "teams-alert"
version = "0.1.0"
description = "Posts a card."
language = "python"
triggers = ["data-source-refresh-failed"]
[grants]
teams = ["ops"]
[config]
channel = "ops"
"#;

    #[test]
    fn a_good_manifest_round_trips_through_json() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.language, Language::Python);
        assert_eq!(m.world, WORLD);
        assert_eq!(m.grants.teams, ["ops"]);
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                GOOD.replace("0.1.0", "1"),
                "key `version`: '1' is not a version",
            ),
            (
                GOOD.replace("teams-alert", "Teams Alert"),
                "key `name`: 'Teams Alert' is not a plugin name",
            ),
            (
                GOOD.replace("data-source-refresh-failed", "refresh-failed"),
                "key `triggers[0]`: unknown trigger 'refresh-failed'",
            ),
            (
                format!("world = \"triggerfish:plugin/plugin@0.2.0\"\n{GOOD}"),
                "key `world`: this host serves triggerfish:plugin@0.1.x, not @0.2.0",
            ),
            (GOOD.replace("python", "go"), "unknown variant `go`"),
            (GOOD.replace("teams =", "slack ="), "unknown field `slack`"),
        ];
        for (text, want) in cases {
            let err = Manifest::parse(&text).unwrap_err();
            assert!(err.contains(want), "{err}\nwanted: {want}");
        }
    }

    #[test]
    fn toml_errors_carry_the_line() {
        let err = Manifest::parse(&GOOD.replace("version = \"0.1.0\"", "version = 3")).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }
}
