-- CAPTURING_PAYMENT: the step after the stock commit that charges the
-- authorized amount. COMPLETION_FAILED: a retriable step after the pivot
-- (commit, capture) went unanswered too many times or was answered with a
-- reply that does not match; the saga stops (no deadline, nothing re-sent)
-- until a late reply or `saga resume` carries it on. Operators find stopped
-- sagas with `WHERE status IN ('COMPENSATION_FAILED', 'COMPLETION_FAILED')`;
-- the reason is in `state ->> 'failure'`.
ALTER TABLE saga
    DROP CONSTRAINT saga_status_known,
    DROP CONSTRAINT saga_deadline_while_running;
ALTER TABLE saga
    ADD CONSTRAINT saga_status_known CHECK (status IN (
        'RESERVING_INVENTORY', 'AUTHORIZING_PAYMENT', 'COMMITTING_INVENTORY',
        'CAPTURING_PAYMENT', 'VOIDING_PAYMENT', 'RELEASING_INVENTORY',
        'APPROVED', 'REJECTED', 'COMPENSATION_FAILED', 'COMPLETION_FAILED')),
    ADD CONSTRAINT saga_deadline_while_running CHECK (
        (deadline IS NULL) = (status IN ('APPROVED', 'REJECTED', 'COMPENSATION_FAILED', 'COMPLETION_FAILED')));
