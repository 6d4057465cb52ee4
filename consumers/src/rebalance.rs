//! Consumer-group membership: commit on revocation.
//!
//! The runtime processes one record at a time, and librdkafka only runs
//! rebalance callbacks inside a poll, which the runtime only makes between
//! records. So when a partition is revoked, no record of it is half done:
//! every finished record's offset is already in librdkafka's offset store, and
//! committing that store synchronously before giving the partition up hands
//! the next owner the exact position. Whatever still slips through (a commit
//! that fails, a member evicted for not polling, the broker handing one
//! partition to two members, as tansu does after some rebalances) is a
//! redelivery, and the inbox skips it.

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::stats::Stats;

/// The librdkafka context of a runtime consumer.
pub(crate) struct GroupContext {
    pub(crate) stats: Stats,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                if consumer.assignment_lost() {
                    // Another member may own these partitions already; a commit
                    // could move its position. The inbox covers the replay.
                    tracing::warn!(partitions = %describe(tpl), "assignment lost; not committing");
                    return;
                }
                tracing::info!(partitions = %describe(tpl), "partitions revoked; committing stored offsets");
                commit_stored(consumer, CommitMode::Sync, &self.stats);
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = %describe(tpl), "partitions assigned")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
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

/// Commits the offsets stored so far. "Nothing to commit" is not an error;
/// other failures are logged: a missed commit only causes redeliveries.
pub(crate) fn commit_stored<C: Consumer<GroupContext>>(consumer: &C, mode: CommitMode, stats: &Stats) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => {
            if matches!(mode, CommitMode::Sync) {
                stats.committed();
            }
        }
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "offset commit failed; records may be redelivered"),
    }
}

/// Stores `offset + 1` (the next record to read) for a finished record.
pub(crate) fn store_next<C: Consumer<GroupContext>>(consumer: &C, topic: &str, partition: i32, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    let next = rdkafka::Offset::Offset(offset + 1);
    if let Err(e) =
        tpl.add_partition_offset(topic, partition, next).and_then(|()| consumer.store_offsets(&tpl))
    {
        // Typically the partition was revoked while the record was processed
        // (the member was evicted); the new owner replays it and the inbox
        // skips it.
        tracing::warn!(error = %e, topic, partition, offset, "cannot store offset");
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect::<Vec<_>>().join(",")
}
