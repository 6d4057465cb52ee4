-- COMPENSATION_FAILED: a compensation went unanswered too many times; the
-- saga stops (no deadline, nothing re-sent) until a late reply resumes it.
-- Operators find such sagas with `WHERE status = 'COMPENSATION_FAILED'`;
-- the reason is in `state ->> 'failure'`.
ALTER TABLE saga
    DROP CONSTRAINT saga_status_known,
    DROP CONSTRAINT saga_deadline_while_running;
ALTER TABLE saga
    ADD CONSTRAINT saga_status_known CHECK (status IN (
        'RESERVING_INVENTORY', 'AUTHORIZING_PAYMENT', 'COMMITTING_INVENTORY',
        'VOIDING_PAYMENT', 'RELEASING_INVENTORY', 'APPROVED', 'REJECTED',
        'COMPENSATION_FAILED')),
    ADD CONSTRAINT saga_deadline_while_running CHECK (
        (deadline IS NULL) = (status IN ('APPROVED', 'REJECTED', 'COMPENSATION_FAILED')));
