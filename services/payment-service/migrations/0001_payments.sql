-- One row per order: what the payment service decided.
--   AUTHORIZED — `amount_minor` `currency` held under `authorization_id`.
--   DECLINED   — refused; `reason` says why.
--   VOIDED     — the authorization was cancelled, or a tombstone (no
--                `authorization_id`) left by a void that arrived before its
--                authorize, so the late authorize is refused.
-- `created_at` is when the decision was made; replies re-sent for a duplicate
-- command carry it, so they are identical.
CREATE TABLE IF NOT EXISTS payments (
    order_id          uuid PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('AUTHORIZED', 'DECLINED', 'VOIDED')),
    authorization_id  uuid UNIQUE,
    amount_minor      bigint,
    currency          text,
    reason            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_authorized_has_authorization CHECK (status <> 'AUTHORIZED' OR authorization_id IS NOT NULL)
);
