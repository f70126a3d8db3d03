#!/usr/bin/env bash
# Starts the local emulators in the background, on 127.0.0.1 only, and waits
# until each answers a real request (~30 s at most, EMULATORS_START_TIMEOUT).
#
#   scripts/emulators/start.sh pubsub     # cloudbox Pub/Sub gRPC  127.0.0.1:$PUBSUB_PORT (8085)
#   scripts/emulators/start.sh bigquery   # bqemulator REST        127.0.0.1:$BIGQUERY_PORT (9050)
#                                         #        + Storage gRPC  127.0.0.1:$BIGQUERY_GRPC_PORT (9060)
#   scripts/emulators/start.sh all        # both
#
# Runs setup.sh first (a no-op once the venv is built). Pid files, logs and an
# env file to source live in .state/emulators/. Starting an emulator that is
# already running (started by this script) is a no-op. Fails, printing the
# log tail, if a port is taken or an emulator does not come up in time.
# Env: PUBSUB_PORT, BIGQUERY_PORT, BIGQUERY_GRPC_PORT, BIGQUERY_PROJECT
# (default streaming-project), BIGQUERY_TIME_TRAVEL=1 (keep bqemulator's
# per-write snapshots), EMULATORS_LOG_LEVEL (default warning),
# EMULATORS_START_TIMEOUT (seconds, default 30).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,17p' "$0" >&2; exit 2; }
case "${1:-}" in
    pubsub) services=(pubsub) ;;
    bigquery) services=(bigquery) ;;
    all) services=(pubsub bigquery) ;;
    -h|--help|"") usage ;;
    *) err "unknown emulator '$1'"; usage ;;
esac
[[ $# -le 1 ]] || usage

"$EMU_DIR/setup.sh"
mkdir -p "$STATE_DIR"
LOG_LEVEL="${EMULATORS_LOG_LEVEL:-warning}"

ports_of() {
    case $1 in
        pubsub) echo "$PUBSUB_PORT" ;;
        bigquery) echo "$BIGQUERY_PORT $BIGQUERY_GRPC_PORT" ;;
    esac
}

launch_args() {
    case $1 in
        pubsub) echo "--port $PUBSUB_PORT --log-level $LOG_LEVEL" ;;
        bigquery)
            echo "--port $BIGQUERY_PORT --grpc-port $BIGQUERY_GRPC_PORT --project $BIGQUERY_PROJECT --log-level $LOG_LEVEL"
            [[ ${BIGQUERY_TIME_TRAVEL:-0} == 1 ]] && echo "--time-travel"
            ;;
    esac
}

# A real request: Pub/Sub CreateTopic/ListTopics/DeleteTopic over gRPC,
# BigQuery GET .../projects/<p>/datasets.
answers() {
    local svc=$1 port
    read -r port _ <<<"$(ports_of "$svc")"
    port_open "$port" || return 1
    case $svc in
        pubsub) "$VENV_PY" "$EMU_DIR/probe.py" pubsub-ready --port "$port" --project "$PUBSUB_PROJECT" >/dev/null 2>&1 ;;
        bigquery)
            curl -fsS --max-time 2 -o /dev/null "http://$EMU_HOST:$port/bigquery/v2/projects/$BIGQUERY_PROJECT/datasets" 2>/dev/null \
                && port_open "$BIGQUERY_GRPC_PORT"
            ;;
    esac
}

kill_ours() {
    local svc=$1 pid=$2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$STATE_DIR/$svc.pid" "$STATE_DIR/$svc.ports"
}

declare -A START_AT=()
to_wait=()

for svc in "${services[@]}"; do
    pid="$(recorded_pid "$svc")"
    if is_our_process "$svc" "$pid"; then
        running_ports="$(cat "$STATE_DIR/$svc.ports" 2>/dev/null || true)"
        if [[ $running_ports != "$(ports_of "$svc")" ]]; then
            err "$svc is already running (pid $pid) on port(s) ${running_ports:-?}, not $(ports_of "$svc"); run stop.sh $svc first"
            exit 1
        fi
        say "$svc already running (pid $pid, port(s) $running_ports)"
        to_wait+=("$svc")
        continue
    fi
    rm -f "$STATE_DIR/$svc.pid" "$STATE_DIR/$svc.ports"
    for port in $(ports_of "$svc"); do
        if port_open "$port"; then
            err "cannot start $svc: 127.0.0.1:$port is already in use by another process"
            owner="$(port_owner "$port")"
            [[ -n $owner ]] && printf '  %s\n' "$owner" >&2
            err "free the port or choose another one (PUBSUB_PORT / BIGQUERY_PORT / BIGQUERY_GRPC_PORT)"
            exit 1
        fi
    done
    log="$STATE_DIR/$svc.log"
    [[ -f $log ]] && mv -f "$log" "$log.prev"
    : >"$log"
    read -r -a args <<<"$(launch_args "$svc" | tr '\n' ' ')"
    setsid "$VENV_PY" -u "$EMU_DIR/$svc.py" "${args[@]}" >>"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE_DIR/$svc.pid"
    ports_of "$svc" >"$STATE_DIR/$svc.ports"
    START_AT[$svc]=$EPOCHREALTIME
    say "starting $svc (pid $pid, log ${log#"$REPO_ROOT"/})"
    to_wait+=("$svc")
done

failed=0
for svc in "${to_wait[@]}"; do
    pid="$(recorded_pid "$svc")"
    deadline=$((SECONDS + START_TIMEOUT))
    up=0
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            err "$svc exited during start-up"
            log_tail "$svc"
            rm -f "$STATE_DIR/$svc.pid" "$STATE_DIR/$svc.ports"
            break
        fi
        if answers "$svc"; then up=1; break; fi
        sleep 0.2
    done
    if ((up)) && [[ -z ${START_AT[$svc]:-} ]]; then
        say "$svc answers on 127.0.0.1:$(ports_of "$svc" | tr ' ' '+') (pid $pid)"
    elif ((up)); then
        secs=$(awk -v a="${START_AT[$svc]}" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
        say "$svc ready in ${secs} s on 127.0.0.1:$(ports_of "$svc" | tr ' ' '+') (pid $pid)"
    else
        if kill -0 "$pid" 2>/dev/null; then
            err "$svc did not answer within ${START_TIMEOUT} s; stopping it"
            log_tail "$svc"
            kill_ours "$svc" "$pid"
        fi
        failed=1
    fi
done

# Environment for clients, for whatever is running now.
{
    echo "# Written by scripts/emulators/start.sh; source it."
    if is_our_process pubsub "$(recorded_pid pubsub)"; then
        read -r p _ <"$STATE_DIR/pubsub.ports"
        echo "export PUBSUB_EMULATOR_HOST=$EMU_HOST:$p"
    fi
    if is_our_process bigquery "$(recorded_pid bigquery)"; then
        read -r p g <"$STATE_DIR/bigquery.ports"
        echo "export BIGQUERY_EMULATOR_HOST=$EMU_HOST:$p"
        echo "export BIGQUERY_EMULATOR_URL=http://$EMU_HOST:$p/bigquery/v2"
        echo "export BIGQUERY_EMULATOR_GRPC_HOST=$EMU_HOST:$g"
        echo "export BIGQUERY_EMULATOR_PROJECT=$BIGQUERY_PROJECT"
    fi
} >"$STATE_DIR/env"

if ((failed)); then
    exit 1
fi
say "client env: source ${STATE_DIR#"$REPO_ROOT"/}/env"
sed -n 's/^export /  /p' "$STATE_DIR/env"
