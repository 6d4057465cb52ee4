//! The single-node broker container.
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

use std::time::Duration;

use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

use crate::admin::{self, ClientSettings, TopicSpec};
use crate::error::HarnessError;
use crate::images::{ImageRef, broker_image};
use crate::kafka_env::{Listener, NodeEnv, TEST_CLUSTER_ID};
use crate::ports::free_port;

/// How long a fresh broker gets to answer a metadata request.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(90);

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

/// A running broker container (removed on drop), or an external cluster
/// (see [`crate::external`]).
pub struct Broker {
    container: Option<ContainerAsync<GenericImage>>,
    image: ImageRef,
    client: ClientSettings,
    version: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("image", &self.image.full())
            .field("bootstrap", &self.client.bootstrap)
            .field("version", &self.version)
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
        if let Some(client) = crate::external::kafka()? {
            admin::wait_ready("external broker", &client, 1, READY_TIMEOUT).await?;
            tracing::info!(bootstrap = %client.bootstrap, "external broker");
            let image = ImageRef::parse("external");
            return Ok(Broker { container: None, image, client, version: "external cluster".into() });
        }
        let image = broker_image();
        let port = free_port()?;
        let (listen, controller, request) = match network {
            BrokerNetwork::Published => ("0.0.0.0", 9093, published(&image, port)),
            // On the host's network the controller port must be free there too.
            BrokerNetwork::Host => {
                let mut controller = free_port()?;
                while controller == port {
                    controller = free_port()?;
                }
                (
                    "127.0.0.1",
                    controller,
                    GenericImage::new(image.name.clone(), image.tag.clone()).with_network("host"),
                )
            }
        };
        let node = NodeEnv {
            node_id: 1,
            cluster_id: TEST_CLUSTER_ID.into(),
            voters: format!("1@localhost:{controller}"),
            listeners: vec![
                Listener::plaintext("PLAINTEXT", format!("{listen}:{port}"), format!("127.0.0.1:{port}")),
                Listener::controller(format!("localhost:{controller}")),
            ],
            inter_broker: "PLAINTEXT".into(),
            replication: 1,
            min_insync: 1,
            extra: vec![],
        };
        let container = start_node(&node, request, &image).await?;
        let client = ClientSettings { bootstrap: format!("127.0.0.1:{port}"), properties: vec![] };
        admin::wait_ready("broker", &client, 1, READY_TIMEOUT).await?;
        let version = version_from_logs(&container).await;
        tracing::info!(bootstrap = %client.bootstrap, image = %image.full(), %version, "broker ready");
        Ok(Broker { container: Some(container), image, client, version })
    }

    fn own(&self) -> Result<&ContainerAsync<GenericImage>, HarnessError> {
        self.container.as_ref().ok_or_else(|| crate::external::unsupported("stopping the broker"))
    }

    /// `host:port` to give Kafka clients as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.client.bootstrap
    }

    /// Everything a client needs to connect.
    pub fn client_settings(&self) -> &ClientSettings {
        &self.client
    }

    /// The image this broker runs.
    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// The version the broker logged at start (`Kafka version: 4.4.0`), or
    /// `unknown` for a broker that logs none (tansu).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Creates topics; a topic that exists already is not an error.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<(), HarnessError> {
        admin::create_topics(&self.client, topics, &TopicSpec { partitions, replication: 1, configs: &[] })
            .await
    }

    /// Creates every topic of the system and its dead-letter topic.
    pub async fn create_system_topics(&self, partitions: i32) -> Result<(), HarnessError> {
        let names = events::topics::all_with_dead_letters();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.create_topics(&refs, partitions).await
    }

    /// Stops the broker at once (SIGKILL), keeping its data; see [`Broker::start_again`].
    pub async fn kill(&self) -> Result<(), HarnessError> {
        self.own()?
            .stop_with_timeout(Some(0))
            .await
            .map_err(|source| HarnessError::Container { image: self.image.full(), source })
    }

    /// Starts a stopped broker again on the same port and waits until it answers.
    pub async fn start_again(&self) -> Result<(), HarnessError> {
        self.own()?
            .start()
            .await
            .map_err(|source| HarnessError::Container { image: self.image.full(), source })?;
        admin::wait_ready("broker", &self.client, 1, READY_TIMEOUT).await
    }
}

/// `image` with host port `port` published as the same port inside.
pub(crate) fn published(image: &ImageRef, port: u16) -> ContainerRequest<GenericImage> {
    GenericImage::new(image.name.clone(), image.tag.clone())
        .with_exposed_port(port.tcp())
        .with_mapped_port(port, port.tcp())
}

/// Starts `request` with `node`'s `KAFKA_*` environment.
pub(crate) async fn start_node(
    node: &NodeEnv,
    request: ContainerRequest<GenericImage>,
    image: &ImageRef,
) -> Result<ContainerAsync<GenericImage>, HarnessError> {
    node.vars()
        .into_iter()
        .fold(request, |c, (k, v)| c.with_env_var(k, v))
        .with_startup_timeout(READY_TIMEOUT)
        .start()
        .await
        .map_err(|source| HarnessError::Container { image: image.full(), source })
}

/// The version from the broker's start-up log line
/// `Kafka version: 4.4.0 (org.apache.kafka.common.utils.AppInfoParser)`.
pub(crate) async fn version_from_logs(container: &ContainerAsync<GenericImage>) -> String {
    let logs = container.stdout_to_vec().await.unwrap_or_default();
    parse_version(&String::from_utf8_lossy(&logs)).unwrap_or_else(|| "unknown".into())
}

fn parse_version(logs: &str) -> Option<String> {
    let (_, rest) = logs.split_once("Kafka version: ")?;
    rest.split_whitespace().next().map(|v| format!("Apache Kafka {v}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_version_line() {
        let logs = "[x] INFO starting\n[y] INFO Kafka version: 4.4.0 (org.apache.kafka.common.utils.AppInfoParser)\n";
        assert_eq!(super::parse_version(logs).as_deref(), Some("Apache Kafka 4.4.0"));
        assert_eq!(super::parse_version("tansu: listen"), None);
    }
}
