#!/usr/bin/env bash
# Starts a PRIVATE PostgreSQL cluster for the local stack (the machine's own
# server on 5432 is left alone), ready for Debezium, and loads seed.sql.
#
#   scripts/postgres/start.sh            # start (or check) it, then print the URL
#   source .state/postgres/env           # PG_HOST PG_PORT PG_USER PG_PASSWORD
#                                        # PG_DATABASE DATABASE_URL
#
# Cluster: .state/postgres/data (owned by the `postgres` OS user: initdb and
# pg_ctl refuse to run as root), 127.0.0.1:$PG_PORT only, unix socket in
# .state/postgres/sock, wal_level=logical, max_wal_senders=10,
# max_replication_slots=10, trust auth for local and 127.0.0.1 connections.
# Role $PG_USER (LOGIN REPLICATION, password $PG_PASSWORD) owns database
# $PG_DATABASE; seed.sql (idempotent) runs as that role at every start, so it
# owns the tables and the publication. Starting a running cluster is a no-op
# apart from the role/database/seed check. Server log: .state/postgres/postgres.log.
# Env: PG_PORT (5433), PG_USER (debezium), PG_PASSWORD (dbz),
# PG_DATABASE (users_data), PG_BIN (default: newest /usr/lib/postgresql/*/bin),
# PG_START_TIMEOUT (seconds, 60).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
    "") ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) err "unknown argument: $1"; exit 2 ;;
esac

SEED="$REPO_ROOT/seed.sql"
[[ -f $SEED ]] || { err "$SEED not found"; exit 1; }
BIN="$(find_pg_bin)"
BIN_MAJOR="$(basename "$(dirname "$BIN")")"
PSQL="$BIN/psql"
started_at=$EPOCHREALTIME

if [[ $(id -u) -eq 0 ]] && ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    err "running as root but there is no '$PG_OS_USER' OS user to run PostgreSQL as (set PG_OS_USER)"
    exit 1
fi

mkdir -p "$STATE_DIR"
# The postgres OS user must be able to reach the data dir (every parent
# directory needs o+x); say so instead of letting initdb fail obscurely.
if [[ $(id -u) -eq 0 ]] && ! runuser -u "$PG_OS_USER" -- test -x "$STATE_DIR"; then
    err "the '$PG_OS_USER' OS user cannot reach $STATE_DIR (a parent directory lacks o+x)"
    exit 1
fi
install -d -m 0755 -o "$PG_OS_USER" "$SOCK_DIR" 2>/dev/null || install -d -m 0755 "$SOCK_DIR"

# --- initdb (once) -----------------------------------------------------------
if [[ ! -f $DATA_DIR/PG_VERSION ]]; then
    if [[ -d $DATA_DIR ]] && [[ -n "$(ls -A "$DATA_DIR" 2>/dev/null)" ]]; then
        err "$DATA_DIR exists but is not a PostgreSQL data dir; remove it (scripts/postgres/stop.sh --purge)"
        exit 1
    fi
    say "initdb ${DATA_DIR#"$REPO_ROOT"/} (PostgreSQL $BIN_MAJOR)"
    install -d -m 0700 -o "$PG_OS_USER" "$DATA_DIR" 2>/dev/null || install -d -m 0700 "$DATA_DIR"
    if ! as_pg "$BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        --no-instructions >"$STATE_DIR/initdb.log" 2>&1; then
        err "initdb failed"
        tail -n 30 "$STATE_DIR/initdb.log" >&2
        exit 1
    fi
    # Our settings live in stack.conf (rewritten at every start), included last.
    as_pg sh -c "printf '\n# Local stack settings, written by scripts/postgres/start.sh\ninclude_if_exists = '\''stack.conf'\''\n' >>'$DATA_DIR/postgresql.conf'"
fi

DATA_MAJOR="$(cat "$DATA_DIR/PG_VERSION")"
if [[ $DATA_MAJOR != "$BIN_MAJOR" ]]; then
    err "$DATA_DIR was made by PostgreSQL $DATA_MAJOR but the binaries are $BIN_MAJOR ($BIN); set PG_BIN or purge it (stop.sh --purge)"
    exit 1
fi

pid="$(running_pid)"
if [[ -n $pid ]]; then
    port="$(running_port)"
    if [[ $port != "$PG_PORT" ]]; then
        err "the private cluster is already running (pid $pid) on port ${port:-?}, not $PG_PORT; run scripts/postgres/stop.sh first"
        exit 1
    fi
    say "already running (pid $pid, 127.0.0.1:$PG_PORT)"
else
    if port_open "$PG_PORT"; then
        err "cannot start PostgreSQL: 127.0.0.1:$PG_PORT is already in use by another process"
        owner="$(port_owner "$PG_PORT")"
        [[ -n $owner ]] && printf '  %s\n' "$owner" >&2
        err "free the port or choose another one (PG_PORT)"
        exit 1
    fi
    # Rewritten at every start so PG_PORT and the paths always match.
    as_pg tee "$DATA_DIR/stack.conf" >/dev/null <<EOF
# Written by scripts/postgres/start.sh at every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCK_DIR'
wal_level = logical             # Debezium (pgoutput) needs logical decoding
max_wal_senders = 10
max_replication_slots = 10
log_min_messages = warning
log_connections = off
EOF
    as_pg tee "$DATA_DIR/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/postgres/start.sh at every start; edits are lost.
# A private development cluster on 127.0.0.1: trust, no passwords checked.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
local   replication  all                  trust
host    all          all   127.0.0.1/32   trust
host    replication  all   127.0.0.1/32   trust
EOF
    [[ -f $PG_LOG ]] && mv -f "$PG_LOG" "$PG_LOG.prev"
    : >"$PG_LOG"
    [[ $(id -u) -eq 0 ]] && chown "$PG_OS_USER" "$PG_LOG"
    say "starting PostgreSQL $BIN_MAJOR on 127.0.0.1:$PG_PORT (log ${PG_LOG#"$REPO_ROOT"/})"
    if ! as_pg "$BIN/pg_ctl" start -D "$DATA_DIR" -l "$PG_LOG" -w -t "$START_TIMEOUT" -s >/dev/null 2>"$STATE_DIR/pg_ctl.err"; then
        err "PostgreSQL did not start within ${START_TIMEOUT} s"
        cat "$STATE_DIR/pg_ctl.err" >&2 || true
        log_tail
        # pg_ctl -w may give up while the server is still coming up.
        as_pg "$BIN/pg_ctl" stop -D "$DATA_DIR" -m immediate -s >/dev/null 2>&1 || true
        exit 1
    fi
    rm -f "$STATE_DIR/pg_ctl.err"
    pid="$(running_pid)"
fi

# --- role, database, schema (idempotent, at every start) ---------------------
PSQL_SU=("$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PG_PORT" -U postgres)
wal_level="$("${PSQL_SU[@]}" -d postgres -Atc 'SHOW wal_level')"
if [[ $wal_level != logical ]]; then
    err "wal_level is '$wal_level', not 'logical' (was $DATA_DIR/postgresql.auto.conf edited?); restart with stop.sh && start.sh"
    exit 1
fi

"${PSQL_SU[@]}" -d postgres -v user="$PG_USER" -v password="$PG_PASSWORD" -v db="$PG_DATABASE" <<'SQL' >/dev/null
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN REPLICATION PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'user') \gexec
SQL

if ! PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 \
    -h "$SOCK_DIR" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DATABASE" -f "$SEED" >/dev/null; then
    err "seed.sql failed in $PG_DATABASE (as $PG_USER)"
    exit 1
fi

# --- env file for clients ----------------------------------------------------
urlencode() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [a-zA-Z0-9._~-]) out+=$c ;;
            *) out+="$(printf '%%%02X' "'$c")" ;;
        esac
    done
    printf '%s' "$out"
}
DATABASE_URL="postgres://$(urlencode "$PG_USER"):$(urlencode "$PG_PASSWORD")@$PG_HOST:$PG_PORT/$(urlencode "$PG_DATABASE")"
{
    echo "# Written by scripts/postgres/start.sh; source it."
    printf 'export PG_HOST=%q\n' "$PG_HOST"
    printf 'export PG_PORT=%q\n' "$PG_PORT"
    printf 'export PG_USER=%q\n' "$PG_USER"
    printf 'export PG_PASSWORD=%q\n' "$PG_PASSWORD"
    printf 'export PG_DATABASE=%q\n' "$PG_DATABASE"
    printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
} >"$ENV_FILE"

secs=$(awk -v a="$started_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
say "ready in ${secs} s (pid $pid): $PG_DATABASE owned by $PG_USER, seed.sql applied, wal_level=logical"
say "client env: source ${ENV_FILE#"$REPO_ROOT"/}"
say "  $DATABASE_URL"
