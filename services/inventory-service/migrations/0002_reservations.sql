-- One row per order: the reservation's state and what it holds.
--   RESERVED  — `lines` are held in `stock.reserved`.
--   FAILED    — nothing was held; `reason` and `unavailable_skus` say why.
--   RELEASED  — given back, or a tombstone (empty `lines`) left by a release
--               that arrived before its reserve, so the late reserve is refused.
--   COMMITTED — `lines` left `stock.on_hand` for good.
-- `created_at` is when the reserve (or the tombstone) was decided; replies
-- re-sent for a duplicate command carry it, so they are identical.
CREATE TABLE IF NOT EXISTS reservations (
    order_id          uuid PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('RESERVED', 'FAILED', 'RELEASED', 'COMMITTED')),
    lines             jsonb NOT NULL DEFAULT '[]',
    reason            text,
    unavailable_skus  text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
