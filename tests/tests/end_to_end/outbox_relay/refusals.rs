//! Broker-side refusals must not park innocent rows. A topic with a small
//! `max.message.bytes` and a mixed batch (one record over the limit among
//! small ones, all sent in one produce request): only the oversized record
//! is parked (and the rows of its key behind it); the rest is published.
//! A topic the relay's user may not write to halts the lane with an alarm
//! and parks nothing.

use std::collections::HashMap;
use std::time::Duration;

use super::support::*;
use outbox::AlarmKind;

#[tokio::test]
async fn a_record_over_the_topic_limit_is_parked_alone_from_a_mixed_batch() -> anyhow::Result<()> {
    let s = setup(1).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    alter_topic(&bootstrap, &s.topic, &[("max.message.bytes", "20000")]).await?;
    // All committed before the relay starts: one batch, one produce request.
    for (key, seq) in [("a", 0), ("b", 0), ("a", 1), ("c", 0), ("b", 1), ("a", 2)] {
        let mut m = message(&s.topic, key, seq);
        if (key, seq) == ("b", 0) {
            // 50 kB in a header: over the topic's limit, under librdkafka's.
            m.envelope.aggregate_type = "x".repeat(50_000);
        }
        enqueue_committed(&s.pool, &m).await?;
    }
    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("mixed"))?;
    let done = eventually(Duration::from_secs(30), || async {
        let st = relay.stats.get();
        Ok(st.published + st.parked >= 6)
    })
    .await?;
    let seen = consume_until(&bootstrap, &s.topic, 1, Duration::from_secs(30), |v| v.len() >= 4).await?;
    let seen =
        consume_until(&bootstrap, &s.topic, 1, Duration::from_secs(2), |v| v.len() > seen.len()).await?;
    let stats = relay.stop().await?;
    let parked = outbox::list_parked(&s.pool, 10).await?;
    assert!(done, "{stats:?}");
    assert!(seen.iter().all(|x| x.key != "b"), "a row of the refused key went out: {seen:?}");
    check_per_key_order(&seen, &HashMap::from([("a".to_owned(), 3u64), ("c".to_owned(), 1u64)]))
        .map_err(|e| e.context(format!("innocent rows were parked: {parked:?}")))?;
    let parked_keys: Vec<(&str, bool)> =
        parked.iter().map(|p| (p.key.as_str(), p.blocked_by.is_some())).collect();
    assert_eq!(parked_keys, vec![("b", false), ("b", true)], "{parked:?}");
    assert!(parked[0].reason.contains("max.message.bytes"), "{parked:?}");
    Ok(())
}

#[tokio::test]
async fn a_topic_the_relay_may_not_write_halts_the_lane_and_parks_nothing() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers(
        "a_topic_the_relay_may_not_write_halts_the_lane_and_parks_nothing",
    ) {
        return Ok(());
    }
    init_tracing();
    let (broker, postgres) = tokio::join!(testkit::SecureBroker::start(), testkit::Postgres::start());
    let (broker, postgres) = (broker?, postgres?);
    let topic = "refused.commands";
    broker.create_topics(&[topic], 1).await?;
    let pool = connect(&postgres.fresh_database().await?, 10).await?;
    outbox::migrate(&pool).await?;
    for i in 0..3 {
        enqueue_committed(&pool, &message(topic, "k", i)).await?;
    }
    // The reader may read, not write.
    let producer = broker
        .client_properties("reader", testkit::secure::READER_PASSWORD)
        .into_iter()
        .fold(producers::ProducerConfig::new(broker.bootstrap_servers()), |c, (k, v)| c.with_override(k, v));
    let relay = outbox::OutboxRelay::new(pool.clone(), producer, relay_config("no-acl"))?;
    let stats = relay.stats();
    let cancel = outbox::CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone()));
    let alarmed = eventually(Duration::from_secs(60), || async {
        Ok(stats.alarms().iter().any(|a| a.kind == AlarmKind::TopicRefused))
    })
    .await?;
    // Give a wrong parking time to happen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alarms = stats.alarms();
    let parked = outbox::list_parked(&pool, 10).await?;
    cancel.cancel();
    task.await??;
    assert!(alarmed, "no alarm for the refused topic: {alarms:?}");
    let alarm = alarms.iter().find(|a| a.kind == AlarmKind::TopicRefused).expect("alarm");
    assert_eq!(alarm.topic.as_deref(), Some(topic), "{alarm:?}");
    assert!(alarm.error.to_lowercase().contains("authoriz"), "{alarm:?}");
    assert!(parked.is_empty(), "rows were parked for a refused topic: {parked:?}");
    assert_eq!(outbox::store::backlog(&pool).await?.rows, 3, "the rows wait for the operator");
    Ok(())
}
