//! Cleanup: published rows older than the retention are deleted in bounded
//! batches (short transactions, `SKIP LOCKED`, so writers and other relays
//! never wait on it), and key-position rows that can no longer matter are
//! dropped the same way.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::OutboxError;
use crate::wakeup::sleep_or_cancel;

// A lane's head (lowest positions) holds its oldest published rows, so a
// bounded index scan from the head finds what retention allows to go; it stops
// at the first young rows instead of walking the whole table. A cursor ahead
// of the transaction ids (a restored database, see 0006) covers rows that
// were never published: such a lane is left alone.
const DELETE_PUBLISHED: &str = r#"
DELETE FROM outbox WHERE (lane, pos, id) IN (
    SELECT o.lane, o.pos, o.id FROM outbox o
    WHERE o.lane = $1 AND (o.pos, o.id) <= (SELECT cursor_pos, cursor_id FROM outbox_lanes WHERE lane = $1
                                             AND cursor_pos <= pg_snapshot_xmin(pg_current_snapshot()))
    ORDER BY o.pos, o.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
  AND created_at < now() - $2 * interval '1 millisecond'
"#;

/// Deletes up to `$1` key-position rows below every lane's cursor (the
/// statement cleanup runs; public so that tests can EXPLAIN it).
///
/// A key's position row may go once every lane's cursor is past it: all the
/// key's rows were then published, and the key's next writer gets its own
/// transaction id as position, which is above every cursor. The repeated
/// `pos <` test is re-checked against a concurrently updated row, so a writer
/// that just took the key keeps its row. The index `outbox_keys_pos`
/// (migration 0008) serves the range.
pub const DELETE_KEYS: &str = r#"
WITH bound AS (
    SELECT min(cursor_pos) AS pos FROM outbox_lanes
    WHERE lane < (SELECT lanes FROM outbox_settings)
    HAVING max(cursor_pos) <= pg_snapshot_xmin(pg_current_snapshot()))
DELETE FROM outbox_keys WHERE msg_key IN (
    SELECT msg_key FROM outbox_keys WHERE pos < (SELECT pos FROM bound)
    LIMIT $1 FOR UPDATE SKIP LOCKED)
  AND pos < (SELECT pos FROM bound)
"#;

/// Deletes, per lane, up to `max_batches` batches of `batch` published rows
/// older than `retention`, plus stale key rows. Returns the number of outbox rows deleted.
pub async fn cleanup_once(
    pool: &PgPool,
    retention: Duration,
    batch: i64,
    max_batches: usize,
) -> Result<u64, OutboxError> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let lanes: Vec<i32> = sqlx::query_scalar("SELECT lane FROM outbox_lanes ORDER BY lane")
        .fetch_all(pool)
        .await
        .map_err(OutboxError::Cleanup)?;
    let mut total = 0;
    for lane in lanes {
        for _ in 0..max_batches {
            let n = sqlx::query(DELETE_PUBLISHED)
                .bind(lane)
                .bind(retention_ms)
                .bind(batch)
                .execute(pool)
                .await
                .map_err(OutboxError::Cleanup)?
                .rows_affected();
            total += n;
            if n < batch as u64 {
                break;
            }
        }
    }
    for _ in 0..max_batches {
        let n = sqlx::query(DELETE_KEYS)
            .bind(batch)
            .execute(pool)
            .await
            .map_err(OutboxError::Cleanup)?
            .rows_affected();
        if n < batch as u64 {
            break;
        }
    }
    Ok(total)
}

/// Runs [`cleanup_once`] every `interval` until `cancel`.
pub(crate) async fn run(
    pool: PgPool,
    retention: Duration,
    batch: i64,
    interval: Duration,
    cancel: CancellationToken,
) {
    while !sleep_or_cancel(interval, &cancel).await {
        match cleanup_once(&pool, retention, batch, 100).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "outbox cleanup"),
            Err(e) => tracing::warn!(error = %e, "outbox cleanup failed; will retry"),
        }
    }
}
