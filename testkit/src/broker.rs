//! The broker container.
//!
//! Kafka clients connect to the bootstrap address, then follow the address
//! the broker *advertises*. Under Docker port mapping that must be the host's
//! view, so the harness picks a free host port P, maps P to P, has the broker
//! listen on `0.0.0.0:P` and advertise `127.0.0.1:P`.
//!
//! Published ports go through Docker's userland proxy, a process that copies
//! every byte between the client and the broker. Benchmarks that must not
//! count it start the broker on the host's network instead
//! ([`BrokerNetwork::Host`], Linux only).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::error::HarnessError;
use crate::images::{ImageRef, broker_image};
use crate::ports::free_port;

/// How long a fresh broker gets to answer a metadata request.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How clients on the host reach the broker container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokerNetwork {
    /// A published port (through Docker's port proxy): works everywhere.
    #[default]
    Published,
    /// The host's own network stack (`--network host`): no proxy in the
    /// path. Linux engines only.
    Host,
}

/// A running broker container; removed on drop.
pub struct Broker {
    container: ContainerAsync<GenericImage>,
    image: ImageRef,
    bootstrap: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("image", &self.image.full())
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl Broker {
    /// Starts the broker image from [`broker_image`] on a published port and
    /// waits until it answers a metadata request.
    pub async fn start() -> Result<Broker, HarnessError> {
        Broker::start_with(BrokerNetwork::Published).await
    }

    /// Starts the broker image, reached over `network`, and waits until it
    /// answers a metadata request.
    pub async fn start_with(network: BrokerNetwork) -> Result<Broker, HarnessError> {
        let image = broker_image();
        let port = free_port()?;
        let base = GenericImage::new(image.name.clone(), image.tag.clone());
        // Listener settings understood by apache/kafka and by our tansu image.
        let (listen, controller, container) = match network {
            BrokerNetwork::Published => {
                ("0.0.0.0", 9093, base.with_exposed_port(port.tcp()).with_mapped_port(port, port.tcp()))
            }
            // On the host's network the controller port must be free there too.
            BrokerNetwork::Host => {
                let mut controller = free_port()?;
                while controller == port {
                    controller = free_port()?;
                }
                ("127.0.0.1", controller, base.with_network("host"))
            }
        };
        let container = container
            .with_env_var(
                "KAFKA_LISTENERS",
                format!("PLAINTEXT://{listen}:{port},CONTROLLER://localhost:{controller}"),
            )
            .with_env_var("KAFKA_ADVERTISED_LISTENERS", format!("PLAINTEXT://127.0.0.1:{port}"))
            // apache/kafka (KRaft, single node); ignored by tansu.
            .with_env_var("KAFKA_NODE_ID", "1")
            .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
            .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
            .with_env_var("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
            .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", format!("1@localhost:{controller}"))
            .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
            .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
            .with_env_var("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_startup_timeout(READY_TIMEOUT)
            .start()
            .await
            .map_err(|source| HarnessError::Container { image: image.full(), source })?;
        let broker = Broker { container, image, bootstrap: format!("127.0.0.1:{port}") };
        broker.wait_ready().await?;
        tracing::info!(bootstrap = %broker.bootstrap, image = %broker.image.full(), "broker ready");
        Ok(broker)
    }

    /// `host:port` to give Kafka clients as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The image this broker runs.
    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// Creates topics; a topic that exists already is not an error.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<(), HarnessError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .map_err(|e| HarnessError::Kafka(e.to_string()))?;
        let new: Vec<NewTopic<'_>> =
            topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results =
            admin.create_topics(&new, &opts).await.map_err(|e| HarnessError::Kafka(e.to_string()))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => return Err(HarnessError::Kafka(format!("create topic {t}: {e}"))),
            }
        }
        self.wait_for_topics(topics).await
    }

    /// Creates every topic of the system and its dead-letter topic.
    pub async fn create_system_topics(&self, partitions: i32) -> Result<(), HarnessError> {
        let names = events::topics::all_with_dead_letters();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.create_topics(&refs, partitions).await
    }

    /// Stops the broker at once (SIGKILL), keeping its data; see [`Broker::start_again`].
    pub async fn kill(&self) -> Result<(), HarnessError> {
        self.container
            .stop_with_timeout(Some(0))
            .await
            .map_err(|source| HarnessError::Container { image: self.image.full(), source })
    }

    /// Starts a stopped broker again on the same port and waits until it answers.
    pub async fn start_again(&self) -> Result<(), HarnessError> {
        self.container
            .start()
            .await
            .map_err(|source| HarnessError::Container { image: self.image.full(), source })?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> Result<(), HarnessError> {
        let bootstrap = self.bootstrap.clone();
        probe_until_ready("broker", READY_TIMEOUT, move || {
            let bootstrap = bootstrap.clone();
            async move {
                tokio::task::spawn_blocking(move || metadata_round_trip(&bootstrap))
                    .await
                    .map_err(|e| e.to_string())?
            }
        })
        .await
    }

    async fn wait_for_topics(&self, topics: &[&str]) -> Result<(), HarnessError> {
        let bootstrap = self.bootstrap.clone();
        let wanted: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        probe_until_ready("topics", Duration::from_secs(30), move || {
            let bootstrap = bootstrap.clone();
            let wanted = wanted.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let consumer = metadata_client(&bootstrap)?;
                    let md =
                        consumer.fetch_metadata(None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
                    for w in &wanted {
                        let found = md.topics().iter().any(|t| t.name() == w && !t.partitions().is_empty());
                        if !found {
                            return Err(format!("topic {w} not in metadata yet"));
                        }
                    }
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?
            }
        })
        .await
    }
}

fn metadata_client(bootstrap: &str) -> Result<BaseConsumer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.connection.setup.timeout.ms", "3000")
        .create()
        .map_err(|e| e.to_string())
}

fn metadata_round_trip(bootstrap: &str) -> Result<(), String> {
    let consumer = metadata_client(bootstrap)?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    if md.brokers().is_empty() {
        return Err("metadata lists no broker".into());
    }
    Ok(())
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
