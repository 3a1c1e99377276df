#!/usr/bin/env bash
# Triggerfish's full refresh against Splink's deterministic linking on DuckDB,
# side by side on the same generated data, with the clusters compared.
#
#   tests/benches/splink/compare.sh [ROWS...]      (default 1000000)
#   tests/benches/splink/compare.sh --setup        (only install Splink, self-test)
#
# For each size: `triggerfish demo generate --rows ROWS` (seed 1; the loyalty
# CSV rewritten as a JSON array, so the sources are CSV, NDJSON and a JSON
# array), then, each under /usr/bin/time -v (wall time, CPU, peak RSS):
#   1. `triggerfish refresh` (sources, unification, segments, measures);
#   2. Splink in a Python process of its own: DuckDB reads the three files,
#      Triggerfish's normalisers ported to SQL make the match keys, Splink's
#      deterministic_link applies the same three rules and
#      cluster_pairwise_predictions_at_threshold makes the clusters.
#   3. Splink's load alone again, into a DuckDB file with each source's key as
#      its primary key (durable and keyed like Triggerfish's store; reported
#      on a row of its own, not in Splink's times).
# Then both partitions of the source records are compared. Exits non-zero when
# they differ (with examples). Tables go to stdout and to
# $WORK/rows-N/splink-vs-triggerfish-N.md.
#
# Environment:
#   TRIGGERFISH  the binary (default: target/release/triggerfish, copied first)
#   WORK         working directory (default: /tmp/triggerfish-splink)
#   SPLINK_VENV  the Python venv, made on first use
#                (default: ${XDG_CACHE_HOME:-~/.cache}/triggerfish-splink-venv)
#   PYTHON       the Python that makes the venv (default: python3; 3.11 or later)
#   SPLINK_THREADS  DuckDB's threads for Splink (default: DuckDB's, one a core)
#   RUNS         runs of each side, alternated; each side's fastest is reported
#                (default 1; the clusters compared are the last run's)
#   STORE_PAGE_BYTES  sets `[host] store_page_bytes` in the generated
#                configuration (default: unset, SQLite's 4096)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
WORK="${WORK:-/tmp/triggerfish-splink}"
VENV="${SPLINK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/triggerfish-splink-venv}"
PYTHON="${PYTHON:-python3}"
RUNS="${RUNS:-1}"
# The versions measured in BENCHMARKS.md.
SPLINK_VERSION="5.0.0"
DUCKDB_VERSION="2.0.1"
PYARROW_VERSION="26.0.1"

[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }

# Splink and DuckDB from PyPI, in a venv of their own.
if ! "$VENV/bin/python" -c "import splink, duckdb, sys; \
sys.exit(not (splink.__version__ == '$SPLINK_VERSION' and duckdb.__version__ == '$DUCKDB_VERSION'))" 2>/dev/null; then
    echo "installing splink==$SPLINK_VERSION duckdb==$DUCKDB_VERSION pyarrow==$PYARROW_VERSION into $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "splink==$SPLINK_VERSION" "duckdb==$DUCKDB_VERSION" "pyarrow==$PYARROW_VERSION"
fi
PY="$VENV/bin/python"
# The SQL port of Triggerfish's normalisers against their own test table.
"$PY" "$HERE/compare.py" selftest
[ "${1:-}" = --setup ] && exit 0

mkdir -p "$WORK"

# The binary, copied so that a rebuild during the run does not change it.
src_bin="${TRIGGERFISH:-$ROOT/target/release/triggerfish}"
[ -x "$src_bin" ] || { echo "no $src_bin: cargo build --release -p triggerfish first" >&2; exit 2; }
cp "$src_bin" "$WORK/triggerfish"
TF="$WORK/triggerfish"

status=0
for rows in "${@:-1000000}"; do
    dir="$WORK/rows-$rows/data"
    out="$WORK/rows-$rows"
    rm -rf "$out"
    mkdir -p "$out"
    echo "== $rows rows: generating into $dir"
    "$TF" demo generate --rows "$rows" --out "$dir" --seed 1 > "$out/generate.out"
    "$PY" "$HERE/compare.py" prepare "$dir"
    if [ -n "${STORE_PAGE_BYTES:-}" ]; then
        sed -i "s/^\[host\]\$/[host]\nstore_page_bytes = $STORE_PAGE_BYTES/" "$dir/triggerfish.toml"
        grep -q "^store_page_bytes = $STORE_PAGE_BYTES\$" "$dir/triggerfish.toml" \
            || { echo "cannot set store_page_bytes in $dir/triggerfish.toml" >&2; exit 2; }
        echo "== Triggerfish with [host] store_page_bytes = $STORE_PAGE_BYTES"
    fi
    # Both sides in turn, RUNS times; the report takes each side's fastest run.
    for run in $(seq 1 "$RUNS"); do
        rm -rf "$dir/.triggerfish"
        sync
        echo "== run $run/$RUNS: triggerfish refresh"
        /usr/bin/time -v -o "$out/triggerfish-$run.time" \
            "$TF" refresh --config "$dir/triggerfish.toml" > "$out/triggerfish-$run.out" 2>&1 \
            || { cat "$out/triggerfish-$run.out" >&2; exit 1; }
        echo "== run $run/$RUNS: splink"
        /usr/bin/time -v -o "$out/splink-$run.time" \
            "$PY" "$HERE/compare.py" splink "$dir" "$out" "$run" > "$out/splink-$run.out" 2>&1 \
            || { cat "$out/splink-$run.out" >&2; exit 1; }
        echo "== run $run/$RUNS: Splink's load into a DuckDB file, keyed"
        "$PY" "$HERE/compare.py" durable-load "$dir" "$out" "$run" > "$out/durable-load-$run.out" 2>&1 \
            || { cat "$out/durable-load-$run.out" >&2; exit 1; }
    done
    "$PY" "$HERE/compare.py" report "$dir" "$out" "$rows" || status=1
done
exit $status
