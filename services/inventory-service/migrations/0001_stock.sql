-- Stock per SKU. `reserved` is what open reservations hold; what can still be
-- reserved is `on_hand - reserved`. Reservations, releases and commits change
-- both columns by deltas (never by writing back a value read earlier), so
-- concurrent sagas on one SKU compose.
CREATE TABLE IF NOT EXISTS stock (
    sku         text PRIMARY KEY,
    on_hand     bigint NOT NULL,
    reserved    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_reserved_within_on_hand CHECK (0 <= reserved AND reserved <= on_hand)
);
