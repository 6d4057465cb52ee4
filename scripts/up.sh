#!/usr/bin/env bash
# Brings the whole system up in containers and runs its main job: pushes
# orders through the order service and prints what happened to them.
#   ORDERS=20 ./scripts/up.sh      (default 10 orders)
# Stop it with ./scripts/down.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ORDERS="${ORDERS:-10}"
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

echo "placing $ORDERS orders"
ids=()
for i in $(seq "$ORDERS"); do
  body=$(printf '{"customer_id":"%s","currency":"EUR","lines":[{"sku":"SKU-%d","quantity":%d,"unit_price_minor":%d}]}' \
    "$(cat /proc/sys/kernel/random/uuid)" $((i % 3)) $((1 + i % 4)) $((500 + 100 * i)))
  resp=$(curl -fsS -X POST -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$PORT/orders")
  ids+=("$(echo "$resp" | sed -E 's/.*"order_id":"([^"]+)".*/\1/')")
done
echo "an invalid order is refused with a reason:"
curl -sS -X POST -H 'content-type: application/json' -d '{"customer_id":"00000000-0000-0000-0000-000000000000","currency":"EUR","lines":[]}' \
  -w ' (HTTP %{http_code})\n' "http://127.0.0.1:$PORT/orders"

echo "waiting for the sagas to finish (inventory: SKU-2 has 3 units; payment declines totals above 2500)"
deadline=$((SECONDS + 180))
while :; do
  pending=0
  for id in "${ids[@]}"; do
    order="$(curl -fsS "http://127.0.0.1:$PORT/orders/$id" || true)"
    case "$order" in *'"status":"PENDING"'*|'') pending=$((pending + 1)) ;; esac
  done
  [ "$pending" -eq 0 ] && break
  [ "$SECONDS" -ge "$deadline" ] && { echo "still pending after 180 s: $pending"; break; }
  sleep 2
done
echo
printf '%-38s %8s  %-9s %s\n' ORDER TOTAL STATUS REASON
for id in "${ids[@]}"; do
  curl -fsS "http://127.0.0.1:$PORT/orders/$id" | python3 -c '
import json, sys
o = json.load(sys.stdin)
print("%-38s %8s  %-9s %s" % (o["order_id"], o["total_minor"], o["status"], o["reason"] or ""))'
done
echo
echo "the saga of the first order, as it crossed Kafka (topic, partition, offset, key, type):"
compose "${DC[@]}" run --rm tools sh -c "for t in orders.events inventory.commands inventory.replies payment.commands payment.replies; do saga tail \$t --short --idle-timeout 5 2>/dev/null; done" \
  | grep "${ids[0]}" || true
echo
echo "system is up: order service on http://127.0.0.1:$PORT (stop with ./scripts/down.sh)"
