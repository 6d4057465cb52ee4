//! `saga topics create`: creates every topic of the system and its dead-letter
//! topic; topics that exist already are left alone.

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::types::RDKafkaErrorCode;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    kafka: producers::KafkaConnection,
    /// Partitions per topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor; by default 3, or the number of brokers when
    /// the cluster has fewer.
    #[arg(long)]
    replication: Option<i32>,
    /// `min.insync.replicas` of the topics: how many replicas must have a
    /// record before an `acks=all` producer is told it is written; by
    /// default 2 when there are at least 3 replicas (one may fail without
    /// losing or refusing writes), else 1.
    #[arg(long)]
    min_insync_replicas: Option<i32>,
}

/// Replication and `min.insync.replicas` for a cluster of `brokers`.
fn durability(brokers: usize, replication: Option<i32>, min_insync: Option<i32>) -> (i32, i32) {
    let rf = replication.unwrap_or_else(|| i32::try_from(brokers.clamp(1, 3)).unwrap_or(1));
    (rf, min_insync.unwrap_or(if rf >= 3 { 2 } else { 1 }))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    args.kafka.verify(Duration::from_secs(10)).await?;
    let config = args.kafka.client_config()?;
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("creating the Kafka admin client")?;
    let brokers = {
        let admin = config.create::<BaseConsumer>().context("creating a metadata client")?;
        tokio::task::spawn_blocking(move || admin.fetch_metadata(None, Duration::from_secs(10)))
            .await
            .context("metadata task")?
            .context("fetching cluster metadata")?
            .brokers()
            .len()
    };
    let (rf, min_insync) = durability(brokers, args.replication, args.min_insync_replicas);
    let min_insync = min_insync.to_string();
    println!("{brokers} broker(s): replication {rf}, min.insync.replicas {min_insync}");
    let names = events::topics::all_with_dead_letters();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(n, args.partitions, TopicReplication::Fixed(rf))
                .set("min.insync.replicas", &min_insync)
                .set("unclean.leader.election.enable", "false")
        })
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

#[cfg(test)]
mod tests {
    #[test]
    fn replication_follows_the_cluster_unless_given() {
        assert_eq!(super::durability(1, None, None), (1, 1));
        assert_eq!(super::durability(3, None, None), (3, 2));
        assert_eq!(super::durability(5, None, None), (3, 2));
        assert_eq!(super::durability(5, Some(5), Some(3)), (5, 3));
        assert_eq!(super::durability(2, None, None), (2, 1));
    }
}
