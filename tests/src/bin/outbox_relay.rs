//! An outbox relay process for the end-to-end tests that kill relays with
//! SIGKILL (`tests/tests/end_to_end/outbox_relay/{lanes,kill9}.rs`).
//!
//! Configured by environment variables: `DATABASE_URL`,
//! `KAFKA_BOOTSTRAP_SERVERS`, `RELAY_ID`, and optionally `LEASE_TTL_MS`,
//! `BATCH_SIZE`, `POLL_MS`. Runs until SIGTERM/SIGINT (graceful) or SIGKILL.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

fn env_num(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&env("DATABASE_URL")?)
        .await
        .context("connect to PostgreSQL")?;
    let config = outbox::RelayConfig {
        relay_id: env("RELAY_ID")?,
        lease_ttl: Duration::from_millis(env_num("LEASE_TTL_MS", 2000)?),
        batch_size: usize::try_from(env_num("BATCH_SIZE", 200)?)?,
        poll_interval: Duration::from_millis(env_num("POLL_MS", 200)?),
        metrics_interval: Duration::from_secs(2),
        cleanup_interval: Duration::ZERO,
        ..Default::default()
    };
    let relay = outbox::OutboxRelay::new(
        pool,
        producers::ProducerConfig::from_connection(&producers::KafkaConnection {
            properties_file: std::env::var_os("KAFKA_PROPERTIES_FILE").map(Into::into),
            ..producers::KafkaConnection::new(env("KAFKA_BOOTSTRAP_SERVERS")?)
        })?,
        config,
    )?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot watch SIGTERM: {e}");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        on_signal.cancel();
    });
    relay.run(cancel).await?;
    Ok(())
}
