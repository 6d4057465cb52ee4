//! Handing lanes back does not starve leases. With the broker down, every
//! lane has a batch in flight that gets no ack (slow acks, at the extreme);
//! a second relay starts, so the first hands back half of its lanes, each
//! waiting out its shutdown grace. Meanwhile the lanes it keeps must go on
//! being renewed: none of their leases is lost (same owner, same epoch).

use std::collections::HashMap;
use std::time::Duration;

use super::support::*;

const KEYS: u64 = 40;

#[tokio::test]
async fn handing_back_lanes_with_slow_acks_loses_no_lease() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("handing_back_lanes_with_slow_acks_loses_no_lease") {
        return Ok(());
    }
    let s = setup(1).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    // Lease 2 s, shutdown grace 2 s: four lanes handed back one after the
    // other would hold the lease rounds for 8 s.
    let a = InProcessRelay::start(&s.pool, &bootstrap, relay_config("keeper"))?;
    let all = eventually(Duration::from_secs(20), || async {
        Ok(lane_owners(&s.pool).await?.iter().all(|(_, o, _, live)| *live && o.as_deref() == Some("keeper")))
    })
    .await?;
    anyhow::ensure!(all, "the first relay did not take every lane");

    s.env.broker.kill().await?;
    for k in 0..KEYS {
        enqueue_committed(&s.pool, &message(&s.topic, &format!("key-{k}"), 0)).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: HashMap<i32, i64> =
        lane_owners(&s.pool).await?.into_iter().map(|(l, _, e, _)| (l, e)).collect();

    let b = InProcessRelay::start(&s.pool, &bootstrap, relay_config("joiner"))?;
    let shared = eventually(Duration::from_secs(30), || async {
        let owners = lane_owners(&s.pool).await?;
        Ok(owners.iter().filter(|(_, o, _, live)| *live && o.as_deref() == Some("joiner")).count() == 4)
    })
    .await?;
    // Watch the kept lanes a while longer than the sequential hand-back took.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = lane_owners(&s.pool).await?;
    let kept: Vec<_> = after.iter().filter(|(_, o, _, _)| o.as_deref() == Some("keeper")).collect();
    let lost: Vec<_> = kept.iter().filter(|(l, _, e, live)| !live || before.get(l) != Some(e)).collect();

    s.env.broker.start_again().await?;
    let seen =
        consume_until(&bootstrap, &s.topic, 1, Duration::from_secs(60), |v| distinct(v) as u64 >= KEYS)
            .await?;
    a.stop().await?;
    b.stop().await?;
    assert!(shared, "the lanes were not shared: {after:?}");
    assert_eq!(kept.len(), 4, "the first relay kept its share: {after:?} (before {before:?})");
    assert!(lost.is_empty(), "leases lost while handing back: {lost:?} (before {before:?})");
    let expected: HashMap<String, u64> = (0..KEYS).map(|k| (format!("key-{k}"), 1)).collect();
    check_per_key_order(&seen, &expected)?;
    Ok(())
}
