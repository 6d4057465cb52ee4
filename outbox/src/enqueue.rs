//! [`enqueue`]: write a message into the outbox inside the caller's
//! transaction. The caller commits; a rolled-back transaction leaves nothing
//! behind, so nothing is published.

use events::OutgoingMessage;
use events::envelope::header;
use sqlx::{Postgres, Row, Transaction};

use crate::error::OutboxError;
use crate::trace;

/// The channel `enqueue` notifies (payload: the lane number) so that idle
/// relays wake at once. Only a hint: relays also poll. See [`set_notify`].
pub const NOTIFY_CHANNEL: &str = "outbox";

/// Where a message was enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// Row id in `outbox`.
    pub id: i64,
    /// Lane (hash of the key modulo the number of lanes).
    pub lane: i32,
}

/// One statement: take the key's row lock and position, insert the row, and
/// send the wake-up hint when `outbox_settings.notify` is on (delivered at
/// commit, collapsed per lane). Settings are read through scalar subqueries:
/// joined as a table, the planner's row estimate for them pushed the
/// statement's cost over `jit_above_cost`, and JIT compilation took ~11 ms of
/// every insert.
const ENQUEUE: &str = r#"
WITH k AS (
    INSERT INTO outbox_keys AS k (msg_key, pos) VALUES ($3, pg_current_xact_id())
    ON CONFLICT (msg_key) DO UPDATE SET pos = GREATEST(k.pos, EXCLUDED.pos)
    RETURNING k.pos
), row AS (
    INSERT INTO outbox (pos, lane, event_id, topic, msg_key, header_names, header_values,
                        payload, traceparent, tracestate)
    SELECT k.pos, mod(hashtext($3)::bigint + 2147483648, (SELECT lanes FROM outbox_settings))::integer,
           $1, $2, $3, $4, $5, $6, $7, $8
    FROM k
    RETURNING id, lane
)
SELECT row.id, row.lane,
       CASE WHEN (SELECT notify FROM outbox_settings) THEN pg_notify('outbox', row.lane::text)::text END
FROM row
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

/// Turns the wake-up hint on or off for every writer of this database (on by
/// default).
///
/// A transaction that sent a NOTIFY holds a database-wide lock from the start
/// of its commit to its end, WAL flush included: with `synchronous_commit=on`
/// notifying commits run one at a time, and a write-heavy service loses group
/// commit (docs/benchmarks.md measures it). With the hint off, relays find
/// new rows by polling: a lane that found rows reads again at every tick of
/// the relay's `trickle_interval` grid (the lanes' reads share a statement)
/// for 20 ticks, then backs off from `watermark_poll_interval` to
/// `poll_interval` while it finds none, so the first row after a quiet
/// spell waits up to `poll_interval` (plus one tick). Under a sustained
/// stream of commits the hint buys nothing and costs the writers, the server
/// and the relay's listener: at 1,000 commits/s, turning it off cut the
/// machine's CPU by about a tenth and lowered commit->ack latency
/// (docs/benchmarks.md).
pub async fn set_notify(pool: &sqlx::PgPool, enabled: bool) -> Result<(), OutboxError> {
    sqlx::query("UPDATE outbox_settings SET notify = $1")
        .bind(enabled)
        .execute(pool)
        .await
        .map_err(OutboxError::ConfigureNotify)?;
    Ok(())
}
