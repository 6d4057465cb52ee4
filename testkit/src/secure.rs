//! A broker whose client listener is SASL_SSL (SCRAM-SHA-512) with ACLs.
//!
//! The test makes its own certificates ([`TlsMaterial`]); the broker gets
//! its keystore copied in, clients trust the CA from a file the harness
//! writes (`ssl.ca.location`). SCRAM users are added after start through
//! the broker's own tool on a plaintext listener that only the container
//! itself can reach, so the same steps work on the upstream image. `admin`
//! is a super user; any other user has no rights until an ACL grants them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testkit::HarnessError> {
//! let broker = testkit::SecureBroker::start().await?;
//! let admin = broker.client_settings("admin", testkit::secure::ADMIN_PASSWORD);
//! // admin.client_config() connects over SASL_SSL
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use testcontainers::core::{CmdWaitFor, ExecCommand};
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::admin::{self, ClientSettings, TopicSpec};
use crate::broker::{READY_TIMEOUT, published, start_node, version_from_logs};
use crate::error::HarnessError;
use crate::images::{ImageRef, broker_image};
use crate::kafka_env::{Listener, NodeEnv, TEST_CLUSTER_ID};
use crate::ports::free_port;
use crate::tls::TlsMaterial;

/// The super user's password.
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// Password of `reader`, a user without ACLs.
pub const READER_PASSWORD: &str = "reader-secret";
/// Where the keystore sits in the container.
const KEYSTORE: &str = "/etc/kafka/tls/broker-keystore.pem";

/// A running SASL_SSL broker; removed on drop.
pub struct SecureBroker {
    container: ContainerAsync<GenericImage>,
    image: ImageRef,
    bootstrap: String,
    dir: tempfile::TempDir,
    version: String,
}

impl std::fmt::Debug for SecureBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureBroker")
            .field("image", &self.image.full())
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl SecureBroker {
    /// Starts the [`broker_image`] with a SASL_SSL listener, adds the users
    /// `admin` and `reader`, and waits until `admin` can read metadata.
    pub async fn start() -> Result<SecureBroker, HarnessError> {
        if crate::external::in_use() {
            return Err(crate::external::unsupported("a SASL_SSL test broker"));
        }
        let image = broker_image();
        let tls = TlsMaterial::generate()?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), &tls.ca_pem)?;
        let port = free_port()?;
        let jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        let node = NodeEnv {
            node_id: 1,
            cluster_id: TEST_CLUSTER_ID.into(),
            voters: "1@127.0.0.1:9093".into(),
            listeners: vec![
                Listener::plaintext("INTERNAL", "127.0.0.1:9092", "127.0.0.1:9092"),
                Listener {
                    name: "SECURE".into(),
                    bind: format!("0.0.0.0:{port}"),
                    advertised: Some(format!("localhost:{port}")),
                    protocol: "SASL_SSL".into(),
                },
                Listener::controller("127.0.0.1:9093"),
            ],
            inter_broker: "INTERNAL".into(),
            replication: 1,
            min_insync: 1,
            extra: [
                ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
                ("listener.name.secure.scram-sha-512.sasl.jaas.config", jaas),
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", KEYSTORE),
                ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
                // The plaintext listeners act as ANONYMOUS: only reachable inside the container.
                ("super.users", "User:admin;User:ANONYMOUS"),
                ("allow.everyone.if.no.acl.found", "false"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        let request = published(&image, port).with_copy_to(
            testcontainers::CopyTargetOptions::new(KEYSTORE).with_mode(0o644),
            tls.keystore_pem().into_bytes(),
        );
        let container = start_node(&node, request, &image).await?;
        let mut broker = SecureBroker {
            container,
            image,
            bootstrap: format!("localhost:{port}"),
            dir,
            version: String::new(),
        };
        broker.add_user("admin", ADMIN_PASSWORD).await?;
        broker.add_user("reader", READER_PASSWORD).await?;
        admin::wait_ready(
            "secure broker",
            &broker.client_settings("admin", ADMIN_PASSWORD),
            1,
            READY_TIMEOUT,
        )
        .await?;
        broker.version = version_from_logs(&broker.container).await;
        tracing::info!(bootstrap = %broker.bootstrap, version = %broker.version, "secure broker ready");
        Ok(broker)
    }

    /// `localhost:P`: the name the certificate carries.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The CA certificate clients must trust.
    pub fn ca_location(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The version the broker logged at start.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The librdkafka properties of `user` (without `bootstrap.servers`).
    pub fn client_properties(&self, user: &str, password: &str) -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
            ("sasl.username".into(), user.into()),
            ("sasl.password".into(), password.into()),
            ("ssl.ca.location".into(), path_text(&self.ca_location())),
        ]
    }

    /// Bootstrap servers and properties of `user`.
    pub fn client_settings(&self, user: &str, password: &str) -> ClientSettings {
        ClientSettings {
            bootstrap: self.bootstrap.clone(),
            properties: self.client_properties(user, password),
        }
    }

    /// Creates topics as `admin`; existing topics are kept.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<(), HarnessError> {
        let spec = TopicSpec { partitions, replication: 1, configs: &[] };
        admin::create_topics(&self.client_settings("admin", ADMIN_PASSWORD), topics, &spec).await
    }

    /// Adds (or replaces) a SCRAM-SHA-512 user.
    pub async fn add_user(&self, user: &str, password: &str) -> Result<(), HarnessError> {
        let config = format!("SCRAM-SHA-512=[iterations=4096,password={password}]");
        self.tool(&[
            "/opt/kafka/bin/kafka-configs.sh",
            "--bootstrap-server",
            "127.0.0.1:9092",
            "--alter",
            "--add-config",
            &config,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ])
        .await
    }

    /// Runs one of the broker's tools inside its container; fails on a
    /// non-zero exit, with what the tool printed.
    async fn tool(&self, argv: &[&str]) -> Result<(), HarnessError> {
        // The tool needs the broker up; it is retried until then.
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let cmd = ExecCommand::new(argv.iter().map(|s| s.to_string()))
                .with_cmd_ready_condition(CmdWaitFor::exit());
            let mut run = self
                .container
                .exec(cmd)
                .await
                .map_err(|source| HarnessError::Container { image: self.image.full(), source })?;
            let code = run.exit_code().await.ok().flatten();
            if code == Some(0) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let err = run.stderr_to_vec().await.unwrap_or_default();
                return Err(HarnessError::Kafka(format!(
                    "{} exited with {code:?}: {}",
                    argv[0],
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
