//! Consumer groups: members join and leave while records flow; nothing is
//! lost and nothing is applied twice. A second member joining triggers a
//! rebalance (offsets committed on revocation); the first member then shuts
//! down gracefully (commit, leave) and the second takes over its partitions.

use std::time::{Duration, Instant};

use super::support;
use consumers::{CancellationToken, Consumer};
use uuid::Uuid;

async fn produce(
    producer: &producers::KafkaPublisher,
    topic: &str,
    n: i32,
    ids: &mut Vec<Uuid>,
) -> anyhow::Result<()> {
    for i in 0..n {
        let m = support::command(topic, i + 1)?;
        support::send(producer, &m).await?;
        ids.push(m.envelope.event_id);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_lose_nothing_and_apply_nothing_twice() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "group.commands";
    env.broker.create_topics(&[topic, "group.commands.dlq"], 3).await?;
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;
    let member = |name: &str| {
        let mut config = support::consumer_config(bootstrap, "group", topic);
        config.client_id = name.to_owned();
        let handler = support::EffectHandler { sleep: Duration::from_millis(20), announce: false };
        Consumer::new(config, pool.clone(), handler)
    };

    let mut ids = Vec::new();
    produce(&producer, topic, 60, &mut ids).await?;

    let a = member("member-a")?;
    let a_stats = a.stats();
    let a_cancel = CancellationToken::new();
    let a_run = tokio::spawn(a.run(a_cancel.clone()));
    support::eventually("member A to start applying", Duration::from_secs(60), || async {
        Ok((a_stats.snapshot().finished() >= 10).then_some(()))
    })
    .await?;

    let b = member("member-b")?;
    let b_stats = b.stats();
    let b_cancel = CancellationToken::new();
    let b_run = tokio::spawn(b.run(b_cancel.clone()));
    // Keep records coming until B has partitions and applies some: a fixed
    // batch could be drained by A before the rebalance hands B anything.
    let deadline = Instant::now() + Duration::from_secs(90);
    while b_stats.snapshot().finished() < 5 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "member B applied nothing within 90 s: A {:?}, B {:?}",
            a_stats.snapshot(),
            b_stats.snapshot()
        );
        produce(&producer, topic, 6, &mut ids).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A leaves gracefully while records are still coming.
    a_cancel.cancel();
    produce(&producer, topic, 60, &mut ids).await?;
    a_run.await??;

    let counts = support::wait_for_effects(&pool, &ids, Duration::from_secs(120)).await?;
    b_cancel.cancel();
    b_run.await??;

    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "event {id} applied exactly once");
    }
    assert_eq!(counts.len(), ids.len());
    let (a, b) = (a_stats.snapshot(), b_stats.snapshot());
    assert_eq!(a.applied + b.applied, ids.len() as u64, "{a:?} {b:?}");
    assert_eq!(a.dead_lettered + b.dead_lettered, 0);
    assert!(a.applied > 0 && b.applied > 0, "both members did work: {a:?} {b:?}");
    Ok(())
}
