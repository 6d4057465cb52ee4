#!/usr/bin/env bash
# Builds the local images this machine cannot pull:
#   saga/debian-base:bookworm   debootstrap + docker import
#   saga/tansu:0.6.0            the tansu broker (host-built binary) on that base
#   saga/postgres:15            PostgreSQL 15 from Debian on that base
#   saga/runtime:latest         the project's binaries (only with --runtime)
# Idempotent: an image that exists is kept (FORCE=1 rebuilds).
# Elsewhere users pull the upstream images instead (see compose/images.env).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FORCE="${FORCE:-0}"
have() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

BASE=saga/debian-base:bookworm
if ! have "$BASE"; then
  # The mirror apt already uses: deb822 `URIs:` lines or one-line `deb` entries.
  MIRROR="${DEBIAN_MIRROR:-$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true;
                                grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true; } \
                              | grep -v security | grep -E '/debian/?$' | head -1 || true)}"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  echo "debootstrap bookworm from $MIRROR ..."
  debootstrap --variant=minbase bookworm "$WORK/root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log"; exit 1; }
  tar -C "$WORK/root" -c . | docker import - "$BASE"
  rm -rf "$WORK"; trap - EXIT
fi

if ! have saga/tansu:0.6.0; then
  TANSU="$(command -v tansu || true)"
  [ -n "$TANSU" ] || { echo "tansu not installed: run scripts/install-tansu.sh" >&2; exit 1; }
  cp "$TANSU" "$HERE/broker/tansu"
  docker build -q -t saga/tansu:0.6.0 "$HERE/broker"
  rm -f "$HERE/broker/tansu"
fi

if ! have saga/postgres:15; then
  docker build -q -t saga/postgres:15 "$HERE/postgres"
fi

if [ "${1:-}" = "--runtime" ]; then
  # The runtime image carries the release binaries built on this host
  # (same Debian, same glibc as the base image).
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
  CTX="$(mktemp -d)"
  cp "$HERE/runtime/Dockerfile" "$CTX/"
  for b in saga order-service inventory-service payment-service saga-orchestrator; do
    [ -x "$BIN/$b" ] && cp "$BIN/$b" "$CTX/"
  done
  docker build -q -t saga/runtime:latest "$CTX"
  rm -rf "$CTX"
fi
docker images --format '{{.Repository}}:{{.Tag}}' | grep '^saga/' | sort
