-- Lanes split the outbox by key (lane = hash(key) mod lanes) so that several
-- relays can publish at once without reordering a key: each lane is held by
-- one relay at a time under a lease, and every lease grant bumps `epoch`.
-- A relay's writes (cursor moves, parking) require its own owner and epoch,
-- which fences a relay that lost its lease while paused (a zombie).
CREATE TABLE outbox_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    lanes     integer NOT NULL CHECK (lanes BETWEEN 1 AND 1024)
);
INSERT INTO outbox_settings (lanes) VALUES (8);

CREATE TABLE outbox_lanes (
    lane         integer PRIMARY KEY,
    owner        text,
    epoch        bigint      NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    -- Everything in this lane at or before (cursor_pos, cursor_id) was
    -- delivered (or parked).
    cursor_pos   xid8        NOT NULL DEFAULT '0',
    cursor_id    bigint      NOT NULL DEFAULT 0,
    advanced_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO outbox_lanes (lane) SELECT generate_series(0, 7);

-- Relays announce themselves so that each can compute its fair share of lanes.
CREATE TABLE outbox_relays (
    relay_id     text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
