//! Under a steady trickle of commits a lane with a batch out reads again only
//! after the acks or `trickle_interval`: rows that commit meanwhile go out
//! together in the next batch, instead of one read, send and cursor write per
//! row.

use std::collections::HashMap;
use std::time::Duration;

use outbox::RelayConfig;

use super::support::*;

#[tokio::test]
async fn a_steady_trickle_goes_out_in_batches_not_row_by_row() -> anyhow::Result<()> {
    const ROWS: u64 = 300;
    let s = setup(3).await?;
    // One lane, so every row goes through the same lane worker.
    outbox::lease::configure_lanes(&s.pool, 1).await?;
    let config = RelayConfig { trickle_interval: Duration::from_millis(20), ..relay_config("trickle") };
    let relay = InProcessRelay::start(&s.pool, s.env.broker.bootstrap_servers(), config)?;
    let holds_lane = || async {
        Ok(lane_owners(&s.pool).await?.iter().any(|(_, owner, _, live)| *live && owner.is_some()))
    };
    anyhow::ensure!(eventually(Duration::from_secs(30), holds_lane).await?, "the relay took no lane");
    // One row first, so the producer is connected before the trickle starts.
    enqueue_committed(&s.pool, &message(&s.topic, "warm-up", 0)).await?;
    consume_until(s.env.broker.bootstrap_servers(), &s.topic, s.partitions, Duration::from_secs(30), |v| {
        !v.is_empty()
    })
    .await?;
    let before = relay.stats.get();
    // One commit every 2 ms (or slower, in a debug build); a lane with a
    // batch out reads again only after its ack (at least the producer's
    // 5 ms linger) or the 20 ms trickle interval, so each batch finds several
    // rows waiting. Reading whenever a commit notified gave ~120 batches.
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let mut expected = HashMap::new();
    for seq in 0..ROWS {
        tick.tick().await;
        let key = format!("k{}", seq % 10);
        enqueue_committed(&s.pool, &message(&s.topic, &key, seq / 10)).await?;
        *expected.entry(key).or_insert(0u64) += 1;
    }
    let seen = consume_until(
        s.env.broker.bootstrap_servers(),
        &s.topic,
        s.partitions,
        Duration::from_secs(60),
        |v| distinct(v) > ROWS as usize,
    )
    .await?;
    expected.insert("warm-up".to_owned(), 1);
    check_per_key_order(&seen, &expected)?;
    let stats = relay.stop().await?;
    let trickle = stats.since(&before);
    let (published, batches) = (trickle.published, trickle.batches);
    assert_eq!(published, ROWS, "{stats:?}");
    assert!(stats.reads >= stats.batches, "every batch was read: {stats:?}");
    assert!(
        batches <= ROWS / 4,
        "{ROWS} rows went out in {batches} batches: the lane kept reading while a batch was out ({stats:?})"
    );
    Ok(())
}
