#!/usr/bin/env bash
# Installs what loadgate's reference stack and tests need on a fresh Debian machine, and builds
# the local container images (no registry is reachable here). Idempotent: skips what is present.
#   - redis-server and PostgreSQL server binaries (process backend)
#   - the web servers of the conformance matrix (tests/conformance_servers.rs): nginx, apache2,
#     caddy and python3 (its http.server); the tests start their own instances, so the
#     packages' services are stopped should they have started
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

if [ "$docker_ok" = 1 ]; then
  bash reference-stack/images/build.sh
else
  echo "setup: no Docker engine answers; the containers backend is unavailable (process backend only)"
fi
echo "setup: ok"
