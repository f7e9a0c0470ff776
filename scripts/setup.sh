#!/usr/bin/env bash
# Installs what loadgate's reference stack and tests need on a fresh Debian machine, and builds
# the local container images (no registry is reachable here). Idempotent: skips what is present.
#   - redis-server and PostgreSQL server binaries (process backend)
#   - the web servers of the conformance matrix (tests/conformance_servers.rs): nginx, apache2,
#     caddy and python3 (its http.server); the tests start their own instances, so the
#     packages' services are stopped should they have started
#   - debootstrap, then reference-stack/images/build.sh (containers backend), when Docker answers,
#     and loadgate's own image loadgate/loadgate:local (deploy/k8s/image/build.sh)
#   - chromium (tests render report.html headless) and python3-prometheus-client (tests parse
#     --metrics-addr output with Python's standard text parser, /usr/bin/python3)
#   - Python's hdrhistogram package from PyPI for the `python3` on PATH (tests decode the
#     segments' HdrHistogram logs with another implementation; tests/segments_merge.rs)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/sbin/apache2 ] || need+=(apache2)
[ -x /usr/bin/caddy ] || need+=(caddy)
[ -x /usr/bin/python3 ] || need+=(python3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need+=(python3-prometheus-client)
docker_ok=0
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  docker_ok=1
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  # Packages must not start their services while installing (nginx and apache2 would both
  # take port 80 and one postinst would fail); a policy-rc.d already there is left alone.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Packages that start a service (PostgreSQL's cluster, nginx, apache2, caddy on port 80):
  # loadgate and its tests run their own servers.
  if command -v service >/dev/null 2>&1; then
    for svc in postgresql nginx apache2 caddy; do
      if [[ " ${need[*]} " == *" $svc "* ]]; then
        service "$svc" stop >/dev/null 2>&1 || true
      fi
    done
  fi
fi

# Python's HdrHistogram (import name hdrh), for the python3 the tests run.
if ! python3 -c 'import hdrh.log' >/dev/null 2>&1; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { echo "setup: python3 has no pip; install python3-pip" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  echo "setup: installing Python's hdrhistogram package"
  # A Debian python3 is "externally managed" (PEP 668): then install beside its packages.
  python3 -m pip install --quiet --disable-pip-version-check hdrhistogram 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages hdrhistogram
fi

if [ "$docker_ok" = 1 ]; then
  bash reference-stack/images/build.sh
  # loadgate's own image (deploy/k8s/), from a debug build: the very build `make test` makes
  # next, so it costs no extra compile (tests/stack_k8s_job.rs rebuilds the image from the
  # binary it tests).
  if command -v cargo >/dev/null 2>&1; then
    cargo build --quiet --workspace --bins
    bash deploy/k8s/image/build.sh --binary target/debug/loadgate
  else
    echo "setup: no cargo: loadgate/loadgate:local not built (deploy/k8s/image/build.sh)"
  fi
else
  echo "setup: no Docker engine answers; the containers backend is unavailable (process backend only)"
fi
echo "setup: ok"
