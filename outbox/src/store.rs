//! The relay's SQL: read lanes' next batches below the snapshot watermark
//! (several lanes in one statement), and record a batch's outcome (cursor
//! move and parked rows) under the lane's lease epoch.
//!
//! Positions are `xid8` in the database and `i64` here (cast through text):
//! transaction ids stay far below 2^63.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgExecutor;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::error::OutboxError;

/// A lane's read position: everything at or before it was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    /// Commit-order-safe position (`outbox.pos`).
    pub pos: i64,
    /// Row id, to order rows of one position (one transaction).
    pub id: i64,
}

/// One outbox row as the relay reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Position (see [`Cursor`]).
    pub pos: i64,
    /// Event id (also in the headers).
    pub event_id: Uuid,
    /// Destination topic.
    pub topic: String,
    /// Record key (aggregate id).
    pub key: String,
    /// Header names, parallel to `header_values`.
    pub header_names: Vec<String>,
    /// Header values.
    pub header_values: Vec<String>,
    /// Encoded body.
    pub payload: Vec<u8>,
    /// When the writing transaction started.
    pub created_at: DateTime<Utc>,
    /// Event id of the parked row this row's key is blocked behind, if any.
    pub blocked_by: Option<Uuid>,
}

impl OutboxRow {
    /// The row's cursor position.
    pub fn cursor(&self) -> Cursor {
        Cursor { pos: self.pos, id: self.id }
    }
}

/// A batch read from one lane.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The snapshot watermark the batch was read under: every transaction
    /// below it had ended.
    pub watermark: i64,
    /// Rows after the cursor with `pos < watermark`, in (pos, id) order.
    pub rows: Vec<OutboxRow>,
    /// Whether committed rows after the cursor wait for the watermark (an
    /// older transaction is still open): worth looking again soon.
    pub held_back: bool,
}

/// Reads several lanes under one snapshot: `$1..$3` are parallel arrays of
/// lanes and cursors, one read each (`idx` says which). Each lane's rows come
/// from its own index range of the primary key, as if read alone. `held_back`
/// is computed once per lane (`OFFSET 0` keeps the planner from pulling it up
/// into the select list, where it ran once per row: 5 s for 8 lanes of 1,000
/// rows instead of 24 ms).
const FETCH_LANES: &str = r#"
WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT c.idx, s.xmin::text::bigint AS watermark, w.held_back, o.*
FROM s CROSS JOIN unnest($1::int[], $2::bigint[], $3::bigint[])
                  WITH ORDINALITY AS c(lane, after_pos, after_id, idx)
CROSS JOIN LATERAL (
    SELECT EXISTS (SELECT 1 FROM outbox h WHERE h.lane = c.lane AND h.pos >= s.xmin
                     AND (h.pos, h.id) > (c.after_pos::text::xid8, c.after_id)) AS held_back
    OFFSET 0
) w
LEFT JOIN LATERAL (
    SELECT o.id, o.pos::text::bigint AS pos, o.event_id, o.topic, o.msg_key,
           o.header_names, o.header_values, o.payload, o.created_at,
           (SELECT p.event_id FROM outbox_parked p WHERE p.msg_key = o.msg_key
             ORDER BY p.id LIMIT 1) AS blocked_by
    FROM outbox o
    WHERE o.lane = c.lane
      AND (o.pos, o.id) > (c.after_pos::text::xid8, c.after_id)
      AND o.pos < s.xmin
    ORDER BY o.pos, o.id
    LIMIT $4
) o ON true
ORDER BY c.idx, o.pos, o.id
"#;

/// One lane read: the lane and the cursor to read after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneRead {
    /// Lane.
    pub lane: i32,
    /// Read rows after this position.
    pub after: Cursor,
}

/// Reads up to `limit` rows of each lane in `reads` (after its cursor), all
/// in one statement under one snapshot: one result per read, in order. A
/// failed statement fails every read with the same error.
pub async fn fetch_lanes(pool: &PgPool, reads: &[LaneRead], limit: i64) -> Vec<Result<Batch, OutboxError>> {
    match fetch_lanes_once(pool, reads, limit).await {
        Ok(batches) => batches.into_iter().map(Ok).collect(),
        Err(e) => {
            let source = Arc::new(e);
            reads.iter().map(|r| Err(OutboxError::Fetch { lane: r.lane, source: source.clone() })).collect()
        }
    }
}

async fn fetch_lanes_once(pool: &PgPool, reads: &[LaneRead], limit: i64) -> Result<Vec<Batch>, sqlx::Error> {
    let lanes: Vec<i32> = reads.iter().map(|r| r.lane).collect();
    let positions: Vec<i64> = reads.iter().map(|r| r.after.pos).collect();
    let ids: Vec<i64> = reads.iter().map(|r| r.after.id).collect();
    let rows =
        sqlx::query(FETCH_LANES).bind(&lanes).bind(&positions).bind(&ids).bind(limit).fetch_all(pool).await?;
    let mut batches = vec![Batch::default(); reads.len()];
    for r in rows {
        let idx: i64 = r.try_get("idx")?;
        let Some(batch) = usize::try_from(idx - 1).ok().and_then(|i| batches.get_mut(i)) else {
            return Err(sqlx::Error::Protocol(format!("lane read {idx} out of range")));
        };
        batch.watermark = r.try_get("watermark")?;
        batch.held_back = r.try_get("held_back")?;
        let Some(id) = r.try_get::<Option<i64>, _>("id")? else { continue };
        batch.rows.push(OutboxRow {
            id,
            pos: r.try_get("pos")?,
            event_id: r.try_get("event_id")?,
            topic: r.try_get("topic")?,
            key: r.try_get("msg_key")?,
            header_names: r.try_get("header_names")?,
            header_values: r.try_get("header_values")?,
            payload: r.try_get("payload")?,
            created_at: r.try_get("created_at")?,
            blocked_by: r.try_get("blocked_by")?,
        });
    }
    Ok(batches)
}

/// A row to move into `outbox_parked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    /// Row id.
    pub id: i64,
    /// Row position (with the lane and id, the row's key).
    pub pos: i64,
    /// Why (the broker's rejection, or "blocked behind ...").
    pub reason: String,
    /// For rows held behind a rejected one: its event id.
    pub blocked_by: Option<Uuid>,
}

/// The lease a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseToken<'a> {
    /// Lane.
    pub lane: i32,
    /// Holder.
    pub owner: &'a str,
    /// Epoch of the grant.
    pub epoch: i64,
}

const PARK: &str = r#"
INSERT INTO outbox_parked (id, tx, pos, lane, event_id, topic, msg_key, header_names,
    header_values, payload, traceparent, tracestate, created_at, reason, blocked_by)
SELECT id, tx, pos, lane, event_id, topic, msg_key, header_names, header_values, payload,
       traceparent, tracestate, created_at, $2, $3
FROM outbox WHERE lane = $4 AND pos = $5::bigint::text::xid8 AND id = $1
ON CONFLICT (id) DO NOTHING
"#;

/// Records a batch's outcome in one transaction: parks `parked`, moves the
/// lane's cursor to `to` and extends the lease by `lease_ms` — only if the
/// lease is still `lease`'s (else [`OutboxError::LeaseLost`] and nothing is
/// written).
pub async fn commit(
    pool: &PgPool,
    lease: LeaseToken<'_>,
    to: Cursor,
    parked: &[Park],
    lease_ms: i64,
) -> Result<(), OutboxError> {
    let lane = lease.lane;
    let err = |source| OutboxError::Commit { lane, source: Arc::new(source) };
    let m = CursorMove { lane, epoch: lease.epoch, to };
    if parked.is_empty() {
        // The common case: one autocommit statement, so the relay holds a
        // transaction id (which holds back every relay's watermark) only for
        // the statement itself.
        let moved = advance(pool, lease.owner, &[m], lease_ms).await.map_err(err)?;
        return made(&moved, &m);
    }
    let mut tx = pool.begin().await.map_err(err)?;
    // The lane row first: `outbox_requeue_parked` (0007) takes it before it
    // moves a key's rows, so a parking either commits before it (and its
    // rows are moved) or runs after it and finds the moved rows gone.
    let moved = advance(&mut *tx, lease.owner, &[m], lease_ms).await.map_err(err)?;
    // On `Err`, dropping `tx` writes nothing.
    made(&moved, &m)?;
    for p in parked {
        sqlx::query(PARK)
            .bind(p.id)
            .bind(&p.reason)
            .bind(p.blocked_by)
            .bind(lane)
            .bind(p.pos)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

/// A cursor move of one lane, made under the lease `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorMove {
    /// Lane.
    pub lane: i32,
    /// Epoch of the lease the move is made under.
    pub epoch: i64,
    /// New cursor.
    pub to: Cursor,
}

/// Moves one or several lanes' cursors in one statement and extends their
/// leases, each only under its owner and epoch and never backwards (the one
/// cursor write, used by [`commit`] and [`advance_lanes`]): a lane whose
/// cursor is already past the move keeps it, and still counts as moved —
/// everything up to the move is recorded. A lease is never shortened (a
/// renewal may have committed while a parking transaction, whose `now()` is
/// its start, was running). Rows are locked in lane order
/// first, as lease renewal locks them, so the relay's cursor moves and
/// renewals never deadlock.
const ADVANCE_LANES: &str = r#"
WITH m AS (
    SELECT lane, epoch, pos::text::xid8 AS pos, id
    FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) AS m(lane, epoch, pos, id)
), held AS (
    SELECT l.lane, m.pos, m.id FROM outbox_lanes l JOIN m ON m.lane = l.lane
    WHERE l.owner = $1 AND l.epoch = m.epoch
    ORDER BY l.lane
    FOR UPDATE OF l
)
UPDATE outbox_lanes l
SET cursor_pos = CASE WHEN (l.cursor_pos, l.cursor_id) <= (h.pos, h.id) THEN h.pos ELSE l.cursor_pos END,
    cursor_id = CASE WHEN (l.cursor_pos, l.cursor_id) <= (h.pos, h.id) THEN h.id ELSE l.cursor_id END,
    advanced_at = CASE WHEN (l.cursor_pos, l.cursor_id) <= (h.pos, h.id) THEN now() ELSE l.advanced_at END,
    high_id = GREATEST(l.high_id, h.id),
    lease_until = GREATEST(l.lease_until, now() + $6 * interval '1 millisecond')
FROM held h
WHERE l.lane = h.lane
RETURNING l.lane, l.epoch
"#;

/// Applies `moves` (no parking) as `owner` and extends each moved lane's
/// lease by `lease_ms`: one result per move, in order. A lane whose lease is
/// no longer `owner`'s at that epoch gets [`OutboxError::LeaseLost`] and
/// keeps its cursor; the other lanes move (a cursor already past its move
/// stays where it is: `Ok`). A failed statement fails every move with the
/// same error.
pub async fn advance_lanes(
    pool: &PgPool,
    owner: &str,
    moves: &[CursorMove],
    lease_ms: i64,
) -> Vec<Result<(), OutboxError>> {
    // A lane that did not wait for its last move may have several queued:
    // only the furthest of each (lane, epoch) is written (one UPDATE cannot
    // set a row twice), and every one of them is answered by its outcome.
    let mut by_lease: HashMap<(i32, i64), Cursor> = HashMap::with_capacity(moves.len());
    for m in moves {
        let to = by_lease.entry((m.lane, m.epoch)).or_insert(m.to);
        *to = (*to).max(m.to);
    }
    let furthest: Vec<CursorMove> =
        by_lease.into_iter().map(|((lane, epoch), to)| CursorMove { lane, epoch, to }).collect();
    match advance(pool, owner, &furthest, lease_ms).await {
        Ok(moved) => moves.iter().map(|m| made(&moved, m)).collect(),
        Err(e) => {
            let source = Arc::new(e);
            moves.iter().map(|m| Err(OutboxError::Commit { lane: m.lane, source: source.clone() })).collect()
        }
    }
}

/// Runs [`ADVANCE_LANES`] on `executor`; returns the (lane, epoch) pairs
/// whose cursor moved.
async fn advance<'e>(
    executor: impl PgExecutor<'e>,
    owner: &str,
    moves: &[CursorMove],
    lease_ms: i64,
) -> Result<Vec<(i32, i64)>, sqlx::Error> {
    let column = |f: fn(&CursorMove) -> i64| moves.iter().map(f).collect::<Vec<i64>>();
    let lanes: Vec<i32> = moves.iter().map(|m| m.lane).collect();
    sqlx::query_as(ADVANCE_LANES)
        .bind(owner)
        .bind(&lanes)
        .bind(column(|m| m.epoch))
        .bind(column(|m| m.to.pos))
        .bind(column(|m| m.to.id))
        .bind(lease_ms)
        .fetch_all(executor)
        .await
}

/// Whether `m` is among the `moved` (lane, epoch) pairs; if not, its lease
/// was lost.
fn made(moved: &[(i32, i64)], m: &CursorMove) -> Result<(), OutboxError> {
    match moved.contains(&(m.lane, m.epoch)) {
        true => Ok(()),
        false => Err(OutboxError::LeaseLost { lane: m.lane, epoch: m.epoch }),
    }
}

/// Backlog figures for the metrics: rows not yet past their lane's cursor and
/// the age of the oldest one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Backlog {
    /// Committed rows not yet published (or parked).
    pub rows: i64,
    /// Age of the oldest such row, in seconds (0 when none).
    pub oldest_age_secs: f64,
    /// Parked rows waiting for an operator.
    pub parked: i64,
}

const BACKLOG: &str = r#"
SELECT count(o.id) AS rows,
       COALESCE(EXTRACT(EPOCH FROM now() - min(o.created_at))::float8, 0) AS oldest,
       (SELECT count(*) FROM outbox_parked) AS parked
FROM outbox_lanes l
JOIN outbox o ON o.lane = l.lane AND (o.pos, o.id) > (l.cursor_pos, l.cursor_id)
"#;

/// Measures the backlog (one query; cost grows with the backlog itself).
pub async fn backlog(pool: &PgPool) -> Result<Backlog, OutboxError> {
    let r = sqlx::query(BACKLOG).fetch_one(pool).await.map_err(OutboxError::Measure)?;
    Ok(Backlog {
        rows: r.try_get("rows").map_err(OutboxError::Measure)?,
        oldest_age_secs: r.try_get("oldest").map_err(OutboxError::Measure)?,
        parked: r.try_get("parked").map_err(OutboxError::Measure)?,
    })
}
