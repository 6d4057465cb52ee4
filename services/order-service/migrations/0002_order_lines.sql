CREATE TABLE IF NOT EXISTS order_lines (
    order_id          uuid NOT NULL REFERENCES orders (order_id),
    line_no           integer NOT NULL,
    sku               text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_minor  bigint NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);
