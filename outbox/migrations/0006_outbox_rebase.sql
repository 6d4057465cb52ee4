-- Positions ahead of the database's transaction ids, and the way back.
--
-- Transaction ids do not survive a dump/restore or a logical move to a new
-- cluster: they start again lower. Stored cursors and key positions then sit
-- above every new transaction id, and new rows sort behind them: a lane would
-- never read them and cleanup would delete them. The relay refuses to start
-- and a lane stops when it meets this (`outbox_positions_ahead`); an operator
-- recovers with `outbox_rebase()` (`saga outbox rebase`).
--
-- `high_id` is the highest row id a lane's cursor has been on (a cursor move
-- keeps the greatest): every row of the lane with a lower or equal id was
-- written before it, so after a move it tells rows written before the move
-- (ids are kept by a dump: the sequence is restored) from rows written after.
ALTER TABLE outbox_lanes ADD COLUMN high_id bigint NOT NULL DEFAULT 0;

-- What lies ahead of the next transaction id: lane cursors, key positions and
-- rows. Empty on a healthy database (every stored position was a transaction
-- id, or below the watermark, when it was written).
CREATE FUNCTION outbox_positions_ahead()
RETURNS TABLE (what text, lane integer, pos xid8)
LANGUAGE sql STABLE AS $$
    WITH s AS (SELECT pg_snapshot_xmax(pg_current_snapshot()) AS next)
    SELECT 'lane cursor', l.lane, l.cursor_pos FROM outbox_lanes l, s
     WHERE l.cursor_pos >= s.next AND l.lane < (SELECT lanes FROM outbox_settings)
    UNION ALL
    SELECT 'key position', NULL, k.pos
      FROM (SELECT pos FROM outbox_keys ORDER BY pos DESC LIMIT 1) k, s
     WHERE k.pos >= s.next
    UNION ALL
    SELECT 'row position', l.lane, r.pos
      FROM outbox_lanes l
      CROSS JOIN LATERAL (SELECT o.pos FROM outbox o WHERE o.lane = l.lane
                          ORDER BY o.pos DESC LIMIT 1) r, s
     WHERE r.pos >= s.next
$$;

-- Brings every position back below the transaction ids, publishing what was
-- not published and nothing out of order. Run it with every relay stopped.
--
-- Per lane, a row is published again if it was not published before the
-- move (after its lane's cursor) or may have been written after it (id above
-- the lane's `high_id` and cursor id). All of them get this transaction's id
-- as position: in (pos, id) order they follow their ids, which are in commit
-- order per key (ids are taken under the key's row lock), so every key keeps
-- its order. Rows that may have been published already go out again (same
-- event id: consumers drop them). The other rows were published: they move
-- to position 0, below the new cursor, and cleanup removes them after the
-- retention. Key positions become this transaction's id too, so the next
-- writer of a key follows its republished rows.
--
-- Returns the rows to be published again and the rows retired.
CREATE FUNCTION outbox_rebase(OUT republished bigint, OUT retired bigint)
LANGUAGE plpgsql AS $$
DECLARE
    here xid8 := pg_current_xact_id();
BEGIN
    -- Writers wait until this commits; relays must be stopped.
    LOCK TABLE outbox IN EXCLUSIVE MODE;
    PERFORM 1 FROM outbox_lanes FOR UPDATE;
    IF EXISTS (SELECT 1 FROM outbox_lanes WHERE owner IS NOT NULL AND lease_until > now()) THEN
        RAISE EXCEPTION 'outbox_rebase: a relay holds a lane lease; stop every relay first'
            USING ERRCODE = 'object_in_use';
    END IF;
    WITH moved AS (
        UPDATE outbox o
        SET pos = CASE WHEN o.id > GREATEST(l.high_id, l.cursor_id)
                         OR (o.pos, o.id) > (l.cursor_pos, l.cursor_id)
                       THEN here ELSE '0'::xid8 END
        FROM outbox_lanes l
        WHERE o.lane = l.lane
        RETURNING o.pos
    )
    SELECT count(*) FILTER (WHERE pos = here), count(*) FILTER (WHERE pos <> here)
      INTO republished, retired FROM moved;
    -- Everything at position 0 counts as published.
    UPDATE outbox_lanes SET cursor_pos = '0', cursor_id = 9223372036854775807, high_id = 0,
                            advanced_at = now();
    UPDATE outbox_keys SET pos = here;
END $$;
