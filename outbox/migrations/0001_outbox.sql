-- The outbox: one row per message, written inside the business transaction.
--
-- `tx`  is the writing transaction's id (xid8 never wraps).
-- `pos` is the row's commit-order-safe position: GREATEST(tx, pos of the
--       previous row with the same key), taken under that key's row lock in
--       outbox_keys (see 0002). The relay reads a lane in (pos, id) order and
--       only rows with pos < pg_snapshot_xmin(pg_current_snapshot()): every
--       transaction below the snapshot xmin has ended, so no row can later
--       appear behind the relay's cursor (no skipped late commits, unlike a
--       plain `id > last_id` cursor — Watermill #311).
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    tx            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    pos           xid8        NOT NULL,
    lane          integer     NOT NULL,
    event_id      uuid        NOT NULL,
    topic         text        NOT NULL,
    msg_key       text        NOT NULL,
    header_names  text[]      NOT NULL,
    header_values text[]      NOT NULL,
    payload       bytea       NOT NULL,
    traceparent   text,
    tracestate    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outbox_headers_pair CHECK (cardinality(header_names) = cardinality(header_values)),
    -- The only index, to keep the insert cheap: it serves the relay's read
    -- path (one lane, in (pos, id) order, after its cursor), parking, and
    -- cleanup (a lane's oldest published rows are at its head).
    CONSTRAINT outbox_pkey PRIMARY KEY (lane, pos, id)
);
