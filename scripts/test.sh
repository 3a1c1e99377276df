#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# check. CI runs exactly this (see .ci/run). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (at %ss)\n' "$*" "$SECONDS"; }

step "toolchain (rust-toolchain.toml: rustc, clippy, rustfmt, wasm32-wasip2)"
rustup toolchain install

step "real SMTP server for the email tests (aiosmtpd)"
python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
python3 -c 'import aiosmtpd'

GUESTS=(-p teams-on-refresh-failure -p email-segment-owners -p count-customers -p misbehaving -p recorder -p noop)

step "format"
cargo fmt --all -- --check

step "lint (host and guests)"
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --target wasm32-wasip2 -p triggerfish-plugin-sdk "${GUESTS[@]}" -- -D warnings

step "tests (tests/build.rs builds every guest component from source first)"
cargo test --locked --workspace

printf '\n== all checks passed in %ss\n' "$SECONDS"
