# Sourced by the other scripts: where tools and build outputs are cached, outside the clone.
CACHE="${EDGEMEET_CACHE:-$HOME/.cache/edgemeet}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
