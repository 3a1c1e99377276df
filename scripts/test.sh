#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# check. CI runs exactly this (see .ci/run). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (at %ss)\n' "$*" "$SECONDS"; }

step "disk (free space for target/)"
df -h . | tail -1
if [ "${CI:-}" = true ]; then
    # A one-shot build gains nothing from incremental state (2.7 GB of it).
    export CARGO_INCREMENTAL=0
fi

step "toolchain (rust-toolchain.toml: rustc, clippy, rustfmt, wasm32-wasip2)"
rustup toolchain install

step "Debian packages: C guests (clang, lld, wasi-libc), a real OCI registry, a real PostgreSQL, headless Chromium for the console, NATS (JetStream) for clusters, GNU time and venv for the peer comparison"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    clang lld wasi-libc libclang-rt-dev-wasm32 docker-registry postgresql \
    chromium chromium-driver nats-server time python3-venv >/dev/null
clang --version | head -1
command -v wasm-ld docker-registry chromium chromedriver nats-server
test -x /usr/bin/time
ls /usr/lib/postgresql/*/bin/initdb

step "pip: real SMTP server for the email tests (aiosmtpd), Python guests (componentize-py)"
python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6' 'componentize-py==0.25.1'
if command -v pyenv >/dev/null; then pyenv rehash; fi  # new console scripts get their shims
python3 -c 'import aiosmtpd'
componentize-py --version

step "pip: Splink and DuckDB for the peer comparison (a venv of their own; tests/peer.rs)"
bash tests/benches/splink/compare.sh --setup

step "npm: JavaScript guests (componentize-js, from plugins/js/package-lock.json)"
npm ci --prefix plugins/js --no-audit --no-fund --loglevel=error

GUESTS=(-p teams-on-refresh-failure -p email-segment-owners -p count-customers -p segment-follow-ups -p misbehaving -p recorder -p noop)

step "format"
cargo fmt --all -- --check

step "lint (host and guests)"
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --target wasm32-wasip2 -p triggerfish-plugin-sdk "${GUESTS[@]}" -- -D warnings

step "tests (tests/build.rs builds every guest component from source first)"
cargo test --locked --workspace

printf '\n== all checks passed in %ss\n' "$SECONDS"
