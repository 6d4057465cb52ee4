//! [`ReplyWatch`]: reads, for the [`Horizon`](crate::horizon::Horizon), the
//! end offsets of the reply topics and the orchestrator group's committed
//! offsets on them.
//!
//! It is a plain Kafka client with the group's id that never subscribes, so
//! it is not a member and never takes partitions from the orchestrator's
//! consumer; reading a group's committed offsets does not need membership.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use consumers::ConsumerConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::horizon::{PartitionKey, PartitionOffsets};

/// The reply topics of the order saga: what its steps' answers arrive on.
pub const REPLY_TOPICS: [&str; 2] = [events::topics::INVENTORY_REPLIES, events::topics::PAYMENT_REPLIES];

/// A failed look at the reply topics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// Creating the client failed (a configuration the consumer accepted
    /// should not fail here).
    #[error("creating the reply watch client: {0}")]
    Create(#[source] KafkaError),
    /// The broker did not answer a metadata, offset or group request.
    #[error("reading {what} of the reply topics: {source}")]
    Read {
        /// Which request.
        what: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A reply topic has no partitions in the metadata (not created yet).
    #[error("reply topic {0} has no partitions")]
    NoPartitions(String),
    /// The blocking task running the requests was lost.
    #[error("the reply watch task failed: {0}")]
    Task(String),
}

/// Reads the offsets the [`Horizon`](crate::horizon::Horizon) needs.
#[derive(Clone)]
pub struct ReplyWatch {
    client: Arc<BaseConsumer>,
    topics: Vec<String>,
    timeout: Duration,
}

impl std::fmt::Debug for ReplyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyWatch").field("topics", &self.topics).finish_non_exhaustive()
    }
}

impl ReplyWatch {
    /// A watch over `topics` for the group of `consumer` (same cluster, same
    /// connection settings, no static membership).
    pub fn new(consumer: &ConsumerConfig, topics: &[&str]) -> Result<Self, WatchError> {
        let mut config = consumer.client_config();
        config.remove("group.instance.id").set("client.id", format!("{}-reply-watch", consumer.client_id));
        let client: BaseConsumer = config.create().map_err(WatchError::Create)?;
        Ok(ReplyWatch {
            client: Arc::new(client),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            timeout: Duration::from_secs(5),
        })
    }

    /// One look: every partition of every topic with its watermarks (read
    /// first) and the group's committed offset (read after).
    pub async fn look(&self) -> Result<BTreeMap<PartitionKey, PartitionOffsets>, WatchError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.look_blocking())
            .await
            .map_err(|e| WatchError::Task(e.to_string()))?
    }

    fn look_blocking(&self) -> Result<BTreeMap<PartitionKey, PartitionOffsets>, WatchError> {
        let read = |what| move |source| WatchError::Read { what, source };
        let mut tpl = TopicPartitionList::new();
        let mut found = BTreeMap::new();
        for topic in &self.topics {
            let metadata = self.client.fetch_metadata(Some(topic), self.timeout).map_err(read("metadata"))?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(WatchError::NoPartitions(topic.clone()));
            }
            for partition in partitions {
                let (low, high) = self
                    .client
                    .fetch_watermarks(topic, partition, self.timeout)
                    .map_err(read("watermarks"))?;
                found.insert((topic.clone(), partition), PartitionOffsets { low, high, committed: None });
                tpl.add_partition(topic, partition);
            }
        }
        let committed =
            self.client.committed_offsets(tpl, self.timeout).map_err(read("committed offsets"))?;
        for element in committed.elements() {
            if let (Some(entry), Offset::Offset(offset)) =
                (found.get_mut(&(element.topic().to_owned(), element.partition())), element.offset())
            {
                entry.committed = Some(offset);
            }
        }
        Ok(found)
    }
}
