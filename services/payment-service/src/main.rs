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
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Consumer group (also the inbox name).
    #[arg(long, env = "GROUP_ID", default_value = "payment-service")]
    group_id: String,
    /// Amounts above this, in minor units, are declined.
    #[arg(long, env = "MAX_AMOUNT_MINOR", default_value_t = payment_service::handler::DEFAULT_MAX_AMOUNT_MINOR)]
    max_amount_minor: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("payment-service")?;
    let config = Config::parse();
    let pool =
        sqlx::PgPool::connect(&config.database_url).await.context("connecting to the payment database")?;
    payment_service::migrate(&pool).await?;
    let mut consumer_config = consumers::ConsumerConfig::new(
        config.bootstrap_servers,
        config.group_id,
        &[events::topics::PAYMENT_COMMANDS],
    );
    consumer_config.client_id = "payment-service".into();
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
