//! A three-node KRaft cluster on a private Docker network.
//!
//! Each node is a combined broker and controller. Brokers and controllers
//! reach each other by container name on the private network (listeners
//! `INTERNAL` and `CONTROLLER`); clients on the host use each node's
//! `EXTERNAL` listener on a published port P (mapped P to P, advertised as
//! `127.0.0.1:P`). Topics are replicated three times with
//! `min.insync.replicas=2` and unclean leader election off, so one node may
//! die or be cut off without losing an acknowledged record.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testkit::HarnessError> {
//! let cluster = testkit::Cluster::start().await?;
//! cluster.create_topics(&["orders.events"], 3).await?;
//! let leader = cluster.leader("orders.events", 0).await?;
//! cluster.kill(leader).await?; // SIGKILL; another node takes over
//! # Ok(()) }
//! ```

use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{NetworkConnectRequest, NetworkDisconnectRequest};
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::admin::{self, ClientSettings, TopicSpec};
use crate::broker::{READY_TIMEOUT, published, start_node, version_from_logs};
use crate::error::HarnessError;
use crate::images::{ImageRef, broker_image};
use crate::kafka_env::{Listener, NodeEnv, TEST_CLUSTER_ID};
use crate::ports::free_port;

/// Nodes in a [`Cluster`].
pub const NODES: u32 = 3;

/// A running three-node cluster; its containers and network are removed on drop.
pub struct Cluster {
    nodes: Vec<ContainerAsync<GenericImage>>,
    names: Vec<String>,
    network: String,
    image: ImageRef,
    client: ClientSettings,
    version: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("image", &self.image.full())
            .field("bootstrap", &self.client.bootstrap)
            .field("nodes", &self.names)
            .finish()
    }
}

impl Cluster {
    /// Starts three nodes of the [`broker_image`] and waits until the
    /// metadata lists all three.
    pub async fn start() -> Result<Cluster, HarnessError> {
        if crate::external::in_use() {
            return Err(crate::external::unsupported("a three-node cluster"));
        }
        let image = broker_image();
        let run = uuid::Uuid::new_v4().simple().to_string();
        let network = format!("saga-kafka-{}", &run[..8]);
        let names: Vec<String> = (1..=NODES).map(|i| format!("{network}-{i}")).collect();
        let voters = names.iter().enumerate().map(|(i, n)| format!("{}@{n}:9093", i + 1)).collect::<Vec<_>>();
        let mut ports = Vec::new();
        while ports.len() < NODES as usize {
            let p = free_port()?;
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut nodes = Vec::new();
        for (i, (name, port)) in names.iter().zip(&ports).enumerate() {
            let node = NodeEnv {
                node_id: i as u32 + 1,
                cluster_id: TEST_CLUSTER_ID.into(),
                voters: voters.join(","),
                listeners: vec![
                    Listener::plaintext("INTERNAL", "0.0.0.0:9092", format!("{name}:9092")),
                    Listener::plaintext("EXTERNAL", format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")),
                    Listener::controller("0.0.0.0:9093"),
                ],
                inter_broker: "INTERNAL".into(),
                replication: NODES,
                min_insync: 2,
                extra: vec![],
            };
            let request =
                published(&image, *port).with_network(network.clone()).with_container_name(name.clone());
            nodes.push(start_node(&node, request, &image).await?);
        }
        let bootstrap = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let client = ClientSettings { bootstrap, properties: vec![] };
        admin::wait_ready("cluster", &client, NODES as usize, READY_TIMEOUT).await?;
        let version = version_from_logs(&nodes[0]).await;
        tracing::info!(bootstrap = %client.bootstrap, image = %image.full(), %version, "cluster ready");
        Ok(Cluster { nodes, names, network, image, client, version })
    }

    /// All three client addresses, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.client.bootstrap
    }

    /// Everything a client needs to connect.
    pub fn client_settings(&self) -> &ClientSettings {
        &self.client
    }

    /// The version node 1 logged at start.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Creates topics replicated on all three nodes with
    /// `min.insync.replicas=2`; existing topics are kept.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<(), HarnessError> {
        let spec = TopicSpec {
            partitions,
            replication: NODES as i32,
            configs: &[("min.insync.replicas", "2"), ("unclean.leader.election.enable", "false")],
        };
        admin::create_topics(&self.client, topics, &spec).await
    }

    /// Creates every topic of the system and its dead-letter topic.
    pub async fn create_system_topics(&self, partitions: i32) -> Result<(), HarnessError> {
        let names = events::topics::all_with_dead_letters();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.create_topics(&refs, partitions).await
    }

    /// The node id (1–3) leading `topic`'s `partition` now.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<u32, HarnessError> {
        let id = admin::leader(&self.client, topic, partition).await?;
        u32::try_from(id).map_err(|_| HarnessError::Kafka(format!("leader id {id}")))
    }

    /// Kills node `id` (SIGKILL), keeping its data.
    pub async fn kill(&self, id: u32) -> Result<(), HarnessError> {
        let name = self.name(id)?;
        docker()?.kill_container(name, None).await.map_err(|e| self.docker_error(e))?;
        tracing::info!(node = id, "node killed");
        Ok(())
    }

    /// Starts a killed node again and waits until the metadata lists all nodes.
    pub async fn start_again(&self, id: u32) -> Result<(), HarnessError> {
        let node = self.node(id)?;
        node.start().await.map_err(|source| HarnessError::Container { image: self.image.full(), source })?;
        admin::wait_ready("cluster", &self.client, NODES as usize, READY_TIMEOUT).await
    }

    /// Cuts node `id` off the network: the other nodes and the clients can
    /// no longer reach it, nor it them. [`Cluster::reconnect`] heals it.
    pub async fn disconnect(&self, id: u32) -> Result<(), HarnessError> {
        let container = self.name(id)?.to_owned();
        let request = NetworkDisconnectRequest { container, force: Some(true) };
        docker()?.disconnect_network(&self.network, request).await.map_err(|e| self.docker_error(e))?;
        tracing::info!(node = id, "node disconnected");
        Ok(())
    }

    /// Attaches a [`disconnect`](Cluster::disconnect)ed node again.
    pub async fn reconnect(&self, id: u32) -> Result<(), HarnessError> {
        let container = self.name(id)?.to_owned();
        let request = NetworkConnectRequest { container, endpoint_config: None };
        docker()?.connect_network(&self.network, request).await.map_err(|e| self.docker_error(e))?;
        tracing::info!(node = id, "node reconnected");
        Ok(())
    }

    fn name(&self, id: u32) -> Result<&str, HarnessError> {
        self.names.get(index(id)?).map(String::as_str).ok_or(HarnessError::NoSuchNode(id))
    }

    fn node(&self, id: u32) -> Result<&ContainerAsync<GenericImage>, HarnessError> {
        self.nodes.get(index(id)?).ok_or(HarnessError::NoSuchNode(id))
    }

    fn docker_error(&self, e: testcontainers::bollard::errors::Error) -> HarnessError {
        HarnessError::Docker(format!("{}: {e}", self.network))
    }
}

fn index(id: u32) -> Result<usize, HarnessError> {
    id.checked_sub(1).map(|i| i as usize).ok_or(HarnessError::NoSuchNode(id))
}

fn docker() -> Result<Docker, HarnessError> {
    Docker::connect_with_defaults().map_err(|e| HarnessError::Docker(e.to_string()))
}
