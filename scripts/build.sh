#!/usr/bin/env bash
# Builds the edge-api Spin component (wasm32-wasip2) and the edgemeet command. Build outputs go
# to $CARGO_TARGET_DIR (default $EDGEMEET_CACHE/target, outside the clone) so rebuilds are fast.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/build-component.sh
# The whole workspace at once, so features unify as they do for `cargo test --workspace` and
# shared dependencies are built once, not once per package set.
cargo build --locked --workspace
