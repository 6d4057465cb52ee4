#!/usr/bin/env bash
# Everything a fresh machine needs before the system can build, run or be
# tested: Debian packages, the tansu broker, and the local container images.
# Idempotent; seconds when already done.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/install-tansu.sh"
"$ROOT/compose/images/build.sh" "$@"
