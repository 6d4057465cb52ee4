//! The inbox makes redelivery harmless, against a real broker and PostgreSQL:
//!
//! * the same event (same event id) produced twice, the second time by a new
//!   producer session as a restarted outbox relay would, is applied once and
//!   its second delivery is counted as a duplicate;
//! * two consumers that receive the same records at the same time (what
//!   tansu's overlapping group assignments and any rebalance overlap cause)
//!   but share one inbox name apply every event exactly once between them.

use std::time::Duration;

use consumers::{CancellationToken, Consumer};

use super::support;

#[tokio::test]
async fn the_same_event_delivered_twice_is_applied_once() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "dedupe.commands";
    env.broker.create_topics(&[topic, "dedupe.commands.dlq"], 1).await?;
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();

    let twice = support::command(topic, 2)?;
    let once = support::command(topic, 3)?;
    support::send(&support::publisher(bootstrap)?, &twice).await?;
    // A new producer session: the idempotent producer cannot dedupe this one.
    let second_session = support::publisher(bootstrap)?;
    support::send(&second_session, &twice).await?;
    support::send(&second_session, &once).await?;

    let support::RunningConsumer { stats, cancel, task: running } =
        support::spawn_quick_consumer(support::consumer_config(bootstrap, "dedupe", topic), &pool)?;

    support::eventually("three records finished", Duration::from_secs(60), || async {
        Ok((stats.snapshot().finished() >= 3).then_some(()))
    })
    .await?;
    cancel.cancel();
    running.await??;

    let counts = support::effect_counts(&pool).await?;
    assert_eq!(counts.get(&twice.envelope.event_id), Some(&1), "delivered twice, applied once");
    assert_eq!(counts.get(&once.envelope.event_id), Some(&1));
    assert_eq!(counts.len(), 2);
    let s = stats.snapshot();
    assert_eq!((s.applied, s.duplicates, s.dead_lettered), (2, 1, 0), "{s:?}");

    let mut conn = pool.acquire().await?;
    assert!(consumers::inbox::contains(&mut conn, "dedupe", twice.envelope.event_id).await?);
    assert!(!consumers::inbox::contains(&mut conn, "another-consumer", twice.envelope.event_id).await?);
    Ok(())
}

#[tokio::test]
async fn two_members_receiving_the_same_records_apply_each_event_once() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "overlap.commands";
    env.broker.create_topics(&[topic, "overlap.commands.dlq"], 1).await?;
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();

    let producer = support::publisher(bootstrap)?;
    let mut ids = Vec::new();
    for i in 0..40 {
        let m = support::command(topic, i + 1)?;
        support::send(&producer, &m).await?;
        ids.push(m.envelope.event_id);
    }

    // Two groups, so the broker gives *both* every record, but one inbox
    // name: the worst case of an overlapping assignment.
    let cancel = CancellationToken::new();
    let mut runs = Vec::new();
    let mut stats = Vec::new();
    for group in ["overlap-a", "overlap-b"] {
        let mut config = support::consumer_config(bootstrap, group, topic);
        config.consumer_name = "overlap".into();
        let handler = support::EffectHandler { sleep: Duration::from_millis(5), announce: false };
        let consumer = Consumer::new(config, pool.clone(), handler)?;
        stats.push(consumer.stats());
        runs.push(tokio::spawn(consumer.run(cancel.clone())));
    }

    support::eventually("both members finished every record", Duration::from_secs(90), || async {
        Ok(stats.iter().all(|s| s.snapshot().finished() >= 40).then_some(()))
    })
    .await?;
    cancel.cancel();
    for r in runs {
        r.await??;
    }

    let counts = support::effect_counts(&pool).await?;
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "event {id} must be applied exactly once");
    }
    let (a, b) = (stats[0].snapshot(), stats[1].snapshot());
    assert_eq!(a.applied + b.applied, 40, "{a:?} {b:?}");
    assert_eq!(a.duplicates + b.duplicates, 40, "{a:?} {b:?}");
    Ok(())
}
