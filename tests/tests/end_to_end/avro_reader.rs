//! An independent reader decodes every record of a full saga run: the three
//! saga outcomes run through the real broker, every record of the event and
//! command/reply topics is dumped as raw bytes, and `scripts/avro-read.py`
//! — fastavro, the `.avsc` files and the framing of `schemas/README.md`,
//! no Rust — must decode each one (writer schema found by the fingerprint it
//! computes itself, datum read to the last byte, value valid for the schema).
//!
//! Needs `python3` with fastavro (`scripts/setup.sh` installs it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use consumers::{Consumer, ConsumerConfig};
use events::messages::order::OrderLine;
use order_service::request::ValidOrder;
use outbox::{OutboxRelay, RelayConfig};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PARTITIONS: i32 = 3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn order(sku: &str, quantity: i32, unit_price_minor: i64) -> ValidOrder {
    ValidOrder {
        customer_id: Uuid::new_v4(),
        currency: "EUR".into(),
        lines: vec![OrderLine { sku: sku.into(), quantity, unit_price_minor }],
        total_minor: i64::from(quantity) * unit_price_minor,
        channel: "test".into(),
    }
}

/// Waits until `topics` hold at least `at_least` records, then writes every
/// record value (from the beginning up to the high watermark of each
/// partition) to `dir`, one file per record; returns how many.
fn dump(bootstrap: &str, topics: &[&str], dir: &Path, at_least: i64) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = testkit::external::client_config(bootstrap)
        .set("group.id", "avro-reader-dump")
        .set("enable.auto.commit", "false")
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut total = 0;
        for topic in topics {
            for p in 0..PARTITIONS {
                total += consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?.1;
            }
        }
        if total >= at_least {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{total} records on the topics, {at_least} outbox rows");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut tpl = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for topic in topics {
        for p in 0..PARTITIONS {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            if high > 0 {
                tpl.add_partition_offset(topic, p, Offset::Beginning)?;
                ends.insert((topic.to_string(), p), high);
            }
        }
    }
    consumer.assign(&tpl)?;
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "records still missing: {ends:?}");
        let Some(next) = consumer.poll(Duration::from_millis(500)) else { continue };
        let Ok(record) = next else { continue }; // transient broker errors
        let key = (record.topic().to_owned(), record.partition());
        if let Some(payload) = record.payload() {
            let name = format!("{}-{}-{:06}.avro", record.topic(), record.partition(), record.offset());
            std::fs::write(dir.join(name), payload)?;
            written += 1;
        }
        if ends.get(&key).is_some_and(|end| record.offset() + 1 >= *end) {
            ends.remove(&key);
        }
    }
    Ok(written)
}

#[tokio::test]
async fn fastavro_decodes_every_record_of_a_saga_run() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    env.broker.create_system_topics(PARTITIONS).await?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(PgPool::connect(&env.postgres.fresh_database().await?).await?);
    }
    let [orders, inventory, payment, orchestrator] = <[PgPool; 4]>::try_from(pools).expect("four pools");
    order_service::migrate(&orders).await?;
    inventory_service::migrate(&inventory).await?;
    payment_service::migrate(&payment).await?;
    saga_orchestrator::migrate(&orchestrator).await?;
    let mut conn = inventory.acquire().await?;
    inventory_service::seed::seed_stock(&mut conn, &[("SKU-A".into(), 10), ("SKU-B".into(), 1)]).await?;
    drop(conn);

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (name, pool) in [
        ("orders", &orders),
        ("inventory", &inventory),
        ("payment", &payment),
        ("orchestrator", &orchestrator),
    ] {
        let config = RelayConfig {
            relay_id: format!("{name}-relay"),
            poll_interval: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(5),
            cleanup_interval: Duration::ZERO,
            ..Default::default()
        };
        let relay = OutboxRelay::new(pool.clone(), testkit::external::producer_config(&bootstrap), config)?;
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { relay.run(s).await.map_err(anyhow::Error::from) }));
    }
    let consumer_config = |group: &str, topic: &str| ConsumerConfig {
        connection: testkit::external::client_properties(),
        ..ConsumerConfig::new(&bootstrap, group, &[topic])
    };
    let inventory_consumer = Consumer::new(
        consumer_config("inventory-service", events::topics::INVENTORY_COMMANDS),
        inventory.clone(),
        inventory_service::InventoryHandler,
    )?;
    let payment_consumer = Consumer::new(
        consumer_config("payment-service", events::topics::PAYMENT_COMMANDS),
        payment.clone(),
        payment_service::PaymentHandler { max_amount_minor: 5_000 },
    )?;
    let verdicts = Consumer::new(
        consumer_config("order-service", events::topics::ORDER_EVENTS),
        orders.clone(),
        order_service::outcome::OutcomeHandler,
    )?;
    let saga = saga_orchestrator::Orchestrator::new(orchestrator.clone(), {
        let mut config = saga_orchestrator::OrchestratorConfig::new(bootstrap.clone(), "saga-orchestrator");
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

    // The three roads: approved, no stock, payment declined (compensated).
    let mut ids = Vec::new();
    for o in [order("SKU-A", 2, 1_000), order("SKU-B", 5, 100), order("SKU-A", 1, 9_000)] {
        ids.push(order_service::store::place_order(&orders, o).await?.order_id);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut statuses = Vec::new();
        for id in &ids {
            statuses
                .push(order_service::store::get_order(&orders, *id).await?.context("order vanished")?.status);
        }
        if statuses.iter().all(|s| s != "PENDING") {
            assert_eq!(statuses, ["APPROVED", "REJECTED", "REJECTED"]);
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "sagas still pending after 180 s: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every outbox row ends up on a topic (the relays keep running while we wait).
    let mut outbox_rows = 0i64;
    for pool in [&orders, &inventory, &payment, &orchestrator] {
        outbox_rows += sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox").fetch_one(pool).await?;
    }
    let dir = tempfile_dir()?;
    let topics = [
        events::topics::ORDER_EVENTS,
        events::topics::INVENTORY_COMMANDS,
        events::topics::INVENTORY_REPLIES,
        events::topics::PAYMENT_COMMANDS,
        events::topics::PAYMENT_REPLIES,
    ];
    let b = bootstrap.clone();
    let d = dir.clone();
    let records = tokio::task::spawn_blocking(move || dump(&b, &topics, &d, outbox_rows)).await??;
    // 8 messages for the approved saga, 4 without stock, 8 for the declined one.
    assert!(
        records >= 20 && records as i64 >= outbox_rows,
        "{records} records for {outbox_rows} outbox rows"
    );
    stop.cancel();
    for t in tasks {
        t.await.context("task panicked")??;
    }

    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/avro-read.py"))
        .arg(repo().join("schemas"))
        .arg(&dir)
        .output()
        .context("running python3 scripts/avro-read.py (scripts/setup.sh installs python3 and fastavro)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("no summary from avro-read.py:\n{stdout}\n{stderr}"))?;
    println!("avro-read.py: {summary}");
    assert_eq!(summary["failed"], 0, "{stderr}");
    assert_eq!(summary["decoded"], records as u64, "{summary}");
    // Every kind of message the three sagas send was among them.
    for name in [
        "saga.order.OrderCreated",
        "saga.inventory.ReserveInventory",
        "saga.inventory.InventoryReserved",
        "saga.inventory.InventoryReservationFailed",
        "saga.payment.AuthorizePayment",
        "saga.payment.PaymentAuthorized",
        "saga.payment.PaymentDeclined",
        "saga.inventory.CommitInventory",
        "saga.inventory.InventoryCommitted",
        "saga.inventory.ReleaseInventory",
        "saga.inventory.InventoryReleased",
        "saga.order.OrderApproved",
        "saga.order.OrderRejected",
    ] {
        assert!(summary["by_schema"][name].as_u64().unwrap_or(0) >= 1, "no {name}: {summary}");
    }
    assert!(out.status.success(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("saga-avro-reader-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
