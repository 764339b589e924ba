#!/usr/bin/env bash
# The join page's cost (docs/benchmarks.md, issue 6): the bytes the moderator's browser
# downloads before the room is shown (Resource Timing's transferSize: over the wire, gzip as the
# edge sends it) and the time from opening the join link to the LiveKit room being connected.
# Each run is the browser test (tests/web.rs: headless Chromium, the local host, a real LiveKit).
#
#   scripts/bench-page.sh [runs]     (default 5)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/bootstrap.sh"
"$here/build.sh"
cd "$here/.."
runs="${1:-5}"
cargo test --locked --test web --no-run
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for _ in $(seq "$runs"); do
  unshare --net -- "$here/in-test-netns.sh" cargo test --locked --offline --test web -q -- two_browsers >/dev/null
  cat "$CARGO_TARGET_DIR/test-artefacts/web/load.json" >>"$results"
  echo >>"$results"
done
python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def med(key):
    return statistics.median(r[key] for r in runs)
first = runs[0]
print(f"runs: {len(runs)}")
print("files before the room is shown:", ", ".join(first["files"]))
print(f"bytes over the wire (median): {med('transferBytes'):.0f} "
      f"(bodies {med('encodedBodyBytes'):.0f} encoded, {med('decodedBodyBytes'):.0f} decoded)")
print(f"link opened -> LiveKit connected (median): {med('connectedMs'):.0f} ms "
      f"(runs: {', '.join(str(round(r['connectedMs'])) for r in runs)})")
print(f"link opened -> room shown (median): {med('roomShownMs'):.0f} ms")
PY
