#!/usr/bin/env bash
# Brings the whole system up in containers and runs its main job, a load
# run (`saga load`): pushes orders through the order service concurrently,
# waits for every saga and checks the invariants against the databases.
#   ORDERS=2000 CONCURRENCY=32 SEED=7 ./scripts/up.sh   (default 300 orders)
# Stop it with ./scripts/down.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ORDERS="${ORDERS:-300}"
. "$ROOT/scripts/env.sh"
"$ROOT/scripts/install-deps.sh"
if with_tansu; then "$ROOT/scripts/install-tansu.sh"; fi
echo "building release binaries..."
cargo build --release -p saga-cli -p order-service -p inventory-service -p payment-service -p saga-orchestrator
"$ROOT/compose/images/build.sh" --runtime
DC=(-f "$ROOT/compose/docker-compose.yml" -p saga)
compose "${DC[@]}" up -d
PORT="${SAGA_ORDER_PORT:-58080}"
echo "waiting for the order service on :$PORT ..."
for _ in $(seq 90); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null

echo "an invalid order is refused with a reason:"
curl -sS -X POST -H 'content-type: application/json' -d '{"customer_id":"00000000-0000-0000-0000-000000000000","currency":"EUR","lines":[]}' \
  -w ' (HTTP %{http_code})\n' "http://127.0.0.1:$PORT/orders"
echo
# The main job: a load run of $ORDERS orders on its own SKUs, checked
# against the services' databases (exit 1 if an invariant fails).
PG="postgres://postgres:postgres@127.0.0.1:${SAGA_POSTGRES_PORT:-55432}"
"$ROOT/target/release/saga" load --order-url "http://127.0.0.1:$PORT" -n "$ORDERS" \
  --concurrency "${CONCURRENCY:-16}" --seed "${SEED:-$RANDOM}" \
  --orders-db "$PG/orders" --inventory-db "$PG/inventory" --payment-db "$PG/payment" --orchestrator-db "$PG/orchestrator"
echo
echo "system is up: order service on http://127.0.0.1:$PORT (stop with ./scripts/down.sh)"
