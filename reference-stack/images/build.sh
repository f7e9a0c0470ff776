#!/usr/bin/env bash
# Build loadgate's reference-stack container images locally, without any registry.
#
# Why: the machines loadgate is developed on (and air-gapped CI runners) reach no container
# registry, so `redis:7` / `postgres:15` cannot be pulled. This script makes a Debian root
# filesystem with debootstrap (redis-server and postgresql-15 included), imports it as
# `loadgate/debian-base:bookworm`, and builds one small image per service on top:
#   loadgate/redis:7-local      redis-server on 0.0.0.0:6379, no persistence
#   loadgate/postgres:15-local  official-image-like entrypoint (POSTGRES_PASSWORD/USER/DB),
#                               postgres on 0.0.0.0:5432, password auth from anywhere
# The apt mirror is read from this machine's own apt sources (never written into the repo);
# set LOADGATE_APT_MIRROR to override it.
#
# Usage: reference-stack/images/build.sh [--force]
#   --force   rebuild even when the images exist
# Needs: root (debootstrap), debootstrap, docker. Idempotent; removes its temporary rootfs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE=bookworm
BASE_IMAGE=loadgate/debian-base:bookworm
REDIS_IMAGE=loadgate/redis:7-local
POSTGRES_IMAGE=loadgate/postgres:15-local
FORCE=0

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg' (expected --force)" ;;
  esac
done

command -v docker >/dev/null || die "docker CLI not found; install docker (docker.io) first"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start dockerd"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

if [[ $FORCE == 0 ]] && image_exists "$REDIS_IMAGE" && image_exists "$POSTGRES_IMAGE"; then
  log "$REDIS_IMAGE and $POSTGRES_IMAGE exist; nothing to do (use --force to rebuild)"
  exit 0
fi

# The apt mirror: deb822 sources first, then the one-line format.
find_mirror() {
  if [[ -n "${LOADGATE_APT_MIRROR:-}" ]]; then echo "$LOADGATE_APT_MIRROR"; return; fi
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # Each stanza: take URIs of a stanza whose Suites contain the plain suite name.
    awk -v suite="$SUITE" '
      function flush() { if (uris != "" && ok) { split(uris, u, " "); print u[1]; found=1; exit } uris=""; ok=0 }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/   { sub(/^URIs:[[:space:]]*/, ""); uris=$0 }
      /^Suites:/ { n=split($0, s, /[[:space:]]+/); for (i=2;i<=n;i++) if (s[i]==suite) ok=1 }
      END { if (!found) flush() }
    ' "$f"
  done | head -n1 | grep . && return
  if [[ -f /etc/apt/sources.list ]]; then
    awk -v suite="$SUITE" '$1=="deb" && $0 !~ /^#/ { for (i=2;i<=NF;i++) if ($i==suite) { for (j=2;j<i;j++) if ($j !~ /^\[/) u=$j; print u; exit } }' \
      /etc/apt/sources.list | grep . && return
  fi
  return 1
}

build_base() {
  [[ $(id -u) == 0 ]] || die "debootstrap needs root; run as root (or with sudo)"
  command -v debootstrap >/dev/null || die "debootstrap not found; apt-get install debootstrap"
  local mirror
  mirror="$(find_mirror)" || die "no apt mirror for '$SUITE' found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; set LOADGATE_APT_MIRROR"
  log "mirror: $mirror"

  ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/loadgate-rootfs.XXXXXX")"
  trap cleanup_rootfs EXIT
  # Keep package scripts from starting daemons or creating a default cluster inside the
  # chroot (they would run on this host): policy-rc.d denies every start, and
  # postgresql-common is told not to create the "main" cluster.
  mkdir -p "$ROOTFS/usr/sbin" "$ROOTFS/etc/postgresql-common/createcluster.d"
  printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
  chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
  echo 'create_main_cluster = false' > "$ROOTFS/etc/postgresql-common/createcluster.d/loadgate.conf"

  local t0=$SECONDS
  log "debootstrap $SUITE into $ROOTFS (takes about a minute)"
  if ! debootstrap --variant=minbase --include=redis-server,postgresql-15 "$SUITE" "$ROOTFS" "$mirror" \
      > "$ROOTFS.log" 2>&1; then
    tail -n 30 "$ROOTFS.log" >&2
    die "debootstrap failed (log above); check the mirror '$mirror' is reachable"
  fi
  log "debootstrap took $((SECONDS - t0)) s"

  # Trim what a server image does not need.
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
         "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
         "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log "$ROOTFS"/debootstrap
  umount_under "$ROOTFS"
  log "importing rootfs ($(du -sh "$ROOTFS" | cut -f1)) as $BASE_IMAGE"
  tar --numeric-owner -C "$ROOTFS" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
}

umount_under() {
  local dir="$1" m
  # Deepest first; lazy so a busy mount does not stop the cleanup.
  for m in $(awk -v d="$dir" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

cleanup_rootfs() {
  if [[ -n "${ROOTFS:-}" && -d "$ROOTFS" ]]; then
    umount_under "$ROOTFS"
    rm -rf --one-file-system "$ROOTFS" "$ROOTFS.log"
  fi
}

T_START=$SECONDS
if [[ $FORCE == 1 ]] || ! image_exists "$BASE_IMAGE"; then
  build_base
else
  log "$BASE_IMAGE exists; reusing it"
fi

export DOCKER_BUILDKIT=0 # the classic builder needs no buildx plugin (and says so otherwise)
log "building $REDIS_IMAGE"
docker build -q -t "$REDIS_IMAGE" "$HERE/redis" >/dev/null || die "docker build of $REDIS_IMAGE failed"
log "building $POSTGRES_IMAGE"
docker build -q -t "$POSTGRES_IMAGE" "$HERE/postgres" >/dev/null || die "docker build of $POSTGRES_IMAGE failed"

cleanup_rootfs
trap - EXIT
log "done in $((SECONDS - T_START)) s:"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^loadgate/' | sed 's/^/  /' >&2 || true
