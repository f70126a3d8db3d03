#!/usr/bin/env bash
# Proves the emulators work, against the running ones (start.sh) or, for any
# not running, ones it starts itself and stops again at the end.
#
#   scripts/emulators/smoke.sh [pubsub|bigquery|all]     # default: all
#
# Pub/Sub (raw gRPC): topic + 2 subscriptions, 3 messages published with
# attributes and an ordering key, Pull in key order, nack -> redelivery with
# delivery_attempt 2, acks, StreamingPull with acks on the stream.
# BigQuery (REST): dataset + table, insertAll of 2 rows with insertIds sent
# gzipped (Content-Encoding: gzip, like gcp-bigquery-client), jobs.query and
# tabledata.list read them back. Exit status non-zero on any failure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-all}" in
    pubsub) services=(pubsub) ;;
    bigquery) services=(bigquery) ;;
    all) services=(pubsub bigquery) ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) err "unknown emulator '$1' (pubsub|bigquery|all)"; exit 2 ;;
esac

started=()
cleanup() {
    local rc=$?
    if ((${#started[@]})); then
        for svc in "${started[@]}"; do "$EMU_DIR/stop.sh" "$svc" || true; done
    fi
    exit "$rc"
}
trap cleanup EXIT

for svc in "${services[@]}"; do
    if ! is_our_process "$svc" "$(recorded_pid "$svc")"; then
        "$EMU_DIR/start.sh" "$svc"
        started+=("$svc")
    fi
done

failed=0
for svc in "${services[@]}"; do
    read -r port _ <"$STATE_DIR/$svc.ports"
    case $svc in
        pubsub) project=$PUBSUB_PROJECT ;;
        bigquery) project=$BIGQUERY_PROJECT ;;
    esac
    if ! "$VENV_PY" "$EMU_DIR/probe.py" "$svc-smoke" --port "$port" --project "$project"; then
        failed=1
        log_tail "$svc" 30
    fi
done

if ((failed)); then
    err "smoke test failed"
    exit 1
fi
say "smoke: ${services[*]} passed"
