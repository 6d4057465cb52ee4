//! Crash safety: a relay process is killed with SIGKILL at random moments
//! while writers commit, and restarted each time. Afterwards every committed
//! event is in Kafka at least once, in per-key order; duplicates (same event
//! id) are bounded by the batches in flight at the kills.

use std::time::Duration;

use super::support::*;
use rand::Rng;

const LEASE_TTL_MS: u64 = 1000;
const KILLS: usize = 8;
const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 25;
/// The helper relay's batch size (see `src/bin/outbox_relay.rs`), lanes and
/// batches in flight per lane (`RelayConfig::pipeline_depth` default).
const BATCH: usize = 200;
const LANES: usize = 8;
const DEPTH: usize = 4;

#[tokio::test]
async fn kill_9_at_random_moments_loses_nothing_and_keeps_key_order() -> anyhow::Result<()> {
    let s = setup(4).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();

    // Writers: each owns its keys and commits 5 events per transaction.
    let writers = Writers::start(&s.pool, &s.topic, WRITERS, KEYS_PER_WRITER, 5, Duration::from_millis(20));

    for round in 0..KILLS {
        let mut relay = RelayProcess::spawn(&format!("relay-{round}"), &s.db_url, &bootstrap, LEASE_TTL_MS)?;
        // Let it take the (expired) lanes and get going, then kill it mid-run.
        let lifetime = Duration::from_millis(rand::rng().random_range(1200..2500));
        tokio::time::sleep(lifetime).await;
        relay.kill9()?;
    }
    let expected = writers.stop().await?;
    let total: u64 = expected.values().sum();

    // A final relay drains the rest.
    let mut last = RelayProcess::spawn("relay-final", &s.db_url, &bootstrap, LEASE_TTL_MS)?;
    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(240), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    let backlog = outbox::store::backlog(&s.pool).await?;
    last.terminate()?;

    let report = check_per_key_order(&seen, &expected).map_err(|e| {
        e.context(format!(
            "{} of {total} distinct events consumed; outbox backlog {backlog:?}",
            distinct(&seen)
        ))
    })?;
    eprintln!(
        "{total} committed events, {} records, {} duplicates after {KILLS} kills",
        report.records, report.duplicates
    );
    assert!(
        report.duplicates <= KILLS * LANES * BATCH * DEPTH,
        "duplicates beyond the in-flight batches: {}",
        report.duplicates
    );
    Ok(())
}
