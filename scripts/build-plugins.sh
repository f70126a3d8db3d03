#!/usr/bin/env bash
# Builds the plugins as wasm32-wasip2 components and lays them out:
#   dist/plugins/decoder.wasm, dist/plugins/enricher.wasm   (what the host serves)
#   dist/examples/*.wasm                                     (examples and test plugins)
#   dist/examples/enricher-py.wasm                           (the default rule in Python,
#                                                             plugins/engagement-enricher-py)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "==> rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

out=target/wasm32-wasip2/plugin
echo "==> building plugins (cargo --profile plugin --target wasm32-wasip2)"
cargo build --quiet --profile plugin --target wasm32-wasip2 \
    -p debezium-decoder -p engagement-enricher -p enricher-v2 -p faulty-enricher
mkdir -p dist/plugins dist/examples
# Copy then rename: the host watching dist/plugins never sees half a file.
install_atomic() { cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"; }
install_atomic "$out/debezium_decoder.wasm" dist/plugins/decoder.wasm
install_atomic "$out/engagement_enricher.wasm" dist/plugins/enricher.wasm
cp "$out/enricher_v2.wasm" dist/examples/enricher-v2.wasm
cp "$out/faulty_enricher.wasm" dist/examples/faulty-enricher.wasm
# Rules that import capabilities (a file, a socket): the host must refuse them.
cargo build --quiet --profile plugin --target wasm32-wasip2 -p fs-enricher -p net-enricher
cp "$out/fs_enricher.wasm" dist/examples/fs-enricher.wasm
cp "$out/net_enricher.wasm" dist/examples/net-enricher.wasm

# The same crate with every call trapping: a plugin that must never go live.
cargo build --quiet --profile plugin --target wasm32-wasip2 -p faulty-enricher --features always-trap \
    --target-dir target/always-trap
cp target/always-trap/wasm32-wasip2/plugin/faulty_enricher.wasm dist/examples/always-trap-enricher.wasm

# The Python rule: componentize-py (installed once into .venv/componentize-py);
# skipped when its inputs are unchanged (a Python build takes ~15 s and is
# not reproducible, so rebuilding would change its sha256 for nothing).
# Not built with BUILD_PYTHON_PLUGINS=0, nor where the setup script is absent
# (the Docker build copies only this script: the image ships dist/plugins).
if [[ ${BUILD_PYTHON_PLUGINS:-1} == 0 || ! -f scripts/setup-componentize-py.sh ]]; then
    echo "==> skipping the Python enricher (BUILD_PYTHON_PLUGINS=0 or no scripts/setup-componentize-py.sh)"
else
    echo "==> building the Python enricher (componentize-py)"
    plugins/engagement-enricher-py/build.sh dist/examples/enricher-py.wasm
fi

ls -l dist/plugins dist/examples | sed 's/^/    /'
