//! `order-service`: connect, migrate, serve.

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Takes orders over HTTP and publishes OrderCreated through the outbox")]
struct Config {
    /// PostgreSQL URL of the order database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Address to serve HTTP on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    listen: String,
    /// The Kafka cluster (for the saga's verdicts on `orders.events`).
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Consumer group (also the inbox name).
    #[arg(long, env = "GROUP_ID", default_value = "order-service")]
    group_id: String,
}

/// How long start-up waits for the cluster's first answer.
const KAFKA_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("order-service")?;
    let config = Config::parse();
    let pool =
        sqlx::PgPool::connect(&config.database_url).await.context("connecting to the order database")?;
    order_service::migrate(&pool).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(addr = %config.listen, "order-service listening");
    config.kafka.verify(KAFKA_CHECK).await?;
    let consumer_config = consumers::ConsumerConfig::for_service(
        "order-service",
        &config.kafka,
        config.group_id,
        &[events::topics::ORDER_EVENTS],
    )?;
    let consumer =
        consumers::Consumer::new(consumer_config, pool.clone(), order_service::outcome::OutcomeHandler)?;
    let shutdown = consumers::shutdown::on_signal()?;
    let http_shutdown = shutdown.clone();
    let http = axum::serve(listener, order_service::api::router(pool))
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await });
    // Either half stopping (a signal, or the consumer failing) stops both.
    let consume = async move {
        let result = consumer.run(shutdown.clone()).await;
        shutdown.cancel();
        result
    };
    let (served, consumed) = tokio::join!(http, consume);
    served.context("serving HTTP")?;
    consumed.context("consuming orders.events")?;
    Ok(())
}
