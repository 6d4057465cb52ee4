-- The inbox: one row per (consumer, event) that a consumer has applied.
--
-- The runtime inserts the row in the same transaction as the handler's effect
-- (ON CONFLICT DO NOTHING); a redelivered event finds its row and is skipped.
-- The primary key is what makes a concurrent double delivery (two group
-- members holding the same partition during a rebalance) harmless: the second
-- insert waits for the first transaction and then sees the conflict.
CREATE TABLE consumer_inbox (
    consumer_name  text        NOT NULL,
    event_id       uuid        NOT NULL,
    message_type   text        NOT NULL,
    topic          text        NOT NULL,
    kafka_partition integer    NOT NULL,
    kafka_offset   bigint      NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_name, event_id)
);
