//! [`Orchestrator`]: the running orchestrator — the consumer that feeds
//! order events and replies to the [`SagaHandler`], and the timeout
//! [`Sweeper`] — until a [`CancellationToken`] fires.
//!
//! Its sweeper times a step out only once the group has applied every
//! reply that reached Kafka before the step's deadline (see
//! [`horizon`](crate::horizon)): replies waiting unread after downtime or
//! lag win over deadlines that passed meanwhile.
//!
//! The orchestrator sends nothing to Kafka itself: its commands go into the
//! outbox of its database, and an outbox relay (`saga relay`) publishes them.
//! Run as many instances as there are partitions, with one group id: they
//! split the topics' partitions, and the saga row lock keeps two of them from
//! advancing one saga even when a rebalance hands a partition to both.

use std::time::Duration;

use consumers::{Consumer, ConsumerConfig, ConsumerError, Stats};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::SagaConfig;
use crate::handler::{SagaHandler, TOPICS};
use crate::reply_watch::{REPLY_TOPICS, ReplyWatch, WatchError};
use crate::sweeper::{Sweeper, SweeperConfig};

/// Everything an [`Orchestrator`] needs besides its database pool.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// The consumer of [`TOPICS`]; its inbox name is the group id unless set.
    pub consumer: ConsumerConfig,
    /// Step timeouts and retry back-off of the sagas.
    pub saga: SagaConfig,
    /// How often overdue sagas are looked for.
    pub sweeper: SweeperConfig,
}

impl OrchestratorConfig {
    /// The consumer group (and inbox name) used when none is given.
    pub const DEFAULT_GROUP_ID: &'static str = "saga-orchestrator";

    /// Defaults for a cluster at `bootstrap_servers`, in consumer group
    /// `group_id`, subscribed to [`TOPICS`].
    pub fn new(bootstrap_servers: impl Into<String>, group_id: impl Into<String>) -> Self {
        let consumer = ConsumerConfig {
            client_id: "saga-orchestrator".into(),
            ..ConsumerConfig::new(bootstrap_servers, group_id, &TOPICS)
        };
        OrchestratorConfig { consumer, saga: SagaConfig::default(), sweeper: SweeperConfig::default() }
    }

    /// Sets the first-attempt step timeout, raising the retry cap to it if
    /// it was lower.
    pub fn with_step_timeout(mut self, step_timeout: Duration) -> Self {
        self.saga.step_timeout = step_timeout;
        self.saga.max_step_timeout = self.saga.max_step_timeout.max(step_timeout);
        self
    }

    /// Checks the three parts.
    pub fn validate(&self) -> Result<(), OrchestratorError> {
        self.consumer.validate().map_err(OrchestratorError::InvalidConfig)?;
        self.saga.validate().map_err(|e| OrchestratorError::InvalidConfig(e.to_string()))?;
        self.sweeper.validate().map_err(OrchestratorError::InvalidConfig)
    }
}

/// Why the orchestrator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// The configuration is unusable.
    #[error("invalid orchestrator configuration: {0}")]
    InvalidConfig(String),
    /// Creating the consumer failed.
    #[error("creating the consumer")]
    CreateConsumer(#[source] ConsumerError),
    /// The consumer failed to subscribe or to shut down cleanly.
    #[error("consuming order events and replies")]
    Consume(#[source] ConsumerError),
    /// Creating the client that watches the reply topics failed.
    #[error("creating the reply watch")]
    CreateWatch(#[source] WatchError),
    /// The sweeper task ended abnormally (it panicked).
    #[error("running the timeout sweeper: {0}")]
    Sweep(String),
}

/// The consumer and the sweeper of one orchestrator instance.
pub struct Orchestrator {
    consumer: Consumer<SagaHandler>,
    sweeper: Sweeper,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator").field("sweeper", &self.sweeper).finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// An orchestrator on `pool`, whose schema [`migrate`](crate::migrate)
    /// must have created. Nothing connects to Kafka until [`run`](Self::run).
    pub fn new(pool: PgPool, config: OrchestratorConfig) -> Result<Self, OrchestratorError> {
        config.validate()?;
        let handler = SagaHandler::new(config.saga.clone());
        let watch =
            ReplyWatch::new(&config.consumer, &REPLY_TOPICS).map_err(OrchestratorError::CreateWatch)?;
        let consumer = Consumer::new(config.consumer, pool.clone(), handler)
            .map_err(OrchestratorError::CreateConsumer)?;
        let sweeper = Sweeper::new(pool, config.saga, config.sweeper).watching(watch);
        Ok(Orchestrator { consumer, sweeper })
    }

    /// The consumer's counters (applied, duplicates, dead letters).
    pub fn stats(&self) -> Stats {
        self.consumer.stats()
    }

    /// Consumes and sweeps until `cancel` fires, then stops both: the
    /// consumer finishes (or rolls back) its record, commits its offsets and
    /// leaves the group; the sweeper finishes its sweep. If either stops on
    /// its own — the consumer on an error, the sweeper only by panicking —
    /// the other is stopped too and the error returned, so that a process
    /// whose sagas no longer advance or time out does not look healthy.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), OrchestratorError> {
        let Orchestrator { consumer, sweeper } = self;
        let stop = cancel.child_token();
        let mut sweeping = tokio::spawn(sweeper.run(stop.clone()));
        let consuming = consumer.run(stop.clone());
        tokio::pin!(consuming);
        tokio::select! {
            consumed = &mut consuming => {
                stop.cancel();
                let swept = sweeping.await;
                consumed.map_err(OrchestratorError::Consume)?;
                swept.map_err(|e| OrchestratorError::Sweep(e.to_string()))
            }
            swept = &mut sweeping => {
                if swept.is_ok() && cancel.is_cancelled() {
                    // The normal shutdown: the sweeper just stopped first.
                    return consuming.await.map_err(OrchestratorError::Consume);
                }
                tracing::error!(?swept, "the timeout sweeper stopped unexpectedly; stopping the consumer");
                stop.cancel();
                let consumed = consuming.await;
                let reason = match swept {
                    Err(e) => e.to_string(),
                    Ok(()) => "it stopped before it was cancelled".to_owned(),
                };
                consumed.map_err(OrchestratorError::Consume)?;
                Err(OrchestratorError::Sweep(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_subscribes_to_orders_and_replies_and_is_valid() {
        let config = OrchestratorConfig::new("127.0.0.1:9092", OrchestratorConfig::DEFAULT_GROUP_ID);
        assert!(config.validate().is_ok());
        assert_eq!(config.consumer.topics, ["orders.events", "inventory.replies", "payment.replies"]);
        assert_eq!(config.consumer.inbox_name(), "saga-orchestrator");
    }

    #[test]
    fn a_long_step_timeout_raises_the_retry_cap() {
        let config = OrchestratorConfig::new("k:9092", "g").with_step_timeout(Duration::from_secs(3600));
        assert_eq!(config.saga.max_step_timeout, Duration::from_secs(3600));
        assert!(config.validate().is_ok());
        let short = OrchestratorConfig::new("k:9092", "g").with_step_timeout(Duration::from_millis(200));
        assert_eq!(short.saga.max_step_timeout, SagaConfig::default().max_step_timeout);
    }

    #[test]
    fn invalid_parts_are_refused() {
        let mut config = OrchestratorConfig::new("k:9092", "g");
        config.sweeper.batch_size = 0;
        assert!(matches!(config.validate(), Err(OrchestratorError::InvalidConfig(r)) if r.contains("batch")));
        let config = OrchestratorConfig::new("k:9092", "g").with_step_timeout(Duration::ZERO);
        assert!(
            matches!(config.validate(), Err(OrchestratorError::InvalidConfig(r)) if r.contains("step_timeout"))
        );
        let config = OrchestratorConfig::new("k:9092", "");
        assert!(
            matches!(config.validate(), Err(OrchestratorError::InvalidConfig(r)) if r.contains("group_id"))
        );
    }
}
