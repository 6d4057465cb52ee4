//! Consumer-group membership: what happens when partitions come and go.
//!
//! librdkafka runs the rebalance callback on the poll thread, inside a
//! poll. On revocation the member stops the revoked partitions' workers: no
//! new record or attempt starts there, a backoff in progress ends at once,
//! and the transaction in flight gets `rebalance_grace` to finish. The
//! callback waits for them (bounded by that grace), stores the offsets of
//! what they finished, and commits synchronously before giving the
//! partitions up, so the next owner starts at the exact position. A worker
//! still busy after the grace can no longer store anything (see
//! [`crate::assignment`]); its record is redelivered to the next owner,
//! whose inbox insert waits for this member's transaction and then skips
//! the event if it committed. When the assignment was *lost* (the member
//! was cut off and evicted), nothing is stored or committed: another member
//! may own the partitions already.
//!
//! A retry in progress therefore delays the group's rebalance by at most
//! `rebalance_grace`, never by the retry policy's length.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::partitions::{Partitions, commit_stored};
use crate::stats::Stats;

/// The librdkafka context of a runtime consumer.
pub(crate) struct GroupContext {
    pub(crate) stats: Stats,
    /// The workers; installed when the consumer starts running.
    pub(crate) partitions: Mutex<Option<Partitions>>,
    /// How long a revoked partition's transaction in flight may still take.
    pub(crate) rebalance_grace: Duration,
    /// Set while the consumer leaves the group: its last revocation is not
    /// a rebalance.
    pub(crate) closing: AtomicBool,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let lost = consumer.assignment_lost();
                if lost {
                    tracing::warn!(partitions = %describe(tpl), "assignment lost; stopping without committing");
                } else {
                    tracing::info!(partitions = %describe(tpl), "partitions revoked; finishing and committing");
                }
                let revoked: Vec<_> =
                    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                if !self.closing.load(Ordering::Relaxed) {
                    self.stats.revoked(revoked.len());
                }
                if let Some(p) = self.partitions.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    p.stop_and_wait(consumer, &revoked, self.rebalance_grace, !lost);
                }
                if !lost {
                    commit_stored(consumer, CommitMode::Sync, &self.stats);
                }
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = %describe(tpl), "partitions assigned")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // A partition paused under an earlier assignment must not stay
        // paused now that it gets a fresh worker.
        if let Rebalance::Assign(tpl) = rebalance
            && tpl.count() > 0
            && let Err(e) = consumer.resume(tpl)
        {
            tracing::debug!(error = %e, "resume after assignment");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = %describe(offsets), "offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, offsets = %describe(offsets), "offset commit failed")
            }
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect::<Vec<_>>().join(",")
}
