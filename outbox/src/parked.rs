//! Parked rows, for operators: list them with their reason, re-send a key's
//! parked rows ([`requeue_parked`]), or discard one by row id
//! ([`discard_parked`]; its key stays blocked while other parked rows of it
//! remain).
//!
//! Re-send with [`requeue_parked`], never by enqueueing a copy by hand: a
//! copy enqueued while the key is still blocked is parked behind the
//! original (and discarding by event id would then delete both), and a copy
//! enqueued after discarding lets rows of the key that are still unpublished
//! go out before it.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::error::OutboxError;

/// A parked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRow {
    /// Original outbox row id.
    pub id: i64,
    /// Event id.
    pub event_id: Uuid,
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: String,
    /// Payload size in bytes.
    pub payload_len: i64,
    /// Why it was parked.
    pub reason: String,
    /// For a row held behind a rejected one: that row's event id.
    pub blocked_by: Option<Uuid>,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// Lists up to `limit` parked rows, oldest first.
pub async fn list_parked(pool: &PgPool, limit: i64) -> Result<Vec<ParkedRow>, OutboxError> {
    let rows = sqlx::query(
        "SELECT id, event_id, topic, msg_key, length(payload)::bigint AS payload_len, reason, blocked_by, parked_at \
         FROM outbox_parked ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(OutboxError::Parked)?;
    rows.iter()
        .map(|r| {
            Ok(ParkedRow {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                topic: r.try_get("topic")?,
                key: r.try_get("msg_key")?,
                payload_len: r.try_get("payload_len")?,
                reason: r.try_get("reason")?,
                blocked_by: r.try_get("blocked_by")?,
                parked_at: r.try_get("parked_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(OutboxError::Parked)
}

/// Discards the parked row with row id `id` (the original outbox row's id,
/// [`ParkedRow::id`]); returns whether it existed.
pub async fn discard_parked(pool: &PgPool, id: i64) -> Result<bool, OutboxError> {
    let n = sqlx::query("DELETE FROM outbox_parked WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(OutboxError::Parked)?
        .rows_affected();
    Ok(n > 0)
}

/// Enqueues every parked row of `key` again, in original order and behind
/// nothing of the key that is still unpublished, and removes them from the
/// parked rows, in one transaction (`outbox_requeue_parked`, migration
/// 0007); safe while relays run and writers write the key. Each row keeps
/// its event id. Returns the number of rows enqueued (0: nothing parked).
/// Fix the cause first, or the rows are parked again.
pub async fn requeue_parked(pool: &PgPool, key: &str) -> Result<i64, OutboxError> {
    sqlx::query_scalar("SELECT outbox_requeue_parked($1)")
        .bind(key)
        .fetch_one(pool)
        .await
        .map_err(OutboxError::Parked)
}
