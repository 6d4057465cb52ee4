//! The whole system in one test process, wired as the binaries wire it:
//! shared by the saga tests and the independent-reader test.

use std::time::{Duration, Instant};

use anyhow::Context;
use consumers::{Consumer, ConsumerConfig};
use events::messages::order::OrderLine;
use order_service::request::ValidOrder;
use outbox::{OutboxRelay, RelayConfig};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Partitions of every system topic.
pub(crate) const PARTITIONS: i32 = 3;

fn relay_config(name: &str) -> RelayConfig {
    RelayConfig {
        relay_id: format!("{name}-relay"),
        poll_interval: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(5),
        cleanup_interval: Duration::ZERO,
        ..Default::default()
    }
}

fn consumer_config(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        connection: testkit::external::client_properties(),
        ..ConsumerConfig::new(bootstrap, group, &[topic])
    }
}

async fn database(env: &testkit::Environment) -> anyhow::Result<PgPool> {
    Ok(PgPool::connect(&env.postgres.fresh_database().await?).await?)
}

pub(crate) fn order(sku: &str, quantity: i32, unit_price_minor: i64) -> ValidOrder {
    ValidOrder {
        customer_id: Uuid::new_v4(),
        currency: "EUR".into(),
        lines: vec![OrderLine { sku: sku.into(), quantity, unit_price_minor }],
        total_minor: i64::from(quantity) * unit_price_minor,
        channel: "test".into(),
    }
}

/// The whole system on one broker and one PostgreSQL server: four
/// databases (migrated, inventory seeded with `stock`), the four relays,
/// the inventory, payment and verdict consumers and the orchestrator, each
/// on its own task until `stop`.
pub(crate) struct System {
    pub(crate) orders: PgPool,
    pub(crate) inventory: PgPool,
    pub(crate) payment: PgPool,
    pub(crate) orchestrator: PgPool,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl System {
    pub(crate) async fn start(env: &testkit::Environment, stock: &[(&str, i64)]) -> anyhow::Result<System> {
        env.broker.create_system_topics(PARTITIONS).await?;
        let bootstrap = env.broker.bootstrap_servers().to_owned();
        let orders = database(env).await?;
        let inventory = database(env).await?;
        let payment = database(env).await?;
        let orchestrator = database(env).await?;
        order_service::migrate(&orders).await?;
        inventory_service::migrate(&inventory).await?;
        payment_service::migrate(&payment).await?;
        saga_orchestrator::migrate(&orchestrator).await?;
        let mut conn = inventory.acquire().await?;
        let seed: Vec<(String, i64)> = stock.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect();
        inventory_service::seed::seed_stock(&mut conn, &seed).await?;
        drop(conn);

        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for (name, pool) in [
            ("orders", &orders),
            ("inventory", &inventory),
            ("payment", &payment),
            ("orchestrator", &orchestrator),
        ] {
            let relay = OutboxRelay::new(
                pool.clone(),
                testkit::external::producer_config(&bootstrap),
                relay_config(name),
            )?;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { relay.run(stop).await.map_err(anyhow::Error::from) }));
        }
        let inventory_consumer = Consumer::new(
            consumer_config(&bootstrap, "inventory-service", events::topics::INVENTORY_COMMANDS),
            inventory.clone(),
            inventory_service::InventoryHandler,
        )?;
        let payment_consumer = Consumer::new(
            consumer_config(&bootstrap, "payment-service", events::topics::PAYMENT_COMMANDS),
            payment.clone(),
            payment_service::PaymentHandler { max_amount_minor: 5_000 },
        )?;
        let verdicts = Consumer::new(
            consumer_config(&bootstrap, "order-service", events::topics::ORDER_EVENTS),
            orders.clone(),
            order_service::outcome::OutcomeHandler,
        )?;
        let saga = saga_orchestrator::Orchestrator::new(orchestrator.clone(), {
            let mut config =
                saga_orchestrator::OrchestratorConfig::new(bootstrap.clone(), "saga-orchestrator");
            config.consumer.connection = testkit::external::client_properties();
            config
        })?;
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { inventory_consumer.run(s).await.map_err(anyhow::Error::from) }));
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { payment_consumer.run(s).await.map_err(anyhow::Error::from) }));
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { verdicts.run(s).await.map_err(anyhow::Error::from) }));
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { saga.run(s).await.map_err(anyhow::Error::from) }));
        Ok(System { orders, inventory, payment, orchestrator, stop, tasks })
    }

    /// Waits until none of `ids` is PENDING; their (status, reason).
    pub(crate) async fn verdicts(
        &self,
        ids: &[Uuid],
        timeout: Duration,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut statuses = Vec::new();
            for id in ids {
                let view =
                    order_service::store::get_order(&self.orders, *id).await?.context("order vanished")?;
                statuses.push((view.status, view.reason));
            }
            if statuses.iter().all(|(s, _)| s != "PENDING") {
                return Ok(statuses);
            }
            anyhow::ensure!(Instant::now() < deadline, "sagas still pending after {timeout:?}: {statuses:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        for t in self.tasks {
            t.await.context("task panicked")??;
        }
        Ok(())
    }
}
