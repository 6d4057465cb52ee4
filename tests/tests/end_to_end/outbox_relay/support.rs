//! Shared by the `outbox_relay` end-to-end tests: a broker + PostgreSQL setup
//! with a migrated outbox, messages that carry `(key, seq)` in their payload,
//! a consumer that reads a whole topic from the beginning, the per-key order
//! check, and relays in-process or as killable processes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use events::{Envelope, OutgoingMessage};
use outbox::{OutboxRelay, RelayConfig};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A broker, a fresh migrated database and a fresh topic.
pub(crate) struct Setup {
    pub(crate) env: testkit::Environment,
    pub(crate) db_url: String,
    pub(crate) pool: PgPool,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_test_writer()
        .try_init();
}

impl Setup {
    /// Rows not yet published (or parked).
    pub(crate) async fn pool_backlog(&self) -> anyhow::Result<i64> {
        Ok(outbox::store::backlog(&self.pool).await?.rows)
    }
}

pub(crate) async fn setup(partitions: i32) -> anyhow::Result<Setup> {
    init_tracing();
    let env = testkit::Environment::start().await.context("start containers")?;
    let topic = format!("outbox.test.{}", Uuid::new_v4().simple());
    env.broker.create_topics(&[&topic], partitions).await.context("create topic")?;
    let db_url = env.postgres.fresh_database().await.context("fresh database")?;
    let pool = connect(&db_url, 30).await?;
    outbox::migrate(&pool).await.context("outbox migrations")?;
    Ok(Setup { env, db_url, pool, topic, partitions })
}

pub(crate) async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new().max_connections(max).connect(url).await.context("connect to postgres")
}

/// A message for `key` whose payload is `key:seq`.
pub(crate) fn message(topic: &str, key: &str, seq: u64) -> OutgoingMessage {
    OutgoingMessage {
        topic: topic.to_owned(),
        key: key.to_owned(),
        envelope: Envelope {
            event_id: Uuid::now_v7(),
            message_type: "saga.test.Numbered".into(),
            schema_version: 1,
            aggregate_type: "test".into(),
            aggregate_id: key.to_owned(),
            correlation_id: None,
            causation_id: None,
            occurred_at: Utc::now(),
            traceparent: None,
            tracestate: None,
        },
        payload: format!("{key}:{seq}").into_bytes(),
    }
}

/// Enqueues `m` in its own committed transaction.
pub(crate) async fn enqueue_committed(pool: &PgPool, m: &OutgoingMessage) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    outbox::enqueue(&mut tx, m).await?;
    tx.commit().await?;
    Ok(())
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) key: String,
    pub(crate) seq: u64,
    pub(crate) event_id: Uuid,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) headers: HashMap<String, String>,
}

/// Reads `topic` from the beginning until `done(&seen)` or `timeout`.
pub(crate) async fn consume_until(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    done: impl Fn(&[Seen]) -> bool,
) -> anyhow::Result<Vec<Seen>> {
    let consumer: StreamConsumer = testkit::external::client_config(bootstrap)
        .set("group.id", format!("outbox-test-{}", Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let m = match tokio::time::timeout(left.min(Duration::from_secs(1)), consumer.recv()).await {
            Err(_) => continue,
            // A broker that is down (killed by a test) is reported here;
            // librdkafka recovers on its own, so only a fatal error ends the read.
            Ok(Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_))) => {
                return Err(anyhow::Error::new(e).context("consume"));
            }
            Ok(Err(_)) => continue,
            Ok(Ok(m)) => m,
        };
        let payload = std::str::from_utf8(m.payload().unwrap_or_default())?.to_owned();
        let (key, seq) = payload.rsplit_once(':').context("payload is key:seq")?;
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for hd in h.iter() {
                headers.insert(
                    hd.key.to_owned(),
                    String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        let record_key = std::str::from_utf8(m.key().unwrap_or_default())?;
        anyhow::ensure!(record_key == key, "record key {record_key} differs from payload key {key}");
        seen.push(Seen {
            key: key.to_owned(),
            seq: seq.parse()?,
            event_id: headers.get("event-id").context("event-id header")?.parse()?,
            partition: m.partition(),
            offset: m.offset(),
            headers,
        });
    }
    Ok(seen)
}

/// Number of distinct (key, seq) pairs in `seen`.
pub(crate) fn distinct(seen: &[Seen]) -> usize {
    seen.iter().map(|s| (s.key.as_str(), s.seq)).collect::<std::collections::HashSet<_>>().len()
}

/// What the order check found.
#[derive(Debug, Default)]
pub(crate) struct OrderReport {
    pub(crate) records: usize,
    pub(crate) duplicates: usize,
}

/// Checks, per key, that the first occurrences of its sequence numbers are
/// exactly `0, 1, ..., expected[key] - 1` in partition order, and that every
/// repeat carries the same event id as the first occurrence.
pub(crate) fn check_per_key_order(
    seen: &[Seen],
    expected: &HashMap<String, u64>,
) -> anyhow::Result<OrderReport> {
    let mut by_key: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in seen {
        by_key.entry(&s.key).or_default().push(s);
    }
    let mut report = OrderReport { records: seen.len(), duplicates: 0 };
    for (key, n) in expected {
        let records = by_key.get(key.as_str()).map(Vec::as_slice).unwrap_or_default();
        let partitions: std::collections::HashSet<i32> = records.iter().map(|s| s.partition).collect();
        anyhow::ensure!(partitions.len() <= 1, "key {key} spread over partitions {partitions:?}");
        let mut ids: HashMap<u64, Uuid> = HashMap::new();
        let mut next = 0u64;
        for s in records {
            match ids.get(&s.seq) {
                Some(id) => {
                    anyhow::ensure!(
                        *id == s.event_id,
                        "key {key} seq {} repeated with another event id",
                        s.seq
                    );
                    report.duplicates += 1;
                }
                None => {
                    anyhow::ensure!(
                        s.seq == next,
                        "key {key}: first saw seq {} where {next} was due (offset {})",
                        s.seq,
                        s.offset
                    );
                    ids.insert(s.seq, s.event_id);
                    next += 1;
                }
            }
        }
        anyhow::ensure!(next == *n, "key {key}: {next} of {n} events published");
    }
    Ok(report)
}

/// Relay settings for tests: short leases, fast polling and backoff.
pub(crate) fn relay_config(relay_id: &str) -> RelayConfig {
    RelayConfig {
        relay_id: relay_id.to_owned(),
        batch_size: 200,
        poll_interval: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(2),
        cleanup_interval: Duration::ZERO,
        metrics_interval: Duration::from_secs(5),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_secs(1),
        idle_advance_interval: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(2),
        ..Default::default()
    }
}

/// A relay running in this process.
pub(crate) struct InProcessRelay {
    pub(crate) cancel: CancellationToken,
    pub(crate) handle: JoinHandle<Result<(), outbox::OutboxError>>,
    pub(crate) stats: outbox::StatsHandle,
}

impl InProcessRelay {
    pub(crate) fn start(pool: &PgPool, bootstrap: &str, config: RelayConfig) -> anyhow::Result<Self> {
        let relay = OutboxRelay::new(pool.clone(), testkit::external::producer_config(bootstrap), config)?;
        let stats = relay.stats();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(relay.run(cancel.clone()));
        Ok(InProcessRelay { cancel, handle, stats })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<outbox::RelayStats> {
        self.cancel.cancel();
        self.handle.await.context("relay task")??;
        Ok(self.stats.get())
    }
}

/// A relay process (`outbox_relay` helper binary) that a test can SIGKILL.
pub(crate) struct RelayProcess {
    pub(crate) id: String,
    child: Child,
}

impl RelayProcess {
    pub(crate) fn spawn(id: &str, db_url: &str, bootstrap: &str, lease_ttl_ms: u64) -> anyhow::Result<Self> {
        let child = Command::new(env!("CARGO_BIN_EXE_outbox_relay"))
            .env("DATABASE_URL", db_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .envs(testkit::external::child_env())
            .env("RELAY_ID", id)
            .env("LEASE_TTL_MS", lease_ttl_ms.to_string())
            .env("RUST_LOG", std::env::var("RELAY_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn outbox_relay")?;
        Ok(RelayProcess { id: id.to_owned(), child })
    }

    /// SIGKILL: no shutdown, no lease release, in-flight batch lost.
    pub(crate) fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("kill relay")?;
        self.child.wait().context("reap relay")?;
        Ok(())
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) without waiting.
    pub(crate) fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status =
            Command::new("kill").args([&format!("-{signal}"), &pid]).status().context("send signal")?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM and wait (graceful stop).
    pub(crate) fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().context("send SIGTERM")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lane owners as the database sees them: lane -> (owner, epoch, lease live).
pub(crate) async fn lane_owners(pool: &PgPool) -> anyhow::Result<Vec<(i32, Option<String>, i64, bool)>> {
    Ok(sqlx::query_as(
        "SELECT lane, owner, epoch, COALESCE(lease_until > now(), false) FROM outbox_lanes ORDER BY lane",
    )
    .fetch_all(pool)
    .await?)
}

/// Waits until `f` returns true, polling every 100 ms, up to `timeout`.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await? {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// Writers committing a steady stream until stopped: writer `w` owns the
/// keys `w{w}-k0..` and commits `per_tx` events per transaction, round-robin
/// over its keys, pausing between transactions.
pub(crate) struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<anyhow::Result<WriterCounts>>>,
}

/// A writer and the next sequence number of each of its keys.
type WriterCounts = (u64, Vec<u64>);

impl Writers {
    pub(crate) fn start(
        pool: &PgPool,
        topic: &str,
        writers: u64,
        keys: u64,
        per_tx: u64,
        pause: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..writers)
            .map(|w| {
                let (pool, topic, stop) = (pool.clone(), topic.to_owned(), stop.clone());
                tokio::spawn(async move {
                    let mut next = vec![0u64; keys as usize];
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let mut tx = pool.begin().await?;
                        for _ in 0..per_tx {
                            let k = (i % keys) as usize;
                            outbox::enqueue(&mut tx, &message(&topic, &format!("w{w}-k{k}"), next[k]))
                                .await?;
                            next[k] += 1;
                            i += 1;
                        }
                        tx.commit().await?;
                        tokio::time::sleep(pause).await;
                    }
                    anyhow::Ok((w, next))
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    /// Stops the writers; returns how many events each key committed.
    pub(crate) async fn stop(self) -> anyhow::Result<HashMap<String, u64>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut expected = HashMap::new();
        for task in self.tasks {
            let (w, next) = task.await??;
            for (k, n) in next.iter().enumerate() {
                expected.insert(format!("w{w}-k{k}"), *n);
            }
        }
        Ok(expected)
    }
}

/// Sets topic configs (e.g. `max.message.bytes`) on the broker; waits a
/// moment for the brokers to apply them.
pub(crate) async fn alter_topic(
    bootstrap: &str,
    topic: &str,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        testkit::external::client_config(bootstrap).create().context("create admin client")?;
    let change =
        configs.iter().fold(AlterConfig::new(ResourceSpecifier::Topic(topic)), |c, (k, v)| c.set(k, v));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.alter_configs([&change], &opts).await.context("alter topic configs")? {
        r.map_err(|(what, e)| anyhow::anyhow!("alter {what:?}: {e}"))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}
