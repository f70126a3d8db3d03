#!/usr/bin/env bash
# Checks docker-compose.yaml without Docker:
#
#   1. the file, after Compose's variable interpolation, against the Compose
#      Specification's JSON schema (check-jsonschema, PyPI, and the schema it
#      vendors from compose-spec/compose-spec: --builtin-schema vendor.compose-spec);
#   2. what `docker compose config` / `up` would also refuse: dependencies on
#      missing services or on a healthcheck that is not there, undeclared
#      named volumes, mounted files, env files, build contexts, Dockerfiles
#      and build targets that do not exist, two services on one host port;
#   3. consistency with the native stack and the host:
#      - every key of the host's env files (environment.env) and of the
#        image's ENV is a field of `struct Config` in host/src/config.rs (the
#        host silently ignores any other name), with a value the host parses
#        for that field's type, and Config::validate's rules hold;
#      - addresses in those settings name a compose service, on a port it
#        listens on, that the service depends on;
#      - Debezium (the application.properties mounted at /debezium/config):
#        project and emulator address equal the host's, topic.prefix and the
#        include lists produce exactly the host's topics, database settings
#        equal the postgres service's, offsets on a volume, the slot kept,
#        the publication the one seed.sql creates;
#      - the Dockerfile copies every workspace member and every file the
#        crates include_str!, and .dockerignore does not hide them.
#
# Usage: scripts/check-compose.sh [COMPOSE_FILE]     (default: docker-compose.yaml)
#        scripts/check-compose.sh --self-test        breaks copies of the files in
#                                                    a temp dir, one way at a time,
#                                                    and expects each to be refused
#
# Exit status: 0 all good; 1 a problem was found (each is printed); 2 the
# tools could not be set up. Tools: a venv in .venv/compose-check (PyPI
# check-jsonschema, every dependency pinned), built on first use and rebuilt
# only when the pins change; later runs need no network and take ~1 s.
# Env: COMPOSE_CHECK_PYTHON (python3), COMPOSE_CHECK_VENV, COMPOSE_CHECK_STATE_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_DIR=$PWD
cd "$ROOT"

CHECK_JSONSCHEMA_VERSION=0.39.0
# check-jsonschema 0.39.0 and everything it pulls in (resolved with Python 3.11).
PINS="check-jsonschema==$CHECK_JSONSCHEMA_VERSION
attrs==26.1.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
idna==3.20
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
typing_extensions==4.16.0
urllib3==2.8.0"
# sha256 of check_jsonschema/builtin_schemas/vendor/compose-spec.json in that
# release: the schema is pinned with the package, and checked.
SCHEMA_SHA256=d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64

PYTHON=${COMPOSE_CHECK_PYTHON:-python3}
VENV=${COMPOSE_CHECK_VENV:-$ROOT/.venv/compose-check}
STATE=${COMPOSE_CHECK_STATE_DIR:-$ROOT/.state/compose-check}

setup_failed() {
    echo "check-compose: cannot set up the validator: $*" >&2
    exit 2
}

install_tools() {
    mkdir -p "$STATE"
    local stamp_file="$VENV/.check-compose-stamp" stamp
    stamp=$(printf '%s\n%s\n%s\n' "$PINS" "$SCHEMA_SHA256" "$("$PYTHON" -c 'import sys; print(sys.version)' 2>/dev/null || true)" |
        sha256sum | cut -d' ' -f1)
    if [[ -x "$VENV/bin/check-jsonschema" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
        return 0
    fi
    # One installer at a time (two checks started together share the venv).
    exec 9>"$STATE/.install.lock"
    flock -w 600 9 || setup_failed "timed out waiting for $STATE/.install.lock"
    if [[ -x "$VENV/bin/check-jsonschema" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
        exec 9>&-
        return 0
    fi
    echo "check-compose: installing check-jsonschema $CHECK_JSONSCHEMA_VERSION into ${VENV#"$ROOT"/} (once)" >&2
    command -v "$PYTHON" >/dev/null || setup_failed "$PYTHON not found (set COMPOSE_CHECK_PYTHON)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || setup_failed "$PYTHON -m venv failed"
    printf '%s\n' "$PINS" >"$STATE/pins.txt"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet --no-input \
        -r "$STATE/pins.txt" -c "$STATE/pins.txt" >"$STATE/pip.log" 2>&1 ||
        { tail -20 "$STATE/pip.log" >&2; setup_failed "pip install failed (log: $STATE/pip.log)"; }
    local schema
    schema=$("$VENV/bin/python" -c 'import check_jsonschema, os; print(os.path.join(os.path.dirname(check_jsonschema.__file__), "builtin_schemas", "vendor", "compose-spec.json"))')
    [[ "$(sha256sum "$schema" | cut -d' ' -f1)" == "$SCHEMA_SHA256" ]] ||
        setup_failed "the compose-spec schema in check-jsonschema $CHECK_JSONSCHEMA_VERSION is not the pinned one ($schema)"
    echo "$stamp" >"$stamp_file"
    exec 9>&-
}

install_tools

export CHECK_ROOT=$ROOT CHECK_CALLER_DIR=$CALLER_DIR CHECK_STATE=$STATE CHECK_JSONSCHEMA="$VENV/bin/check-jsonschema"
export CHECK_SCHEMA_LABEL="compose-spec (check-jsonschema $CHECK_JSONSCHEMA_VERSION, vendor.compose-spec)"
exec "$VENV/bin/python" "$(dirname "$0")/compose_check.py" "$@"
