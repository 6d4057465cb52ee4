//! [`TopicLimits`]: each topic's `max.message.bytes`, asked of the broker
//! and kept for a minute, so that a lane refuses a record the topic would
//! refuse *before* sending it.
//!
//! The broker checks the limit against the record batch a produce request
//! carries, not against one record: a record over the limit sent together
//! with others makes the broker refuse all of them. Checked here, the record
//! is parked alone (its key queues behind it) and the rest of the batch goes
//! out. A record that is under the limit and is refused anyway (its produce
//! batch was over it) is sent again, not parked (`send.rs`). Keep a topic's
//! `max.message.bytes` at or above the producer's `batch.size` (librdkafka:
//! 1,000,000 by default; Kafka's default limit is 1,048,588), or batches of
//! small records can be refused again and again (a stalled lane, with an
//! alarm).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

use crate::store::OutboxRow;

/// How long a topic's limit is kept before it is asked again.
const KEEP: Duration = Duration::from_secs(60);
/// How old a limit may be that would refuse a record.
const FRESH: Duration = Duration::from_secs(1);
/// How long one question may take; without an answer no limit is checked.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes a record batch of one record adds to its key, value and headers
/// (the v2 batch header is 61 bytes; a record's own fields and varints at
/// most 21, each header's two lengths at most 10). Over-estimated a little,
/// so a record right at the limit may be refused here that the broker would
/// take.
const BATCH_OVERHEAD: usize = 61 + 21;
const HEADER_OVERHEAD: usize = 10;

/// The size of `row` as a record batch of its own, as the broker measures it
/// against `max.message.bytes` (no compression).
pub(crate) fn record_size(row: &OutboxRow) -> usize {
    let headers: usize = row
        .header_names
        .iter()
        .zip(&row.header_values)
        .map(|(k, v)| k.len() + v.len() + HEADER_OVERHEAD)
        .sum();
    BATCH_OVERHEAD + row.key.len() + row.payload.len() + headers
}

/// Topics' `max.message.bytes`, cached.
pub(crate) struct TopicLimits {
    admin: Option<AdminClient<DefaultClientContext>>,
    known: Mutex<HashMap<String, (Option<usize>, Instant)>>,
}

impl TopicLimits {
    /// Asks through `admin` (`None`: never checks a limit).
    pub(crate) fn new(admin: Option<AdminClient<DefaultClientContext>>) -> Self {
        TopicLimits { admin, known: Mutex::new(HashMap::new()) }
    }

    /// The known limits of the topics of `rows` (a topic whose limit could
    /// not be read is left out: its records are not checked). A limit that
    /// would refuse one of the rows is asked again first unless it is
    /// fresh: an operator who raised it and requeued the parked rows must
    /// not see them parked again on the old value.
    pub(crate) async fn of(&self, rows: &[OutboxRow]) -> HashMap<String, usize> {
        let mut largest: Vec<(&str, usize)> = Vec::new();
        for row in rows {
            let size = record_size(row);
            match largest.iter_mut().find(|(t, _)| *t == row.topic) {
                Some((_, max)) => *max = (*max).max(size),
                None => largest.push((&row.topic, size)),
            }
        }
        let mut limits = HashMap::new();
        for (topic, size) in largest {
            if let Some(limit) = self.limit(topic, size).await {
                limits.insert(topic.to_owned(), limit);
            }
        }
        limits
    }

    /// `topic`'s limit, asked again when older than [`KEEP`] — or than
    /// [`FRESH`] when it is below `size`, the largest record to check.
    async fn limit(&self, topic: &str, size: usize) -> Option<usize> {
        let cached = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(topic).copied();
        if let Some((limit, at)) = cached {
            let refuses = limit.is_some_and(|l| size > l);
            if at.elapsed() < if refuses { FRESH } else { KEEP } {
                return limit;
            }
        }
        let limit = self.ask(topic).await;
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), (limit, Instant::now()));
        limit
    }

    async fn ask(&self, topic: &str) -> Option<usize> {
        let admin = self.admin.as_ref()?;
        let opts = AdminOptions::new().request_timeout(Some(ASK_TIMEOUT));
        let spec = ResourceSpecifier::Topic(topic);
        let answer = tokio::time::timeout(ASK_TIMEOUT, admin.describe_configs([&spec], &opts)).await;
        let resource = match answer {
            Ok(Ok(mut results)) => results.pop().and_then(Result::ok),
            Ok(Err(e)) => {
                tracing::debug!(topic, error = %e, "outbox could not read the topic's max.message.bytes");
                None
            }
            Err(_) => None,
        }?;
        resource.get("max.message.bytes")?.value.as_deref()?.parse().ok()
    }
}
