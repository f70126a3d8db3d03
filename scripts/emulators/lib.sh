# Shared by the emulator scripts (sourced, not run). Paths are repo-relative.
# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this

EMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$EMU_DIR/../.." && pwd)"
VENV_DIR="${EMULATORS_VENV:-$REPO_ROOT/.venv/emulators}"
VENV_PY="$VENV_DIR/bin/python"
STATE_DIR="${EMULATORS_STATE_DIR:-$REPO_ROOT/.state/emulators}"

EMU_HOST=127.0.0.1
PUBSUB_PORT="${PUBSUB_PORT:-8085}"
BIGQUERY_PORT="${BIGQUERY_PORT:-9050}"
BIGQUERY_GRPC_PORT="${BIGQUERY_GRPC_PORT:-9060}"
BIGQUERY_PROJECT="${BIGQUERY_PROJECT:-streaming-project}"
PUBSUB_PROJECT="${PUBSUB_PROJECT:-streaming-project}"
START_TIMEOUT="${EMULATORS_START_TIMEOUT:-30}"

for _v in PUBSUB_PORT BIGQUERY_PORT BIGQUERY_GRPC_PORT; do
    if ! [[ ${!_v} =~ ^[0-9]+$ ]] || ((${!_v} < 1 || ${!_v} > 65535)); then
        printf '[emulators] ERROR: %s=%s is not a port (1-65535)\n' "$_v" "${!_v}" >&2
        exit 2
    fi
done
unset _v

say() { printf '[emulators] %s\n' "$*"; }
err() { printf '[emulators] ERROR: %s\n' "$*" >&2; }

# Process id recorded for a service, or nothing.
recorded_pid() {
    local f="$STATE_DIR/$1.pid"
    if [[ -f $f ]]; then tr -dc '0-9' <"$f"; fi
}

# True when $2 is a live process running this service's launcher (guards
# against a recycled pid after a reboot or a crash).
is_our_process() {
    local svc=$1 pid=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$EMU_DIR/$svc.py"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$EMU_HOST/$1") 2>/dev/null
}

# Who listens on port $1 (best effort, for error messages).
port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | head -3
    fi
}

log_tail() {
    local log="$STATE_DIR/$1.log"
    if [[ -s $log ]]; then
        printf -- '----- last lines of %s -----\n' "$log" >&2
        tail -n "${2:-40}" "$log" >&2
        printf -- '-----\n' >&2
    fi
}
