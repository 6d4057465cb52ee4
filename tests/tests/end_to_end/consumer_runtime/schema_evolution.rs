//! A v1-only consumer receiving v2 events: nothing is dead-lettered, the
//! policy shows in its log and its `deferred` counter, and it applies them
//! once it knows v2 — without a restart.
//!
//! The consumer is the `consumer_worker` process, whose build knows only
//! `ReserveInventory` v1, started with `SAGA_SCHEMA_DIR` pointing at an
//! empty directory. A newer writer (this test, holding a
//! `ReserveInventory.v2.avsc` that adds `priority` with a default) sends v2
//! commands. The worker defers them (`CodecError::UnknownSchema` →
//! `HandlerError::Deferred`: retried without an attempt limit, the
//! partition waiting). Then the v2 file is copied into the directory — what
//! a deployment of the schema does — and the same records apply, resolved
//! from the v2 writer schema to the worker's v1 type. See `events::store`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use events::{Envelope, Message, OutgoingMessage, SchemaRegistry};
use serde::Serialize;
use uuid::Uuid;

use super::support;

/// `ReserveInventory` v2 as a newer build defines it.
const V2: &str = r#"{
  "type": "record", "name": "ReserveInventory", "namespace": "saga.inventory",
  "doc": "Command: hold stock for every line of an order. Version 2 adds `priority`.",
  "fields": [
    {"name": "order_id", "type": {"type": "string", "logicalType": "uuid"}, "doc": "The order."},
    {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "StockLine",
      "doc": "A quantity of one SKU.", "fields": [
        {"name": "sku", "type": "string", "doc": "SKU."},
        {"name": "quantity", "type": "int", "doc": "Units."}]}}, "doc": "What to reserve."},
    {"name": "requested_at", "type": {"type": "long", "logicalType": "timestamp-micros"}, "doc": "When."},
    {"name": "priority", "type": "int", "default": 0, "doc": "Higher first. Added in v2."}
  ]
}"#;

/// The newer writer's Rust type.
#[derive(Serialize, serde::Deserialize)]
struct ReserveInventoryV2 {
    order_id: String,
    lines: Vec<StockLineV2>,
    requested_at: i64,
    priority: i32,
}

#[derive(Serialize, serde::Deserialize)]
struct StockLineV2 {
    sku: String,
    quantity: i32,
}

impl Message for ReserveInventoryV2 {
    const NAME: &'static str = "saga.inventory.ReserveInventory";
    const VERSION: u32 = 2;
    const TOPIC: &'static str = "evolution.commands";
    const AGGREGATE_TYPE: &'static str = "order";
    fn aggregate_id(&self) -> String {
        self.order_id.clone()
    }
}

/// A v2 command, encoded by a writer that holds v1 and v2.
fn v2_command(writer: &SchemaRegistry, topic: &str, quantity: i32) -> anyhow::Result<OutgoingMessage> {
    let order_id = Uuid::new_v4();
    let cmd = ReserveInventoryV2 {
        order_id: order_id.to_string(),
        lines: vec![StockLineV2 { sku: "SKU-1".into(), quantity }],
        requested_at: chrono::Utc::now().timestamp_micros(),
        priority: 7,
    };
    let payload = writer.encode(&cmd)?;
    let mut m = OutgoingMessage::new(&events::messages::inventory::ReserveInventory {
        order_id,
        lines: vec![],
        requested_at: chrono::Utc::now(),
    })?;
    m.topic = topic.to_owned();
    m.payload = payload;
    m.envelope = Envelope { schema_version: 2, ..m.envelope };
    Ok(m)
}

/// The worker process, its stdout lines and its stderr (log) lines.
struct Worker {
    child: Child,
    stdout: mpsc::Receiver<String>,
    log: mpsc::Receiver<String>,
}

impl Worker {
    fn start(bootstrap: &str, db: &str, topic: &str, schema_dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_consumer_worker"))
            .env("WORKER_BOOTSTRAP", bootstrap)
            .env("WORKER_DATABASE_URL", db)
            .env("WORKER_TOPIC", topic)
            .env("WORKER_GROUP", "evolution")
            .env("SAGA_SCHEMA_DIR", schema_dir)
            .env("RUST_LOG", "consumers=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?));
        let log = lines(Box::new(child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?));
        Ok(Worker { child, stdout, log })
    }

    fn wait_line(
        rx: &mpsc::Receiver<String>,
        what: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                rx.recv_timeout(left).map_err(|_| anyhow::anyhow!("no such line within {timeout:?}"))?;
            if what(&line) {
                return Ok(line);
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_only_consumer_defers_v2_events_until_it_knows_v2_then_applies_them() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let topic = ReserveInventoryV2::TOPIC;
    env.broker.create_topics(&[topic, "evolution.commands.dlq"], 1).await?;
    let db = env.postgres.fresh_database().await?;
    let pool = support::prepare_database(&db).await?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();
    let schema_dir = std::env::temp_dir().join(format!("saga-schema-dir-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&schema_dir)?;

    // The worker's own build knows v1 only.
    assert!(SchemaRegistry::embedded().lookup(ReserveInventoryV2::NAME, 2).is_none());
    let v1 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/inventory/ReserveInventory.v1.avsc"),
    )?;
    let writer = SchemaRegistry::from_sources([
        ("ReserveInventory.v1.avsc", v1.as_str()),
        ("ReserveInventory.v2.avsc", V2),
    ])?;
    let producer = support::publisher(&bootstrap)?;
    let commands = (1..=3).map(|q| v2_command(&writer, topic, q)).collect::<Result<Vec<_>, _>>()?;
    for m in &commands {
        support::send(&producer, m).await?;
    }
    let ids: Vec<Uuid> = commands.iter().map(|m| m.envelope.event_id).collect();

    let worker = Worker::start(&bootstrap, &db, topic, &schema_dir)?;
    // The policy, visible in the log: deferred (not an attempt), unknown schema.
    let line = tokio::task::block_in_place(|| {
        Worker::wait_line(&worker.log, |l| l.contains("record deferred"), Duration::from_secs(90))
    })?;
    assert!(line.contains("unknown schema") && line.contains("SAGA_SCHEMA_DIR"), "{line}");
    // Still waiting a few seconds later: nothing applied, nothing dead-lettered.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(support::effect_counts(&pool).await?.is_empty(), "nothing applied while v2 is unknown");

    // Deploy the schema: the v2 file lands in the worker's schema directory.
    std::fs::create_dir_all(schema_dir.join("inventory"))?;
    std::fs::write(schema_dir.join("inventory/ReserveInventory.v2.avsc"), V2)?;
    let counts = support::wait_for_effects(&pool, &ids, Duration::from_secs(60)).await?;
    for (id, quantity) in ids.iter().zip(1..) {
        assert_eq!(counts.get(id), Some(&1), "event {id} applied once");
        let (q,): (i32,) = sqlx::query_as("SELECT quantity FROM consumer_effects WHERE event_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await?;
        assert_eq!(q, quantity, "v2 data read through the v1 type");
    }

    let status = Command::new("kill").arg("-TERM").arg(worker.child.id().to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    let stats = tokio::task::block_in_place(|| {
        Worker::wait_line(&worker.stdout, |l| l.starts_with("stats "), Duration::from_secs(30))
    })?;
    println!("{stats}");
    let value = |name: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    assert_eq!(value("applied"), 3, "{stats}");
    assert_eq!(value("dead_lettered"), 0, "{stats}");
    assert!(value("deferred") >= 1 && value("deferred") != u64::MAX, "deferrals counted: {stats}");
    let _ = std::fs::remove_dir_all(&schema_dir);
    Ok(())
}

#[test]
fn unknown_schema_is_deferred_other_codec_errors_are_permanent() {
    let unknown = events::CodecError::UnknownSchema { fingerprint: 1, detail: "test".into() };
    assert!(matches!(consumers::HandlerError::from(unknown), consumers::HandlerError::Deferred(_)));
    let malformed = events::SchemaRegistry::embedded().decode_json(b"x").expect_err("malformed");
    assert!(matches!(consumers::HandlerError::from(malformed), consumers::HandlerError::Permanent(_)));
}
