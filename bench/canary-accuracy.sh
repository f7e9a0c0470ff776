#!/usr/bin/env bash
# Canary verdict accuracy at the documented defaults (not part of the test suite).
#
# Runs three drills N times each against the reference stack (each run starts its own stack),
# with the canary section at its documented defaults: steps [5, 25, 50, 100], step_duration
# 15s, min_samples 200, Mann-Whitney at confidence 0.98 with max_increase 10%, error-rate
# ceiling 1%, on_no_data wait (2 step durations), on_inconclusive extend. Load: chat at RATE
# req/s (default 100; at 5% weight a 15 s step holds ~75 canary samples, so the first step
# waits for its 200).
#
#   healthy   plans/canary-promote.yaml as is                       must promote
#   slow      v2 gets +20% of the baseline's p95 (latency knob)     must roll back
#   errors    v2 answers 2% of its requests with 500                must roll back
#
# The +20% is measured, not guessed: the baseline p95 of the first healthy run's steps (median
# over its steps) times 0.2, rounded up to whole ms (the gateway's knob takes ms).
# Prints, per drill, how many runs ended promote / rollback / other and the median and max
# wall time of a run (stack start included), and writes every run's summary under OUT.
#
# Usage: bench/canary-accuracy.sh   (N=20 RATE=100 DURATION=100s OUT=reports/canary-accuracy)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20}
RATE=${RATE:-100}
OUT=${OUT:-reports/canary-accuracy}
BIN=${BIN:-target/debug/loadgate}
[ -x "$BIN" ] || cargo build --workspace --bins
mkdir -p "$OUT"

DEFAULTS=(
  --set 'canary.steps=[5, 25, 50, 100]'
  --set canary.step_duration=15s
  --set canary.min_samples=200
  --set canary.start_after=4s
  --set "scenarios.chat.rate=${RATE}/s"
  --set scenarios.chat.duration=${DURATION:-100s}
)

decision() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["canary"]["decision"])' "$1/summary.json" 2>/dev/null || echo error; }

# run NAME I PLAN ARGS...: one drill; prints "decision seconds".
run() {
  local name=$1 i=$2 plan=$3; shift 3
  local dir="$OUT/$name-$i" t0 t1
  rm -rf "$dir"
  t0=$(date +%s.%N)
  "$BIN" run "$plan" --out "$dir" --threads 1 "${DEFAULTS[@]}" "$@" >"$dir.log" 2>&1 || true
  t1=$(date +%s.%N)
  echo "$(decision "$dir") $(python3 -c "print(round($t1 - $t0, 1))")"
}

summarize() {
  local name=$1 file=$2
  python3 - "$name" "$file" <<'PY'
import sys, statistics
name, path = sys.argv[1], sys.argv[2]
rows = [l.split() for l in open(path) if l.strip()]
counts = {}
for d, _ in rows:
    counts[d] = counts.get(d, 0) + 1
times = [float(t) for _, t in rows]
print(f"{name:8s} runs {len(rows):3d}  " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items()))
      + f"  time/run median {statistics.median(times):.1f} s max {max(times):.1f} s")
PY
}

: >"$OUT/healthy.txt"; : >"$OUT/slow.txt"; : >"$OUT/errors.txt"
for i in $(seq 1 "$N"); do
  run healthy "$i" plans/canary-promote.yaml --set canary.expect=promote >>"$OUT/healthy.txt"
  if [ -z "${SLOW_MS:-}" ]; then
    SLOW_MS=$(python3 - "$OUT/healthy-1/summary.json" <<'PY'
import json, math, statistics, sys
s = json.load(open(sys.argv[1]))["canary"]["steps"]
p95 = statistics.median(x["baseline"]["p95_ms"] for x in s)
print(max(1, math.ceil(0.2 * p95)))
PY
)
    echo "baseline p95 of the first healthy run: +20% = ${SLOW_MS} ms" | tee "$OUT/slow_ms.txt"
  fi
  run slow "$i" plans/canary-rollback.yaml --set canary.expect=rollback \
    --set "scenarios.bad-v2.request.body.latency_ms=${SLOW_MS}" \
    --set scenarios.bad-v2.request.body.error_rate=0.0 >>"$OUT/slow.txt"
  run errors "$i" plans/canary-rollback.yaml --set canary.expect=rollback \
    --set scenarios.bad-v2.request.body.latency_ms=0 \
    --set scenarios.bad-v2.request.body.error_rate=0.02 >>"$OUT/errors.txt"
  echo "round $i: healthy $(tail -1 "$OUT/healthy.txt"), slow $(tail -1 "$OUT/slow.txt"), errors $(tail -1 "$OUT/errors.txt")"
done
summarize healthy "$OUT/healthy.txt"
summarize slow "$OUT/slow.txt"
summarize errors "$OUT/errors.txt"
