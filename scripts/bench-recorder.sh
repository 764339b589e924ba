#!/usr/bin/env bash
# The recorder benchmark (benches/recorder.rs): CPU per media-second of composites and
# pass-through, the ffmpeg encode baseline, concurrent composites on this machine and memory per
# worker. Real LiveKit and publishers, so it runs in the tests' private network namespace.
# Prints a Markdown table; EDGEMEET_BENCH_SECONDS sets the window (default 20).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
scripts/build.sh
# The workers the benchmark measures: the release build, as a recorder node runs it.
cargo build --locked --release -p recorder-native
cargo bench --locked --no-run --bench recorder
exec unshare --net -- scripts/in-test-netns.sh cargo bench --locked --offline --bench recorder
