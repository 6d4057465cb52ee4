-- Cleanup deletes the oldest rows in bounded batches (see src/cleanup.rs).
CREATE INDEX consumer_inbox_processed_at_idx ON consumer_inbox (processed_at);
