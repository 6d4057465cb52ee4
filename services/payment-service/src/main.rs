//! `payment-service`: connect, migrate, consume until SIGTERM/SIGINT.
//! Replies are published by a separate `saga relay` on the same database.

use anyhow::Context;
use clap::Parser;
use payment_service::PaymentHandler;

#[derive(Parser)]
#[command(about = "Authorizes and voids payments for the order saga")]
struct Config {
    /// PostgreSQL URL of the payment database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The Kafka cluster.
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Consumer group (also the inbox name).
    #[arg(long, env = "GROUP_ID", default_value = "payment-service")]
    group_id: String,
    /// Amounts above this, in minor units, are declined.
    #[arg(long, env = "MAX_AMOUNT_MINOR", default_value_t = payment_service::handler::DEFAULT_MAX_AMOUNT_MINOR)]
    max_amount_minor: i64,
}

/// How long start-up waits for the cluster's first answer.
const KAFKA_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("payment-service")?;
    let config = Config::parse();
    let pool =
        sqlx::PgPool::connect(&config.database_url).await.context("connecting to the payment database")?;
    payment_service::migrate(&pool).await?;
    config.kafka.verify(KAFKA_CHECK).await?;
    let consumer_config = consumers::ConsumerConfig::for_service(
        "payment-service",
        &config.kafka,
        config.group_id,
        &[events::topics::PAYMENT_COMMANDS],
    )?;
    let handler = PaymentHandler { max_amount_minor: config.max_amount_minor };
    let consumer = consumers::Consumer::new(consumer_config, pool, handler)?;
    tracing::info!(
        max_amount_minor = config.max_amount_minor,
        "payment-service consuming {}",
        events::topics::PAYMENT_COMMANDS
    );
    consumer.run(consumers::shutdown::on_signal()?).await?;
    Ok(())
}
