//! Rust plugins: cargo for `wasm32-wasip2`, which emits a component.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{io, BuildError};

pub(super) fn build(dir: &Path, out: &Path) -> Result<(), BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::Failed(format!(
            "{}: a Rust plugin needs Cargo.toml, which is missing",
            dir.display()
        )));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let what = format!("building the Rust plugin in {}", dir.display());
    let child = Command::new(&cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            BuildError::MissingToolchain(format!(
                "{what}: cannot run cargo ({e}); install Rust with rustup, then `rustup target add wasm32-wasip2`"
            ))
        })?;
    let artefact = wasm_artefact(&child.stdout, &manifest);
    if !child.status.success() {
        return Err(BuildError::Failed(format!(
            "{what}: cargo failed ({}); its output is above (is the target installed? `rustup target add wasm32-wasip2`)",
            child.status
        )));
    }
    let built = artefact.ok_or_else(|| {
        BuildError::Failed(format!(
            "{what}: cargo built no .wasm (is the crate a cdylib? `[lib] crate-type = [\"cdylib\"]`)"
        ))
    })?;
    std::fs::copy(&built, out).map_err(io(out))?;
    Ok(())
}

/// The `.wasm` cargo reported for the package of `manifest`.
fn wasm_artefact(stdout: &[u8], manifest: &Path) -> Option<PathBuf> {
    let want = std::fs::canonicalize(manifest).ok()?;
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|line| {
            let msg: serde_json::Value = serde_json::from_str(line).ok()?;
            if msg["reason"] != "compiler-artifact" {
                return None;
            }
            let path = msg["manifest_path"].as_str()?;
            if std::fs::canonicalize(path).ok()? != want {
                return None;
            }
            msg["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
        })
}
