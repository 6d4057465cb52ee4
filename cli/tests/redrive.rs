//! `saga redrive` against a real broker: a dead letter goes back to its
//! original topic with its key, payload and event id, without the `dlq-*`
//! headers, and a second run re-sends nothing.

use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn saga(args: &[&str]) -> anyhow::Result<String> {
    let out =
        Command::new(env!("CARGO_BIN_EXE_saga")).args(args).envs(testkit::external::child_env()).output()?;
    anyhow::ensure!(out.status.success(), "saga {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One record as read back: key, payload, headers.
type Seen = (Vec<u8>, Vec<u8>, Vec<(String, String)>);

/// Every record of `topic`.
fn read_all(bootstrap: &str, topic: &str, want: usize) -> anyhow::Result<Vec<Seen>> {
    let consumer: BaseConsumer = testkit::external::client_config(bootstrap)
        .set("group.id", format!("check-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(if want == 0 { 8 } else { 60 });
    while std::time::Instant::now() < deadline && (want == 0 || out.len() < want) {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m?;
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_owned(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    Ok(out)
}

#[tokio::test]
async fn dead_letters_go_back_once_with_their_event_id() -> anyhow::Result<()> {
    let broker = testkit::Broker::start().await?;
    let (topic, dlq_topic) = ("work.items", "work.items.dlq");
    broker.create_topics(&[topic, dlq_topic], 1).await?;
    let bootstrap = broker.bootstrap_servers().to_owned();

    let event_id = uuid::Uuid::now_v7().to_string();
    let producer: FutureProducer = testkit::external::client_config(&bootstrap).create()?;
    let headers = OwnedHeaders::new()
        .insert(Header { key: "event-id", value: Some(&event_id) })
        .insert(Header { key: "message-type", value: Some("saga.inventory.ReserveInventory") })
        .insert(Header { key: "dlq-original-topic", value: Some(topic) })
        .insert(Header { key: "dlq-error-class", value: Some("transient") })
        .insert(Header { key: "dlq-error-message", value: Some("database unavailable") });
    producer
        .send(
            FutureRecord::to(dlq_topic).key("order-1").payload("body").headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("{e}"))?;

    let printed = saga(&["redrive", dlq_topic, "--bootstrap-servers", &bootstrap, "--idle-timeout", "8"])?;
    assert!(printed.contains(&event_id), "redrive should name the event: {printed}");

    let back = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.clone();
        move || read_all(&bootstrap, topic, 1)
    })
    .await??;
    assert_eq!(back.len(), 1, "exactly one record re-driven");
    let (key, payload, headers) = &back[0];
    assert_eq!((key.as_slice(), payload.as_slice()), (&b"order-1"[..], &b"body"[..]));
    assert!(headers.contains(&("event-id".to_owned(), event_id.clone())), "event id kept: {headers:?}");
    assert!(headers.iter().all(|(k, _)| !k.starts_with("dlq-")), "reason headers dropped: {headers:?}");

    // The group remembers: a second run re-sends nothing.
    saga(&["redrive", dlq_topic, "--bootstrap-servers", &bootstrap, "--idle-timeout", "8"])?;
    let again = tokio::task::spawn_blocking(move || read_all(&bootstrap, topic, 0)).await??;
    assert_eq!(again.len(), 1, "the dead letter was re-driven twice");
    Ok(())
}
