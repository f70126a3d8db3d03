# Shared by scripts/postgres/{start,stop}.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this

PGS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$PGS_DIR/../.." && pwd)"
STATE_DIR="${PG_STATE_DIR:-$REPO_ROOT/.state/postgres}"
DATA_DIR="$STATE_DIR/data"
SOCK_DIR="$STATE_DIR/sock"
PG_LOG="$STATE_DIR/postgres.log"
ENV_FILE="$STATE_DIR/env"

PG_HOST=127.0.0.1
PG_PORT="${PG_PORT:-5433}"
PG_USER="${PG_USER:-debezium}"
PG_PASSWORD="${PG_PASSWORD:-dbz}"
PG_DATABASE="${PG_DATABASE:-users_data}"
# OS user that owns the data dir and runs the server (initdb and pg_ctl
# refuse to run as root).
PG_OS_USER="${PG_OS_USER:-postgres}"
START_TIMEOUT="${PG_START_TIMEOUT:-60}"

say() { printf '[postgres] %s\n' "$*"; }
err() { printf '[postgres] ERROR: %s\n' "$*" >&2; }

if ! [[ $PG_PORT =~ ^[0-9]+$ ]] || ((PG_PORT < 1 || PG_PORT > 65535)); then
    err "PG_PORT=$PG_PORT is not a port (1-65535)"
    exit 2
fi

# The binaries of the newest PostgreSQL installed under /usr/lib/postgresql
# (Debian's layout), or $PG_BIN if set.
find_pg_bin() {
    if [[ -n ${PG_BIN:-} ]]; then
        [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || { err "PG_BIN=$PG_BIN has no initdb/pg_ctl"; exit 1; }
        echo "$PG_BIN"
        return
    fi
    local d v best="" best_v=-1
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] || continue
        v="$(basename "$(dirname "$d")")"
        [[ $v =~ ^[0-9]+$ ]] || continue
        if ((v > best_v)); then best="$d" best_v=$v; fi
    done
    if [[ -z $best ]]; then
        err "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql, or set PG_BIN)"
        exit 1
    fi
    echo "$best"
}

# Runs a command as the PostgreSQL OS user (we are usually root here).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$PG_HOST/$1") 2>/dev/null
}

# Who listens on port $1 (best effort, for error messages).
port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | head -3
    fi
}

# Pid of the postmaster running on our data dir, or nothing.
running_pid() {
    local pidfile="$DATA_DIR/postmaster.pid" pid
    [[ -f $pidfile ]] || return 0
    pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    # Guard against a recycled pid: it must be a postgres whose -D is ours.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$DATA_DIR"; then
        echo "$pid"
    fi
}

# Port the running postmaster listens on (line 4 of postmaster.pid).
running_port() {
    sed -n 4p "$DATA_DIR/postmaster.pid" 2>/dev/null | tr -dc '0-9'
}

log_tail() {
    if [[ -s $PG_LOG ]]; then
        printf -- '----- last lines of %s -----\n' "$PG_LOG" >&2
        tail -n "${1:-40}" "$PG_LOG" >&2
        printf -- '-----\n' >&2
    fi
}
