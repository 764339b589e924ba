#!/usr/bin/env bash
# README command 2: sets up this machine if needed, builds, and runs every test: unit tests of
# each crate and the system tests (the edge component in the local host with a real LiveKit
# server, real WebRTC participants, plugNmeet's Python SDK). The tests run inside a private
# network namespace (scripts/in-test-netns.sh); arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/bootstrap.sh"
"$here/build.sh"
# The same core as a Cloudflare Worker (edge-api/build/), for the suite under workerd.
"$here/build-worker.sh"
cd "$here/.."
# Build the tests while the network is there; inside the namespace cargo runs offline.
cargo test --locked --workspace --no-run
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
unshare --net -- "$here/in-test-netns.sh" cargo test --locked --offline --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
