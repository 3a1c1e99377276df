#!/usr/bin/env bash
# The main job on the embedded default: the insights demo of examples/demo/.
# Three overlapping customer sources are refreshed and unified; segments and
# measures cross their thresholds; then a broken file arrives and its source
# fails. Both example plugins react, delivering to the outbox (no external
# service). Safe to run again: it starts from a fresh copy every time.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup toolchain install >/dev/null
echo "== building the example plugins (wasm32-wasip2) and the host"
cargo build --locked --release --target wasm32-wasip2 -p teams-on-refresh-failure -p email-segment-owners
cargo build --locked --release -p triggerfish
tf="$PWD/target/release/triggerfish"

# A fresh working copy, so that every run starts from no state.
work=examples/demo/.triggerfish/run
rm -rf "$work"
mkdir -p "$work"
cp -r examples/demo/data "$work/data"
sed "s|\.\./\.\./target/|$PWD/target/|" examples/demo/triggerfish.toml >"$work/triggerfish.toml"
config="$work/triggerfish.toml"

echo
echo "== the plugins, checked against the world"
"$tf" plugins --config "$config"

echo
echo "== 1. a full refresh: three sources -> unified customers -> segments and measures"
echo "      (first refresh: every threshold the data passes is crossed, so the owners get email)"
"$tf" refresh --config "$config"

echo
echo "== what plugins can now read"
"$tf" entities list --config "$config"
echo
echo "-- segment gold-members:"
"$tf" entities get --config "$config" --entity SegmentMember --filter "Segment eq 'gold-members'" --select CustomerId
echo
echo "-- measures:"
"$tf" entities get --config "$config" --entity Measure --select Name,Value,Aggregate

echo
echo "== 2. a corrupt loyalty export arrives: its source fails, the ops channel gets a card,"
echo "      unification is skipped and every customer keeps the data of refresh 1"
printf '[\n  {"MemberId": "L900", "GivenName": "Half-written' >"$work/data/loyalty-members.json"
if "$tf" refresh --config "$config"; then
  echo "error: the refresh with a broken source should have failed" >&2
  exit 1
fi

echo
echo "== the journal: every event, and each plugin's run of it"
"$tf" events list --config "$config" --limit 8
echo
"$tf" runs list --config "$config" --limit 8

echo
echo "Outbox (what the plugins posted and emailed): $work/.triggerfish/outbox/"
find "$work/.triggerfish/outbox" -type f | sort
echo
echo "The web console on this demo: $tf run --config $config, then open http://127.0.0.1:7878/"
echo "Larger data: $tf demo generate --rows 100000 --out /tmp/tf-demo && $tf refresh --config /tmp/tf-demo/triggerfish.toml"
