#!/usr/bin/env bash
# Everything a fresh machine needs before the system can build, run or be
# tested: Debian packages and the local container images (the tansu broker
# too when asked: SAGA_WITH_TANSU=1 or SAGA_BROKER_IMAGE=saga/tansu:0.6.0).
# Idempotent; seconds when already done.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/env.sh"
"$ROOT/scripts/install-deps.sh"
if with_tansu; then "$ROOT/scripts/install-tansu.sh"; fi
"$ROOT/compose/images/build.sh" "$@"
