//! The consumer: partitions in parallel, each in offset order.
//!
//! A [`Consumer`] runs one poll thread ([`crate::poll`]) and one async
//! worker per assigned partition ([`crate::worker`]). The poll thread hands
//! each record to its partition's worker; a worker applies its records in
//! offset order — whatever has arrived, up to `max_batch`, in one
//! transaction — and reports them finished; the poll thread then stores the
//! offset after them and commits every `commit_interval`. So:
//!
//! * records of different partitions are applied concurrently, at most
//!   `max_in_flight` transactions at once over all partitions;
//! * records of one partition (hence of one key) are applied one after the
//!   other, in offset order, always;
//! * the committed offset of a partition never passes a record that is not
//!   finished (applied, duplicate, or dead-lettered): a worker reports a
//!   record only once it is finished, and after everything before it.
//!
//! A record that keeps failing holds back its own partition only (later
//! records of its key, and of the other keys on that partition, wait; see
//! [`crate::dead_letter`] for what happens to them after it is
//! dead-lettered). The member's other partitions go on, and the poll thread
//! keeps polling, pausing the waiting partition once `max_buffered` of its
//! records are fetched, so a long retry never evicts the member.
//!
//! Beside the workers, the consumer runs the inbox cleanup
//! ([`crate::cleanup`], `inbox_retention`) for as long as it runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use producers::{KafkaPublisher, ProducerConfig, Publisher};
use rdkafka::config::FromClientConfigAndContext as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::assignment::{Assignment, Limits};
use crate::cleanup::{self, InboxRetention};
use crate::config::{ConsumerConfig, InboxMode};
use crate::error::ConsumerError;
use crate::handler::Handler;
use crate::partitions::{Partitions, Spawn};
use crate::poll::{self, Timing};
use crate::process::Pipeline;
use crate::rebalance::GroupContext;
use crate::retry::RetryPolicy;
use crate::stats::Stats;
use crate::worker::Worker;

/// Margin on top of `in_flight_grace + close_timeout` for the whole
/// shutdown: the workers' last reports and the thread's end.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// An at-least-once consumer whose handler's effects are applied once.
/// See the [crate docs](crate) for the delivery semantics.
pub struct Consumer<H, P = KafkaPublisher> {
    kafka: BaseConsumer<GroupContext>,
    topics: Vec<String>,
    timing: Timing,
    limits: Limits,
    max_batch: usize,
    cleanup: Option<InboxRetention>,
    /// Longest one record can hold its partition (logged at start).
    hold: Duration,
    pipeline: Arc<Pipeline<H, P>>,
}

impl<H: Handler + 'static> Consumer<H, KafkaPublisher> {
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

impl<H: Handler + 'static, P: Publisher + 'static> Consumer<H, P> {
    /// A consumer that publishes dead letters through `dead_letters`.
    pub fn with_publisher(
        config: ConsumerConfig,
        pool: PgPool,
        handler: H,
        dead_letters: P,
    ) -> Result<Self, ConsumerError> {
        config.validate().map_err(ConsumerError::InvalidConfig)?;
        let stats = Stats::default();
        let context = GroupContext {
            stats: stats.clone(),
            partitions: Mutex::new(None),
            rebalance_grace: config.rebalance_grace,
            closing: Default::default(),
        };
        let kafka = BaseConsumer::from_config_and_context(&config.client_config(), context)
            .map_err(ConsumerError::CreateConsumer)?;
        let dead_letter_retry = RetryPolicy {
            max_delay: config.dead_letter_max_delay.max(config.retry.initial_delay),
            ..config.retry.clone()
        };
        Ok(Consumer {
            kafka,
            topics: config.topics.clone(),
            timing: Timing {
                commit_interval: config.commit_interval,
                in_flight_grace: config.in_flight_grace,
                close_timeout: config.close_timeout,
            },
            limits: Limits::new(config.max_buffered),
            max_batch: config.max_batch,
            cleanup: config.inbox_retention.clone().filter(|_| config.inbox == InboxMode::Enabled),
            hold: config.worst_case_hold(),
            pipeline: Arc::new(Pipeline {
                name: config.inbox_name().to_owned(),
                pool,
                handler,
                dead_letters,
                inbox: config.inbox,
                retry: config.retry,
                dead_letter_retry,
                attempt_timeout: config.attempt_timeout,
                permits: Semaphore::new(config.max_in_flight),
                stats,
            }),
        })
    }

    /// Counters of this consumer, readable while [`run`](Self::run) runs.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats.clone()
    }

    /// Subscribes and processes records until `cancel` fires, then shuts
    /// down: no new record or attempt starts, the ones in progress get
    /// `in_flight_grace` to finish (otherwise they are rolled back and will
    /// be redelivered; a dead letter being published counts as in
    /// progress), stored offsets are committed and the consumer leaves its
    /// group within `close_timeout`. The whole shutdown takes at most
    /// `in_flight_grace + close_timeout` plus a second.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), ConsumerError> {
        let Consumer { kafka, topics, timing, limits, max_batch, cleanup, hold, pipeline } = self;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        kafka.subscribe(&names).map_err(ConsumerError::Subscribe)?;
        tracing::info!(
            consumer = %pipeline.name,
            topics = ?names,
            max_in_flight = pipeline.permits.available_permits(),
            max_batch,
            worst_case_hold = ?hold,
            "consuming",
        );

        let runtime = tokio::runtime::Handle::current();
        let stats = pipeline.stats.clone();
        let workers = pipeline.clone();
        let spawn: Spawn = Box::new(move |worker: Worker| {
            runtime.spawn(worker.run(workers.clone()));
        });
        let partitions = Partitions::new(Assignment::new(limits), spawn, max_batch, stats);
        *kafka.context().partitions.lock().unwrap_or_else(|e| e.into_inner()) = Some(partitions);

        let cleaning = cleanup.map(|retention| {
            tokio::spawn(cleanup::run(pipeline.pool.clone(), retention, cancel.child_token()))
        });
        let (done, finished) = tokio::sync::oneshot::channel();
        let stop = cancel.clone();
        std::thread::Builder::new()
            .name(format!("{}-poll", pipeline.name))
            .spawn(move || {
                let _ = done.send(poll::run(kafka, stop, timing));
            })
            .map_err(|e| ConsumerError::Close(format!("cannot start the poll thread: {e}")))?;

        let bound = timing.in_flight_grace + timing.close_timeout + SHUTDOWN_MARGIN;
        let result = tokio::select! {
            r = finished => r.unwrap_or_else(|_| Err(ConsumerError::Close("the poll thread panicked".into()))),
            _ = async { cancel.cancelled().await; tokio::time::sleep(bound).await } => {
                Err(ConsumerError::Close(format!("shutdown did not finish within {bound:?}")))
            }
        };
        // Workers still running past their deadline have been cut off;
        // closing the permits fails any attempt that was waiting for one.
        pipeline.permits.close();
        if let Some(task) = cleaning {
            // A delete in progress is one short transaction; rolled back if cut.
            task.abort();
        }
        result
    }
}
