#!/usr/bin/env bash
# Installs what loadgate's reference stack and tests need on a fresh Debian machine, and builds
# the local container images (no registry is reachable here). Idempotent: skips what is present.
#   - redis-server and PostgreSQL server binaries (process backend)
#   - debootstrap, then reference-stack/images/build.sh (containers backend), when Docker answers
#   - chromium (tests render report.html headless) and python3-prometheus-client (tests parse
#     --metrics-addr output with Python's standard text parser, /usr/bin/python3)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then
  need+=(postgresql)
fi
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The postgresql package starts a cluster service; loadgate runs its own servers.
  if [[ " ${need[*]} " == *" postgresql "* ]] && command -v service >/dev/null 2>&1; then
    service postgresql stop >/dev/null 2>&1 || true
  fi
fi

if [ "$docker_ok" = 1 ]; then
  bash reference-stack/images/build.sh
else
  echo "setup: no Docker engine answers; the containers backend is unavailable (process backend only)"
fi
echo "setup: ok"
