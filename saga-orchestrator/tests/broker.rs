//! The running [`Orchestrator`] against a real broker and PostgreSQL: the
//! wiring the other tests call directly — subscription, consumer group,
//! inbox, handler, shutdown — carries an order from `OrderCreated` to its
//! payment request, and the orchestrator stops cleanly when cancelled.

mod common;

use std::time::Duration;

use common::Fixture;
use events::{Message, OutgoingMessage};
use producers::{KafkaPublisher, Publisher, Record};
use saga_orchestrator::{Orchestrator, OrchestratorConfig, store};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Publishes `message` as a service would (correlated with `saga_id`).
async fn publish<M: Message>(
    publisher: &KafkaPublisher,
    message: &M,
    saga_id: Option<Uuid>,
) -> anyhow::Result<()> {
    let mut out = OutgoingMessage::new(message)?;
    if let Some(id) = saga_id {
        out = out.correlated_with(id);
    }
    let headers = out.envelope.to_headers();
    publisher.publish(Record::from_outgoing(&out, &headers)).await?;
    Ok(())
}

/// Waits until the saga has `status` (the broker's first fetch can be slow).
async fn wait_for_status(pool: &PgPool, saga_id: Uuid, status: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = pool.acquire().await?;
        let now = store::load(&mut conn, saga_id).await?.map(|s| s.state.status());
        if now == Some(status) {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "saga {saga_id} is {now:?}, not {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_orchestrator_advances_sagas_from_kafka_and_stops_when_cancelled() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    env.broker.create_system_topics(2).await?;
    let pool = PgPool::connect(&env.postgres.fresh_database().await?).await?;
    saga_orchestrator::migrate(&pool).await?;

    let mut config = OrchestratorConfig::new(env.broker.bootstrap_servers(), "saga-orchestrator-test");
    config.consumer.connection = testkit::external::client_properties();
    let orchestrator = Orchestrator::new(pool.clone(), config)?;
    let stats = orchestrator.stats();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(orchestrator.run(cancel.clone()));

    let publisher = KafkaPublisher::new(&testkit::external::producer_config(env.broker.bootstrap_servers()))?;
    let order_id = Uuid::now_v7();
    let o = Fixture { saga_id: order_id, order_id, ..Fixture::new() };
    publish(&publisher, &o.created(), None).await?;
    wait_for_status(&pool, o.saga_id, "RESERVING_INVENTORY").await?;
    publish(&publisher, &o.reserved(), Some(o.saga_id)).await?;
    wait_for_status(&pool, o.saga_id, "AUTHORIZING_PAYMENT").await?;

    let commands: Vec<String> = sqlx::query_scalar(
        "SELECT header_values[array_position(header_names, 'message-type')] FROM outbox ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(commands, ["saga.inventory.ReserveInventory", "saga.payment.AuthorizePayment"]);
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM consumer_inbox").fetch_one(&pool).await?;
    assert_eq!(inbox, 2, "both events are recorded in the inbox");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    let stats = stats.snapshot();
    assert_eq!((stats.applied, stats.dead_lettered), (2, 0), "{stats:?}");
    Ok(())
}
