//! `saga topics create`: creates every topic of the system and its dead-letter
//! topic; topics that exist already are left alone.

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Partitions per topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor (1 for a single broker).
    #[arg(long, default_value_t = 1)]
    replication: i32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        .create()
        .context("creating the Kafka admin client")?;
    let names = events::topics::all_with_dead_letters();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, args.partitions, TopicReplication::Fixed(args.replication)))
        .collect();
    let results =
        admin.create_topics(&new, &AdminOptions::new()).await.context("CreateTopics request failed")?;
    for r in results {
        match r {
            Ok(t) => println!("created {t}"),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => println!("exists  {t}"),
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}
