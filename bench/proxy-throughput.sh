#!/usr/bin/env bash
# The fault proxy's throughput on loopback with no toxic (issue 8: at least 1 Gbit/s).
# Release build; prints direct vs proxied Gbit/s for 1 and 4 connections.
# Usage: bench/proxy-throughput.sh   (SECS=5 by default)
#
# Measured here (2 shared cores, load average ~4 from other builds, 3 s runs, release):
# 1 connection 4.3-6.6 Gbit/s through the proxy (direct 13.9-15.5), 4 connections 5.3
# (direct 31.0). The proxy forwards on one thread (its own current-thread runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
cargo build --release --example proxy_throughput -q
for c in 1 4; do
  target/release/examples/proxy_throughput "$c" "$SECS"
done
