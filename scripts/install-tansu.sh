#!/usr/bin/env bash
# Installs the tansu 0.6.0 Kafka-protocol broker machine-wide (/usr/local/bin),
# with the storage engines we use (SQLite via libsql, memory via dynostore).
# A plain `cargo install tansu` has no storage engine: see docs/broker.md.
# Idempotent: does nothing when that version is already installed.
set -euo pipefail
VERSION="${TANSU_VERSION:-0.6.0}"
ROOT="${TANSU_INSTALL_ROOT:-/usr/local}"
if [ -x "$ROOT/bin/tansu" ] && "$ROOT/bin/tansu" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "tansu $VERSION already installed at $ROOT/bin/tansu"
  exit 0
fi
echo "building tansu $VERSION (takes ~11 min on 2 cores)..."
cargo install tansu --version "$VERSION" --locked \
  --no-default-features --features dynostore,libsql \
  --root "$ROOT"
"$ROOT/bin/tansu" --version
