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
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::system::{PARTITIONS, System, order};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
    let system = System::start(&env, &[("SKU-A", 10), ("SKU-B", 1)]).await?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();

    // The three roads: approved, no stock, payment declined (compensated).
    let mut ids = Vec::new();
    for o in [order("SKU-A", 2, 1_000), order("SKU-B", 5, 100), order("SKU-A", 1, 9_000)] {
        ids.push(order_service::store::place_order(&system.orders, o).await?.order_id);
    }
    let statuses: Vec<String> =
        system.verdicts(&ids, Duration::from_secs(180)).await?.into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["APPROVED", "REJECTED", "REJECTED"]);
    // Every outbox row ends up on a topic (the relays keep running while we wait).
    let mut outbox_rows = 0i64;
    for pool in [&system.orders, &system.inventory, &system.payment, &system.orchestrator] {
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
    system.stop().await?;

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
        "saga.payment.CapturePayment",
        "saga.payment.PaymentCaptured",
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
