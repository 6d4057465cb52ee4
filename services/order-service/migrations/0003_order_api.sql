-- Idempotent placement: one row per `Idempotency-Key` a client sent, with
-- the digest of the order it placed (see `ValidOrder::fingerprint`). The
-- key is inserted first in the placing transaction, so two requests with
-- one key place one order: the second waits for the first's commit, then
-- finds the key taken and answers with the first's order. The order row
-- comes later in the same transaction, hence the deferred reference.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key           text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    order_id      uuid NOT NULL REFERENCES orders (order_id) DEFERRABLE INITIALLY DEFERRED,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- `GET /orders`: newest first, with or without a status filter, paged by
-- (created_at, order_id).
CREATE INDEX IF NOT EXISTS orders_newest ON orders (created_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_status_newest ON orders (status, created_at DESC, order_id DESC);
