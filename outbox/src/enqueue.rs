//! [`enqueue`]: write a message into the outbox inside the caller's
//! transaction. The caller commits; a rolled-back transaction leaves nothing
//! behind, so nothing is published.

use events::OutgoingMessage;
use events::envelope::header;
use sqlx::{Postgres, Row, Transaction};

use crate::error::OutboxError;
use crate::trace;

/// The channel `enqueue` notifies (payload: the lane number) so that idle
/// relays wake at once. Only a hint: relays also poll.
pub const NOTIFY_CHANNEL: &str = "outbox";

/// Where a message was enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// Row id in `outbox`.
    pub id: i64,
    /// Lane (hash of the key modulo the number of lanes).
    pub lane: i32,
}

/// One statement: take the key's row lock and position, then insert the row,
/// then send the wake-up hint (delivered at commit, collapsed per lane).
const ENQUEUE: &str = r#"
WITH k AS (
    INSERT INTO outbox_keys AS k (msg_key, pos) VALUES ($3, pg_current_xact_id())
    ON CONFLICT (msg_key) DO UPDATE SET pos = GREATEST(k.pos, EXCLUDED.pos)
    RETURNING k.pos
)
INSERT INTO outbox (pos, lane, event_id, topic, msg_key, header_names, header_values,
                    payload, traceparent, tracestate)
SELECT k.pos, mod(hashtext($3)::bigint + 2147483648, s.lanes)::integer,
       $1, $2, $3, $4, $5, $6, $7, $8
FROM k, outbox_settings s
RETURNING id, lane, pg_notify('outbox', lane::text)::text AS notified
"#;

/// Writes `message` into the outbox as part of `tx`.
///
/// * The record key is `message.key` (the aggregate id); all rows of one key
///   are published in the order their transactions committed. Writers of one
///   key serialise on a row lock until they commit — enqueue late in the
///   transaction, and in a fixed key order if a transaction writes several
///   keys, to keep lock waits short and deadlock-free.
/// * Headers are the envelope's; when the envelope carries no `traceparent`,
///   the current span's OpenTelemetry context is captured instead (if any).
/// * Under REPEATABLE READ / SERIALIZABLE a concurrent writer of the same key
///   makes this fail with a serialization error: retry the transaction.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    message: &OutgoingMessage,
) -> Result<Enqueued, OutboxError> {
    let mut envelope = message.envelope.clone();
    if envelope.traceparent.is_none()
        && let Some((parent, state)) = trace::current_span_context()
    {
        envelope.traceparent = Some(parent);
        envelope.tracestate = state;
    }
    let (names, values): (Vec<String>, Vec<String>) =
        envelope.to_headers().into_iter().map(|(k, v)| (k.to_owned(), v)).unzip();
    debug_assert!(names.iter().any(|n| n == header::EVENT_ID));

    let row = sqlx::query(ENQUEUE)
        .bind(envelope.event_id)
        .bind(&message.topic)
        .bind(&message.key)
        .bind(&names)
        .bind(&values)
        .bind(&message.payload)
        .bind(&envelope.traceparent)
        .bind(&envelope.tracestate)
        .fetch_one(&mut **tx)
        .await
        .map_err(OutboxError::Enqueue)?;
    Ok(Enqueued {
        id: row.try_get("id").map_err(OutboxError::Enqueue)?,
        lane: row.try_get("lane").map_err(OutboxError::Enqueue)?,
    })
}
