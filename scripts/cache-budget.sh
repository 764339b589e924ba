#!/usr/bin/env bash
# Keeps the shared build cache ($CARGO_TARGET_DIR) within a size budget, so that repeated builds
# from fresh clones (CI, every branch) cannot fill the disk. Called by bootstrap.sh.
#
# Cargo never deletes old outputs: every change to the dependency graph or the clone's path adds
# a new generation of test binaries and libraries beside the old ones. Over budget
# (EDGEMEET_TARGET_BUDGET_GB, default 30), or with less than EDGEMEET_MIN_FREE_GB (default 15) free
# on the disk, this removes, in order and stopping as soon as the cache fits:
#   1. incremental-compilation state (rebuilt on demand, never needed by a clean clone);
#   2. executables (test and bench binaries) superseded by a newer build of the same name;
#   3. everything else but the criterion history: the next build starts cold.
# Removing a cargo output is always safe: cargo sees it missing and rebuilds it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

budget_kib=$(( ${EDGEMEET_TARGET_BUDGET_GB:-30} * 1024 * 1024 ))
min_free_kib=$(( ${EDGEMEET_MIN_FREE_GB:-15} * 1024 * 1024 ))
target="$CARGO_TARGET_DIR"
log() { printf 'cache-budget: %s\n' "$*" >&2; }

[ -d "$target" ] || exit 0

size_kib() { du -sk "$target" | cut -f1; }
free_kib() { df -Pk "$target" | awk 'NR == 2 { print $4 }'; }
fits() { [ "$(size_kib)" -le "$budget_kib" ] && [ "$(free_kib)" -ge "$min_free_kib" ]; }

fits && exit 0
log "$(( $(size_kib) / 1024 / 1024 )) GiB in $target, $(( $(free_kib) / 1024 / 1024 )) GiB free: pruning"

find "$target" -mindepth 2 -maxdepth 3 -type d -name incremental -prune -exec rm -rf {} +
fits && { log "removed incremental state"; exit 0; }

# Executables are named <name>-<16 hex digits>; keep the newest of each name in each deps dir.
find "$target" -path '*/deps/*' -type f -perm -u+x ! -name '*.so' ! -name '*.d' \
  -printf '%T@ %h %f\n' |
  sort -rn |
  awk '{ name = $3; sub(/-[0-9a-f]+$/, "", name); key = $2 "/" name
         if (seen[key]++) print $2 "/" $3 }' |
  xargs -r rm -f
fits && { log "removed superseded test binaries"; exit 0; }

find "$target" -mindepth 1 -maxdepth 1 ! -name criterion ! -name CACHEDIR.TAG -exec rm -rf {} +
log "cleared the build cache; the next build starts cold"
