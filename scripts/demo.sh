#!/usr/bin/env bash
# The main job on the embedded default: build the example plugins and fire the
# two known flows on examples/triggerfish.toml, delivering to the outbox.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup toolchain install >/dev/null
echo "== building the example plugins (wasm32-wasip2) and the host"
cargo build --locked --release --target wasm32-wasip2 -p teams-on-refresh-failure -p email-segment-owners
cargo build --locked --release -p triggerfish
tf=target/release/triggerfish

echo
echo "== checking the plugins against the world"
"$tf" plugins --config examples/triggerfish.toml

echo
echo "== a data source refresh failed -> Teams card"
"$tf" fire --config examples/triggerfish.toml --plugin teams-on-refresh-failure \
  --event data-source-refresh-failed \
  --payload '{"source":"web-shop-orders","error":"row 12, field OrderDate: not a date","permanent":true,"row":12,"field":"OrderDate"}'

echo
echo "== a segment crossed its threshold -> email to the data owners"
"$tf" fire --config examples/triggerfish.toml --plugin email-segment-owners \
  --event segment-threshold-crossed \
  --payload '{"segment":"high-value-customers","threshold":100,"previous":87,"current":123,"direction":"up"}'

echo
echo "Outbox: examples/.triggerfish/outbox/"
