#!/usr/bin/env bash
# Installs everything edgemeet needs on a fresh Debian machine of the `polyglot` kind, and is
# fast when it is all there already. Idempotent. Everything goes to $EDGEMEET_CACHE
# (default ~/.cache/edgemeet), outside the clone, so fresh clones (CI) reuse it.
#
# Installs: rustup targets wasm32-wasip2 and wasm32-unknown-unknown; Debian iproute2 and
# util-linux (network namespaces for the WebRTC tests), GStreamer 1.22 with its development files
# and plugins (the recorder), ffmpeg (ffprobe checks recordings); LiveKit server v1.13.5 from the
# Go module proxy; a Python venv with LiveKit's realtime SDK and plugNmeet's Python SDK (test
# clients).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
LIVEKIT_VERSION="v1.13.5"
# MinIO (the S3-compatible store the recorder's upload test uses), pinned to a module version.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
mkdir -p "$CACHE/bin"
log() { printf 'bootstrap: %s\n' "$*" >&2; }

# Debian packages. GStreamer: the recorder builds against 1.22 and needs these plugins at run
# time (webrtcbin wants libnice's gstreamer1.0-nice; avenc_aac is in gstreamer1.0-libav).
# nginx with the RTMP module receives the recorder's broadcasts in the tests. Chromium is the
# browser the join page's tests drive (tests/web.rs).
packages=(iproute2 util-linux pkg-config ffmpeg nginx libnginx-mod-rtmp
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-tools
  chromium fonts-dejavu-core)
missing=()
installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)"
for package in "${packages[@]}"; do
  grep -qx "$package installed" <<<"$installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  # Install services without starting them (nginx would take port 80): tests run their own.
  policy=/usr/sbin/policy-rc.d
  own_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if $own_policy; then rm -f "$policy"; fi
fi

# Rust targets for the edge component (Spin) and the Worker.
installed_targets="$(rustup target list --installed)"
for target in wasm32-wasip2 wasm32-unknown-unknown; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    log "rustup target add $target"
    rustup target add "$target" >/dev/null
  fi
done

# LiveKit server, pinned.
livekit="$CACHE/bin/livekit-server"
if ! { [ -x "$livekit" ] && "$livekit" --version 2>/dev/null | grep -q "${LIVEKIT_VERSION#v}"; }; then
  log "go install livekit-server $LIVEKIT_VERSION (a few minutes the first time)"
  GOBIN="$CACHE/gobin" go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
  mv "$CACHE/gobin/server" "$livekit"
fi

# MinIO, pinned (go-installed builds report no version, so a stamp file records it).
minio="$CACHE/bin/minio"
if [ ! -x "$minio" ] || [ "$(cat "$minio.version" 2>/dev/null)" != "$MINIO_VERSION" ]; then
  log "go install minio $MINIO_VERSION (several minutes the first time)"
  GOBIN="$CACHE/gobin" go install "github.com/minio/minio@$MINIO_VERSION"
  mv "$CACHE/gobin/minio" "$minio"
  echo "$MINIO_VERSION" >"$minio.version"
fi

# The Worker tool chain (issue 5): worker-build and the wasm-bindgen it drives (the exact
# version in Cargo.lock; worker-build would download it from GitHub), then wrangler (Miniflare,
# workerd), esbuild and wasm-opt from npm, pinned by scripts/node/package-lock.json.
tools="$CACHE/tools"
WORKER_BUILD_VERSION="0.8.7"
wasm_bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print }' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.lock")"
if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $wasm_bindgen_version"; then
  log "cargo install wasm-bindgen-cli $wasm_bindgen_version (a few minutes the first time)"
  CARGO_TARGET_DIR="$CACHE/tools-target" cargo install -q --force "wasm-bindgen-cli@$wasm_bindgen_version" --root "$tools"
fi
if ! "$tools/bin/worker-build" --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
  log "cargo install worker-build $WORKER_BUILD_VERSION (a few minutes the first time)"
  CARGO_TARGET_DIR="$CACHE/tools-target" cargo install -q --force --locked "worker-build@$WORKER_BUILD_VERSION" --root "$tools"
fi
node_dir="$CACHE/node"
node_lock="$(dirname "${BASH_SOURCE[0]}")/node/package-lock.json"
if ! cmp -s "$node_lock" "$node_dir/package-lock.json" || [ ! -x "$node_dir/node_modules/.bin/wrangler" ]; then
  log "npm ci: wrangler, esbuild, binaryen, playwright-core, bigbluebutton-js"
  mkdir -p "$node_dir"
  cp "$(dirname "${BASH_SOURCE[0]}")/node/package.json" "$node_lock" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The join page (web/): its npm packages in the cache (web/node_modules links there), and its
# build in web/dist, redone only when its sources change.
web="$(cd "$(dirname "${BASH_SOURCE[0]}")/../web" && pwd)"
web_cache="$CACHE/web"
if ! cmp -s "$web/package-lock.json" "$web_cache/package-lock.json" || [ ! -d "$web_cache/node_modules" ]; then
  log "npm ci: the join page's packages"
  mkdir -p "$web_cache"
  cp "$web/package.json" "$web/package-lock.json" "$web_cache/"
  (cd "$web_cache" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ "$(readlink "$web/node_modules" 2>/dev/null)" != "$web_cache/node_modules" ]; then
  rm -rf "$web/node_modules"
  ln -s "$web_cache/node_modules" "$web/node_modules"
fi
web_sources="$(cd "$web" && find index.html build.mjs tsconfig.json package-lock.json src -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$web/dist/.sources.sha256" 2>/dev/null)" != "$web_sources" ]; then
  log "building the join page (web/dist)"
  (cd "$web" && node build.mjs)
  echo "$web_sources" >"$web/dist/.sources.sha256"
fi

# Python test clients: LiveKit's realtime SDK (a real WebRTC participant), plugNmeet's SDK, PyJWT
# (a BBB integration's check of its callbacks) and
# boto3 (an S3 client independent of the recorder's).
requirements="$(dirname "${BASH_SOURCE[0]}")/../tests/clients/requirements.txt"
venv="$CACHE/venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "python venv with $(tr '\n' ' ' <"$requirements")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
# The build cache grows by a generation with every dependency change; keep it within budget.
"$(dirname "${BASH_SOURCE[0]}")/cache-budget.sh"
log "ready (cache: $CACHE)"
