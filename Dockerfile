# syntax=docker/dockerfile:1
#
# engagement-host image (the default, last stage `runtime`):
#   /usr/local/bin/engagement-host and the default plugins in /plugins
#   (decoder.wasm, enricher.wasm), run as a non-root user.
#
#   docker build -t engagement-host .
#   docker run --rm engagement-host plugin check /plugins/enricher.wasm
#
# Stage `bigquery-emulator` is the BigQuery emulator of docker-compose.yaml
# (not part of the host image).
#
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

ARG RUST_VERSION=1.95

# ---- builder: the host (release) and the plugins (wasm32-wasip2) ------------
# Bookworm like the runtime stage, so the binary's glibc matches.
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
RUN rustup target add wasm32-wasip2

# Only what the build reads (the workspace, the WIT contract, the BigQuery
# schema the host embeds, the plugin build script), so editing docs or
# compose files does not rebuild. A new top-level workspace member must be
# added here (scripts/check-compose.sh checks it).
COPY Cargo.toml Cargo.lock ./
COPY wit wit
COPY bigquery bigquery
COPY host host
COPY plugins plugins
COPY scripts/build-plugins.sh scripts/build-plugins.sh

# Cache mounts keep the crates.io downloads and the target directory between
# builds; the results are copied out of the (unsaved) target directory, and
# `plugin check` refuses to ship plugins the host would refuse to load.
RUN --mount=type=cache,id=engagement-host-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=engagement-host-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=engagement-host-target,target=/src/target,sharing=locked \
    set -eux; \
    cargo build --release --locked -p engagement-host; \
    ./scripts/build-plugins.sh; \
    mkdir -p /out/plugins; \
    cp target/release/engagement-host /out/engagement-host; \
    cp dist/plugins/decoder.wasm dist/plugins/enricher.wasm /out/plugins/; \
    /out/engagement-host plugin check /out/plugins/decoder.wasm; \
    /out/engagement-host plugin check /out/plugins/enricher.wasm

# ---- bigquery-emulator: PyPI bqemulator behind the project's launcher -------
# The same pinned packages (scripts/emulators/requirements.txt under
# constraints.txt) and launcher (scripts/emulators/bigquery.py) as the native
# emulators; wheels only, nothing compiled. The launcher binds 127.0.0.1 for
# local runs; in a container it must listen on all interfaces, so serve.py
# sets its HOST before starting it.
FROM python:3.11-slim-bookworm AS bigquery-emulator
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/bigquery-emulator
COPY scripts/emulators/requirements.txt scripts/emulators/constraints.txt ./
RUN --mount=type=cache,id=engagement-host-pip,target=/root/.cache/pip \
    pip install --only-binary=:all: -r requirements.txt -c constraints.txt
COPY scripts/emulators/bigquery.py ./
COPY <<'EOF' serve.py
"""scripts/emulators/bigquery.py, listening on every interface of the container."""
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("bigquery_launcher", "/opt/bigquery-emulator/bigquery.py")
launcher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launcher)
launcher.HOST = "0.0.0.0"
sys.exit(launcher.main())
EOF
RUN useradd --system --uid 10002 --create-home --home-dir /home/bigquery bigquery
USER bigquery
EXPOSE 9050 9060
CMD ["python", "serve.py", "--port", "9050", "--grpc-port", "9060", "--project", "streaming-project"]

# ---- runtime: the host image (default target) -------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to Google Cloud and HTTPS APIs; curl: healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# /plugins and /var/lib/engagement-host belong to the service user, so named
# volumes mounted there start with the image's content and that owner, and a
# plugin can be renamed into /plugins.
RUN groupadd --system --gid 10001 engagement \
    && useradd --system --uid 10001 --gid engagement \
        --home-dir /var/lib/engagement-host --shell /usr/sbin/nologin engagement \
    && install -d -o engagement -g engagement /var/lib/engagement-host /plugins
COPY --from=builder /out/engagement-host /usr/local/bin/engagement-host
COPY --from=builder --chown=engagement:engagement /out/plugins/ /plugins/
# Container defaults of the config keys that name paths or addresses
# (environment.env repeats them for the compose stack). Relative defaults
# (dist/plugins, .state/host) would land in the working directory.
ENV PLUGIN_DIR=/plugins \
    PLUGIN_CACHE_DIR=/var/lib/engagement-host/plugin-cache \
    STATE_DIR=/var/lib/engagement-host/state \
    DEAD_LETTER_FILE=/var/lib/engagement-host/dead-letters.ndjson \
    ADMIN_LISTEN=0.0.0.0:9100
USER engagement
WORKDIR /var/lib/engagement-host
# 9100: admin endpoint of `run`; 8080: `api-sim --listen 0.0.0.0:8080`.
EXPOSE 9100 8080
ENTRYPOINT ["/usr/local/bin/engagement-host"]
CMD ["run"]
