//! Admin requests every broker kind shares: wait until the cluster answers,
//! create topics, find a partition's leader. Each takes the client settings
//! of the broker (bootstrap servers plus security properties).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::HarnessError;

/// How to reach a broker or cluster: `bootstrap.servers` and any further
/// librdkafka properties (security settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// `host:port[,host:port]`.
    pub bootstrap: String,
    /// Extra librdkafka properties, e.g. `security.protocol=SASL_SSL`.
    pub properties: Vec<(String, String)>,
}

impl ClientSettings {
    /// A librdkafka configuration with these settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// A topic to create: name, partitions, replication and topic configs.
#[derive(Debug, Clone)]
pub(crate) struct TopicSpec<'a> {
    pub(crate) partitions: i32,
    pub(crate) replication: i32,
    pub(crate) configs: &'a [(&'a str, &'a str)],
}

/// Creates topics (an existing one is not an error) and waits until the
/// metadata lists each with its partitions.
pub(crate) async fn create_topics(
    client: &ClientSettings,
    topics: &[&str],
    spec: &TopicSpec<'_>,
) -> Result<(), HarnessError> {
    let admin: AdminClient<DefaultClientContext> =
        client.client_config().create().map_err(|e| HarnessError::Kafka(e.to_string()))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            spec.configs.iter().fold(
                NewTopic::new(t, spec.partitions, TopicReplication::Fixed(spec.replication)),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new, &opts).await.map_err(|e| HarnessError::Kafka(e.to_string()))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(HarnessError::Kafka(format!("create topic {t}: {e}"))),
        }
    }
    let wanted: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let client = client.clone();
    probe_until_ready("topics", Duration::from_secs(30), move || {
        let (client, wanted) = (client.clone(), wanted.clone());
        blocking(move || {
            let md = metadata_client(&client)?.fetch_metadata(None, Duration::from_secs(5)).map_err(text)?;
            for w in &wanted {
                // Every partition must have a leader before a test produces.
                let ready = md.topics().iter().any(|t| {
                    t.name() == w
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if !ready {
                    return Err(format!("topic {w} not in metadata yet"));
                }
            }
            Ok(())
        })
    })
    .await
}

/// Waits until a metadata request lists at least `brokers` brokers.
pub(crate) async fn wait_ready(
    what: &'static str,
    client: &ClientSettings,
    brokers: usize,
    timeout: Duration,
) -> Result<(), HarnessError> {
    let client = client.clone();
    probe_until_ready(what, timeout, move || {
        let client = client.clone();
        blocking(move || {
            let md = metadata_client(&client)?.fetch_metadata(None, Duration::from_secs(3)).map_err(text)?;
            if md.brokers().len() < brokers {
                return Err(format!("metadata lists {} of {brokers} brokers", md.brokers().len()));
            }
            Ok(())
        })
    })
    .await
}

/// The node id leading `topic`'s `partition`, as the metadata says now.
pub(crate) async fn leader(
    client: &ClientSettings,
    topic: &str,
    partition: i32,
) -> Result<i32, HarnessError> {
    let (client, topic) = (client.clone(), topic.to_owned());
    blocking(move || {
        let md =
            metadata_client(&client)?.fetch_metadata(Some(&topic), Duration::from_secs(5)).map_err(text)?;
        md.topics()
            .iter()
            .flat_map(|t| t.partitions())
            .find(|p| p.id() == partition)
            .map(|p| p.leader())
            .filter(|l| *l >= 0)
            .ok_or_else(|| format!("{topic}/{partition} has no leader"))
    })
    .await
    .map_err(HarnessError::Kafka)
}

fn metadata_client(client: &ClientSettings) -> Result<BaseConsumer, String> {
    client.client_config().set("socket.connection.setup.timeout.ms", "3000").create().map_err(text)
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(text)?
}

/// Calls `probe` until it succeeds or `timeout` passes.
pub(crate) async fn probe_until_ready<F, Fut>(
    what: &'static str,
    timeout: Duration,
    mut probe: F,
) -> Result<(), HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= timeout => {
                return Err(HarnessError::NotReady { what, timeout, last_error: e });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
