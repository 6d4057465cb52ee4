//! Parked rows, for operators: list them with their reason, or discard one
//! (which unblocks its key once no other parked row of the key remains).
//! A parked message can be re-sent by enqueueing it again (new position,
//! same event id) before discarding it.

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

/// Discards the parked row with `event_id`; returns whether it existed.
pub async fn discard_parked(pool: &PgPool, event_id: Uuid) -> Result<bool, OutboxError> {
    let n = sqlx::query("DELETE FROM outbox_parked WHERE event_id = $1")
        .bind(event_id)
        .execute(pool)
        .await
        .map_err(OutboxError::Parked)?
        .rows_affected();
    Ok(n > 0)
}
