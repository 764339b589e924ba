#!/usr/bin/env bash
# Runs a command inside a fresh private network namespace (call it under `unshare --net`):
# loopback plus a veth pair 10.77.0.1 <-> 10.77.0.2 that exists only in this namespace.
# WebRTC stacks (libwebrtc, libnice) ignore loopback, so real media between processes on one
# machine needs a non-loopback interface; this one cannot reach anything outside the namespace.
set -euo pipefail
ip link set lo up
ip link add em0 type veth peer name em1
ip addr add 10.77.0.1/24 dev em0
ip addr add 10.77.0.2/24 dev em1
ip link set em0 up
ip link set em1 up
export EDGEMEET_TEST_MEDIA_IP=10.77.0.1
exec "$@"
