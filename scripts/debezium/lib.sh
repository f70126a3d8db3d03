# Shared by scripts/debezium/{start,stop}.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this

DBZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DBZ_DIR/../.." && pwd)"
VENV_DIR="${DEBEZIUM_VENV:-$REPO_ROOT/.venv/debezium}"
VENV_PY="$VENV_DIR/bin/python"
STATE_DIR="${DEBEZIUM_STATE_DIR:-$REPO_ROOT/.state/debezium}"
PID_FILE="$STATE_DIR/debezium.pid"
LOG_FILE="$STATE_DIR/debezium.log"
SERVER_PY="$DBZ_DIR/server.py"

say() { printf '[debezium] %s\n' "$*"; }
err() { printf '[debezium] ERROR: %s\n' "$*" >&2; }

recorded_pid() {
    if [[ -f $PID_FILE ]]; then tr -dc '0-9' <"$PID_FILE"; fi
}

# True when $1 is a live process running our server.py (guards against a
# recycled pid).
is_our_process() {
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$SERVER_PY"
}

# True when something accepts TCP connections on $1:$2.
tcp_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

log_tail() {
    if [[ -s $LOG_FILE ]]; then
        printf -- '----- last lines of %s -----\n' "$LOG_FILE" >&2
        tail -n "${1:-40}" "$LOG_FILE" | cut -c1-400 >&2
        printf -- '-----\n' >&2
    fi
}
