#!/usr/bin/env bash
# Builds the local images this machine cannot pull:
#   saga/debian-base:bookworm   debootstrap + docker import
#   saga/tansu:0.6.0            the tansu broker (host-built binary) on that base
#   saga/postgres:15            PostgreSQL 15 from Debian on that base
#   saga/runtime:latest         the project's binaries (only with --runtime)
# Idempotent: an image that exists is kept (FORCE=1 rebuilds); the broker and
# postgres images are rebuilt when their recipe (Dockerfile, entrypoint) changed.
# Elsewhere users pull the upstream images instead (see compose/images.env).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FORCE="${FORCE:-0}"
have() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
# The recipe's hash, kept as a label: `current IMAGE DIR` is true when IMAGE
# was built from DIR as it is now.
recipe() { cat "$1"/Dockerfile "$1"/*.sh | sha256sum | cut -c1-16; }
current() {
  [ "$FORCE" != 1 ] \
    && [ "$(docker image inspect -f '{{index .Config.Labels "saga.recipe"}}' "$1" 2>/dev/null)" = "$(recipe "$2")" ]
}

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

if ! current saga/tansu:0.6.0 "$HERE/broker"; then
  TANSU="$(command -v tansu || true)"
  [ -n "$TANSU" ] || { echo "tansu not installed: run scripts/install-tansu.sh" >&2; exit 1; }
  cp "$TANSU" "$HERE/broker/tansu"
  docker build -q --label "saga.recipe=$(recipe "$HERE/broker")" -t saga/tansu:0.6.0 "$HERE/broker"
  rm -f "$HERE/broker/tansu"
fi

if ! current saga/postgres:15 "$HERE/postgres"; then
  docker build -q --label "saga.recipe=$(recipe "$HERE/postgres")" -t saga/postgres:15 "$HERE/postgres"
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
