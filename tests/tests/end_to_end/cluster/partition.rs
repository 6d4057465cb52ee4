//! A node is cut off the network (Docker network disconnect) while the relay
//! publishes, then healed: nothing acknowledged is lost, per-key order
//! holds, and the node catches up (all replicas back in sync).

use std::time::Duration;

use super::support::{PARTITIONS, setup, wait_fully_replicated};
use crate::outbox_relay::support::{
    InProcessRelay, Writers, check_per_key_order, consume_until, distinct, eventually, relay_config,
};

#[tokio::test]
async fn a_node_cut_off_and_healed_loses_nothing() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("a_node_cut_off_and_healed_loses_nothing") {
        return Ok(());
    }
    let s = setup("partition").await?;
    let bootstrap = s.cluster.bootstrap_servers().to_owned();
    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("partition-relay"))?;
    let writers = Writers::start(&s.pool, &s.topic, 2, 20, 5, Duration::from_millis(10));
    let stats = relay.stats.clone();
    let flowing = eventually(Duration::from_secs(60), || async { Ok(stats.get().published >= 500) }).await?;
    anyhow::ensure!(flowing, "relay published {} before the cut", stats.get().published);

    let leader = s.cluster.leader(&s.topic, 0).await?;
    s.cluster.disconnect(leader).await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = stats.get().published;
    s.cluster.reconnect(leader).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expected = writers.stop().await?;
    let total: u64 = expected.values().sum();

    let seen = consume_until(&bootstrap, &s.topic, PARTITIONS, Duration::from_secs(120), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    let report = check_per_key_order(&seen, &expected)
        .map_err(|e| e.context(format!("{} of {total} events read back", distinct(&seen))))?;
    wait_fully_replicated(&bootstrap, &s.topic, Duration::from_secs(90)).await?;
    relay.stop().await?;
    eprintln!(
        "{total} events, {} records ({} duplicates); node {leader} cut off for 15 s ({during} published by then), healed and in sync",
        report.records, report.duplicates
    );
    Ok(())
}
