-- One row per order saga: the orchestrator's log of where each saga stands.
--
-- `saga_id` is the order id (the saga of an order is started once, by its
-- OrderCreated). `state` is the serde form of `OrderSaga` (internally tagged
-- JSON whose `state` tag equals `status`); `status` and `deadline` are copies
-- kept as columns so that operators can query them and the timeout sweeper can
-- index them. `deadline` is when the pending step is overdue, NULL once the
-- saga is terminal.
--
-- Every change of a saga is made under its row lock (SELECT ... FOR UPDATE)
-- in the same transaction as the outbox rows of the commands it emits, so two
-- orchestrator instances never both advance one saga, and no state is stored
-- without its commands. `version` counts the changes (1 = started); updates
-- also check it, as a second line of defence.
CREATE TABLE saga (
    saga_id    uuid        PRIMARY KEY,
    status     text        NOT NULL,
    state      jsonb       NOT NULL,
    deadline   timestamptz,
    version    bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT saga_status_known CHECK (status IN (
        'RESERVING_INVENTORY', 'AUTHORIZING_PAYMENT', 'COMMITTING_INVENTORY',
        'VOIDING_PAYMENT', 'RELEASING_INVENTORY', 'APPROVED', 'REJECTED')),
    CONSTRAINT saga_status_matches_state CHECK (state ->> 'state' = status),
    CONSTRAINT saga_deadline_while_running CHECK (
        (deadline IS NULL) = (status IN ('APPROVED', 'REJECTED')))
);
