#!/usr/bin/env bash
# Creates (or checks) the venv holding componentize-py, the tool that builds
# Python enricher rules into WebAssembly components: .venv/componentize-py,
# one pinned package from PyPI (its wheel carries CPython for WASI, so builds
# need no network afterwards). Idempotent: a no-op taking a few milliseconds
# once the venv was built by this script with the same pin.
#
#   scripts/setup-componentize-py.sh          # build or check the venv
#   scripts/setup-componentize-py.sh --path   # ... then print the tool's path
#
# Env: COMPONENTIZE_PY_PYTHON (default python3, >= 3.9),
#      COMPONENTIZE_PY_VENV (default <repo>/.venv/componentize-py).
set -euo pipefail

PIN="componentize-py==0.25.1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${COMPONENTIZE_PY_VENV:-$ROOT/.venv/componentize-py}"
BASE_PY="${COMPONENTIZE_PY_PYTHON:-python3}"
TOOL="$VENV/bin/componentize-py"
STAMP="$VENV/.setup-stamp"

print_path=false
case "${1:-}" in
    "") ;;
    --path) print_path=true ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup-componentize-py: unknown argument: $1" >&2; exit 2 ;;
esac

want_stamp() { printf '%s\n' "$PIN"; }
ready() { [[ -x $TOOL && -f $STAMP && "$(cat "$STAMP")" == "$(want_stamp)" ]]; }

if ! ready; then
    mkdir -p "$(dirname "$VENV")"
    # One installer at a time: build-plugins.sh and tests may start together.
    exec 9>"$VENV.lock"
    flock -w 600 9 || { echo "setup-componentize-py: another setup holds $VENV.lock" >&2; exit 1; }
    if ! ready; then
        command -v "$BASE_PY" >/dev/null ||
            { echo "setup-componentize-py: no '$BASE_PY' (set COMPONENTIZE_PY_PYTHON)" >&2; exit 1; }
        echo "==> installing $PIN into ${VENV#"$ROOT"/} (once)" >&2
        rm -rf "$VENV"
        "$BASE_PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check "$PIN" >&2
        "$TOOL" --version >&2
        want_stamp >"$STAMP"
    fi
    exec 9>&-
fi

if $print_path; then
    echo "$TOOL"
fi
