#!/usr/bin/env bash
# README command 1: sets up this machine if needed, builds, and runs the whole system
# (`edgemeet up`). Arguments go to `edgemeet up`, e.g. `scripts/run.sh --config edgemeet.toml`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/bootstrap.sh"
"$here/build.sh"
cd "$here/.."
exec "$CARGO_TARGET_DIR/debug/edgemeet" up "$@"
