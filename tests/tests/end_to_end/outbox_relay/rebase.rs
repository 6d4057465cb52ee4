//! Positions ahead of the transaction ids (a dump/restore or a move to a new
//! cluster, simulated by setting lane cursors and key positions above the
//! current transaction id): the running relay's lanes halt with an alarm,
//! cleanup deletes nothing they did not publish, a relay refuses to start,
//! and after `outbox::rebase` every row written after the "move" is
//! published, in per-key order.

use std::collections::HashMap;
use std::time::Duration;

use super::support::*;
use outbox::AlarmKind;

/// Moves every lane cursor and key position a million transactions ahead,
/// and takes the leases away so that the running relay's lanes are granted
/// again with the cursors it now finds (as if the database had been swapped
/// under it).
const MOVE_AHEAD: &str = r#"
UPDATE outbox_lanes
SET cursor_pos = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8,
    owner = NULL, lease_until = NULL, epoch = epoch + 1;
UPDATE outbox_keys SET pos = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8;
"#;

async fn rows_of(pool: &sqlx::PgPool, key: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox WHERE msg_key = $1").bind(key).fetch_one(pool).await?)
}

#[tokio::test]
async fn positions_ahead_halt_the_lanes_and_rebase_publishes_what_was_written_after() -> anyhow::Result<()> {
    let s = setup(2).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("before-the-move"))?;
    for i in 0..3 {
        enqueue_committed(&s.pool, &message(&s.topic, "k", i)).await?;
    }
    consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(60), |v| v.len() >= 3).await?;
    let published = eventually(Duration::from_secs(10), || async {
        Ok(outbox::store::backlog(&s.pool).await?.rows == 0)
    })
    .await?;
    anyhow::ensure!(published, "the first rows were not recorded as published");
    assert!(outbox::rebase::positions_ahead(&s.pool).await?.is_empty(), "a healthy database");

    // The "move": everything stored is now ahead; new rows sort behind it.
    sqlx::raw_sql(MOVE_AHEAD).execute(&s.pool).await?;
    for i in 3..6 {
        enqueue_committed(&s.pool, &message(&s.topic, "k", i)).await?;
    }
    for i in 0..3 {
        enqueue_committed(&s.pool, &message(&s.topic, "fresh", i)).await?;
    }
    let halted = eventually(Duration::from_secs(20), || async {
        let alarms = relay.stats.alarms();
        Ok(alarms.len() == 8 && alarms.iter().all(|a| a.kind == AlarmKind::PositionsAhead))
    })
    .await?;
    assert!(halted, "every lane halts with an alarm: {:?}", relay.stats.alarms());
    assert!(relay.stats.alarms()[0].error.contains("saga outbox rebase"), "{:?}", relay.stats.alarms());
    // Cleanup must not take the rows nobody read (they sort below the cursors).
    outbox::cleanup::cleanup_once(&s.pool, Duration::ZERO, 1000, 10).await?;
    assert_eq!(rows_of(&s.pool, "fresh").await?, 3, "cleanup deleted unpublished rows");
    assert_eq!(rows_of(&s.pool, "k").await?, 6, "cleanup deleted unpublished rows");
    // Rebase is refused while a relay holds the lanes.
    assert!(outbox::rebase(&s.pool).await.is_err(), "rebase ran under a running relay");
    relay.stop().await?;

    // A relay starting now refuses, saying why.
    let refused = InProcessRelay::start(&s.pool, &bootstrap, relay_config("refused"))?;
    let err = tokio::time::timeout(Duration::from_secs(30), refused.handle).await??;
    assert!(
        matches!(&err, Err(outbox::OutboxError::PositionsAhead { .. })),
        "the relay started on positions ahead: {err:?}"
    );
    let ahead = outbox::rebase::positions_ahead(&s.pool).await?;
    assert!(ahead.iter().any(|p| p.what == "lane cursor") && ahead.iter().any(|p| p.what == "key position"));

    let rebased = outbox::rebase(&s.pool).await?;
    assert!(rebased.republished >= 6, "{rebased:?}");
    assert!(outbox::rebase::positions_ahead(&s.pool).await?.is_empty(), "still ahead after the rebase");

    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("after-the-rebase"))?;
    // A write after the rebase follows its key's republished rows.
    enqueue_committed(&s.pool, &message(&s.topic, "k", 6)).await?;
    let expected = HashMap::from([("k".to_owned(), 7u64), ("fresh".to_owned(), 3u64)]);
    let seen =
        consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(60), |v| distinct(v) >= 10)
            .await?;
    let stats = relay.stop().await?;
    let report = check_per_key_order(&seen, &expected)?;
    eprintln!("{rebased:?}; {} records, {} duplicates; {stats:?}", report.records, report.duplicates);
    Ok(())
}
