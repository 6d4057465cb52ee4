//! `saga relay`: runs the outbox relay — connect, migrate, publish committed
//! outbox rows to Kafka until SIGTERM or SIGINT. Several can run at once;
//! they share the lanes (see the `outbox` crate docs).

use std::time::Duration;

use anyhow::Context;
use outbox::{CancellationToken, OutboxRelay, RelayConfig};
use producers::ProducerConfig;
use sqlx::postgres::PgPoolOptions;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// PostgreSQL URL of the database that holds the outbox.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Total number of lanes to configure (only changeable while no relay
    /// runs and the outbox is drained); omit to keep the current setting.
    #[arg(long, env = "OUTBOX_LANES")]
    lanes: Option<i32>,
    /// Most lanes this relay holds (default: its fair share).
    #[arg(long, env = "OUTBOX_MAX_LANES")]
    max_lanes: Option<usize>,
    /// Rows per batch.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 1000)]
    batch_size: usize,
    /// Lease id of this relay (default: host, pid and a random suffix).
    #[arg(long, env = "OUTBOX_RELAY_ID")]
    relay_id: Option<String>,
    /// Lease duration in milliseconds: a dead relay's lanes move after this.
    #[arg(long, env = "OUTBOX_LEASE_TTL_MS", default_value_t = 10_000)]
    lease_ttl_ms: u64,
    /// Polling fallback in milliseconds (NOTIFY wakes the relay sooner).
    #[arg(long, env = "OUTBOX_POLL_MS", default_value_t = 500)]
    poll_ms: u64,
    /// Lanes without a backlog read on a grid of this many milliseconds,
    /// together, at most once per tick (0: on every wake-up); larger values
    /// mean fewer, larger batches and statements under a steady stream and
    /// up to this much more latency.
    #[arg(long, env = "OUTBOX_TRICKLE_MS", default_value_t = 5)]
    trickle_ms: u64,
    /// Keep published rows this many seconds before cleanup deletes them.
    #[arg(long, env = "OUTBOX_RETENTION_SECS", default_value_t = 3600)]
    retention_secs: u64,
    /// Producer `linger.ms`.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 5)]
    linger_ms: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = RelayConfig {
        lanes: args.lanes,
        max_lanes: args.max_lanes,
        batch_size: args.batch_size,
        lease_ttl: Duration::from_millis(args.lease_ttl_ms),
        poll_interval: Duration::from_millis(args.poll_ms),
        trickle_interval: Duration::from_millis(args.trickle_ms),
        retention: Duration::from_secs(args.retention_secs),
        ..Default::default()
    };
    if let Some(id) = args.relay_id {
        config.relay_id = id;
    }
    // One connection per lane it may hold, plus listener, leases, metrics, cleanup.
    let lanes = args.max_lanes.unwrap_or(usize::try_from(args.lanes.unwrap_or(16)).unwrap_or(16)).max(1);
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(lanes + 5).unwrap_or(32))
        .connect(&args.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    args.kafka.verify(Duration::from_secs(10)).await?;
    let producer = ProducerConfig {
        client_id: format!("saga-relay-{}", config.relay_id),
        linger_ms: args.linger_ms,
        ..ProducerConfig::from_connection(&args.kafka)?
    };
    let relay = OutboxRelay::new(pool, producer, config).context("creating the relay")?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        on_signal.cancel();
    });
    relay.run(cancel).await.context("outbox relay failed")
}
