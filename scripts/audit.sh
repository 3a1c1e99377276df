#!/usr/bin/env bash
# Check Cargo.lock against the RustSec advisory database.
#   bash scripts/audit.sh                 # fetches the database from GitHub
#   ADVISORY_DB=/path/to/advisory-db bash scripts/audit.sh   # an offline copy
# Needs `cargo install cargo-audit --locked` (about 6 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-audit >/dev/null || { echo "cargo-audit is not installed: cargo install cargo-audit --locked" >&2; exit 2; }
# Warnings (unsound, unmaintained, yanked) fail the check too.
args=(--deny warnings)
if [[ -n "${ADVISORY_DB:-}" ]]; then
  echo "advisory database: $ADVISORY_DB ($(git -C "$ADVISORY_DB" log -1 --format=%cs 2>/dev/null || echo 'date unknown'))"
  args+=(--db "$ADVISORY_DB" --no-fetch --stale)
fi
# The workspace and the fuzz workspace each have a lock file.
for dir in . fuzz; do
  echo "== $dir/Cargo.lock"
  (cd "$dir" && cargo audit "${args[@]}")
done
