//! Errors of the harness.

use std::time::Duration;

/// What went wrong while providing infrastructure to a test.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// Docker refused to create, start or stop a container.
    #[error("container {image}: {source}")]
    Container {
        /// Image of the container.
        image: String,
        /// Docker's error.
        #[source]
        source: testcontainers::TestcontainersError,
    },
    /// The container started but did not answer in time.
    #[error("{what} did not become ready within {timeout:?}: {last_error}")]
    NotReady {
        /// Which service.
        what: &'static str,
        /// How long we waited.
        timeout: Duration,
        /// The last error seen while probing.
        last_error: String,
    },
    /// A Kafka admin request failed.
    #[error("kafka admin: {0}")]
    Kafka(String),
    /// A SQL statement failed.
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    /// A test message could not be encoded.
    #[error("message: {0}")]
    Message(String),
    /// A Docker request outside testcontainers (kill, network) failed.
    #[error("docker: {0}")]
    Docker(String),
    /// A container-only operation on an external system, or a bad setting
    /// of one (see [`crate::external`]).
    #[error("external system: {0}")]
    External(String),
    /// A cluster has no node of that id.
    #[error("no node {0} in the cluster")]
    NoSuchNode(u32),
    /// Certificates for a secured listener could not be made or written.
    #[error("tls material: {0}")]
    Tls(String),
    /// No free local port could be found.
    #[error("no free local port: {0}")]
    Port(#[from] std::io::Error),
}
