//! A dead letter that cannot be published halts its partition — visibly,
//! losing nothing — and the partition resumes by itself once the cause is
//! fixed. Against a real broker (topic auto-creation off) and PostgreSQL.

use std::time::Duration;

use super::support;
use consumers::{CancellationToken, Consumer};
use producers::{KafkaPublisher, ProducerConfig, Publisher as _, Record};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

/// The group's committed offset of `topic`/`partition`, if any.
fn committed(bootstrap: &str, group: &str, topic: &str, partition: i32) -> anyhow::Result<Option<i64>> {
    let reader: BaseConsumer = testkit::external::client_config(bootstrap).set("group.id", group).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let offsets = reader.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(offsets.find_partition(topic, partition).and_then(|e| match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_dead_letter_topic_halts_its_partition_and_it_resumes_once_created() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "halt.commands";
    let dlq = "halt.commands.dlq";
    env.broker.create_topics(&[topic], 2).await?; // no dead-letter topic
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;

    // A poison record (valid envelope, garbage body), then a good record of
    // the same key behind it, then good records of other keys until one
    // lands on the other partition.
    let poison = support::command(topic, 1)?;
    let headers = poison.envelope.to_headers();
    let poison_record =
        Record { payload: Some(&b"not avro"[..]), ..Record::from_outgoing(&poison, &headers) };
    let poison_at = producer.publish(poison_record).await?;
    let behind = support::command(topic, 2)?;
    let mut behind_msg = behind.clone();
    behind_msg.key = poison.key.clone();
    let behind_headers = behind_msg.envelope.to_headers();
    let behind_at = producer.publish(Record::from_outgoing(&behind_msg, &behind_headers)).await?;
    assert_eq!(behind_at.partition, poison_at.partition, "same key, same partition");
    // Every record behind the poison on its partition, and the last offset.
    let mut held: Vec<Uuid> = vec![behind.envelope.event_id];
    let mut last = behind_at.offset;
    let mut elsewhere: Vec<Uuid> = Vec::new();
    while elsewhere.is_empty() {
        let m = support::command(topic, 3)?;
        let h = m.envelope.to_headers();
        let at = producer.publish(Record::from_outgoing(&m, &h)).await?;
        if at.partition == poison_at.partition {
            held.push(m.envelope.event_id);
            last = at.offset;
        } else {
            elsewhere.push(m.envelope.event_id);
        }
    }

    // The dead-letter producer learns quickly that the topic is missing.
    let dead_letters = KafkaPublisher::new(
        &ProducerConfig {
            linger_ms: 0,
            overrides: support::cluster_properties(),
            ..ProducerConfig::new(bootstrap)
        }
        .with_override("topic.metadata.propagation.max.ms", "2000"),
    )?;
    let mut config = support::consumer_config(bootstrap, "halt", topic);
    config.dead_letter_max_delay = Duration::from_secs(2);
    let consumer =
        Consumer::with_publisher(config, pool.clone(), support::EffectHandler::quick(), dead_letters)?;
    let stats = consumer.stats();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(consumer.run(cancel.clone()));

    support::eventually("the partition to halt", Duration::from_secs(60), || async {
        Ok((stats.snapshot().halted_partitions == 1).then_some(()))
    })
    .await?;
    support::wait_for_effects(&pool, &elsewhere, Duration::from_secs(30)).await?;
    // Stays halted: the record behind the poison waits, nothing is
    // committed past the poison.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let counts = support::effect_counts(&pool).await?;
    assert!(!held.iter().any(|id| counts.contains_key(id)), "a record overtook the halted poison record");
    let s = stats.snapshot();
    assert_eq!((s.halted_partitions, s.dead_lettered), (1, 0), "{s:?}");
    let at = committed(bootstrap, "halt", topic, poison_at.partition)?;
    assert!(
        at.is_none_or(|o| o <= poison_at.offset),
        "committed {at:?} past the poison at {}",
        poison_at.offset
    );

    env.broker.create_topics(&[dlq], 1).await?;
    support::wait_for_effects(&pool, &held, Duration::from_secs(60)).await?;
    let s = stats.snapshot();
    assert_eq!((s.halted_partitions, s.dead_lettered), (0, 1), "{s:?}");
    support::eventually("the commit past the poison and what it held", Duration::from_secs(30), || async {
        let at = committed(bootstrap, "halt", topic, poison_at.partition)?;
        Ok((at == Some(last + 1)).then_some(()))
    })
    .await?;
    cancel.cancel();
    run.await??;
    Ok(())
}
