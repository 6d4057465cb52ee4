//! Re-sending parked rows against a running relay. A key is parked behind a
//! record the topic refuses (over its `max.message.bytes`); while writers go
//! on writing the key (so its later rows are parked, in the relay's
//! pipeline or still unread when the operator acts), the limit is raised and
//! `requeue_parked` re-sends the key: every row arrives once or more, in
//! order. Discarding works by row id, so a copy with the same event id is
//! not discarded with the original.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::support::*;

/// Topic limit during the test, and a payload above it (below librdkafka's
/// own 1 MB, so only the broker refuses it).
const SMALL_LIMIT: &str = "20000";
const BIG: usize = 50_000;

async fn parked_count(pool: &sqlx::PgPool) -> anyhow::Result<usize> {
    Ok(outbox::list_parked(pool, 1000).await?.len())
}

/// Parks `key`: row 0 goes out, row 1 is refused by the topic, rows 2 and 3
/// are parked behind it.
async fn park_key(s: &Setup, key: &str) -> anyhow::Result<()> {
    enqueue_committed(&s.pool, &message(&s.topic, key, 0)).await?;
    // Published on its own: in one produce request with the big one the
    // broker would refuse both (a batch-wide rejection).
    let out = eventually(Duration::from_secs(30), || async { Ok(s.pool_backlog().await? == 0) }).await?;
    anyhow::ensure!(out, "row 0 was not published");
    let mut big = message(&s.topic, key, 1);
    // Big in a header, so that the payload stays `key:seq`.
    big.envelope.aggregate_type = "x".repeat(BIG);
    enqueue_committed(&s.pool, &big).await?;
    let refused =
        eventually(Duration::from_secs(30), || async { Ok(parked_count(&s.pool).await? >= 1) }).await?;
    anyhow::ensure!(refused, "the oversized row was not parked");
    for i in 2..4 {
        enqueue_committed(&s.pool, &message(&s.topic, key, i)).await?;
    }
    let blocked =
        eventually(Duration::from_secs(30), || async { Ok(parked_count(&s.pool).await? >= 3) }).await?;
    anyhow::ensure!(
        blocked,
        "the rows behind it were not parked: {:?}",
        outbox::list_parked(&s.pool, 10).await?
    );
    Ok(())
}

#[tokio::test]
async fn requeue_parked_resends_a_key_in_order_while_the_relay_runs_and_writers_write() -> anyhow::Result<()>
{
    let s = setup(1).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    alter_topic(&bootstrap, &s.topic, &[("max.message.bytes", SMALL_LIMIT)]).await?;
    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("requeue"))?;
    park_key(&s, "k").await?;

    // Writers go on with the key (and another one) while the operator acts.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, topic, stop) = (s.pool.clone(), s.topic.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut k, mut other) = (4u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                enqueue_committed(&pool, &message(&topic, "k", k)).await?;
                enqueue_committed(&pool, &message(&topic, "other", other)).await?;
                (k, other) = (k + 1, other + 1);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            anyhow::Ok((k, other))
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    alter_topic(&bootstrap, &s.topic, &[("max.message.bytes", "1048588")]).await?;
    let requeued = outbox::requeue_parked(&s.pool, "k").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (k, other) = writer.await??;

    let expected = HashMap::from([("k".to_owned(), k), ("other".to_owned(), other)]);
    let total = k + other;
    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(90), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    let left = outbox::list_parked(&s.pool, 1000).await?;
    let stats = relay.stop().await?;
    let report = check_per_key_order(&seen, &expected)
        .map_err(|e| e.context(format!("{requeued} requeued; parked now {left:?}; {stats:?}")))?;
    eprintln!("{requeued} rows requeued, {} records, {} duplicates", report.records, report.duplicates);
    assert!(requeued >= 3, "the three parked rows are requeued: {requeued}");
    assert!(left.is_empty(), "nothing stays parked: {left:?}");
    assert_eq!(outbox::requeue_parked(&s.pool, "k").await?, 0, "a key without parked rows is left alone");
    Ok(())
}

/// The old procedure's trap: a copy of a parked row (same event id) enqueued
/// while its key is blocked is parked behind the original. Discarding the
/// original by row id keeps the copy, which goes out with the requeue.
#[tokio::test]
async fn discard_by_row_id_keeps_a_copy_with_the_same_event_id() -> anyhow::Result<()> {
    let s = setup(1).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    alter_topic(&bootstrap, &s.topic, &[("max.message.bytes", SMALL_LIMIT)]).await?;
    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("discard"))?;
    park_key(&s, "k").await?;
    let original = outbox::list_parked(&s.pool, 10).await?.into_iter().find(|p| p.blocked_by.is_none());
    let original = original.ok_or_else(|| anyhow::anyhow!("no rejected row parked"))?;
    // The copy: same event id, a payload the topic takes, seq 1 again.
    let mut copy = message(&s.topic, "k", 1);
    copy.envelope.event_id = original.event_id;
    enqueue_committed(&s.pool, &copy).await?;
    let copied =
        eventually(Duration::from_secs(30), || async { Ok(parked_count(&s.pool).await? >= 4) }).await?;
    assert!(copied, "the copy is parked behind the original");

    assert!(outbox::discard_parked(&s.pool, original.id).await?, "the original is discarded");
    assert!(!outbox::discard_parked(&s.pool, original.id).await?, "only once");
    let left = outbox::list_parked(&s.pool, 10).await?;
    assert_eq!(left.len(), 3, "the copy and the rows behind stay parked: {left:?}");
    assert!(left.iter().any(|p| p.event_id == original.event_id), "the copy was discarded too: {left:?}");

    // The rows behind (seq 2, 3) came before the copy: requeue keeps that order.
    assert_eq!(outbox::requeue_parked(&s.pool, "k").await?, 3);
    let seen =
        consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(60), |v| v.len() >= 4).await?;
    relay.stop().await?;
    let seqs: Vec<u64> = seen.iter().map(|x| x.seq).collect();
    assert_eq!(seqs, vec![0, 2, 3, 1], "row 0, then the parked rows in their order, then the copy");
    Ok(())
}
