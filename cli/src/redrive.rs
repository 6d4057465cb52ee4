//! `saga redrive DLQ_TOPIC`: sends dead letters back to the topic they came
//! from, once the cause is fixed.
//!
//! Each record keeps its key, payload and envelope headers — so its event id —
//! and loses the `dlq-*` reason headers. Dead letters were never recorded in
//! the consumer's inbox, so a re-driven event is applied once; re-driving one
//! twice is harmless for the same reason. Progress is a consumer group
//! (`--group`, default `saga-redrive`): an offset is committed only after the
//! re-sent record was acknowledged (`acks=all`, idempotent producer), so a
//! second run continues where the first stopped and an interrupted run re-sends
//! at most the record in flight.

use std::time::{Duration, Instant};

use anyhow::Context;
use consumers::dead_letter::header as dlq;
use producers::{KafkaPublisher, ProducerConfig, Publisher, Record};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Dead-letter topic to drain, e.g. `inventory.commands.dlq`.
    dlq_topic: String,
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Consumer group that remembers what was re-driven.
    #[arg(long, default_value = "saga-redrive")]
    group: String,
    /// Only re-drive the record with this event id (others are skipped and
    /// stay unconsumed for a later run only if this run does not pass them).
    #[arg(long)]
    event_id: Option<String>,
    /// Print what would be re-driven; send and commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Stop when no record arrived for this many seconds.
    #[arg(long, default_value_t = 15)]
    idle_timeout: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    args.kafka.verify(Duration::from_secs(10)).await?;
    let consumer: BaseConsumer = args
        .kafka
        .client_config()?
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the Kafka consumer")?;
    consumer.subscribe(&[&args.dlq_topic]).context("subscribing")?;
    let publisher = KafkaPublisher::new(&ProducerConfig::from_connection(&args.kafka)?)
        .context("creating the producer")?;

    let (mut sent, mut skipped) = (0usize, 0usize);
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(args.idle_timeout) {
        let Some(next) = consumer.poll(Duration::from_millis(500)) else { continue };
        let msg = next.context("reading the dead-letter topic")?;
        last = Instant::now();
        let headers: Vec<(&str, &[u8])> = msg
            .headers()
            .map(|h| h.iter().map(|x| (x.key, x.value.unwrap_or_default())).collect())
            .unwrap_or_default();
        let text = |name: &str| {
            headers
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let position = format!("{}[{}]@{}", msg.topic(), msg.partition(), msg.offset());
        let Some(original) = text(dlq::ORIGINAL_TOPIC) else {
            eprintln!("skip {position}: no {} header, not a dead letter", dlq::ORIGINAL_TOPIC);
            skipped += 1;
            continue;
        };
        let event_id = text(events::envelope::header::EVENT_ID).unwrap_or_else(|| "?".into());
        if args.event_id.as_deref().is_some_and(|want| want != event_id) {
            skipped += 1;
            continue;
        }
        let reason = text(dlq::ERROR_MESSAGE).unwrap_or_default();
        println!("{position} -> {original}  event {event_id}  (was: {reason})");
        if args.dry_run {
            continue;
        }
        let record = Record {
            topic: &original,
            key: msg.key(),
            payload: msg.payload(),
            headers: headers.iter().filter(|(k, _)| !k.starts_with("dlq-")).copied().collect(),
        };
        publisher.publish(record).await.with_context(|| format!("re-sending {position} to {original}"))?;
        consumer.commit_message(&msg, CommitMode::Sync).context("committing the re-driven offset")?;
        sent += 1;
    }
    eprintln!("{sent} re-driven, {skipped} skipped{}", if args.dry_run { " (dry run)" } else { "" });
    Ok(())
}
