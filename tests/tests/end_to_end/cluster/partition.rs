//! A node is cut off the network (Docker network disconnect) while the relay
//! publishes, then healed: nothing acknowledged is lost, per-key order
//! holds, and the node catches up (all replicas back in sync).

use std::time::Duration;

use super::support::{RelayUnderLoad, setup, wait_fully_replicated};

#[tokio::test]
async fn a_node_cut_off_and_healed_loses_nothing() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("a_node_cut_off_and_healed_loses_nothing") {
        return Ok(());
    }
    let s = setup("partition").await?;
    let load = RelayUnderLoad::start(&s, "partition-relay").await?;
    let leader = s.cluster.leader(&s.topic, 0).await?;
    s.cluster.disconnect(leader).await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = load.published();
    s.cluster.reconnect(leader).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let done = load.finish(&s).await?;
    wait_fully_replicated(s.cluster.bootstrap_servers(), &s.topic, Duration::from_secs(90)).await?;
    eprintln!(
        "{} events, {} records ({} duplicates); node {leader} cut off for 15 s ({during} published by then), healed and in sync",
        done.total, done.report.records, done.report.duplicates
    );
    Ok(())
}
