#!/usr/bin/env bash
# Soak: run plans/soak.yaml (30 min of steady load on the reference stack, local processes)
# and sample the resident set size (RSS) of loadgate and of the gateway every SOAK_SAMPLE
# seconds into reports/soak-<time>/rss.csv. Prints RSS after warm-up and at the end, and fails
# (exit 1) when either grew by more than SOAK_MAX_GROWTH percent (default 20) after warm-up.
#
#   bash scripts/soak.sh                        # 30 minutes
#   SOAK_DURATION=5m SOAK_SAMPLE=10 bash scripts/soak.sh
#
# Not part of CI. Sends load to the loopback reference stack only.
set -euo pipefail
cd "$(dirname "$0")/.."

export SOAK_DURATION="${SOAK_DURATION:-30m}"
SAMPLE="${SOAK_SAMPLE:-30}"
WARMUP="${SOAK_WARMUP:-120}"
MAX_GROWTH="${SOAK_MAX_GROWTH:-20}"
OUT="reports/soak-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

cargo build --release --workspace --bins
./target/release/loadgate run plans/soak.yaml --out "$OUT" >"$OUT/stdout.txt" 2>"$OUT/stderr.txt" &
LG=$!

descendants() { # every process below $1
  local kids
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
  for k in $kids; do echo "$k"; descendants "$k"; done
}
rss_kib() { ps -o rss= -p "$1" 2>/dev/null | tr -d ' ' || true; }

echo "elapsed_s,loadgate_rss_kib,gateway_rss_kib" >"$OUT/rss.csv"
t0=$(date +%s)
GW=""
while kill -0 "$LG" 2>/dev/null; do
  if [ -z "$GW" ]; then
    for p in $(descendants "$LG"); do
      if [ "$(ps -o comm= -p "$p" 2>/dev/null)" = "loadgate-gatewa" ]; then GW=$p; fi
    done
  fi
  lg=$(rss_kib "$LG"); gw=""
  [ -n "$GW" ] && gw=$(rss_kib "$GW")
  [ -n "$lg" ] && echo "$(( $(date +%s) - t0 )),$lg,${gw:-}" >>"$OUT/rss.csv"
  sleep "$SAMPLE"
done
set +e; wait "$LG"; code=$?; set -e
echo "loadgate exited $code (reports in $OUT)"

growth=0
python3 - "$OUT/rss.csv" "$WARMUP" "$MAX_GROWTH" <<'PY' || growth=$?
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["gateway_rss_kib"]]
warm, limit = int(sys.argv[2]), float(sys.argv[3])
after = [r for r in rows if int(r["elapsed_s"]) >= warm] or rows
first, last = after[0], after[-1]
bad = False
for who in ("loadgate", "gateway"):
    a, b = int(first[f"{who}_rss_kib"]), int(last[f"{who}_rss_kib"])
    peak = max(int(r[f"{who}_rss_kib"]) for r in after)
    growth = 100.0 * (b - a) / a
    print(f"{who}: RSS {a/1024:.1f} MiB at {first['elapsed_s']} s, {b/1024:.1f} MiB at {last['elapsed_s']} s "
          f"(peak {peak/1024:.1f} MiB, {growth:+.1f}%)")
    bad |= growth > limit
sys.exit(1 if bad else 0)
PY
if [ "$code" -ne 0 ]; then exit "$code"; fi
exit "$growth"
