#!/usr/bin/env bash
# Request latency of the edge over loopback HTTP, seen from another process, for both edge
# targets in the same run: the Spin component in a release `edgemeet up`, and the Worker build
# under workerd (Miniflare, local D1). No LiveKit is needed: the measured requests make no
# LiveKit call. `wrk` on one keep-alive connection, one request at a time. Prints p50/p90/p99 per
# target and request kind, and the Worker's size; fails if any answer is not a 2xx.
#
#   scripts/bench-latency.sh [seconds per request kind, default 10]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
duration="${1:-10}"

if ! command -v wrk >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq wrk >/dev/null
fi
cd "$here/.."
cargo build --locked --release -p edgemeet
scripts/build-component.sh
"$here/build-worker.sh" >/dev/null

work="$(mktemp -d)"
pid=""
worker_pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# wait_ready WHAT PID OUT ERR: waits until the process prints "ready at" on OUT.
wait_ready() {
    for _ in $(seq 1 100); do
        grep -q "ready at" "$3" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { cat "$4" >&2; exit 1; }
        sleep 0.1
    done
    echo "$1 did not get ready" >&2
    exit 1
}

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
secret="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
livekit_secret="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
cat >"$work/edgemeet.toml" <<EOF
[edge]
listen = "127.0.0.1:$port"
data_dir = "$work/data"
component = "$CARGO_TARGET_DIR/wasm32-wasip2/component/edge_api.wasm"
api_secret = "$secret"

[[regions]]
id = "bench"
lat = 0.0
lon = 0.0
livekit_url = "ws://127.0.0.1:9"
api_key = "bench"
api_secret = "$livekit_secret"
EOF
"$CARGO_TARGET_DIR/release/edgemeet" up -c "$work/edgemeet.toml" >"$work/out" 2>"$work/err" &
pid=$!
wait_ready "edgemeet up" "$pid" "$work/out" "$work/err"

# measure TARGET PORT: creates a room, asks for a join token, writes one wrk script per request
# kind and measures each.
measure() {
local target="$1" port="$2"
EDGE_SECRET="$secret" python3 - "$port" "$work" <<'PY'
import hashlib, hmac, json, os, sys, urllib.request
port, work = sys.argv[1], sys.argv[2]
secret = os.environ["EDGE_SECRET"].encode()

def signed(path, obj):
    body = json.dumps(obj, separators=(",", ":"))
    headers = {
        "API-KEY": "plugnmeet",
        "HASH-SIGNATURE": hmac.new(secret, body.encode(), hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }
    return path, body, headers

def call(path, body, headers):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body.encode(), headers)
    return json.load(urllib.request.urlopen(req))

create = signed("/auth/room/create", {"room_id": "latency", "metadata": {"room_title": "Latency"}})
assert call(*create)["status"], "create failed"
join = signed("/auth/room/getJoinToken",
              {"room_id": "latency", "user_info": {"name": "Bench", "user_id": "bench", "is_admin": True}})
token = call(*join)["token"]
session = ("/api/session", "{}", {"Authorization": token, "Content-Type": "application/json"})

def lua(name, method, path, body, headers):
    lines = [f'wrk.method = "{method}"', f'wrk.path = {json.dumps(path)}']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with open(f"{work}/{name}.lua", "w") as f:
        f.write("\n".join(lines) + "\n")

lua("health_check", "GET", "/healthCheck", None, {})
lua("get_join_token", "POST", *join)
lua("session", "POST", *session)
PY

for kind in health_check get_join_token session; do
    wrk -t1 -c1 -d"${duration}s" --latency -s "$work/$kind.lua" "http://127.0.0.1:$port" >"$work/$kind.txt"
    if grep -q "Non-2xx" "$work/$kind.txt"; then
        cat "$work/$kind.txt" >&2
        echo "$kind: some answers were not 2xx" >&2
        exit 1
    fi
    p50="$(awk '$1 == "50%" {print $2}' "$work/$kind.txt")"
    p90="$(awk '$1 == "90%" {print $2}' "$work/$kind.txt")"
    p99="$(awk '$1 == "99%" {print $2}' "$work/$kind.txt")"
    total="$(awk '/requests in/ {print $1}' "$work/$kind.txt")"
    printf '%-8s %-16s %10s %10s %10s %10s\n' "$target" "$kind" "$p50" "$p90" "$p99" "$total"
done
}

# The Worker under workerd, with the same configuration as vars and secrets.
worker_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
bindings="$(SECRET="$secret" LK="$livekit_secret" python3 -c 'import json, os; print(json.dumps({
    "api_key": "plugnmeet", "api_secret": os.environ["SECRET"],
    "regions": json.dumps([{"id": "bench", "name": "bench", "lat": 0.0, "lon": 0.0,
                            "livekit_url": "ws://127.0.0.1:9", "api_key": "bench"}]),
    "livekit_secrets": json.dumps({"bench": os.environ["LK"]})}))')"
mkfifo "$work/worker-stdin"
NODE_MODULES_DIR="$CACHE/node/node_modules" node tests/clients/miniflare_edge.mjs \
    edge-api/build/worker/shim.mjs edge-api/migrations "$bindings" "$worker_port" \
    <"$work/worker-stdin" >"$work/worker-out" 2>"$work/worker-err" &
worker_pid=$!
exec 3>"$work/worker-stdin"
wait_ready "the Worker" "$worker_pid" "$work/worker-out" "$work/worker-err"

printf '%-8s %-16s %10s %10s %10s %10s\n' target request p50 p90 p99 requests
measure spin "$port"
measure workers "$worker_port"
wasm="edge-api/build/index_bg.wasm"
printf 'Worker: %s bytes of wasm, %s gzipped (gzip -9); with its JS: %s gzipped\n' \
    "$(wc -c <"$wasm")" "$(gzip -9c "$wasm" | wc -c)" \
    "$(cat "$wasm" edge-api/build/index.js edge-api/build/worker/shim.mjs | gzip -9c | wc -c)"
