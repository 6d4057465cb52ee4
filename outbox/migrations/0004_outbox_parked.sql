-- Rows the broker rejected permanently (e.g. too large), with the reason, and
-- the rows of the same key that queued up behind them (`blocked_by` = the
-- event id of the rejected row). A key with parked rows publishes nothing
-- until an operator deals with them; other keys are unaffected.
CREATE TABLE outbox_parked (
    id            bigint PRIMARY KEY,
    tx            xid8        NOT NULL,
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
    created_at    timestamptz NOT NULL,
    parked_at     timestamptz NOT NULL DEFAULT now(),
    reason        text        NOT NULL,
    blocked_by    uuid
);

CREATE INDEX outbox_parked_key ON outbox_parked (msg_key, id);
