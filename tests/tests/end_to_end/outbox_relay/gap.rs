//! Gap-freedom under out-of-order commits (Watermill #311) and per-key order
//! when transaction ids are not in commit order.

use std::collections::HashMap;
use std::time::Duration;

use super::support::*;

/// T1 inserts and stays open; T2 inserts later (higher id, higher xid) and
/// commits; the relay runs for a while; T1 commits. T1's row must still be
/// published — a relay with an `id > last_id` cursor would have skipped it.
#[tokio::test]
async fn a_long_transaction_that_commits_late_is_not_skipped() -> anyhow::Result<()> {
    let s = setup(3).await?;
    let relay = InProcessRelay::start(&s.pool, s.env.broker.bootstrap_servers(), relay_config("r1"))?;
    let bootstrap = s.env.broker.bootstrap_servers();

    let mut t1 = s.pool.begin().await?;
    let e1 = outbox::enqueue(&mut t1, &message(&s.topic, "long", 0)).await?;

    let mut t2 = s.pool.begin().await?;
    let e2 = outbox::enqueue(&mut t2, &message(&s.topic, "short", 0)).await?;
    t2.commit().await?;
    assert!(e1.id < e2.id, "T1's row has the lower id");

    // Let the relay poll several times while T1 is open. The watermark holds
    // everything at or after T1 back (the price of never skipping it).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = consume_until(bootstrap, &s.topic, s.partitions, Duration::from_secs(5), |_| false).await?;
    assert!(early.is_empty(), "nothing behind the open transaction is published yet: {early:?}");

    t1.commit().await?;
    enqueue_committed(&s.pool, &message(&s.topic, "short", 1)).await?;
    let seen =
        consume_until(bootstrap, &s.topic, s.partitions, Duration::from_secs(60), |v| distinct(v) >= 3)
            .await?;
    relay.stop().await?;

    let expected = HashMap::from([("long".to_owned(), 1u64), ("short".to_owned(), 2u64)]);
    check_per_key_order(&seen, &expected)?;
    Ok(())
}

/// Tb gets its transaction id first (it writes a business row), then Ta
/// enqueues for key K and holds K; Tb's enqueue for K waits; Ta commits, then
/// Tb. Kafka must show Ta's event before Tb's although Tb's xid is lower.
#[tokio::test]
async fn a_key_follows_commit_order_not_transaction_id_order() -> anyhow::Result<()> {
    let s = setup(1).await?;
    sqlx::query("CREATE TABLE business (note text)").execute(&s.pool).await?;
    let relay = InProcessRelay::start(&s.pool, s.env.broker.bootstrap_servers(), relay_config("r1"))?;

    let mut tb = s.pool.begin().await?;
    sqlx::query("INSERT INTO business VALUES ('b')").execute(&mut *tb).await?;
    let xid_b: i64 =
        sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint").fetch_one(&mut *tb).await?;

    let mut ta = s.pool.begin().await?;
    sqlx::query("INSERT INTO business VALUES ('a')").execute(&mut *ta).await?;
    let xid_a: i64 =
        sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint").fetch_one(&mut *ta).await?;
    assert!(xid_b < xid_a);
    outbox::enqueue(&mut ta, &message(&s.topic, "K", 0)).await?;

    let topic = s.topic.clone();
    let waiting = tokio::spawn(async move {
        outbox::enqueue(&mut tb, &message(&topic, "K", 1)).await?;
        tb.commit().await?;
        anyhow::Ok(())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "Tb waits for Ta's hold on key K");
    ta.commit().await?;
    waiting.await??;

    let seen = consume_until(s.env.broker.bootstrap_servers(), &s.topic, 1, Duration::from_secs(60), |v| {
        distinct(v) >= 2
    })
    .await?;
    relay.stop().await?;
    check_per_key_order(&seen, &HashMap::from([("K".to_owned(), 2u64)]))?;
    Ok(())
}
