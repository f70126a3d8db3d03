#!/usr/bin/env bash
# The whole pipeline on this machine, without Docker, all on 127.0.0.1:
#
#   PostgreSQL (private cluster, wal_level=logical)  :$PG_PORT      (5433)
#   Redis (private, keeps nothing on disk)           :$STACK_REDIS_PORT (6380)
#   Pub/Sub emulator (cloudbox)                      :$PUBSUB_PORT  (8085)
#   BigQuery emulator (bqemulator)                   :$BIGQUERY_PORT (9050, gRPC 9060)
#   Debezium (the real engine, scripts/debezium)     PostgreSQL -> Pub/Sub
#   api-sim (the third-party API simulator)          :$API_SIM_PORT (8080)
#   engagement-host run (admin: /metrics ...)        :$ADMIN_PORT   (9100)
#
#   scripts/stack.sh up        # install what is missing, build, start all (idempotent)
#   scripts/stack.sh down      # stop all (data of PostgreSQL kept; --purge drops it)
#   scripts/stack.sh status    # what runs, where
#   scripts/stack.sh logs [N]  # last N lines (20) of every log
#   scripts/stack.sh restart-host   # stop and start the host only
#
# State, pid files and logs: .state/ (stack/ for the host, api-sim and Redis;
# postgres/, emulators/, debezium/ for the others). The host watches
# .state/stack/plugins: copy a new enricher.wasm there to hot-swap it.
# Config of the host: .state/stack/host.toml (written by `up`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
STACK="$ROOT/.state/stack"
# STACK_PROFILE=dev uses the debug build (CI, where the tests built it).
STACK_PROFILE="${STACK_PROFILE:-release}"
case $STACK_PROFILE in
    release) HOST_BIN="$ROOT/target/release/engagement-host" ;;
    dev) HOST_BIN="$ROOT/target/debug/engagement-host" ;;
    *) printf '[stack] ERROR: STACK_PROFILE must be release or dev\n' >&2; exit 2 ;;
esac
export PG_PORT="${PG_PORT:-5433}"
STACK_REDIS_PORT="${STACK_REDIS_PORT:-6380}"
export PUBSUB_PORT="${PUBSUB_PORT:-8085}"
export BIGQUERY_PORT="${BIGQUERY_PORT:-9050}"
API_SIM_PORT="${API_SIM_PORT:-8080}"
ADMIN_PORT="${ADMIN_PORT:-9100}"
START_TIMEOUT="${STACK_START_TIMEOUT:-60}"

say() { printf '[stack] %s\n' "$*"; }
err() { printf '[stack] ERROR: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_of() { [[ -f $STACK/$1.pid ]] && tr -dc '0-9' <"$STACK/$1.pid" || true; }

# True when the recorded pid of $1 is alive and still runs $2 (a recycled
# pid is not ours).
running() {
    local pid
    pid="$(pid_of "$1")"
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

log_tail() {
    if [[ -s $1 ]]; then
        printf -- '----- last lines of %s -----\n' "${1#"$ROOT"/}" >&2
        tail -n "${2:-30}" "$1" >&2
        printf -- '-----\n' >&2
    fi
}

require_free() {
    local name=$1 port=$2
    if port_open "$port"; then
        err "cannot start $name: 127.0.0.1:$port is already in use by another process"
        command -v ss >/dev/null && ss -Hltnp "sport = :$port" 2>/dev/null | head -2 | sed 's/^/  /' >&2
        err "free the port or pick another one (see the variables at the top of scripts/stack.sh)"
        exit 1
    fi
}

# start_bg NAME MATCH LOG -- CMD...: runs CMD in the background, records its pid.
start_bg() {
    local name=$1 match=$2 log=$3
    shift 4
    [[ -f $log ]] && mv -f "$log" "$log.prev"
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$STACK/$name.pid"
    running "$name" "$match" || { sleep 0.3; running "$name" "$match"; } || {
        err "$name exited at once"
        log_tail "$log"
        exit 1
    }
}

# wait_until NAME LOG CHECK...: polls CHECK until it succeeds or the timeout.
wait_until() {
    local name=$1 match=$2 log=$3
    shift 3
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        if ! running "$name" "$match"; then
            err "$name exited during start-up"
            log_tail "$log"
            exit 1
        fi
        sleep 0.2
    done
    err "$name did not answer within ${START_TIMEOUT} s"
    log_tail "$log"
    exit 1
}

stop_bg() {
    local name=$1 match=$2 pid
    pid="$(pid_of "$name")"
    if running "$name" "$match"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        say "$name stopped"
    fi
    rm -f "$STACK/$name.pid"
}

redis_up() {
    if running redis "redis-server"; then
        say "redis already running on 127.0.0.1:$STACK_REDIS_PORT"
        return
    fi
    command -v redis-server >/dev/null || {
        err "redis-server is not installed (apt-get install redis-server)"
        exit 1
    }
    require_free redis "$STACK_REDIS_PORT"
    start_bg redis "redis-server" "$STACK/redis.log" -- \
        redis-server --bind 127.0.0.1 --port "$STACK_REDIS_PORT" --save "" --appendonly no --dir "$STACK"
    wait_until redis redis-server "$STACK/redis.log" redis-cli -p "$STACK_REDIS_PORT" ping
    say "redis ready on 127.0.0.1:$STACK_REDIS_PORT"
}

build() {
    if [[ ${STACK_SKIP_BUILD:-0} == 1 ]]; then
        [[ -x $HOST_BIN && -f dist/plugins/enricher.wasm ]] || { err "STACK_SKIP_BUILD=1 but $HOST_BIN or dist/plugins is missing"; exit 1; }
        say "using the built host ($HOST_BIN) and plugins (STACK_SKIP_BUILD=1)"
    else
        say "building the host ($STACK_PROFILE) and the plugins"
        cargo build --profile "$STACK_PROFILE" --quiet -p engagement-host
        ./scripts/build-plugins.sh >/dev/null
    fi
    mkdir -p "$STACK/plugins"
    # The live plugin directory starts with the built rules; later copies
    # into it are hot swaps, so an existing one is left as it is.
    for f in decoder.wasm enricher.wasm; do
        [[ -f $STACK/plugins/$f ]] || cp "dist/plugins/$f" "$STACK/plugins/$f"
    done
}

write_host_config() {
    cat >"$STACK/host.toml" <<EOF
# Written by scripts/stack.sh up; keys as in README's configuration table.
pubsub_emulator_host = "127.0.0.1:$PUBSUB_PORT"
default_emit_interval_secs = 0.5
state_dir = "$STACK/host"
dead_letter_file = "$STACK/dead-letters.ndjson"
plugin_dir = "$STACK/plugins"
plugin_cache_dir = "$STACK/plugin-cache"
redis_host = "127.0.0.1"
redis_port = $STACK_REDIS_PORT
bigquery_enabled = true
bigquery_emulator_url = "http://127.0.0.1:$BIGQUERY_PORT/bigquery/v2"
# A rule version that adds a field gets its (NULLABLE) column before it swaps in.
bigquery_allow_schema_update = true
api_enabled = true
third_party_api_url = "http://127.0.0.1:$API_SIM_PORT"
api_batch_size = 200
admin_listen = "127.0.0.1:$ADMIN_PORT"
admin_token = "local-stack"
EOF
}

# The host reads its settings from host.toml only: variables of the
# caller's shell (REDIS_PORT, PUBSUB_EMULATOR_HOST, ...) must not leak in.
HOST_ENV=(env -u PUBSUB_EMULATOR_HOST -u BIGQUERY_EMULATOR_URL -u REDIS_HOST -u REDIS_PORT
    -u REDIS_URL -u THIRD_PARTY_API_URL -u PLUGIN_DIR -u ENGAGEMENT_HOST_CONFIG)
host_cmd() { "${HOST_ENV[@]}" "$HOST_BIN" "$@"; }

api_sim_up() {
    if running api-sim "engagement-host api-sim"; then
        say "api-sim already running on 127.0.0.1:$API_SIM_PORT"
        return
    fi
    require_free api-sim "$API_SIM_PORT"
    start_bg api-sim "engagement-host api-sim" "$STACK/api-sim.log" -- \
        "$HOST_BIN" api-sim --listen "127.0.0.1:$API_SIM_PORT"
    wait_until api-sim "engagement-host api-sim" "$STACK/api-sim.log" curl -fsS "http://127.0.0.1:$API_SIM_PORT/"
    say "api-sim ready on http://127.0.0.1:$API_SIM_PORT (GET /stats)"
}

host_up() {
    if running host "engagement-host run"; then
        say "host already running (admin http://127.0.0.1:$ADMIN_PORT)"
        return
    fi
    require_free host "$ADMIN_PORT"
    start_bg host "engagement-host run" "$STACK/host.log" -- \
        "${HOST_ENV[@]}" "$HOST_BIN" run --config "$STACK/host.toml"
    wait_until host "engagement-host run" "$STACK/host.log" curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz"
    say "host ready: admin http://127.0.0.1:$ADMIN_PORT (/metrics /plugins /readyz), log ${STACK#"$ROOT"/}/host.log"
}

up() {
    mkdir -p "$STACK"
    command -v rustup >/dev/null && rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
    build
    ./scripts/postgres/start.sh
    redis_up
    ./scripts/emulators/start.sh all
    write_host_config
    say "Pub/Sub topics and subscriptions"
    host_cmd setup-pubsub --config "$STACK/host.toml" | sed 's/^/  /'
    ./scripts/debezium/start.sh
    api_sim_up
    host_up
    say "up; stop with: scripts/stack.sh down"
}

down() {
    mkdir -p "$STACK"
    stop_bg host "engagement-host run"
    stop_bg api-sim "engagement-host api-sim"
    [[ -x scripts/debezium/stop.sh ]] && ./scripts/debezium/stop.sh || true
    ./scripts/emulators/stop.sh all || true
    stop_bg redis "redis-server"
    ./scripts/postgres/stop.sh "$@" || true
}

status() {
    line() { printf '  %-10s %-9s %s\n' "$1" "$2" "$3"; }
    local pg_state=stopped
    [[ -f .state/postgres/data/postmaster.pid ]] && port_open "$PG_PORT" && pg_state=running
    line postgres "$pg_state" "127.0.0.1:$PG_PORT (log .state/postgres/postgres.log)"
    for svc in "redis redis-server $STACK_REDIS_PORT" "api-sim engagement-host.api-sim $API_SIM_PORT" \
        "host engagement-host.run $ADMIN_PORT"; do
        read -r name match port <<<"$svc"
        if running "$name" "${match//./ }"; then
            line "$name" running "127.0.0.1:$port (pid $(pid_of "$name"), log .state/stack/$name.log)"
        else
            line "$name" stopped "127.0.0.1:$port (log .state/stack/$name.log)"
        fi
    done
    for emu in pubsub:"$PUBSUB_PORT" bigquery:"$BIGQUERY_PORT"; do
        if port_open "${emu#*:}"; then state=running; else state=stopped; fi
        line "${emu%%:*}" "$state" "127.0.0.1:${emu#*:} (log .state/emulators/${emu%%:*}.log)"
    done
    local dbz=stopped
    [[ -f .state/debezium/debezium.pid ]] && kill -0 "$(tr -dc '0-9' <.state/debezium/debezium.pid)" 2>/dev/null && dbz=running
    line debezium "$dbz" "(log .state/debezium/debezium.log)"
}

logs() {
    local n=${1:-20} f
    for f in .state/postgres/postgres.log .state/stack/redis.log .state/emulators/pubsub.log \
        .state/emulators/bigquery.log .state/debezium/debezium.log .state/stack/api-sim.log .state/stack/host.log; do
        [[ -f $f ]] || continue
        printf '\n==> %s <==\n' "$f"
        tail -n "$n" "$f"
    done
}

case "${1:-}" in
    up) up ;;
    down) shift; down "$@" ;;
    status) status ;;
    logs) shift; logs "$@" ;;
    restart-host) stop_bg host "engagement-host run"; host_up ;;
    -h | --help | "") sed -n '2,21p' "$0" ;;
    *) err "unknown command '$1'"; sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
