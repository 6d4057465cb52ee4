//! The consumer: the poll loop, offset bookkeeping, and shutdown.
//!
//! Records are processed strictly one at a time, in the order librdkafka
//! returns them. That keeps per-partition (hence per-key) order, lets the
//! rebalance callback commit without coordinating with in-flight work (see
//! [`crate::rebalance`]), and keeps the offset rule simple: after a record is
//! finished (applied, skipped as a duplicate, or dead-lettered), the offset
//! after it goes to librdkafka's offset store; the store is committed every
//! `commit_interval`, on revocation and at shutdown. Throughput comes from
//! running more instances in the group (one per partition at most), not from
//! concurrency inside one.

use std::time::Duration;

use producers::{KafkaPublisher, ProducerConfig, Publisher};
use rdkafka::config::FromClientConfigAndContext as _;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use sqlx::PgPool;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerConfig;
use crate::error::ConsumerError;
use crate::handler::Handler;
use crate::message::RawRecord;
use crate::process::{Outcome, Pipeline};
use crate::rebalance::{self, GroupContext};
use crate::stats::Stats;

/// An at-least-once consumer whose handler's effects are applied once.
/// See the [crate docs](crate) for the delivery semantics.
pub struct Consumer<H, P = KafkaPublisher> {
    kafka: StreamConsumer<GroupContext>,
    topics: Vec<String>,
    commit_interval: Duration,
    close_timeout: Duration,
    pipeline: Pipeline<H, P>,
}

impl<H: Handler> Consumer<H, KafkaPublisher> {
    /// A consumer that publishes dead letters with an idempotent producer on
    /// the same cluster.
    pub fn new(config: ConsumerConfig, pool: PgPool, handler: H) -> Result<Self, ConsumerError> {
        let producer = ProducerConfig {
            bootstrap_servers: config.bootstrap_servers.clone(),
            client_id: format!("{}-dead-letters", config.client_id),
            overrides: config.connection.clone(),
            ..ProducerConfig::default()
        };
        let publisher = KafkaPublisher::new(&producer).map_err(ConsumerError::CreateDeadLetterPublisher)?;
        Self::with_publisher(config, pool, handler, publisher)
    }
}

impl<H: Handler, P: Publisher> Consumer<H, P> {
    /// A consumer that publishes dead letters through `dead_letters`.
    pub fn with_publisher(
        config: ConsumerConfig,
        pool: PgPool,
        handler: H,
        dead_letters: P,
    ) -> Result<Self, ConsumerError> {
        config.validate().map_err(ConsumerError::InvalidConfig)?;
        let stats = Stats::default();
        let kafka = StreamConsumer::from_config_and_context(
            &config.client_config(),
            GroupContext { stats: stats.clone() },
        )
        .map_err(ConsumerError::CreateConsumer)?;
        Ok(Consumer {
            kafka,
            topics: config.topics.clone(),
            commit_interval: config.commit_interval,
            close_timeout: config.close_timeout,
            pipeline: Pipeline {
                name: config.inbox_name().to_owned(),
                pool,
                handler,
                dead_letters,
                inbox: config.inbox,
                retry: config.retry,
                grace: config.in_flight_grace,
                stats,
            },
        })
    }

    /// Counters of this consumer, readable while [`run`](Self::run) runs.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats.clone()
    }

    /// Subscribes and processes records until `cancel` fires, then shuts
    /// down: no new record is fetched, the record in progress gets
    /// `in_flight_grace` to finish (otherwise it is rolled back and will be
    /// redelivered), stored offsets are committed and the consumer leaves its
    /// group within `close_timeout`.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), ConsumerError> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.kafka.subscribe(&topics).map_err(ConsumerError::Subscribe)?;
        tracing::info!(consumer = %self.pipeline.name, ?topics, "consuming");

        let period = self.commit_interval.max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut uncommitted = false;
        loop {
            let received = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = ticker.tick(), if uncommitted => {
                    rebalance::commit_stored(&self.kafka, CommitMode::Async, &self.pipeline.stats);
                    uncommitted = false;
                    continue;
                }
                m = self.kafka.recv() => m.map(|m| RawRecord::from_kafka(&m)),
            };
            let record = match received {
                Ok(r) => r,
                // Fenced by a member with our group.instance.id, or another
                // error librdkafka cannot recover from: the client is dead.
                Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => {
                    let fatal = self.kafka.client().fatal_error().map(|(_, reason)| reason);
                    let reason = fatal.unwrap_or_else(|| e.to_string());
                    tracing::error!(%reason, "fatal consumer error; stopping");
                    return Err(ConsumerError::Fatal(reason));
                }
                Err(e) => {
                    // librdkafka reports broker and transport trouble here and
                    // recovers by itself; keep polling.
                    tracing::warn!(error = %e, "consumer error");
                    continue;
                }
            };
            let outcome = self.pipeline.process(&record, &cancel).await;
            if !outcome.is_finished() {
                break;
            }
            debug_assert!(matches!(outcome, Outcome::Applied | Outcome::Duplicate | Outcome::DeadLettered));
            rebalance::store_next(&self.kafka, &record.topic, record.partition, record.offset);
            if self.commit_interval.is_zero() {
                rebalance::commit_stored(&self.kafka, CommitMode::Async, &self.pipeline.stats);
            } else {
                uncommitted = true;
            }
        }
        self.close().await
    }

    /// Commits stored offsets and leaves the group. librdkafka's close blocks,
    /// so it runs on a blocking thread, bounded by `close_timeout`.
    async fn close(self) -> Result<(), ConsumerError> {
        let Consumer { kafka, close_timeout, pipeline, .. } = self;
        let stats = pipeline.stats.clone();
        tracing::info!(consumer = %pipeline.name, "shutting down: committing offsets and leaving the group");
        let closing = tokio::task::spawn_blocking(move || {
            rebalance::commit_stored(&kafka, CommitMode::Sync, &stats);
            // Dropping the consumer closes it: the revocation callback runs
            // (committing again, a no-op) and the member leaves the group.
            drop(kafka);
        });
        match tokio::time::timeout(close_timeout, closing).await {
            Ok(Ok(())) => {
                tracing::info!(consumer = %pipeline.name, "consumer closed");
                Ok(())
            }
            Ok(Err(join)) => Err(ConsumerError::Close(join.to_string())),
            Err(_) => Err(ConsumerError::Close(format!("did not close within {close_timeout:?}"))),
        }
    }
}
