#!/usr/bin/env bash
# Builds the edge-api Spin component (wasm32-wasip2) into
# $CARGO_TARGET_DIR/wasm32-wasip2/component/edge_api.wasm, then runs binaryen's wasm-opt over
# its core module (scripts/optimize-component.py; about a tenth smaller). spin.toml's build
# command and scripts/build.sh call it; scripts/bootstrap.sh installs wasm-opt.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --locked -p edge-api --target wasm32-wasip2 --features spin --profile component
python3 scripts/optimize-component.py \
  "$CARGO_TARGET_DIR/wasm32-wasip2/component/edge_api.wasm" \
  "${WASM_OPT_BIN:-$CACHE/node/node_modules/.bin/wasm-opt}"
