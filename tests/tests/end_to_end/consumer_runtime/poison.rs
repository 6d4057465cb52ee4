//! Poison records never stop a consumer: each lands on `<topic>.dlq` with
//! its original bytes and the reason in `dlq-*` headers, its offset is
//! committed, and the next record is processed. Against a real broker and
//! PostgreSQL.
//!
//! Three kinds of poison, each followed by a good record:
//! * a garbage payload behind a valid envelope (the handler cannot decode it);
//! * no envelope headers at all (the runtime cannot even read an event id);
//! * a message type the handler does not know.

use std::collections::HashMap;
use std::time::Duration;

use super::support;
use consumers::dead_letter::header;
use events::envelope::header as envelope_header;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

/// One dead letter as read back from the broker.
#[derive(Debug)]
struct Parked {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: HashMap<String, String>,
}

async fn read_dead_letters(bootstrap: &str, topic: &str, want: usize) -> anyhow::Result<Vec<Parked>> {
    let consumer: StreamConsumer = testkit::external::client_config(bootstrap)
        .set("group.id", "poison-dlq-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut parked = Vec::new();
    while parked.len() < want {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        parked.push(Parked {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    Ok(parked)
}

#[tokio::test]
async fn poison_records_are_dead_lettered_with_their_reason_and_the_next_record_is_processed()
-> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "poison.commands";
    let dlq = "poison.commands.dlq";
    env.broker.create_topics(&[topic, dlq], 1).await?;
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;

    // offset 0: good
    let good = [
        support::command(topic, 1)?,
        support::command(topic, 2)?,
        support::command(topic, 3)?,
        support::command(topic, 4)?,
    ];
    support::send(&producer, &good[0]).await?;

    // offset 1: a valid envelope around bytes that are not Avro
    let garbage = support::command(topic, 9)?;
    let garbage_headers = garbage.envelope.to_headers();
    let garbage_pairs: Vec<(&str, &[u8])> = garbage_headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    support::send_raw(&producer, topic, b"poison-1", b"\xff\xfenot avro at all", &garbage_pairs).await?;
    support::send(&producer, &good[1]).await?;

    // offset 3: no envelope headers
    support::send_raw(&producer, topic, b"poison-2", &garbage.payload, &[("x-origin", b"somebody's script")])
        .await?;
    support::send(&producer, &good[2]).await?;

    // offset 5: a message type nobody handles
    let mut unknown = support::command(topic, 9)?;
    unknown.envelope.message_type = "saga.unknown.Mystery".into();
    let unknown_headers = unknown.envelope.to_headers();
    let unknown_pairs: Vec<(&str, &[u8])> = unknown_headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    support::send_raw(&producer, topic, b"poison-3", &unknown.payload, &unknown_pairs).await?;
    support::send(&producer, &good[3]).await?;

    let support::RunningConsumer { stats, cancel, task: running } =
        support::spawn_quick_consumer(support::consumer_config(bootstrap, "poison", topic), &pool)?;

    let good_ids: Vec<_> = good.iter().map(|m| m.envelope.event_id).collect();
    let counts = support::wait_for_effects(&pool, &good_ids, Duration::from_secs(60)).await?;
    cancel.cancel();
    running.await??;

    for id in &good_ids {
        assert_eq!(counts.get(id), Some(&1), "good record {id} applied once");
    }
    assert_eq!(counts.len(), 4, "no poison record had an effect");
    let s = stats.snapshot();
    assert_eq!((s.applied, s.dead_lettered), (4, 3), "{s:?}");

    let parked = read_dead_letters(bootstrap, dlq, 3).await?;
    let by_offset: HashMap<&str, &Parked> = parked
        .iter()
        .map(|p| (p.headers.get(header::ORIGINAL_OFFSET).map_or("?", String::as_str), p))
        .collect();

    let p = by_offset.get("1").ok_or_else(|| anyhow::anyhow!("garbage payload not parked: {parked:?}"))?;
    assert_eq!(p.payload.as_deref(), Some(&b"\xff\xfenot avro at all"[..]), "payload untouched");
    assert_eq!(p.key.as_deref(), Some(&b"poison-1"[..]));
    assert_eq!(
        p.headers.get(envelope_header::EVENT_ID),
        Some(&garbage.envelope.event_id.to_string()),
        "original headers kept"
    );
    assert!(p.headers[header::ERROR_MESSAGE].contains("decode"), "{:?}", p.headers);

    let p = by_offset.get("3").ok_or_else(|| anyhow::anyhow!("headerless record not parked: {parked:?}"))?;
    assert_eq!(p.headers.get("x-origin").map(String::as_str), Some("somebody's script"));
    assert!(p.headers[header::ERROR_MESSAGE].contains("missing header"), "{:?}", p.headers);
    assert_eq!(p.payload.as_deref(), Some(&garbage.payload[..]));

    let p = by_offset.get("5").ok_or_else(|| anyhow::anyhow!("unknown type not parked: {parked:?}"))?;
    assert!(p.headers[header::ERROR_MESSAGE].contains("unknown message type"), "{:?}", p.headers);
    assert!(p.headers[header::ERROR_MESSAGE].contains("saga.unknown.Mystery"), "{:?}", p.headers);

    for p in &parked {
        assert_eq!(p.headers.get(header::ORIGINAL_TOPIC).map(String::as_str), Some(topic));
        assert_eq!(p.headers.get(header::ORIGINAL_PARTITION).map(String::as_str), Some("0"));
        assert_eq!(p.headers.get(header::ERROR_CLASS).map(String::as_str), Some("permanent"));
        assert_eq!(p.headers.get(header::ATTEMPTS).map(String::as_str), Some("1"));
        assert_eq!(p.headers.get(header::CONSUMER).map(String::as_str), Some("poison"));
        let at = p.headers.get(header::FIRST_FAILURE_AT).ok_or_else(|| anyhow::anyhow!("no failure time"))?;
        chrono::DateTime::parse_from_rfc3339(at)?;
    }

    // Every offset was committed, the poison records' included: the group
    // resumes after the last record (offsets 0..=6: next offset 7).
    let group: StreamConsumer =
        testkit::external::client_config(bootstrap).set("group.id", "poison").create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = group.committed_offsets(tpl, Duration::from_secs(10))?;
    let offset = committed.find_partition(topic, 0).map(|e| e.offset());
    assert_eq!(offset, Some(Offset::Offset(7)));
    Ok(())
}
