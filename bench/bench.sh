#!/usr/bin/env bash
# loadgate vs wrk vs oha against the same local nginx (not part of the test suite).
#
# nginx runs pinned to core 0 (one worker), each generator pinned to core 1. Closed model:
# 64 keep-alive connections, RUN_SECS-second runs, ROUNDS alternating rounds (loadgate, wrk,
# oha, loadgate, wrk, oha, ...). For each run: requests/s as the tool reports it and CPU
# microseconds per request = (user + sys CPU time of the generator process) / requests.
# Medians over the rounds and the ratios loadgate/wrk and loadgate/oha are printed.
# Then the open model: `loadgate attack --rate 20000/s -d 30s`, achieved rate vs target.
# With LONG=1 also a 10-minute open-model run at 20,000 req/s reporting peak RSS.
#
# Installs wrk (Debian package), oha (crates.io) and GNU time when missing.
# Usage: bench/bench.sh            (ROUNDS=5 RUN_SECS=5 CONNS=64 LONG=0 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
RUN_SECS=${RUN_SECS:-5}
CONNS=${CONNS:-64}
LONG=${LONG:-0}
OPEN_RATE=${OPEN_RATE:-20000}
OPEN_SECS=${OPEN_SECS:-30}

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || need_apt+=(nginx-light)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v taskset >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v oha >/dev/null; then
  cargo install --locked oha >/dev/null 2>&1 || cargo install oha
fi
[ -x target/perf/loadgate ] || cargo build --profile perf -p loadgate

work=$(mktemp -d /tmp/loadgate-bench.XXXXXX)
nginx_pid=""
cleanup() {
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/logs"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
error_log $work/logs/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server {
    listen 127.0.0.1:$port;
    location / { default_type text/plain; return 200 "hello from nginx\n"; }
  }
}
EOF
taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
  sleep 0.1
done
url="http://127.0.0.1:$port/"
echo "nginx pid $nginx_pid on $url (core 0); generators on core 1; $CONNS connections, ${RUN_SECS}s runs, $ROUNDS rounds"

# Each runner prints "REQUESTS RPS" on stdout; CPU seconds and max RSS come from GNU time.
run_timed() { # name cmd...
  local name=$1; shift
  /usr/bin/time -f "%U %S %M" -o "$work/time.$name" taskset -c 1 "$@" >"$work/out.$name" 2>"$work/err.$name"
}
loadgate_closed() {
  run_timed loadgate target/perf/loadgate attack "$url" -c "$CONNS" -d "${RUN_SECS}s" --json
  python3 - "$work/out.loadgate" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))["scenarios"]["attack"]
print(s["requests"], s["rps"])
PY
}
wrk_closed() {
  run_timed wrk wrk -t1 -c "$CONNS" -d "${RUN_SECS}s" "$url"
  python3 - "$work/out.wrk" <<'PY'
import re,sys
t=open(sys.argv[1]).read()
n=int(re.search(r"(\d+) requests in",t).group(1))
r=float(re.search(r"Requests/sec:\s+([\d.]+)",t).group(1))
print(n, r)
PY
}
oha_closed() {
  run_timed oha oha -c "$CONNS" -z "${RUN_SECS}s" --no-tui --output-format json "$url"
  python3 - "$work/out.oha" <<'PY'
import json,sys
d=json.load(open(sys.argv[1]))
n=sum(d.get("statusCodeDistribution",{}).values())
print(n, d["summary"]["requestsPerSec"])
PY
}
cpu_us_per_req() { # name requests
  read -r u s _ <"$work/time.$1"
  python3 -c "print(round(($u+$s)*1e6/max($2,1),2))"
}

declare -A RPS CPU
for tool in loadgate wrk oha; do RPS[$tool]=""; CPU[$tool]=""; done
for round in $(seq "$ROUNDS"); do
  for tool in loadgate wrk oha; do
    read -r n rps < <(${tool}_closed)
    cpu=$(cpu_us_per_req "$tool" "$n")
    printf 'round %d %-8s %10.0f req/s %8s CPU-us/req (%d requests)\n' "$round" "$tool" "$rps" "$cpu" "$n"
    RPS[$tool]+="$rps "
    CPU[$tool]+="$cpu "
  done
done

median() { python3 -c "import statistics,sys; print(statistics.median(map(float,sys.argv[1:])))" $1; }
echo
echo "== closed model, medians of $ROUNDS alternating runs =="
for tool in loadgate wrk oha; do
  printf '%-8s %10.0f req/s %8.2f CPU-us/req\n' "$tool" "$(median "${RPS[$tool]}")" "$(median "${CPU[$tool]}")"
done
python3 - "$(median "${RPS[loadgate]}")" "$(median "${RPS[wrk]}")" "$(median "${RPS[oha]}")" \
  "$(median "${CPU[loadgate]}")" "$(median "${CPU[wrk]}")" "$(median "${CPU[oha]}")" <<'PY'
import sys
lr,wr,orr,lc,wc,oc=map(float,sys.argv[1:])
print(f"ratio req/s   loadgate/wrk {lr/wr:.3f}   loadgate/oha {lr/orr:.3f}")
print(f"ratio CPU/req loadgate/wrk {lc/wc:.3f}   loadgate/oha {lc/oc:.3f}   (lower is better)")
PY

echo
echo "== open model: --rate ${OPEN_RATE}/s for ${OPEN_SECS}s =="
run_timed open target/perf/loadgate attack "$url" --rate "${OPEN_RATE}/s" -d "${OPEN_SECS}s" --json
python3 - "$work/out.open" "$OPEN_RATE" "$work/time.open" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))["scenarios"]["attack"]
target=float(sys.argv[2]); u,sy,rss=open(sys.argv[3]).read().split()
print(f"requests {s['requests']} dropped {s['dropped']} achieved {s['rps']:.1f} req/s "
      f"({(s['rps']/target-1)*100:+.2f}% of target) p50 {s['latency_ms']['p50']} ms p99 {s['latency_ms']['p99']} ms "
      f"max RSS {int(rss)/1024:.1f} MiB")
PY

if [ "$LONG" = 1 ]; then
  echo
  echo "== open model soak: --rate ${OPEN_RATE}/s for 10m (peak RSS) =="
  run_timed soak target/perf/loadgate attack "$url" --rate "${OPEN_RATE}/s" -d 10m --json
  python3 - "$work/out.soak" "$work/time.soak" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))["scenarios"]["attack"]
u,sy,rss=open(sys.argv[2]).read().split()
print(f"requests {s['requests']} achieved {s['rps']:.1f} req/s peak RSS {int(rss)/1024:.1f} MiB")
PY
fi
