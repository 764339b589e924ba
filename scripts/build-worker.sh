#!/usr/bin/env bash
# Builds the edge as a Cloudflare Worker: edge-api/build/worker/shim.mjs plus its wasm, with
# worker-build, offline. wasm-bindgen, esbuild and wasm-opt come from the bootstrap's caches
# (worker-build would otherwise download them from GitHub).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/../edge-api"
export WASM_BINDGEN_BIN="$CACHE/tools/bin/wasm-bindgen"
export ESBUILD_BIN="$CACHE/node/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$CACHE/node/node_modules/.bin/wasm-opt"
exec "$CACHE/tools/bin/worker-build" --release . --features workers "$@"
