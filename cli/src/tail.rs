//! `saga tail`: print the records of a topic, decoded.
//!
//! Reads every partition directly (no consumer group, nothing committed), so
//! it never disturbs a service's offsets. Each record prints as one JSON line:
//! partition, offset, key, the envelope headers, and the Avro body decoded
//! with the schemas embedded in the `events` crate plus those of
//! `SAGA_SCHEMA_DIR` (or an error naming why it could not be decoded).

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value, json};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Topic to read.
    topic: String,
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<usize>,
    /// Stop when no record arrived for this many seconds.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
    /// One short line per record (partition, offset, key, message type)
    /// instead of JSON.
    #[arg(long)]
    short: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || tail(args)).await.context("tail task")?
}

fn tail(args: Args) -> anyhow::Result<()> {
    let consumer: BaseConsumer = args
        .kafka
        .client_config()?
        .set("group.id", "saga-tail")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .context("fetching topic metadata")?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic && !t.partitions().is_empty())
        .with_context(|| format!("topic {} does not exist", args.topic))?;
    let mut tpl = TopicPartitionList::new();
    for p in topic.partitions() {
        tpl.add_partition_offset(&args.topic, p.id(), Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;

    let registry = events::SchemaStore::global();
    let mut seen = 0usize;
    let mut last = Instant::now();
    while args.count.is_none_or(|c| seen < c) && last.elapsed() < Duration::from_secs(args.idle_timeout) {
        let Some(next) = consumer.poll(Duration::from_millis(500)) else { continue };
        let msg = next.context("reading from Kafka")?;
        last = Instant::now();
        seen += 1;
        let mut headers = Map::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                let v = header.value.map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(header.key.to_owned(), v.map(Value::String).unwrap_or(Value::Null));
            }
        }
        let body = match msg.payload().map(|p| registry.decode_json(p)) {
            Some(Ok((schema, value))) => json!({ "schema": schema.label(), "value": value }),
            Some(Err(e)) => json!({ "error": e.to_string() }),
            None => Value::Null,
        };
        if args.short {
            let message_type =
                headers.get(events::envelope::header::MESSAGE_TYPE).and_then(Value::as_str).unwrap_or("?");
            let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
            println!(
                "{:<20} p{:<2} offset {:<6} {key}  {message_type}",
                args.topic,
                msg.partition(),
                msg.offset()
            );
            continue;
        }
        let line = json!({
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            "headers": headers,
            "body": body,
        });
        println!("{line}");
    }
    eprintln!("{seen} record(s) from {}", args.topic);
    Ok(())
}
