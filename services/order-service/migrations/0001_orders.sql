-- Orders as the order service sees them. `status` is the saga's semantic
-- lock: PENDING until the saga approves or rejects the order.
CREATE TABLE IF NOT EXISTS orders (
    order_id     uuid PRIMARY KEY,
    customer_id  uuid NOT NULL,
    total_minor  bigint NOT NULL CHECK (total_minor >= 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    channel      text NOT NULL,
    status       text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    reason       text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
