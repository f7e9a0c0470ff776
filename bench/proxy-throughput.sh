#!/usr/bin/env bash
# The fault proxy's throughput on loopback with no toxic (issue 8: at least 1 Gbit/s).
# Release build; prints direct vs proxied Gbit/s for 1 and 4 connections.
# Usage: bench/proxy-throughput.sh   (SECS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
cargo build --release --example proxy_throughput -q
for c in 1 4; do
  target/release/examples/proxy_throughput "$c" "$SECS"
done
