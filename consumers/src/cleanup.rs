//! Inbox cleanup: deletes rows older than a retention window, in bounded
//! batches.
//!
//! # Choosing the retention
//!
//! An inbox row is what recognises a redelivered event. Once it is deleted, a
//! redelivery of that event is applied again. The retention must therefore be
//! longer than the longest time after which an event can still arrive again:
//!
//! * uncommitted offsets replayed after a crash or rebalance (seconds to
//!   minutes: the commit interval plus the session timeout);
//! * an outbox relay that re-sends a row it published but had not marked
//!   (as long as a relay can be down);
//! * an operator resetting a group's offsets or re-driving a dead-letter
//!   topic: up to the topic's `retention.ms` (Kafka's default is 7 days).
//!
//! The default, 14 days, covers a replay of a whole topic kept with Kafka's
//! default retention. If topics keep records longer and offsets may be
//! reset to the beginning, raise it to at least the topic retention.
//!
//! Each batch is its own short transaction, so cleanup never holds locks on
//! many rows or keeps a snapshot open for long.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// How long inbox rows are kept and how cleanup runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRetention {
    /// Rows whose `processed_at` is older than this are deleted. Must exceed
    /// the redelivery horizon (see the [module docs](self)).
    pub retention: Duration,
    /// At most this many rows per delete statement.
    pub batch_size: i64,
    /// Pause between cleanup runs in [`run`].
    pub interval: Duration,
}

impl Default for InboxRetention {
    fn default() -> Self {
        InboxRetention {
            retention: Duration::from_secs(14 * 24 * 3600),
            batch_size: 5_000,
            interval: Duration::from_secs(3600),
        }
    }
}

impl InboxRetention {
    /// Rejects a zero retention, batch size or interval.
    pub fn validate(&self) -> Result<(), String> {
        if self.retention.is_zero() {
            return Err("inbox retention must be longer than the redelivery horizon, not zero".into());
        }
        if self.batch_size <= 0 {
            return Err("inbox cleanup batch size must be positive".into());
        }
        if self.interval.is_zero() {
            return Err("inbox cleanup interval must be positive".into());
        }
        Ok(())
    }
}

/// Deletes at most `batch_size` rows older than `retention`; returns how many.
pub async fn delete_expired_batch(
    conn: &mut PgConnection,
    retention: Duration,
    batch_size: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM consumer_inbox WHERE (consumer_name, event_id) IN ( \
             SELECT consumer_name, event_id FROM consumer_inbox \
             WHERE processed_at < now() - make_interval(secs => $1) \
             ORDER BY processed_at \
             LIMIT $2)",
    )
    .bind(retention.as_secs_f64())
    .bind(batch_size)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes every expired row, one batch (one transaction) at a time, until a
/// batch comes back short. Returns the number of rows deleted.
pub async fn delete_expired(pool: &PgPool, retention: &InboxRetention) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let mut conn = pool.acquire().await?;
        let n = delete_expired_batch(&mut conn, retention.retention, retention.batch_size).await?;
        total += n;
        if n < retention.batch_size as u64 {
            return Ok(total);
        }
    }
}

/// Runs [`delete_expired`] every `retention.interval` until `cancel` fires.
/// Errors are logged and the next run tries again.
pub async fn run(pool: PgPool, retention: InboxRetention, cancel: CancellationToken) {
    loop {
        match delete_expired(&pool, &retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "inbox cleanup"),
            Err(e) => tracing::warn!(error = %e, "inbox cleanup failed; will retry"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(retention.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_retention_outlives_kafka_default_retention() {
        let d = InboxRetention::default();
        assert!(d.retention > Duration::from_secs(7 * 24 * 3600));
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn zero_values_are_rejected() {
        let zero = InboxRetention { retention: Duration::ZERO, ..Default::default() };
        assert!(zero.validate().is_err());
        let batch = InboxRetention { batch_size: 0, ..Default::default() };
        assert!(batch.validate().is_err());
        let interval = InboxRetention { interval: Duration::ZERO, ..Default::default() };
        assert!(interval.validate().is_err());
    }
}
