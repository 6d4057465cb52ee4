-- Re-sending a key's parked rows, in order, in one transaction.
--
-- Takes the key's row lock (as enqueue does: the key's writers wait) and the
-- key's lane row (as the relay's cursor moves and parking transactions do:
-- they take it first, so a parking of this key either committed before and
-- its rows are here, or comes after and finds its rows gone). Then every
-- parked row of the key and every row of the key still after its lane's
-- cursor (not yet published: it would otherwise overtake the parked ones)
-- is enqueued again in original order (row ids are in commit order per key),
-- with its event id, headers and payload, at the key's next position; the
-- parked rows and the moved rows are removed. A key without parked rows is
-- left alone. Returns the number of rows enqueued.
CREATE FUNCTION outbox_requeue_parked(key text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    here xid8;
    key_lane integer;
    n bigint;
BEGIN
    INSERT INTO outbox_keys AS k (msg_key, pos) VALUES (key, pg_current_xact_id())
    ON CONFLICT (msg_key) DO UPDATE SET pos = GREATEST(k.pos, EXCLUDED.pos)
    RETURNING k.pos INTO here;
    key_lane := mod(hashtext(key)::bigint + 2147483648, (SELECT lanes FROM outbox_settings))::integer;
    PERFORM 1 FROM outbox_lanes WHERE lane = key_lane FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM outbox_parked WHERE msg_key = key) THEN
        RETURN 0;
    END IF;
    WITH parked AS (
        DELETE FROM outbox_parked WHERE msg_key = key
        RETURNING id, event_id, topic, msg_key, header_names, header_values, payload,
                  traceparent, tracestate, created_at
    ), pending AS (
        DELETE FROM outbox o USING outbox_lanes l
        WHERE o.lane = key_lane AND l.lane = key_lane AND o.msg_key = key
          AND (o.pos, o.id) > (l.cursor_pos, l.cursor_id)
        RETURNING o.id, o.event_id, o.topic, o.msg_key, o.header_names, o.header_values, o.payload,
                  o.traceparent, o.tracestate, o.created_at
    ), again AS (
        INSERT INTO outbox (pos, lane, event_id, topic, msg_key, header_names, header_values,
                            payload, traceparent, tracestate, created_at)
        SELECT here, key_lane, event_id, topic, msg_key, header_names, header_values, payload,
               traceparent, tracestate, created_at
        FROM (SELECT * FROM parked UNION ALL SELECT * FROM pending) r
        ORDER BY r.id
        RETURNING 1
    )
    SELECT count(*) INTO n FROM again;
    IF (SELECT notify FROM outbox_settings) THEN
        PERFORM pg_notify('outbox', key_lane::text);
    END IF;
    RETURN n;
END $$;
