//! Build a C plugin into a Triggerfish component.
//!
//! The whole pipeline runs from Rust; the user needs only Debian's
//! `clang lld wasi-libc libclang-rt-dev-wasm32`:
//!
//! 1. generate C bindings for the `plugin` world with `wit-bindgen-c` into
//!    `<dir>/build/bindings/` (`plugin.h`, `plugin.c`,
//!    `plugin_component_type.o`, the object that carries the WIT metadata);
//! 2. compile every `<dir>/*.c` and the generated `plugin.c` with
//!    `clang --target=wasm32-wasi` into `<dir>/build/obj/`, then link a
//!    reactor core module (`-mexec-model=reactor`, no `main`);
//! 3. turn the core module into a component with `wit-component` and the
//!    WASI preview-1 reactor adapter, validating the result;
//! 4. write the component to `out`.
//!
//! The compiler is `clang` unless the `TRIGGERFISH_CLANG` environment
//! variable names another one.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::Resolve;
use wit_bindgen_core::Files;
use wit_component::ComponentEncoder;

/// Environment variable naming the C compiler (default `clang`).
pub const CLANG_ENV: &str = "TRIGGERFISH_CLANG";

/// The WIT world every plugin targets.
pub const WORLD: &str = "plugin";

/// Target triple passed to clang. Clang 14 (Debian bookworm) does not know
/// `wasm32-wasip1`; `wasm32-wasi` is the same ABI.
pub const TARGET: &str = "wasm32-wasi";

/// Debian packages that provide the toolchain.
pub const DEBIAN_PACKAGES: &str = "clang lld wasi-libc libclang-rt-dev-wasm32";

/// Flags for every compilation unit.
const CFLAGS: &[&str] = &["-O2", "-Wall"];
/// Extra flags for the generated bindings, which must compile cleanly.
const GENERATED_CFLAGS: &[&str] = &["-Wextra", "-Werror"];
/// Link flags: a reactor exports `_initialize` instead of running `main`;
/// Debian's wasi-libc carries DWARF, which would triple the module size.
const LDFLAGS: &[&str] = &["-O2", "-mexec-model=reactor", "-Wl,--strip-debug"];

/// What [`build`] produced.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The component written (the `out` argument).
    pub component: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The user's C sources that were compiled, in compilation order.
    pub sources: Vec<PathBuf>,
    /// Compiler warnings (clang's stderr for files that compiled), if any.
    pub warnings: String,
}

/// Why a C plugin could not be built. Each error names the step and file.
#[derive(Debug, thiserror::Error)]
pub enum CBuildError {
    /// The plugin name cannot be used as a file name.
    #[error("invalid plugin name '{0}': use letters, digits, '-' and '_'")]
    InvalidName(String),

    /// The C compiler could not be started.
    #[error(
        "cannot run the C compiler '{clang}': {source}; install the Debian packages \
         `{DEBIAN_PACKAGES}` or set {CLANG_ENV} to a clang that targets wasm32-wasi"
    )]
    ClangNotFound {
        /// The compiler that was tried.
        clang: String,
        /// Why it could not be run.
        source: io::Error,
    },

    /// Clang runs but part of the wasm32-wasi toolchain is missing.
    #[error(
        "the wasm32-wasi toolchain of '{clang}' is incomplete: {missing} not found; \
         install the Debian package `{package}` (all of: `{DEBIAN_PACKAGES}`)"
    )]
    Toolchain {
        /// The compiler that was asked.
        clang: String,
        /// What is missing.
        missing: String,
        /// The Debian package that provides it.
        package: &'static str,
    },

    /// The plugin directory holds no `.c` file.
    #[error("no C sources (*.c) in {0}")]
    NoSources(PathBuf),

    /// A file or directory could not be read or written.
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// The WIT package could not be parsed or has no `plugin` world.
    #[error("reading WIT from {}: {message}", dir.display())]
    Wit {
        /// The WIT directory.
        dir: PathBuf,
        /// The parser's message.
        message: String,
    },

    /// `wit-bindgen-c` failed.
    #[error("generating C bindings for world '{WORLD}': {0}")]
    Bindgen(String),

    /// Clang failed to compile one file.
    #[error("compiling {} failed ({status}):\n$ {command}\n{stderr}", file.display())]
    Compile {
        /// The C file.
        file: PathBuf,
        /// Clang's exit status.
        status: ExitStatus,
        /// The command line.
        command: String,
        /// Clang's diagnostics.
        stderr: String,
    },

    /// Clang (wasm-ld) failed to link the core module.
    #[error("linking {} failed ({status}):\n$ {command}\n{stderr}", output.display())]
    Link {
        /// The core module that was to be written.
        output: PathBuf,
        /// Clang's exit status.
        status: ExitStatus,
        /// The command line.
        command: String,
        /// Clang's and wasm-ld's diagnostics.
        stderr: String,
    },

    /// The core module could not be made into a valid component.
    #[error("making a component of {}: {message}", module.display())]
    Component {
        /// The core module.
        module: PathBuf,
        /// `wit-component`'s message.
        message: String,
    },
}

/// Build the C plugin in `dir` into the component `out`.
///
/// `name` is the plugin's name (used for the intermediate core module),
/// `wit_dir` the directory holding the `plugin` world. Intermediate files go
/// to `<dir>/build/`.
pub fn build(dir: &Path, name: &str, wit_dir: &Path, out: &Path) -> Result<BuildInfo, CBuildError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CBuildError::InvalidName(name.to_owned()));
    }
    let clang = clang();
    check_toolchain(&clang)?;

    let sources = c_sources(dir)?;
    let build_dir = dir.join("build");
    let bindings_dir = build_dir.join("bindings");
    let obj_dir = build_dir.join("obj");
    for d in [
        &bindings_dir,
        &obj_dir.join("src"),
        &obj_dir.join("bindings"),
    ] {
        fs::create_dir_all(d).map_err(io_err("creating directory", d))?;
    }

    // (a) bindings
    let generated = generate_bindings(wit_dir, &bindings_dir)?;

    // (b) compile and link
    // All files compile concurrently; the generated bindings must be warning-free.
    let include = bindings_dir.clone();
    let mut plan: Vec<(&Path, PathBuf, Vec<&Path>, &[&str])> = Vec::new();
    for src in &sources {
        let stem = src.file_stem().map(OsString::from).unwrap_or_default();
        let obj = obj_dir.join("src").join(stem).with_extension("o");
        plan.push((src, obj, vec![dir, &include], &[]));
    }
    let obj = obj_dir.join("bindings").join(format!("{WORLD}.o"));
    plan.push((&generated.c, obj, vec![&include], GENERATED_CFLAGS));
    let mut jobs = Vec::new();
    let mut failed = None;
    for (src, obj, includes, extra) in plan {
        match compile(&clang, src, obj, &includes, extra) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let mut objects = Vec::new();
    let mut warnings = String::new();
    for job in jobs {
        match job.finish(&clang) {
            Ok((obj, stderr)) => {
                objects.push(obj);
                warnings.push_str(&stderr);
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(type_object) = generated.type_object {
        objects.push(type_object);
    }
    let core = build_dir.join(format!("{name}.core.wasm"));
    warnings.push_str(&link(&clang, &objects, &core)?);

    // (c) component
    let module = fs::read(&core).map_err(io_err("reading core module", &core))?;
    let component = componentize(&module).map_err(|message| CBuildError::Component {
        module: core.clone(),
        message,
    })?;

    // (d) write
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
    }
    fs::write(out, &component).map_err(io_err("writing component", out))?;

    Ok(BuildInfo {
        component: out.to_path_buf(),
        bytes: component.len() as u64,
        sources,
        warnings,
    })
}

/// The C compiler to use: `$TRIGGERFISH_CLANG` or `clang`.
pub fn clang() -> OsString {
    std::env::var_os(CLANG_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("clang"))
}

/// Check that `clang` runs and finds the wasm32-wasi sysroot, the compiler-rt
/// builtins and `wasm-ld`; the error names the Debian package to install.
pub fn check_toolchain(clang: &OsString) -> Result<(), CBuildError> {
    let name = clang.to_string_lossy().into_owned();
    let out = Command::new(clang)
        .arg("--version")
        .output()
        .map_err(|source| CBuildError::ClangNotFound {
            clang: name.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(CBuildError::ClangNotFound {
            clang: name,
            source: io::Error::other(format!(
                "`--version` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        });
    }
    let checks: [(&str, &str, &'static str); 4] = [
        (
            "-print-file-name=crt1-reactor.o",
            "wasi-libc (crt1-reactor.o)",
            "wasi-libc",
        ),
        ("-print-file-name=libc.a", "wasi-libc (libc.a)", "wasi-libc"),
        (
            "-print-libgcc-file-name",
            "compiler-rt builtins for wasm32",
            "libclang-rt-dev-wasm32",
        ),
        ("-print-prog-name=wasm-ld", "the wasm-ld linker", "lld"),
    ];
    // The four queries run concurrently; each prints one path.
    let mut running = Vec::new();
    for (flag, missing, package) in checks {
        let child = Command::new(clang)
            .arg(format!("--target={TARGET}"))
            .arg(flag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| CBuildError::ClangNotFound {
                clang: name.clone(),
                source,
            })?;
        running.push((child, missing, package));
    }
    let mut first_missing = None;
    for (child, missing, package) in running {
        let found = child.wait_with_output().is_ok_and(|out| {
            let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            // Clang prints the bare name back when it finds nothing.
            let path = Path::new(&printed);
            out.status.success() && path.is_absolute() && path.exists()
        });
        if !found && first_missing.is_none() {
            first_missing = Some((missing, package));
        }
    }
    if let Some((missing, package)) = first_missing {
        return Err(CBuildError::Toolchain {
            clang: name,
            missing: missing.to_owned(),
            package,
        });
    }
    Ok(())
}

/// The `.c` files directly in `dir`, sorted.
fn c_sources(dir: &Path) -> Result<Vec<PathBuf>, CBuildError> {
    let entries = fs::read_dir(dir).map_err(io_err("reading plugin directory", dir))?;
    let mut sources = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(io_err("reading plugin directory", dir))?
            .path();
        if path.extension().is_some_and(|e| e == "c") && path.is_file() {
            sources.push(path);
        }
    }
    if sources.is_empty() {
        return Err(CBuildError::NoSources(dir.to_path_buf()));
    }
    sources.sort();
    Ok(sources)
}

/// Files written by [`generate_bindings`].
struct Generated {
    c: PathBuf,
    type_object: Option<PathBuf>,
}

/// Generate the C bindings of the `plugin` world into `into`.
fn generate_bindings(wit_dir: &Path, into: &Path) -> Result<Generated, CBuildError> {
    let wit_err = |message: String| CBuildError::Wit {
        dir: wit_dir.to_path_buf(),
        message,
    };
    let mut resolve = Resolve::new();
    let (package, _) = resolve
        .push_dir(wit_dir)
        .map_err(|e| wit_err(format!("{e:#}")))?;
    let world = resolve
        .select_world(&[package], Some(WORLD))
        .map_err(|e| wit_err(format!("{e:#}")))?;

    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| CBuildError::Bindgen(format!("{e:#}")))?;

    let mut generated = Generated {
        c: into.join(format!("{WORLD}.c")),
        type_object: None,
    };
    for (file, contents) in files.iter() {
        let path = into.join(file);
        fs::write(&path, contents).map_err(io_err("writing generated bindings", &path))?;
        if file.ends_with("_component_type.o") {
            generated.type_object = Some(path);
        }
    }
    if !generated.c.is_file() {
        return Err(CBuildError::Bindgen(format!(
            "the generator wrote no {WORLD}.c"
        )));
    }
    Ok(generated)
}

/// A running compilation.
struct Job {
    child: Child,
    file: PathBuf,
    obj: PathBuf,
    command: String,
}

/// Start compiling one file.
fn compile(
    clang: &OsString,
    src: &Path,
    obj: PathBuf,
    includes: &[&Path],
    extra: &[&str],
) -> Result<Job, CBuildError> {
    let mut cmd = Command::new(clang);
    cmd.arg(format!("--target={TARGET}"))
        .args(CFLAGS)
        .args(extra);
    for dir in includes {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(src).arg("-o").arg(&obj);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|source| CBuildError::ClangNotFound {
        clang: clang.to_string_lossy().into_owned(),
        source,
    })?;
    Ok(Job {
        child,
        file: src.to_path_buf(),
        obj,
        command: show(&cmd),
    })
}

impl Job {
    /// Wait for the compiler; the object and clang's warnings.
    fn finish(self, clang: &OsString) -> Result<(PathBuf, String), CBuildError> {
        let out = self
            .child
            .wait_with_output()
            .map_err(|source| CBuildError::ClangNotFound {
                clang: clang.to_string_lossy().into_owned(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok((self.obj, stderr))
        } else {
            Err(CBuildError::Compile {
                file: self.file,
                status: out.status,
                command: self.command,
                stderr,
            })
        }
    }
}

/// Link the objects into a reactor core module; returns the warnings.
fn link(clang: &OsString, objects: &[PathBuf], core: &Path) -> Result<String, CBuildError> {
    let mut cmd = Command::new(clang);
    cmd.arg(format!("--target={TARGET}"))
        .args(LDFLAGS)
        .args(objects)
        .arg("-o")
        .arg(core);
    let out = run(&mut cmd, clang)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stderr)
    } else {
        Err(CBuildError::Link {
            output: core.to_path_buf(),
            status: out.status,
            command: show(&cmd),
            stderr,
        })
    }
}

/// Encode the core module (which carries the `component-type` custom section
/// from the generated object) as a component, adapting WASI preview 1.
fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = ComponentEncoder::default();
    encoder.validate(true);
    encoder.module(module).map_err(|e| format!("{e:#}"))?;
    encoder
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(|e| format!("{e:#}"))?;
    encoder.encode().map_err(|e| format!("{e:#}"))
}

fn run(cmd: &mut Command, clang: &OsString) -> Result<Output, CBuildError> {
    cmd.output().map_err(|source| CBuildError::ClangNotFound {
        clang: clang.to_string_lossy().into_owned(),
        source,
    })
}

/// The command line, for error messages.
fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CBuildError + 'a {
    move |source| CBuildError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}
