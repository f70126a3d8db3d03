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

step "cargo test (workspace: plugin unit tests, host unit + integration tests, bench smoke)"
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee target/test-output.log
