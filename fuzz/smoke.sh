#!/usr/bin/env bash
# Runs every fuzz target for a short while (default 20 s each, one worker)
# starting from the corpus in fuzz/corpus/, and exits non-zero on any finding
# (crash, panic, timeout, out-of-memory, leak) or build failure.
#
#   fuzz/smoke.sh                 # every target, 20 s each
#   SMOKE_SECONDS=60 fuzz/smoke.sh filter config
#
# Needs the nightly toolchain and cargo-fuzz; installs them when missing.
# New inputs go to a scratch directory, so the corpus in the repository is
# left as it is; reproducers of findings go to $SMOKE_ARTIFACTS (default
# fuzz/artifacts/smoke/).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${SMOKE_SECONDS:-20}"
artifacts="${SMOKE_ARTIFACTS:-$here/artifacts/smoke}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(filter config source_csv source_ndjson source_json)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
cargo +nightly fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "$artifacts/$t"
    echo "== $t: ${seconds}s"
    if ! cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts/$t/" -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 60 "$scratch/$t.log"
        echo "== $t: FINDING (reproducer in $artifacts/$t/)"
    else
        grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' \
            "$scratch/$t.log" || true
        echo "== $t: ok"
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz smoke: findings in ${failed[*]}"
    exit 1
fi
echo "smoke: ${#targets[@]} passed, 0 failed"
