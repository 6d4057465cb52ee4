-- Whether `enqueue` sends the wake-up hint (NOTIFY outbox, '<lane>').
--
-- A transaction that notified takes a database-wide lock from the start of
-- its commit to the end, WAL flush included, so with synchronous_commit=on
-- every notifying commit waits for the one before it: group commit is lost.
-- A write-heavy database turns the hint off; the relays then find rows by
-- polling, fast while rows keep coming and slower while a lane stays empty.
ALTER TABLE outbox_settings ADD COLUMN notify boolean NOT NULL DEFAULT true;
