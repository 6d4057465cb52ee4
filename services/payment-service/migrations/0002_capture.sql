-- CAPTURED: the authorized amount was charged, once, at `captured_at`
-- (a repeated CapturePayment answers that time again). Capture follows the
-- stock commit after the pivot; it is never declined on a business rule.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS captured_at timestamptz;
ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('AUTHORIZED', 'CAPTURED', 'DECLINED', 'VOIDED'));
ALTER TABLE payments ADD CONSTRAINT payments_captured_has_time
    CHECK ((status = 'CAPTURED') = (captured_at IS NOT NULL));
