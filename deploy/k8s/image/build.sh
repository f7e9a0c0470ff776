#!/usr/bin/env bash
# Build loadgate's container image locally, without any registry, the way
# reference-stack/images/build.sh builds the stack's images: on the Debian base image it makes
# (loadgate/debian-base:bookworm, built first when missing), add the loadgate binary.
#   loadgate/loadgate:local
# The Kubernetes Jobs in deploy/k8s/ run it; load it into a cluster's nodes (kind load
# docker-image, k3s ctr images import, or your registry: docker tag + push) to use it there.
#
# Usage: deploy/k8s/image/build.sh [--binary PATH] [--tag NAME]
#   --binary PATH  the loadgate binary to put in (default: cargo build --release, then
#                  target/release/loadgate); it must run on Debian bookworm (glibc 2.36)
#   --tag NAME     the image name (default loadgate/loadgate:local)
# Needs: docker. Rebuilding with the same binary is a cache hit (a second or two).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
BASE_IMAGE=loadgate/debian-base:bookworm
TAG=loadgate/loadgate:local
BINARY=""

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) [[ $# -ge 2 ]] || die "--binary needs a path"; BINARY="$2"; shift 2 ;;
    --tag) [[ $# -ge 2 ]] || die "--tag needs a name"; TAG="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (expected --binary PATH or --tag NAME)" ;;
  esac
done

command -v docker >/dev/null || die "docker CLI not found; install docker (docker.io) first"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start dockerd"

if [[ -z $BINARY ]]; then
  log "building loadgate (cargo build --release --bin loadgate)"
  (cd "$ROOT" && cargo build --release --bin loadgate) || die "cargo build failed"
  BINARY="$ROOT/target/release/loadgate"
fi
[[ -x $BINARY ]] || die "no executable loadgate binary at '$BINARY'"

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE missing: building the reference stack's images first"
  bash "$ROOT/reference-stack/images/build.sh"
fi

CTX="$(mktemp -d "${TMPDIR:-/tmp}/loadgate-image.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT
cp "$HERE/Dockerfile" "$CTX/Dockerfile"
# A hard link when possible: the debug binary is large, and the build context is copied once.
ln "$BINARY" "$CTX/loadgate" 2>/dev/null || cp "$BINARY" "$CTX/loadgate"

export DOCKER_BUILDKIT=0 # the classic builder needs no buildx plugin
log "building $TAG from $BINARY"
docker build -q -t "$TAG" "$CTX" >/dev/null || die "docker build of $TAG failed"
log "done: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$TAG")"
