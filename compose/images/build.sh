#!/usr/bin/env bash
# Builds the local images this machine cannot pull:
#   saga/debian-base:bookworm   debootstrap + docker import
#   saga/kafka:4.4.0            Apache Kafka 4.4.0 (jars from KAFKA_DIST) on that base
#   saga/postgres:15            PostgreSQL 15 from Debian on that base
#   saga/tansu:0.6.0            the tansu broker (host-built binary), only when
#                               asked: SAGA_WITH_TANSU=1 or SAGA_BROKER_IMAGE=saga/tansu:*
#   saga/runtime:latest         the project's binaries (only with --runtime)
# KAFKA_DIST: a Kafka distribution with libs/*.jar, either an unpacked release
# tarball or the jar set in ../shared/kafka/4.4.0 (the default, when present).
# Idempotent: an image that exists is kept (FORCE=1 rebuilds); the broker and
# postgres images are rebuilt when their recipe (Dockerfile, scripts, and for
# Kafka the distribution's jars) changed.
# Elsewhere users pull the upstream images instead (see compose/images.env).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FORCE="${FORCE:-0}"
have() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
# The recipe's hash, kept as a label: `current IMAGE DIR [CMD...]` is true when
# IMAGE was built from DIR (and CMD's output, if given) as they are now.
recipe() { { cat "$1"/Dockerfile "$1"/*.sh; "${@:2}"; } | sha256sum | cut -c1-16; }
current() {
  [ "$FORCE" != 1 ] \
    && [ "$(docker image inspect -f '{{index .Config.Labels "saga.recipe"}}' "$1" 2>/dev/null)" = "$(recipe "${@:2}")" ]
}
# tansu is optional (scripts/setup.sh and up.sh use the same test).
with_tansu() { [ "${SAGA_WITH_TANSU:-0}" = 1 ] || case "${SAGA_BROKER_IMAGE:-}" in saga/tansu:*) true ;; *) false ;; esac; }

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

KAFKA_IMAGE=saga/kafka:4.4.0
if [ -z "${KAFKA_DIST:-}" ]; then
  for d in "$ROOT/../shared/kafka/4.4.0" /work/shared/kafka/4.4.0; do
    [ -d "$d/libs" ] && { KAFKA_DIST="$d"; break; }
  done
fi
# The Kafka image's inputs besides its Dockerfile and scripts: its config
# files and every jar of the distribution (name and checksum).
kafka_inputs() { cat "$HERE"/kafka/*.yaml "$HERE"/kafka/*.properties; (cd "$KAFKA_DIST/libs" && sha256sum -- *.jar); }
if [ -z "${KAFKA_DIST:-}" ] || ! ls "$KAFKA_DIST"/libs/kafka_2.13-*.jar >/dev/null 2>&1; then
  if [ -n "${SAGA_BROKER_IMAGE:-}" ] && [ "$SAGA_BROKER_IMAGE" != "$KAFKA_IMAGE" ]; then
    echo "no Kafka distribution (KAFKA_DIST): $KAFKA_IMAGE not built; SAGA_BROKER_IMAGE=$SAGA_BROKER_IMAGE is used instead" >&2
  else
    echo "no Kafka distribution for $KAFKA_IMAGE: set KAFKA_DIST to a directory with libs/kafka_2.13-*.jar" \
         "(an unpacked kafka_2.13-4.4.0.tgz), or SAGA_BROKER_IMAGE to another broker image" \
         "(apache/kafka:4.4.0 where it can be pulled, saga/tansu:0.6.0)" >&2
    exit 1
  fi
elif ! current "$KAFKA_IMAGE" "$HERE/kafka" kafka_inputs; then
  # A temporary context: the image's files plus the distribution's jars
  # (hard links when on the same file system), never copied into the repo.
  CTX="$(mktemp -d)"
  trap 'rm -rf "$CTX"' EXIT
  cp "$HERE"/kafka/* "$CTX/"
  cp -l -r "$KAFKA_DIST/libs" "$CTX/libs" 2>/dev/null || { rm -rf "$CTX/libs"; cp -r "$KAFKA_DIST/libs" "$CTX/libs"; }
  echo "building $KAFKA_IMAGE from $KAFKA_DIST ..."
  docker build -q --label "saga.recipe=$(recipe "$HERE/kafka" kafka_inputs)" -t "$KAFKA_IMAGE" "$CTX"
  rm -rf "$CTX"; trap - EXIT
fi

if with_tansu && ! current saga/tansu:0.6.0 "$HERE/broker"; then
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
