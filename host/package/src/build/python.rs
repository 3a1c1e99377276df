//! Python plugins: `componentize-py` (PyPI) turns `app.py` and the WIT into
//! a component, with the interpreter pre-initialised at build time.

use std::path::Path;
use std::process::Command;

use super::{run, BuildError};

/// The componentize-py command; override with this variable.
pub const COMPONENTIZE_PY_ENV: &str = "TRIGGERFISH_COMPONENTIZE_PY";
/// The version the examples and tests are built with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

pub(super) fn build(dir: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    if !dir.join("app.py").is_file() {
        return Err(BuildError::Failed(format!(
            "{}: a Python plugin's handler lives in app.py, which is missing",
            dir.display()
        )));
    }
    let program = std::env::var_os(COMPONENTIZE_PY_ENV).unwrap_or_else(|| "componentize-py".into());
    let mut cmd = Command::new(program);
    cmd.arg("-d")
        .arg(wit)
        .args(["-w", "plugin", "componentize", "app", "-p"])
        .arg(dir)
        .arg("-o")
        .arg(out);
    run(
        &mut cmd,
        &format!("building the Python plugin in {}", dir.display()),
        &format!("install it with `pip install componentize-py=={COMPONENTIZE_PY_VERSION}`"),
    )
}
