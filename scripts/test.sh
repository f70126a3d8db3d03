#!/usr/bin/env bash
# Sets up and runs every test: the Rust toolchain target for plugins, the
# plugins themselves, then formatting, lints, unit and integration tests.
# Idempotent; safe on a fresh machine of this kind (needs only rustup/cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "plugins"
./scripts/build-plugins.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "compose file (docker-compose.yaml, environment.env, conf/) against the Compose Specification"
./scripts/check-compose.sh
./scripts/check-compose.sh --self-test | tail -n 1   # 42 broken copies, each must be refused

step "services: Redis, PostgreSQL (private, logical replication), Debezium venv, Pub/Sub and BigQuery emulators"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
./scripts/postgres/start.sh
./scripts/debezium/setup.sh
./scripts/emulators/start.sh all
trap './scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
source .state/emulators/env
export PUBSUB_EMULATOR_HOST BIGQUERY_EMULATOR_URL

step "cargo test (workspace: plugin unit tests, host unit + integration tests, bench smoke)"
set +e
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee target/test-output.log
test_status=${PIPESTATUS[0]}
set -e

step "the README's main command, shortened (DEMO_MINUTES=0.2, debug build), must enrich events with no dead letter"
STACK_PROFILE=dev DEMO_MINUTES=0.2 DEMO_STRICT=1 DEMO_STOP=1 ./scripts/demo.sh
exit "$test_status"
