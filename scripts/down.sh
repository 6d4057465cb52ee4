#!/usr/bin/env bash
# Stops the system started by scripts/up.sh and removes its containers and volumes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/env.sh"
compose -f "$ROOT/compose/docker-compose.yml" -p saga down -v --remove-orphans
