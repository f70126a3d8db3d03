#!/usr/bin/env bash
# Builds app.py into an enricher component with componentize-py:
#
#   plugins/engagement-enricher-py/build.sh [OUT]   # default dist/examples/enricher-py.wasm
#
# --stub-wasi replaces every WASI import by a trapping stub, so the component
# imports only engagement:pipeline/{log,types} and passes the host's
# no-capabilities policy (check: engagement-host plugin check OUT).
#
# componentize-py builds are not reproducible (a random seed is baked in), so
# a rebuild would give a new sha256 for the same rule: the build is skipped
# when OUT exists and app.py, the WIT, this script and the tool's version are
# what the last build used (a stamp beside OUT; --force rebuilds anyway).
#
# Env: COMPONENTIZE_PY = the componentize-py binary (default: the repo's
# .venv/componentize-py, installed by scripts/setup-componentize-py.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

force=false
if [[ ${1:-} == --force ]]; then force=true; shift; fi
out="${1:-$root/dist/examples/enricher-py.wasm}"
stamp="$(dirname "$out")/.$(basename "$out").stamp"

tool="${COMPONENTIZE_PY:-}"
if [[ -z $tool ]]; then
    tool="$("$root/scripts/setup-componentize-py.sh" --path)"
fi

inputs="$(
    {
        "$tool" --version
        sha256sum "$here/app.py" "$here/build.sh" "$root"/wit/*.wit | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1
)"
if ! $force && [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$inputs" ]]; then
    echo "    $(basename "$out"): up to date (inputs unchanged)"
    exit 0
fi

# Build from a scratch copy: componentize-py writes __pycache__ next to the
# sources it reads.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp "$here/app.py" "$scratch/"
mkdir -p "$(dirname "$out")"
started=$SECONDS
"$tool" -q -d "$root/wit" -w enricher componentize --stub-wasi app \
    -p "$scratch" -o "$scratch/enricher.wasm"
# Copy then rename: a host watching the directory never sees half a file.
cp "$scratch/enricher.wasm" "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out"
echo "$inputs" >"$stamp"
echo "    $(basename "$out"): built in $((SECONDS - started)) s ($(du -h "$out" | cut -f1))"
