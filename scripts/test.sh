#!/usr/bin/env bash
# README command 2: sets up this machine if needed, builds, and runs every test: unit tests of
# each crate and the system tests (the edge component in the local host with a real LiveKit
# server, real WebRTC participants, plugNmeet's Python SDK). The tests run inside a private
# network namespace (scripts/in-test-netns.sh); arguments go to `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EDGEMEET_CACHE:-$HOME/.cache/edgemeet}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
"$here/bootstrap.sh"
"$here/build.sh"
cd "$here/.."
# Build the tests while the network is there; inside the namespace cargo runs offline.
cargo test --locked --workspace --no-run
exec unshare --net -- "$here/in-test-netns.sh" cargo test --locked --offline --workspace "$@"
