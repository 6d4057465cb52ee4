//! The NOTIFY wake-up hint is a per-database switch (`outbox::set_notify`):
//! with it off, writers send nothing at commit (so their commits can share a
//! WAL flush) and relays still deliver every row, by polling.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::support::*;

#[tokio::test]
async fn enqueue_notifies_only_while_the_hint_is_on() -> anyhow::Result<()> {
    let pg = testkit::Postgres::start().await?;
    let pool = connect(&pg.fresh_database().await?, 4).await?;
    outbox::migrate(&pool).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(outbox::NOTIFY_CHANNEL).await?;

    // On by default: the commit notifies the row's lane.
    let mut tx = pool.begin().await?;
    let at = outbox::enqueue(&mut tx, &message("t", "k1", 0)).await?;
    tx.commit().await?;
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await??;
    assert_eq!(n.payload(), at.lane.to_string(), "the hint names the lane");

    // Off: the row is written, no notification follows its commit.
    outbox::set_notify(&pool, false).await?;
    enqueue_committed(&pool, &message("t", "k1", 1)).await?;
    let late = tokio::time::timeout(Duration::from_millis(800), listener.recv()).await;
    assert!(late.is_err(), "notified with the hint off: {late:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await?;
    assert_eq!(rows, 2);

    // On again.
    outbox::set_notify(&pool, true).await?;
    enqueue_committed(&pool, &message("t", "k1", 2)).await?;
    tokio::time::timeout(Duration::from_secs(5), listener.recv()).await??;
    Ok(())
}

#[tokio::test]
async fn with_the_hint_off_a_relay_delivers_every_row_in_order_by_polling() -> anyhow::Result<()> {
    let s = setup(3).await?;
    outbox::set_notify(&s.pool, false).await?;
    let relay = InProcessRelay::start(&s.pool, s.env.broker.bootstrap_servers(), relay_config("quiet"))?;
    let mut expected = HashMap::new();
    for seq in 0..60u64 {
        let key = format!("k{}", seq % 6);
        enqueue_committed(&s.pool, &message(&s.topic, &key, seq / 6)).await?;
        *expected.entry(key).or_insert(0u64) += 1;
        if seq % 20 == 19 {
            // Quiet spells in between: the lanes back off, then find rows again.
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    let seen = consume_until(
        s.env.broker.bootstrap_servers(),
        &s.topic,
        s.partitions,
        Duration::from_secs(60),
        |v| distinct(v) >= 60,
    )
    .await?;
    check_per_key_order(&seen, &expected)?;
    let stats = relay.stop().await?;
    assert!(stats.published >= 60, "{stats:?}");
    Ok(())
}
