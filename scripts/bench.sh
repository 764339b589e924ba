#!/usr/bin/env bash
# The benchmarks behind docs/benchmarks.md: per-request cost of getJoinToken and the session
# endpoint (native core vs the Spin component in the local host, in-process and over loopback
# HTTP), the host's cold start, and the component's size.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/bootstrap.sh"
"$here/build.sh"
cd "$here/.."
wasm="$CARGO_TARGET_DIR/wasm32-wasip2/component/edge_api.wasm"
printf 'component: %s bytes, %s bytes gzipped (gzip -9)\n' "$(wc -c <"$wasm")" "$(gzip -9c "$wasm" | wc -c)"
cargo bench --locked --bench edge_requests -- "$@"
