#!/usr/bin/env bash
# Starts the Debezium Server stand-in (scripts/debezium/server.py: the real
# Debezium 3.6.3 engine, publishing like Debezium Server's Pub/Sub sink) in
# the background, with conf/application.properties and the native addresses,
# and waits until the connector streams (initial snapshot done) or fails,
# printing the log tail. Starting it while it runs is a no-op.
#
#   scripts/postgres/start.sh && scripts/emulators/start.sh pubsub
#   <create the topics: engagement-host setup-pubsub>
#   scripts/debezium/start.sh
#
# Runs setup.sh first (a no-op once .venv/debezium is built). Pid and log:
# .state/debezium/debezium.{pid,log}; offsets: .state/debezium/offsets.dat.
# Reads .state/postgres/env and .state/emulators/env when present. Native
# overrides (each kept if already set in the environment):
#   DEBEZIUM_SOURCE_DATABASE_HOSTNAME  $PG_HOST or 127.0.0.1
#   DEBEZIUM_SOURCE_DATABASE_PORT      $PG_PORT or 5433
#   DEBEZIUM_SOURCE_DATABASE_USER / _PASSWORD / _DBNAME   $PG_USER / $PG_PASSWORD / $PG_DATABASE
#   DEBEZIUM_SINK_PUBSUB_ADDRESS       $PUBSUB_EMULATOR_HOST or 127.0.0.1:8085
#   DEBEZIUM_SOURCE_OFFSET_STORAGE_FILE_FILENAME   .state/debezium/offsets.dat
# Any other DEBEZIUM_* variable overrides its property too (Debezium Server's
# rule). Env: DEBEZIUM_START_TIMEOUT (seconds to reach streaming, default
# 180), DEBEZIUM_LOG_EVERY (progress line every N records, default 1000),
# PYDBZ_JVM_OPTS (extra JVM options).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
    "") ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) err "unknown argument: $1"; exit 2 ;;
esac

START_TIMEOUT="${DEBEZIUM_START_TIMEOUT:-180}"
mkdir -p "$STATE_DIR"

wait_streaming() {
    local pid=$1 t0=$2 deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if grep -q '^\[debezium\] STREAMING' "$LOG_FILE" 2>/dev/null; then
            local line secs
            line="$(grep -m1 '^\[debezium\] STREAMING' "$LOG_FILE")"
            secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
            say "streaming (pid $pid; ${secs} s): ${line#\[debezium\] STREAMING: }"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            err "the stand-in exited during start-up"
            log_tail
            rm -f "$PID_FILE"
            return 1
        fi
        sleep 0.2
    done
    err "the connector did not reach streaming within ${START_TIMEOUT} s (DEBEZIUM_START_TIMEOUT); stopping it"
    log_tail
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    return 1
}

pid="$(recorded_pid)"
if is_our_process "$pid"; then
    say "already running (pid $pid, log ${LOG_FILE#"$REPO_ROOT"/})"
    wait_streaming "$pid" "$EPOCHREALTIME"
    exit $?
fi
rm -f "$PID_FILE"

"$DBZ_DIR/setup.sh"

# Native addresses, unless the caller set them.
# shellcheck disable=SC1091
[[ -f $REPO_ROOT/.state/postgres/env ]] && source "$REPO_ROOT/.state/postgres/env"
if [[ -z ${PUBSUB_EMULATOR_HOST:-} && -f $REPO_ROOT/.state/emulators/env ]]; then
    # shellcheck disable=SC1091
    source "$REPO_ROOT/.state/emulators/env"
fi
export DEBEZIUM_SOURCE_DATABASE_HOSTNAME="${DEBEZIUM_SOURCE_DATABASE_HOSTNAME:-${PG_HOST:-127.0.0.1}}"
export DEBEZIUM_SOURCE_DATABASE_PORT="${DEBEZIUM_SOURCE_DATABASE_PORT:-${PG_PORT:-5433}}"
[[ -n ${PG_USER:-} ]] && export DEBEZIUM_SOURCE_DATABASE_USER="${DEBEZIUM_SOURCE_DATABASE_USER:-$PG_USER}"
[[ -n ${PG_PASSWORD:-} ]] && export DEBEZIUM_SOURCE_DATABASE_PASSWORD="${DEBEZIUM_SOURCE_DATABASE_PASSWORD:-$PG_PASSWORD}"
[[ -n ${PG_DATABASE:-} ]] && export DEBEZIUM_SOURCE_DATABASE_DBNAME="${DEBEZIUM_SOURCE_DATABASE_DBNAME:-$PG_DATABASE}"
export DEBEZIUM_SINK_PUBSUB_ADDRESS="${DEBEZIUM_SINK_PUBSUB_ADDRESS:-${PUBSUB_EMULATOR_HOST:-127.0.0.1:8085}}"
export DEBEZIUM_SOURCE_OFFSET_STORAGE_FILE_FILENAME="${DEBEZIUM_SOURCE_OFFSET_STORAGE_FILE_FILENAME:-$STATE_DIR/offsets.dat}"

# Fail early, naming what is missing, instead of deep in a Java stack trace.
db_host=$DEBEZIUM_SOURCE_DATABASE_HOSTNAME db_port=$DEBEZIUM_SOURCE_DATABASE_PORT
if ! tcp_open "$db_host" "$db_port"; then
    err "PostgreSQL is not reachable at $db_host:$db_port (start it: scripts/postgres/start.sh)"
    exit 1
fi
ps_addr=$DEBEZIUM_SINK_PUBSUB_ADDRESS
if ! tcp_open "${ps_addr%:*}" "${ps_addr##*:}"; then
    err "the Pub/Sub emulator is not reachable at $ps_addr (start it: scripts/emulators/start.sh pubsub)"
    exit 1
fi

[[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
: >"$LOG_FILE"
t0=$EPOCHREALTIME
# Working directory = the state dir, so any relative path (the file's own
# data/offsets.dat, if the override is removed) lands there.
(cd "$STATE_DIR" && exec setsid "$VENV_PY" -u "$SERVER_PY" --state-dir "$STATE_DIR" >>"$LOG_FILE" 2>&1 </dev/null) &
pid=$!
echo "$pid" >"$PID_FILE"
say "starting (pid $pid, log ${LOG_FILE#"$REPO_ROOT"/}): PostgreSQL $db_host:$db_port -> Pub/Sub $ps_addr, offsets ${DEBEZIUM_SOURCE_OFFSET_STORAGE_FILE_FILENAME#"$REPO_ROOT"/}"
wait_streaming "$pid" "$t0"
