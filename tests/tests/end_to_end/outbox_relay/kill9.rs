//! Crash safety: a relay process is killed with SIGKILL at random moments
//! while writers commit, and restarted each time. Afterwards every committed
//! event is in Kafka at least once, in per-key order; duplicates (same event
//! id) are bounded by what each kill left unrecorded.
//!
//! The bound: a killed relay can only have sent rows that were readable (below
//! the watermark) and whose cursor move it had not recorded, and per lane at
//! most `pipeline_depth` batches of `batch_size` of them. Only those are sent
//! again by the next holder. So right after each kill the test counts, per
//! lane, the committed rows after the lane's recorded cursor and below the
//! watermark, caps each lane at `DEPTH * BATCH`, and adds them up over the
//! kills: the duplicates must not exceed that sum (rows committed between the
//! kill and the count only make it looser, by a few).

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

    let mut bound = 0usize;
    for round in 0..KILLS {
        let mut relay = RelayProcess::spawn(&format!("relay-{round}"), &s.db_url, &bootstrap, LEASE_TTL_MS)?;
        // Let it take the (expired) lanes and get going, then kill it mid-run.
        let lifetime = Duration::from_millis(rand::rng().random_range(1200..2500));
        tokio::time::sleep(lifetime).await;
        relay.kill9()?;
        bound += unrecorded(&s.pool).await?;
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
    eprintln!("duplicate bound from the unrecorded rows at the kills: {bound}");
    assert!(bound <= KILLS * LANES * BATCH * DEPTH, "the bound is capped per lane: {bound}");
    assert!(
        report.duplicates <= bound,
        "{} duplicates, but the kills left only {bound} rows unrecorded",
        report.duplicates
    );
    Ok(())
}

/// Rows a just-killed relay may have sent without recording them: per lane,
/// the committed rows after its cursor and below the watermark, at most
/// `DEPTH * BATCH`.
async fn unrecorded(pool: &sqlx::PgPool) -> anyhow::Result<usize> {
    let per_lane: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o JOIN outbox_lanes l ON l.lane = o.lane \
         WHERE (o.pos, o.id) > (l.cursor_pos, l.cursor_id) \
           AND o.pos < pg_snapshot_xmin(pg_current_snapshot()) \
         GROUP BY o.lane",
    )
    .fetch_all(pool)
    .await?;
    Ok(per_lane.iter().map(|n| usize::try_from(*n).unwrap_or(0).min(DEPTH * BATCH)).sum())
}
