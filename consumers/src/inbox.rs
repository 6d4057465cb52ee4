//! The inbox: the table that turns at-least-once delivery into
//! exactly-once effects.
//!
//! Before the handler runs, the runtime inserts `(consumer name, event id)`
//! into `consumer_inbox` in the handler's transaction. If the row already
//! exists, the event was applied before (a redelivery after a crash, a
//! rebalance, or a producer that re-sent it) and the handler is skipped. If
//! another transaction inserted the same key and has not committed yet, the
//! insert waits for it: the primary key serialises concurrent deliveries of
//! one event, so exactly one of them applies it.
//!
//! The table is created by this crate's migrations ([`migrate`]), tracked in
//! their own history table ([`MIGRATIONS_TABLE`]) so that several crates'
//! migrations can share one database without their version numbers clashing.

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::ConsumerError;
use crate::message::InboundMessage;

/// Name of the table in which this crate's migrations record themselves.
pub const MIGRATIONS_TABLE: &str = "_consumers_migrations";

/// This crate's migrations (`consumers/migrations/*.sql`), tracked in
/// [`MIGRATIONS_TABLE`].
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!();
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// Creates or upgrades the inbox table.
pub async fn migrate(pool: &PgPool) -> Result<(), ConsumerError> {
    migrator().run(pool).await.map_err(ConsumerError::Migrate)
}

/// Result of recording an event in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxEntry {
    /// First time this consumer sees the event: run the handler.
    New,
    /// Already applied by this consumer: skip it.
    Duplicate,
}

/// Records `message` as applied by `consumer`, inside `tx`. Must run before
/// the handler, in the same transaction as its effect.
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    message: &InboundMessage,
) -> Result<InboxEntry, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO consumer_inbox \
             (consumer_name, event_id, message_type, topic, kafka_partition, kafka_offset) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (consumer_name, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(message.envelope.event_id)
    .bind(&message.envelope.message_type)
    .bind(&message.topic)
    .bind(message.partition)
    .bind(message.offset)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(if inserted == 1 { InboxEntry::New } else { InboxEntry::Duplicate })
}

/// Records every message of a batch as applied by `consumer`, inside `tx`,
/// in ONE statement; returns the event ids that were new. An id that occurs
/// twice in the batch is returned once: the first record with it applies,
/// the later ones are duplicates. Must run before the handler calls, in the
/// same transaction as their effects.
pub async fn record_batch(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    messages: &[InboundMessage],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = messages.iter().map(|m| m.envelope.event_id).collect();
    let types: Vec<&str> = messages.iter().map(|m| m.envelope.message_type.as_str()).collect();
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    let partitions: Vec<i32> = messages.iter().map(|m| m.partition).collect();
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
    let new: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO consumer_inbox \
             (consumer_name, event_id, message_type, topic, kafka_partition, kafka_offset) \
         SELECT $1, e.* FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::int4[], $6::int8[]) \
             AS e(event_id, message_type, topic, kafka_partition, kafka_offset) \
         ON CONFLICT (consumer_name, event_id) DO NOTHING \
         RETURNING event_id",
    )
    .bind(consumer)
    .bind(&ids)
    .bind(&types)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .fetch_all(&mut **tx)
    .await?;
    Ok(new.into_iter().collect())
}

/// Whether `consumer` has applied `event_id` (committed rows only).
pub async fn contains(
    conn: &mut sqlx::PgConnection,
    consumer: &str,
    event_id: uuid::Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM consumer_inbox WHERE consumer_name = $1 AND event_id = $2)",
    )
    .bind(consumer)
    .bind(event_id)
    .fetch_one(conn)
    .await
}
