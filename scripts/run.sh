#!/usr/bin/env bash
# README command 1: sets up this machine if needed, builds, and runs the whole system
# (`edgemeet up`). Arguments go to `edgemeet up`, e.g. `scripts/run.sh --config edgemeet.toml`.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
CACHE="${EDGEMEET_CACHE:-$HOME/.cache/edgemeet}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
"$here/bootstrap.sh"
"$here/build.sh"
cd "$here/.."
exec "$CARGO_TARGET_DIR/debug/edgemeet" up "$@"
