//! `saga-orchestrator`: connect, migrate, run the order saga's orchestrator
//! until SIGTERM/SIGINT. Its commands go to the outbox; run `saga relay` on
//! the same database to publish them.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use saga_orchestrator::{Orchestrator, OrchestratorConfig, SagaConfig, TOPICS};

#[derive(Parser)]
#[command(
    about = "Runs the order saga: consumes order events and replies, stores sagas, sends commands through the outbox"
)]
struct Config {
    /// PostgreSQL URL of the orchestrator's database (sagas, inbox, outbox).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The Kafka cluster.
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Consumer group; instances with the same group share the partitions.
    #[arg(long, env = "GROUP_ID", default_value = OrchestratorConfig::DEFAULT_GROUP_ID)]
    group_id: String,
    /// How long a step's first attempt waits for its reply, in milliseconds.
    #[arg(long, env = "STEP_TIMEOUT_MS", default_value_t = 30_000)]
    step_timeout_ms: u64,
    /// Sends of a compensation without a reply before the saga stops in
    /// COMPENSATION_FAILED for an operator.
    #[arg(long, env = "COMPENSATION_ATTEMPTS", default_value_t = SagaConfig::default().compensation_attempts)]
    compensation_attempts: u32,
    /// Sends of a retriable step (stock commit, payment capture) without a
    /// reply before the saga stops in COMPLETION_FAILED for an operator.
    #[arg(long, env = "RETRY_ATTEMPTS", default_value_t = SagaConfig::default().retry_attempts)]
    retry_attempts: u32,
    /// First-attempt timeouts of single steps, overriding STEP_TIMEOUT_MS for
    /// them: `STEP=DURATION` pairs, e.g. `AUTHORIZE_PAYMENT=10s,COMMIT_INVENTORY=2m`.
    #[arg(long, env = "STEP_TIMEOUTS", default_value = "", value_parser = SagaConfig::parse_step_timeouts)]
    step_timeouts: std::collections::BTreeMap<saga_orchestrator::Step, Duration>,
    /// How often overdue sagas are timed out, in milliseconds.
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 1_000)]
    sweep_interval_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("saga-orchestrator")?;
    let config = Config::parse();
    let mut orchestrator = OrchestratorConfig::new("", config.group_id.clone())
        .with_step_timeout(Duration::from_millis(config.step_timeout_ms));
    orchestrator.sweeper.interval = Duration::from_millis(config.sweep_interval_ms);
    orchestrator.saga.compensation_attempts = config.compensation_attempts;
    orchestrator.saga.retry_attempts = config.retry_attempts;
    orchestrator.saga.step_timeouts = config.step_timeouts;
    orchestrator.consumer =
        consumers::ConsumerConfig::for_service("saga-orchestrator", &config.kafka, config.group_id, &TOPICS)?;
    orchestrator.validate()?;
    config.kafka.verify(Duration::from_secs(10)).await?;

    let pool = sqlx::PgPool::connect(&config.database_url).await.context("connecting to the database")?;
    saga_orchestrator::migrate(&pool).await.context("migrating the database")?;
    let cancel = consumers::shutdown::on_signal().context("installing signal handlers")?;
    Orchestrator::new(pool, orchestrator)?.run(cancel).await.context("running the orchestrator")
}
