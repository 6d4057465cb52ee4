#!/usr/bin/env bash
# Runs every test of the project: unit tests, the schema compatibility gate,
# property tests, doc tests, and the end-to-end tests against a real broker and
# real PostgreSQL in containers. Installs what a fresh machine lacks first.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
. "$ROOT/scripts/env.sh"
echo "broker image: $SAGA_BROKER_IMAGE, postgres image: $SAGA_POSTGRES_IMAGE"
# The debug build of every test binary takes a few GiB; say what is left so
# a full disk is recognised as such.
df -h "$ROOT" | awk 'NR == 2 { print "disk: " $4 " free of " $2 " on " $6 }'
# The reference implementation agrees with the specification's cases and
# with the vectors recorded for our schemas (events/tests/vectors.rs).
python3 "$ROOT/scripts/reference-vectors.py" --check

if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
else
  cargo test --workspace "$@" -- --test-threads=2
fi
cargo test --workspace --doc
# The Kafka distribution's own librdkafka checks (transactions, a leader
# killed in a three-node cluster, SASL_SSL) against the broker image.
case "$SAGA_BROKER_IMAGE" in
  *tansu*) echo "broker checks skipped: $SAGA_BROKER_IMAGE is not Apache Kafka" ;;
  *) if [ "${SAGA_SKIP_BROKER_CHECKS:-0}" = 1 ] || [ -n "${SAGA_TEST_BOOTSTRAP_SERVERS:-}" ]; then
       echo "broker checks skipped"
     else
       KAFKA_CHECK_IMAGE="$SAGA_BROKER_IMAGE" "$ROOT/scripts/kafka-checks.sh"
     fi ;;
esac
du -sh "${CARGO_TARGET_DIR:-$ROOT/target}" 2>/dev/null | awk '{ print "build output: " $1 }' || true
