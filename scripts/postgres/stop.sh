#!/usr/bin/env bash
# Stops the private PostgreSQL cluster that start.sh started (fast shutdown:
# open sessions are ended, the data is kept). Stopping it when it is not
# running is a no-op.
#
#   scripts/postgres/stop.sh            # stop, keep .state/postgres/data
#   scripts/postgres/stop.sh --purge    # stop and delete the data dir (and
#                                       # with it the replication slot)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) err "unknown argument: $1 (--purge)"; exit 2 ;;
esac

pid="$(running_pid)"
if [[ -z $pid ]]; then
    say "not running"
else
    BIN="$(find_pg_bin)"
    if ! as_pg "$BIN/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 60 -s; then
        err "fast shutdown did not finish in 60 s; sending an immediate shutdown"
        as_pg "$BIN/pg_ctl" stop -D "$DATA_DIR" -m immediate -w -t 30 -s || true
    fi
    # pg_ctl returns once postmaster.pid is gone; the process exits just after.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        err "postmaster (pid $pid) is still running"
        exit 1
    fi
    say "stopped (pid $pid)"
fi
rm -f "$ENV_FILE"

if ((purge)); then
    rm -rf "$DATA_DIR" "$SOCK_DIR" "$STATE_DIR/initdb.log"
    say "purged ${DATA_DIR#"$REPO_ROOT"/}"
fi
