#!/usr/bin/env bash
# Everything a fresh machine needs before the system can build, run or be
# tested: Debian packages, fastavro (the independent Avro reader
# scripts/avro-read.py that the end-to-end tests run) and the local container
# images (the tansu broker too when asked: SAGA_WITH_TANSU=1 or
# SAGA_BROKER_IMAGE=saga/tansu:0.6.0).
# Idempotent; seconds when already done.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/env.sh"
"$ROOT/scripts/install-deps.sh"
if ! python3 -c 'import fastavro' >/dev/null 2>&1; then
  echo "installing fastavro (for scripts/avro-read.py)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-pip
  fi
  # Debian's own python3 refuses pip installs outside a venv (PEP 668)
  # unless told; a pyenv or venv python3 takes the plain form.
  python3 -m pip install --quiet fastavro 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages fastavro
  python3 -c 'import fastavro'
else
  echo "fastavro already installed"
fi
if with_tansu; then "$ROOT/scripts/install-tansu.sh"; fi
"$ROOT/compose/images/build.sh" "$@"
