#!/usr/bin/env bash
# Stops the emulators that start.sh started (by the pid in .state/emulators/,
# checked to still be that launcher): SIGTERM, then SIGKILL after 10 s.
# Stopping one that is not running is a no-op.
#
#   scripts/emulators/stop.sh [pubsub|bigquery|all]     # default: all
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-all}" in
    pubsub) services=(pubsub) ;;
    bigquery) services=(bigquery) ;;
    all) services=(pubsub bigquery) ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) err "unknown emulator '$1' (pubsub|bigquery|all)"; exit 2 ;;
esac

declare -A stopping=()
for svc in "${services[@]}"; do
    pid="$(recorded_pid "$svc")"
    if [[ -z $pid ]]; then
        say "$svc not running"
        continue
    fi
    if ! is_our_process "$svc" "$pid"; then
        say "$svc not running (stale pid file removed)"
        rm -f "$STATE_DIR/$svc.pid" "$STATE_DIR/$svc.ports"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    stopping[$svc]=$pid
done

# Wait for all of them together (each needs 1-3 s to drain its servers).
for svc in "${!stopping[@]}"; do
    pid=${stopping[$svc]}
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        err "$svc (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE_DIR/$svc.pid" "$STATE_DIR/$svc.ports"
    say "$svc stopped (pid $pid)"
done

# Keep the env file in step with what still runs.
if [[ -f $STATE_DIR/env ]]; then
    keep=()
    is_our_process pubsub "$(recorded_pid pubsub)" && keep+=(PUBSUB_)
    is_our_process bigquery "$(recorded_pid bigquery)" && keep+=(BIGQUERY_)
    if ((${#keep[@]} == 0)); then
        rm -f "$STATE_DIR/env"
    else
        pattern="$(IFS='|'; echo "${keep[*]}")"
        grep -E "^#|^export ($pattern)" "$STATE_DIR/env" >"$STATE_DIR/env.tmp" || true
        mv -f "$STATE_DIR/env.tmp" "$STATE_DIR/env"
    fi
fi
