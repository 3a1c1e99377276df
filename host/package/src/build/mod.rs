//! `triggerfish plugin build`: run the plugin language's own toolchain and
//! leave the component at `DIR/build/NAME.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::manifest::{Language, Manifest, ManifestError};

pub mod c;
mod js;
mod python;
mod rust;

/// The WIT this host serves, for plugins that carry no `wit/` folder.
pub const HOST_WIT: &str = include_str!("../../../../wit/plugin.wit");
/// Where builds leave their output, under the plugin folder.
pub const BUILD_DIR: &str = "build";

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The toolchain is not installed; the text says how to install it.
    #[error("{0}")]
    MissingToolchain(String),
    /// The toolchain ran and failed; its output is in the text.
    #[error("{0}")]
    Failed(String),
}

/// A built component.
#[derive(Debug, Clone)]
pub struct Built {
    pub component: PathBuf,
    pub bytes: u64,
    pub took: Duration,
}

/// Build the plugin in `dir` with its language's toolchain.
pub fn build(dir: &Path) -> Result<Built, BuildError> {
    let manifest = Manifest::load(dir)?;
    let out_dir = dir.join(BUILD_DIR);
    std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    let out = out_dir.join(format!("{}.wasm", manifest.name));
    let wit = wit_dir(dir)?;
    let started = Instant::now();
    match manifest.language {
        Language::Rust => rust::build(dir, &out)?,
        Language::Python => python::build(dir, &wit, &out)?,
        Language::Js => js::build(dir, &wit, &out)?,
        Language::C => {
            c::build(dir, &manifest.name, &wit, &out)
                .map_err(|e| BuildError::Failed(e.to_string()))?;
        }
    }
    let bytes = std::fs::metadata(&out).map_err(io(&out))?.len();
    Ok(Built {
        component: out,
        bytes,
        took: started.elapsed(),
    })
}

/// The plugin's own `wit/` folder, or the host's WIT written under `build/`.
pub fn wit_dir(dir: &Path) -> Result<PathBuf, BuildError> {
    let own = dir.join("wit");
    if own.is_dir() {
        return Ok(own);
    }
    let generated = dir.join(BUILD_DIR).join("wit");
    std::fs::create_dir_all(&generated).map_err(io(&generated))?;
    let file = generated.join("plugin.wit");
    std::fs::write(&file, HOST_WIT).map_err(io(&file))?;
    Ok(generated)
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_owned();
    move |source| BuildError::Io { path, source }
}

/// Run a toolchain command; all its output goes to our stderr as it runs,
/// so long builds show progress and our stdout stays the result.
pub(crate) fn run(cmd: &mut Command, what: &str, install: &str) -> Result<(), BuildError> {
    use std::os::fd::AsFd as _;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let to_stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    let status = cmd
        .stdout(to_stderr)
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BuildError::MissingToolchain(format!(
                "{what}: `{program}` is not installed; {install}"
            )),
            _ => BuildError::Failed(format!("{what}: cannot run `{program}`: {e}")),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(format!(
            "{what}: `{program}` failed ({status}); its output is above"
        )))
    }
}
