//! The leader of a partition is killed (SIGKILL) while the relay publishes
//! and while a consumer applies: every acknowledged record survives, per-key
//! order holds, and both go on with the new leader.

use std::time::Duration;

use super::support::{RelayUnderLoad, setup};
use crate::consumer_runtime::support as consumer;
use crate::outbox_relay::support::eventually;

#[tokio::test]
async fn relay_loses_nothing_and_keeps_key_order_when_the_leader_dies() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers(
        "relay_loses_nothing_and_keeps_key_order_when_the_leader_dies",
    ) {
        return Ok(());
    }
    let s = setup("relay").await?;
    let load = RelayUnderLoad::start(&s, "cluster-relay").await?;
    let leader = s.cluster.leader(&s.topic, 0).await?;
    s.cluster.kill(leader).await?;
    let at_kill = load.published();
    // The writers go on through the failover and after it.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let done = load.finish(&s).await?;
    let new_leader = s.cluster.leader(&s.topic, 0).await?;
    eprintln!(
        "{} events, {} records ({} duplicates); leader {leader} killed after {at_kill} published, now {new_leader}",
        done.total, done.report.records, done.report.duplicates
    );
    assert_ne!(new_leader, leader, "leadership moved off the killed node");
    assert!(
        done.relay.published >= done.total && done.relay.published > at_kill,
        "the relay went on after the kill"
    );
    Ok(())
}

#[tokio::test]
async fn consumer_applies_everything_once_when_the_leader_dies() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("consumer_applies_everything_once_when_the_leader_dies") {
        return Ok(());
    }
    let s = setup("consumer").await?;
    let bootstrap = s.cluster.bootstrap_servers().to_owned();
    let pool = consumer::prepare_database(&s.db_url).await?;
    let publisher = consumer::publisher(&bootstrap)?;
    let mut sent = Vec::new();
    for _ in 0..1500 {
        let m = consumer::command(&s.topic, 1)?;
        sent.push(m.envelope.event_id);
        consumer::send(&publisher, &m).await?;
    }
    let config = consumer::consumer_config(&bootstrap, "cluster-consumer", &s.topic);
    let running = consumer::spawn_quick_consumer(config, &pool)?;
    let started = eventually(Duration::from_secs(60), || async {
        Ok(consumer::effect_counts(&pool).await?.len() >= 300)
    })
    .await?;
    anyhow::ensure!(started, "the consumer did not get going");
    let leader = s.cluster.leader(&s.topic, 0).await?;
    s.cluster.kill(leader).await?;
    // Records produced after the kill reach the new leader and the consumer.
    for _ in 0..300 {
        let m = consumer::command(&s.topic, 1)?;
        sent.push(m.envelope.event_id);
        consumer::send(&publisher, &m).await?;
    }
    let counts = consumer::wait_for_effects(&pool, &sent, Duration::from_secs(120)).await?;
    running.cancel.cancel();
    running.task.await??;
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "events applied more than once: {twice:?}");
    assert_eq!(counts.len(), sent.len(), "every event applied");
    assert_ne!(s.cluster.leader(&s.topic, 0).await?, leader);
    Ok(())
}
