//! Under a steady trickle of commits a lane reads at most once per tick of
//! `trickle_interval`: rows that commit meanwhile go out together in the next
//! batch, instead of one read, send and cursor write per row. The ticks are
//! shared by the relay's lanes, so lanes that are due together read in one
//! statement and record their acks in one statement.

use std::collections::HashMap;
use std::time::Duration;

use outbox::{RelayConfig, RelayStats};

use super::support::*;

const ROWS: u64 = 300;

/// Runs one relay over `lanes` lanes while `ROWS` rows over `keys` keys
/// commit one every 2 ms; checks every row arrived in per-key order and
/// returns what the relay did meanwhile.
async fn trickle(lanes: i32, keys: u64) -> anyhow::Result<RelayStats> {
    let s = setup(3).await?;
    outbox::lease::configure_lanes(&s.pool, lanes).await?;
    let config = RelayConfig { trickle_interval: Duration::from_millis(20), ..relay_config("trickle") };
    let relay = InProcessRelay::start(&s.pool, s.env.broker.bootstrap_servers(), config)?;
    let holds_lanes = || async {
        let owners = lane_owners(&s.pool).await?;
        Ok(owners.iter().filter(|(_, owner, _, live)| *live && owner.is_some()).count() == lanes as usize)
    };
    anyhow::ensure!(eventually(Duration::from_secs(30), holds_lanes).await?, "the relay took no lane");
    // One row first, so the producer is connected before the trickle starts.
    enqueue_committed(&s.pool, &message(&s.topic, "warm-up", 0)).await?;
    consume_until(s.env.broker.bootstrap_servers(), &s.topic, s.partitions, Duration::from_secs(30), |v| {
        !v.is_empty()
    })
    .await?;
    // The consumer can see the warm-up row before the relay counts it as
    // published (the count follows the delivery report): wait for the count,
    // or it lands in the trickle's figures.
    let counted = || async { Ok(relay.stats.get().published >= 1) };
    anyhow::ensure!(eventually(Duration::from_secs(10), counted).await?, "the warm-up row was not counted");
    let before = relay.stats.get();
    // One commit every 2 ms (or slower, in a debug build); a lane with a
    // batch out reads again only at the next 20 ms tick, so each batch finds
    // several rows waiting.
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let mut expected = HashMap::new();
    for seq in 0..ROWS {
        tick.tick().await;
        let key = format!("k{}", seq % keys);
        enqueue_committed(&s.pool, &message(&s.topic, &key, seq / keys)).await?;
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
    eprintln!("{lanes} lanes: {trickle:?}");
    assert_eq!(trickle.published, ROWS, "{trickle:?}");
    assert!(trickle.reads >= trickle.batches, "every batch was read: {trickle:?}");
    Ok(trickle)
}

#[tokio::test]
async fn a_steady_trickle_goes_out_in_batches_not_row_by_row() -> anyhow::Result<()> {
    // One lane, so every row goes through the same lane worker. Reading
    // whenever a commit notified gave ~120 batches.
    let stats = trickle(1, 10).await?;
    assert!(
        stats.batches <= ROWS / 4,
        "{ROWS} rows went out in {} batches: the lane kept reading while a batch was out ({stats:?})",
        stats.batches
    );
    Ok(())
}

#[tokio::test]
async fn lanes_due_at_the_same_tick_share_their_statements() -> anyhow::Result<()> {
    // Four lanes, a row every 2 ms: each lane finds rows at nearly every
    // 20 ms tick; the lanes read on the grid, so their reads fall due
    // together.
    let stats = trickle(4, 40).await?;
    assert!(
        stats.read_statements * 2 <= stats.reads,
        "{} lane reads took {} statements: the lanes read one by one ({stats:?})",
        stats.reads,
        stats.read_statements
    );
    assert!(
        stats.cursor_statements * 2 <= stats.batches,
        "{} batches took {} cursor writes: the lanes recorded one by one ({stats:?})",
        stats.batches,
        stats.cursor_statements
    );
    Ok(())
}
