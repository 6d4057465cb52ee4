//! The poll thread: the one thread that talks to the consumer group.
//!
//! It polls librdkafka without pause (so the member is never evicted for
//! not polling, however long a record retries), hands each record to its
//! partition's worker, stores the offsets the workers report, pauses and
//! resumes partitions, commits every `commit_interval`, and runs the
//! rebalance callbacks. It is a plain thread, not an async task: the
//! revocation callback blocks while revoked workers finish, and must not
//! block the async runtime those workers run on.

use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

use crate::error::ConsumerError;
use crate::message::RawRecord;
use crate::partitions::{Partitions, commit_stored};
use crate::rebalance::GroupContext;

/// Longest a poll blocks: how soon reports and a shutdown are noticed.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The poll thread's timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) commit_interval: Duration,
    pub(crate) in_flight_grace: Duration,
    pub(crate) close_timeout: Duration,
}

/// Polls until `cancel` fires (or a fatal error), then stops every worker
/// within `in_flight_grace`, commits, and leaves the group.
pub(crate) fn run(
    consumer: BaseConsumer<GroupContext>,
    cancel: CancellationToken,
    timing: Timing,
) -> Result<(), ConsumerError> {
    let stats = consumer.context().stats.clone();
    let mut last_commit = Instant::now();
    let result = loop {
        if cancel.is_cancelled() {
            break Ok(());
        }
        {
            let mut guard = partitions(&consumer);
            let Some(p) = guard.as_mut() else { break Err(ConsumerError::Close("not started".into())) };
            p.drain(&consumer);
            if let Some(why) = p.broken.take() {
                break Err(ConsumerError::Fatal(why));
            }
            let due = timing.commit_interval.is_zero() || last_commit.elapsed() >= timing.commit_interval;
            if p.uncommitted && due {
                commit_stored(&consumer, CommitMode::Async, &stats);
                p.uncommitted = false;
                last_commit = Instant::now();
            }
        }
        let record = match consumer.poll(POLL_INTERVAL) {
            None => continue,
            Some(Ok(m)) => RawRecord::from_kafka(&m),
            // Fenced by a member with our group.instance.id, or another
            // error librdkafka cannot recover from: the client is dead.
            Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                let fatal = consumer.client().fatal_error().map(|(_, reason)| reason);
                let reason = fatal.unwrap_or_else(|| e.to_string());
                tracing::error!(%reason, "fatal consumer error; stopping");
                break Err(ConsumerError::Fatal(reason));
            }
            Some(Err(e)) => {
                // Broker and transport trouble: librdkafka recovers by itself.
                tracing::warn!(error = %e, "consumer error");
                continue;
            }
        };
        if let Some(p) = partitions(&consumer).as_mut() {
            p.dispatch(&consumer, record);
        }
    };
    tracing::info!("shutting down: finishing in-flight records, committing offsets, leaving the group");
    if let Some(p) = partitions(&consumer).as_mut() {
        let all = p.partitions();
        p.stop_and_wait(&consumer, &all, timing.in_flight_grace, true);
    }
    commit_stored(&consumer, CommitMode::Sync, &stats);
    let closed = close(&consumer, timing.close_timeout);
    // Once closed, dropping only frees the client.
    drop(consumer);
    result.and(closed)
}

/// Leaves the group (the revocation callback runs, with nothing left to
/// wait for) within `timeout`.
fn close(consumer: &BaseConsumer<GroupContext>, timeout: Duration) -> Result<(), ConsumerError> {
    consumer.context().closing.store(true, std::sync::atomic::Ordering::Relaxed);
    consumer.close_queue().map_err(|e| ConsumerError::Close(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while !consumer.closed() {
        if Instant::now() >= deadline {
            return Err(ConsumerError::Close(format!("did not leave the group within {timeout:?}")));
        }
        // Records still arriving are dropped: they were never stored.
        let _ = consumer.poll(POLL_INTERVAL);
    }
    tracing::info!("consumer closed");
    Ok(())
}

fn partitions(consumer: &BaseConsumer<GroupContext>) -> MutexGuard<'_, Option<Partitions>> {
    consumer.context().partitions.lock().unwrap_or_else(|e| e.into_inner())
}
