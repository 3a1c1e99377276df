//! Builds every guest component (the example plugins and the test guests)
//! for `wasm32-wasip2` from source, so a plain `cargo test` needs no script
//! first, and hands their folder to the tests as `GUEST_DIR`.
//!
//! The guests build with a nested cargo into their own target directory
//! (`<target>/guests`): the outer cargo holds the lock on its own. A missing
//! toolchain or target is a build failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every guest crate, by package name.
const GUESTS: &[&str] = &[
    "teams-on-refresh-failure",
    "email-segment-owners",
    "count-customers",
    "segment-follow-ups",
    "misbehaving",
    "recorder",
    "noop",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().unwrap_or(Path::new("..")).to_owned();
    for watched in ["plugins", "tests/guests", "plugin-sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join("guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target);
    for g in GUESTS {
        cmd.args(["-p", g]);
    }
    // What the outer cargo set for this build script must not leak into the
    // guests' build (flags for the host target, its target dir).
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run cargo to build the guest components: {e}"),
    };
    if !out.status.success() {
        panic!(
            "building the guest components for wasm32-wasip2 failed \
             (is the target installed? run `rustup toolchain install`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = target.join("wasm32-wasip2").join("release");
    for g in GUESTS {
        let file = dir.join(format!("{}.wasm", g.replace('-', "_")));
        if !file.is_file() {
            panic!(
                "guest component missing after the build: {}",
                file.display()
            );
        }
    }
    println!("cargo:rustc-env=GUEST_DIR={}", dir.display());
}
