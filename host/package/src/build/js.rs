//! JavaScript plugins: `@bytecodealliance/componentize-js` (npm), driven
//! through its JS API by a small script this host carries.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io, run, BuildError, BUILD_DIR};

/// The driver script, run with node.
const DRIVER: &str = include_str!("componentize.mjs");
/// The npm package that builds the component.
pub const PACKAGE: &str = "@bytecodealliance/componentize-js";
/// The version the examples and tests are built with.
pub const VERSION: &str = "0.23.0";
/// A componentize-js package folder to use instead of looking one up.
pub const PACKAGE_DIR_ENV: &str = "TRIGGERFISH_COMPONENTIZE_JS";

pub(super) fn build(dir: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    let source = dir.join("plugin.js");
    if !source.is_file() {
        return Err(BuildError::Failed(format!(
            "{}: a JavaScript plugin's handler lives in plugin.js, which is missing",
            dir.display()
        )));
    }
    let package = find_package(dir).ok_or_else(|| {
        BuildError::MissingToolchain(format!(
            "building the JavaScript plugin in {}: {PACKAGE} is not installed; run `npm install` in {} \
             (its package.json lists {PACKAGE}@{VERSION}) or `npm install -g {PACKAGE}@{VERSION}`",
            dir.display(),
            dir.display()
        ))
    })?;
    let driver = dir.join(BUILD_DIR).join("componentize.mjs");
    std::fs::write(&driver, DRIVER).map_err(io(&driver))?;
    let mut cmd = Command::new("node");
    cmd.arg(&driver)
        .arg(&package)
        .arg(&source)
        .arg(wit)
        .arg("plugin")
        .arg(out);
    run(
        &mut cmd,
        &format!("building the JavaScript plugin in {}", dir.display()),
        "install Node.js 20 or later",
    )
}

/// The package folder: the variable, then `node_modules` in the plugin
/// folder or any parent (node's own lookup), then npm's global root.
fn find_package(dir: &Path) -> Option<PathBuf> {
    let has = |p: &Path| p.join("package.json").is_file();
    if let Some(p) = std::env::var_os(PACKAGE_DIR_ENV).map(PathBuf::from) {
        return has(&p).then_some(p);
    }
    let start = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    for ancestor in start.ancestors() {
        let p = ancestor.join("node_modules").join(PACKAGE);
        if has(&p) {
            return Some(p);
        }
    }
    let root = Command::new("npm").args(["root", "-g"]).output().ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim()).join(PACKAGE);
    has(&p).then_some(p)
}
