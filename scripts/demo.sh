#!/usr/bin/env bash
# The main job: the full pipeline on this machine with sample data.
#
# Brings up the local stack (scripts/stack.sh: PostgreSQL with logical
# replication, Redis, the Pub/Sub and BigQuery emulators, the real Debezium
# engine, api-sim and engagement-host), runs `datagen` for a while (inserts,
# updates, deletes, events committed before their content), waits until the
# host has caught up, then prints what every part holds and the end-to-end
# latency. The stack keeps running for you to look around; the last lines
# say how, and how to hot-swap a rule while it runs.
#
# Env: DEMO_MINUTES (datagen duration, default 1), DEMO_EVENTS_PER_MIN
# (default 6000), DEMO_CONTENT_PER_MIN (default 120), DEMO_STOP=1 (stop the
# stack at the end), DEMO_STRICT=1 (exit 1 unless events were enriched and
# no dead letter was written: what CI checks), STACK_PROFILE=dev (debug
# build), and the ports of scripts/stack.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
if [[ ${STACK_PROFILE:-release} == dev ]]; then host=target/debug/engagement-host; else host=target/release/engagement-host; fi

step "local stack up (first run installs the emulators and Debezium: a few minutes)"
./scripts/stack.sh up

step "datagen: ${DEMO_MINUTES:-1} min, ${DEMO_EVENTS_PER_MIN:-6000} events/min, ${DEMO_CONTENT_PER_MIN:-120} content/min, with updates, deletes and late content"
$host datagen --host 127.0.0.1 --port "${PG_PORT:-5433}" \
    -c "${DEMO_CONTENT_PER_MIN:-120}" -e "${DEMO_EVENTS_PER_MIN:-6000}" -d "${DEMO_MINUTES:-1}" \
    --prefer-new --updates 0.05 --deletes 0.02 --early-events 0.2

step "waiting for the host to catch up, then reading every part back"
python3 scripts/stack_summary.py --wait-idle 120 --json .state/stack/summary.json

admin="http://127.0.0.1:${ADMIN_PORT:-9100}"
cat <<EOF

Look at each part (the stack keeps running):
  host        curl -s $admin/plugins ; curl -s $admin/metrics | grep ^engagement_ ; tail -f .state/stack/host.log
  Redis       redis-cli -p ${STACK_REDIS_PORT:-6380} --scan --pattern 'eng:*' | head ; redis-cli -p ${STACK_REDIS_PORT:-6380} get <key>
  BigQuery    curl -s -X POST http://127.0.0.1:${BIGQUERY_PORT:-9050}/bigquery/v2/projects/streaming-project/queries \\
                -d '{"query":"SELECT * FROM \`engagement_analytics.enriched_events_current\` LIMIT 5","useLegacySql":false}'
  API         curl -s http://127.0.0.1:${API_SIM_PORT:-8080}/stats
  PostgreSQL  psql -h 127.0.0.1 -p ${PG_PORT:-5433} -U debezium users_data
  all logs    scripts/stack.sh logs ; scripts/stack.sh status
  more data   $host datagen --host 127.0.0.1 --port ${PG_PORT:-5433} -c 60 -e 3000 -d 2 --prefer-new

Hot-swap a rule while it runs (v2 adds engagement_tier):
  cp dist/examples/enricher-v2.wasm .state/stack/plugins/new.tmp && mv .state/stack/plugins/new.tmp .state/stack/plugins/enricher.wasm
  curl -s $admin/plugins            # enricher is now engagement-enricher 2.0.0 (its BigQuery column added first)
  curl -s -X POST -H 'Authorization: Bearer local-stack' $admin/plugins/enricher/rollback   # back to v1
  (cp then mv: the host never sees half a file. A shadow trial instead: copy it to
   .state/stack/plugins/enricher.shadow.wasm and watch $admin/plugins/enricher/shadow)

Stop everything: scripts/stack.sh down
EOF

status=0
if [[ ${DEMO_STRICT:-0} == 1 ]]; then
    python3 - <<'PY' || status=1
import json, sys
s = json.load(open(".state/stack/summary.json"))
problems = []
if s["events_enriched"] <= 0: problems.append("no event was enriched")
if s["dead_letters"] or s["dead_letter_file_lines"]: problems.append(f"{s['dead_letters']} dead letters")
if s["redis_keys"] != s["postgres_engagement_rows"]: problems.append(f"{s['redis_keys']} Redis keys for {s['postgres_engagement_rows']} rows")
if s["bigquery_current_rows"] != s["postgres_engagement_rows"]: problems.append(f"{s['bigquery_current_rows']} BigQuery rows for {s['postgres_engagement_rows']} rows")
print("demo check: " + ("; ".join(problems) if problems else "ok"), file=sys.stderr)
sys.exit(1 if problems else 0)
PY
fi

if [[ ${DEMO_STOP:-0} == 1 ]]; then
    step "stopping the stack"
    ./scripts/stack.sh down
fi
exit $status
