-- Cleanup drops key-position rows below every lane's cursor
-- (`cleanup.rs`, DELETE_KEYS): an index range scan from the lowest position
-- instead of a scan of every key the outbox ever saw.
CREATE INDEX outbox_keys_pos ON outbox_keys (pos);
