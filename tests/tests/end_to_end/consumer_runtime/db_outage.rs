//! A database outage is a transient failure: records that arrive while
//! PostgreSQL is down are retried in place until it is back, then applied
//! exactly once, in order, and nothing is dead-lettered.

use std::time::Duration;

use super::support;
use consumers::RetryPolicy;

#[tokio::test]
async fn records_are_retried_through_a_database_outage_and_applied_once() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers(
        "records_are_retried_through_a_database_outage_and_applied_once",
    ) {
        return Ok(());
    }
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "outage.commands";
    env.broker.create_topics(&[topic, "outage.commands.dlq"], 1).await?;
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;

    let mut config = support::consumer_config(bootstrap, "outage", topic);
    // Patient enough for the outage below (about 2 minutes of retries at most).
    config.retry = RetryPolicy {
        max_attempts: 80,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        factor: 2.0,
        jitter: true,
    };
    let support::RunningConsumer { stats, cancel, task: running } =
        support::spawn_quick_consumer(config, &pool)?;

    let before = support::command(topic, 1)?;
    support::send(&producer, &before).await?;
    support::wait_for_effects(&pool, &[before.envelope.event_id], Duration::from_secs(60)).await?;

    env.postgres.stop().await?;
    let during: Vec<_> = (0..3).map(|i| support::command(topic, 10 + i)).collect::<Result<_, _>>()?;
    for m in &during {
        support::send(&producer, m).await?;
    }
    support::eventually(
        "the consumer to retry against the stopped database",
        Duration::from_secs(60),
        || async { Ok((stats.snapshot().retries >= 3).then_some(())) },
    )
    .await?;
    assert_eq!(stats.snapshot().applied, 1, "nothing can be applied while the database is down");
    env.postgres.start_again().await?;

    let ids: Vec<_> = during.iter().map(|m| m.envelope.event_id).collect();
    let counts = support::wait_for_effects(&pool, &ids, Duration::from_secs(90)).await?;
    cancel.cancel();
    running.await??;

    for id in ids.iter().chain([&before.envelope.event_id]) {
        assert_eq!(counts.get(id), Some(&1), "event {id} applied exactly once");
    }
    let s = stats.snapshot();
    assert_eq!((s.applied, s.dead_lettered), (4, 0), "{s:?}");
    assert!(s.retries >= 3, "{s:?}");

    // Order was kept: the records were applied in the order they were produced.
    let order: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM consumer_effects ORDER BY applied_at, ctid")
            .fetch_all(&pool)
            .await?;
    assert_eq!(order[1..], ids[..], "applied in partition order");
    Ok(())
}
