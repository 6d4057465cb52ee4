-- One row per message key (aggregate id) with the position of its latest row.
--
-- Enqueue upserts this row before inserting into `outbox`; the row lock it
-- takes is held until the writer commits, so writers of one key serialise and
-- commit in the order they got their positions. Transaction ids are handed out
-- when a transaction first writes, not when it commits, so without this a
-- transaction that got its id early but reached the key late would sort before
-- the rows it actually follows.
--
-- Under REPEATABLE READ or SERIALIZABLE a writer that raced a concurrent
-- writer of the same key gets a serialization failure here (retry the
-- transaction) instead of a position that could reorder the key.
CREATE TABLE outbox_keys (
    msg_key text PRIMARY KEY,
    pos     xid8 NOT NULL
);
