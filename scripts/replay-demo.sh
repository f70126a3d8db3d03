#!/usr/bin/env bash
# The offline demo: no services. Builds the host and the plugins, checks the
# plugins, replays the real Debezium fixtures and the 80,000-event bulk
# fixture through the WASM plugins, hot-swaps a new rule version
# mid-stream, and prints what happened at each step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
out=target/demo
mkdir -p "$out"
host=target/release/engagement-host

step "building the host (release) and the plugins"
cargo build --release --quiet -p engagement-host
./scripts/build-plugins.sh

step "plugin check dist/plugins/enricher.wasm"
$host plugin check dist/plugins/enricher.wasm

step "replay of the real Debezium fixture (13 changes: snapshot, inserts, updates, deletes)"
$host --log-level warn replay --input tests/fixtures/schemas_off.ndjson \
    --output "$out/fixture.ndjson" --dead-letters "$out/fixture.dead.ndjson"
echo "first record:"
head -n 1 "$out/fixture.ndjson"

step "replay of the bulk fixture (2 contents, 80,000 engagement events)"
$host --log-level warn replay --input tests/fixtures/bulk_schemas_off.ndjson.gz \
    --output "$out/bulk.ndjson" --dead-letters "$out/bulk.dead.ndjson"

step "hot swap: enricher v1 -> v2 (adds engagement_tier) while 80,000 events stream at 40k/s"
rm -rf "$out/swap" && mkdir -p "$out/swap"
cp dist/plugins/decoder.wasm dist/plugins/enricher.wasm "$out/swap/"
( sleep 1 && cp dist/examples/enricher-v2.wasm "$out/swap/enricher.wasm.new" \
    && mv "$out/swap/enricher.wasm.new" "$out/swap/enricher.wasm" ) &
$host --log-level info replay --input tests/fixtures/bulk_schemas_off.ndjson.gz --rate 40000 \
    --plugins "$out/swap" --output "$out/swap.ndjson" 2>&1 | grep -E "swapped|replayed|records|dead" || true
wait
echo "records by enricher version:"
grep -o '"enricher_plugin":"[^"]*"' "$out/swap.ndjson" | sort | uniq -c
echo "distinct event ids: $(grep -o '^{"id":[0-9]*' "$out/swap.ndjson" | sort -u | wc -l) (of 80000)"

step "done"
echo "outputs are in $out/; try: $host replay --help"
