//! `inventory-service`: connect, migrate, seed, consume until SIGTERM/SIGINT.
//! Replies are published by a separate `saga relay` on the same database.

use anyhow::Context;
use clap::Parser;
use inventory_service::seed::SeedStock;

#[derive(Parser)]
#[command(about = "Reserves, releases and commits stock for the order saga")]
struct Config {
    /// PostgreSQL URL of the inventory database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The Kafka cluster.
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Consumer group (also the inbox name).
    #[arg(long, env = "GROUP_ID", default_value = "inventory-service")]
    group_id: String,
    /// Stock to create at start-up, `SKU=QTY,...`; existing SKUs are kept.
    #[arg(long, env = "SEED_STOCK", default_value = "")]
    seed_stock: SeedStock,
}

/// How long start-up waits for the cluster's first answer.
const KAFKA_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("inventory-service")?;
    let config = Config::parse();
    let pool =
        sqlx::PgPool::connect(&config.database_url).await.context("connecting to the inventory database")?;
    inventory_service::migrate(&pool).await?;
    if !config.seed_stock.0.is_empty() {
        let mut conn = pool.acquire().await.context("connecting to seed stock")?;
        let inserted = inventory_service::seed::seed_stock(&mut conn, &config.seed_stock.0).await?;
        tracing::info!(inserted, listed = config.seed_stock.0.len(), "stock seeded");
    }
    config.kafka.verify(KAFKA_CHECK).await?;
    let consumer_config = consumers::ConsumerConfig::for_service(
        "inventory-service",
        &config.kafka,
        config.group_id,
        &[events::topics::INVENTORY_COMMANDS],
    )?;
    let consumer = consumers::Consumer::new(consumer_config, pool, inventory_service::InventoryHandler)?;
    tracing::info!("inventory-service consuming {}", events::topics::INVENTORY_COMMANDS);
    consumer.run(consumers::shutdown::on_signal()?).await?;
    Ok(())
}
