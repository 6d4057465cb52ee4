//! Shared by the `consumer_runtime` end-to-end tests and the `consumer_worker`
//! helper binary: a tiny handler with a countable, non-idempotent effect, and
//! helpers to produce commands and wait for their effects.
//!
//! The effect table deliberately has no unique constraint: if the runtime
//! ran a handler transaction twice for one event, the table would show two
//! rows. Only the inbox stands between a redelivery and a second row.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use consumers::{ConsumerConfig, Handler, HandlerError, InboundMessage, RetryPolicy};
use events::OutgoingMessage;
use events::messages::inventory::{ReserveInventory, StockLine};
use producers::{KafkaPublisher, ProducerConfig, Publisher as _, Record};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The handler's effect: one row per handler transaction that committed.
pub(crate) const EFFECTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS consumer_effects ( \
     event_id uuid NOT NULL, \
     order_id uuid NOT NULL, \
     quantity integer NOT NULL, \
     applied_at timestamptz NOT NULL DEFAULT now())";

/// Connects, runs the inbox migrations and creates the effect table.
pub(crate) async fn prepare_database(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .context("connect to postgres")?;
    consumers::migrate(&pool).await.context("inbox migrations")?;
    sqlx::query(EFFECTS_TABLE).execute(&pool).await.context("create effect table")?;
    Ok(pool)
}

/// Applies `ReserveInventory` commands by inserting a row into
/// `consumer_effects`, then waits `sleep` inside the open transaction (so a
/// test can kill the process mid-transaction). With `announce`, prints
/// `handling <event id>` on stdout before the sleep.
pub(crate) struct EffectHandler {
    pub(crate) sleep: Duration,
    pub(crate) announce: bool,
}

impl EffectHandler {
    pub(crate) fn quick() -> Self {
        EffectHandler { sleep: Duration::ZERO, announce: false }
    }
}

impl Handler for EffectHandler {
    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        if !message.is::<ReserveInventory>() {
            return Err(HandlerError::unknown_type(message));
        }
        let command: ReserveInventory = message.decode()?;
        let quantity: i32 = command.lines.iter().map(|l| l.quantity).sum();
        sqlx::query("INSERT INTO consumer_effects (event_id, order_id, quantity) VALUES ($1, $2, $3)")
            .bind(message.envelope.event_id)
            .bind(command.order_id)
            .bind(quantity)
            .execute(&mut **tx)
            .await?;
        if self.announce {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "handling {}", message.envelope.event_id);
            let _ = out.flush();
        }
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
        Ok(())
    }
}

/// A `ReserveInventory` command for a new order, addressed to `topic`.
pub(crate) fn command(topic: &str, quantity: i32) -> anyhow::Result<OutgoingMessage> {
    let cmd = ReserveInventory {
        order_id: Uuid::new_v4(),
        lines: vec![StockLine { sku: "SKU-1".into(), quantity }],
        requested_at: chrono::Utc::now(),
    };
    let mut m = OutgoingMessage::new(&cmd).context("encode command")?;
    m.topic = topic.to_owned();
    Ok(m)
}

/// The client properties of an external test cluster
/// (`SAGA_TEST_KAFKA_PROPERTIES_FILE` beside `SAGA_TEST_BOOTSTRAP_SERVERS`,
/// as testkit reads them; child processes inherit both).
pub(crate) fn cluster_properties() -> Vec<(String, String)> {
    let external = std::env::var_os("SAGA_TEST_BOOTSTRAP_SERVERS").is_some();
    let file = std::env::var("SAGA_TEST_KAFKA_PROPERTIES_FILE").ok().filter(|_| external);
    file.and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| producers::connection::parse_properties(&text).ok())
        .unwrap_or_default()
}

/// An idempotent producer on `bootstrap`.
pub(crate) fn publisher(bootstrap: &str) -> anyhow::Result<KafkaPublisher> {
    let config =
        ProducerConfig { linger_ms: 0, overrides: cluster_properties(), ..ProducerConfig::new(bootstrap) };
    KafkaPublisher::new(&config).context("create producer")
}

/// Publishes `m` with its envelope headers and waits for the ack.
pub(crate) async fn send(p: &KafkaPublisher, m: &OutgoingMessage) -> anyhow::Result<()> {
    let headers = m.envelope.to_headers();
    p.publish(Record::from_outgoing(m, &headers)).await.context("publish")?;
    Ok(())
}

/// Publishes a hand-made record (bad headers, garbage payload...).
pub(crate) async fn send_raw(
    p: &KafkaPublisher,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    headers: &[(&str, &[u8])],
) -> anyhow::Result<()> {
    let record = Record { topic, key: Some(key), payload: Some(payload), headers: headers.to_vec() };
    p.publish(record).await.context("publish raw")?;
    Ok(())
}

/// How many effect rows each event has.
pub(crate) async fn effect_counts(pool: &PgPool) -> anyhow::Result<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT event_id, count(*) FROM consumer_effects GROUP BY event_id")
            .fetch_all(pool)
            .await
            .context("count effects")?;
    Ok(rows.into_iter().collect())
}

/// Polls `probe` every 200 ms until it returns `Some`, or fails after `timeout`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every event in `expected` has at least one effect row, then
/// returns the counts.
pub(crate) async fn wait_for_effects(
    pool: &PgPool,
    expected: &[Uuid],
    timeout: Duration,
) -> anyhow::Result<HashMap<Uuid, i64>> {
    eventually("effects of every event", timeout, || async {
        let counts = effect_counts(pool).await?;
        Ok(expected.iter().all(|id| counts.contains_key(id)).then_some(counts))
    })
    .await
}

/// A consumer configuration for tests: quick commits and retries, a short
/// session timeout (a killed member leaves the group fast). Short sessions
/// only suit small topics: see `ConsumerConfig::session_timeout`.
pub(crate) fn consumer_config(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        client_id: format!("{group}-test"),
        commit_interval: Duration::from_millis(200),
        session_timeout: Duration::from_secs(10),
        in_flight_grace: Duration::from_secs(10),
        close_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            factor: 2.0,
            jitter: true,
        },
        connection: cluster_properties(),
        ..ConsumerConfig::new(bootstrap, group, &[topic])
    }
}

/// Logs to stderr when `RUST_LOG` is set (quiet otherwise: librdkafka
/// reports every teardown of a test broker as an error).
pub(crate) fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
}

/// A consumer running on its own task.
pub(crate) struct RunningConsumer {
    /// Its counters.
    pub(crate) stats: consumers::Stats,
    /// Stops it.
    pub(crate) cancel: consumers::CancellationToken,
    /// The task; `Ok` after a clean stop.
    pub(crate) task: tokio::task::JoinHandle<Result<(), consumers::ConsumerError>>,
}

/// Starts a consumer with [`EffectHandler::quick`] on its own task.
pub(crate) fn spawn_quick_consumer(config: ConsumerConfig, pool: &PgPool) -> anyhow::Result<RunningConsumer> {
    let consumer = consumers::Consumer::new(config, pool.clone(), EffectHandler::quick())?;
    let stats = consumer.stats();
    let cancel = consumers::CancellationToken::new();
    let task = tokio::spawn(consumer.run(cancel.clone()));
    Ok(RunningConsumer { stats, cancel, task })
}
