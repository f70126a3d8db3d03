#!/usr/bin/env bash
# Stops the Debezium Server stand-in that start.sh started (by the pid in
# .state/debezium/, checked to still be server.py): SIGTERM, which closes the
# engine and commits the offsets of everything published, then SIGKILL after
# 60 s. Stopping it when it is not running is a no-op. The replication slot
# and the offsets are kept, so the next start resumes where this one stopped.
#
#   scripts/debezium/stop.sh            # stop
#   scripts/debezium/stop.sh --reset    # stop, delete the offsets and drop the
#                                       # replication slot: the next start
#                                       # snapshots again (tests)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

reset=0
case "${1:-}" in
    "") ;;
    --reset) reset=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) err "unknown argument: $1 (--reset)"; exit 2 ;;
esac

pid="$(recorded_pid)"
if [[ -z $pid ]]; then
    say "not running"
elif ! is_our_process "$pid"; then
    say "not running (stale pid file removed)"
    rm -f "$PID_FILE"
else
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        err "pid $pid ignored SIGTERM for 60 s; sending SIGKILL (the last batch will be published again at the next start)"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    say "stopped (pid $pid)"
fi

if ((reset)); then
    rm -f "$STATE_DIR/offsets.dat"
    # shellcheck disable=SC1091
    [[ -f $REPO_ROOT/.state/postgres/env ]] && source "$REPO_ROOT/.state/postgres/env"
    slot="${DEBEZIUM_SOURCE_SLOT_NAME:-debezium_slot}"
    url="${DATABASE_URL:-postgres://debezium:dbz@127.0.0.1:5433/users_data}"
    if command -v psql >/dev/null 2>&1 && psql "$url" -X -q -At -v ON_ERROR_STOP=1 -v slot="$slot" >/dev/null 2>&1 <<'SQL'
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = :'slot';
SQL
    then
        say "reset: offsets deleted, replication slot '$slot' dropped (if it existed)"
    else
        say "reset: offsets deleted; could not reach PostgreSQL to drop the slot '$slot' (the next start snapshots again anyway)"
    fi
fi
