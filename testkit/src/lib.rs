//! # testkit — real infrastructure for end-to-end tests
//!
//! Starts a Kafka-protocol broker and PostgreSQL as containers (through
//! [testcontainers]), waits until each really answers (a metadata round trip,
//! a SQL connection), and hands a test a bootstrap address and a database URL.
//! Containers are removed when the values are dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testkit::HarnessError> {
//! let env = testkit::Environment::start().await?;
//! env.broker.create_system_topics(3).await?;
//! let db_url = env.postgres.fresh_database().await?;
//! // ... connect rdkafka to env.broker.bootstrap_servers() and sqlx to db_url
//! # Ok(()) }
//! ```
//!
//! ## Images
//! The images come from environment variables whose defaults are the upstream
//! images (see [`images`]). On machines that cannot pull, `scripts/test.sh`
//! builds local images and points the variables at them.
//!
//! ## Layout
//! * [`images`] — which image to run, from the environment.
//! * [`broker`] — one broker container ([`Broker`]).
//! * [`cluster`] — three KRaft nodes on a private network ([`Cluster`]).
//! * [`kafka_env`] — the `KAFKA_*` environment of a node, without I/O.
//! * [`admin`] — readiness, topics and leaders, for every broker kind.
//! * [`secure`] — a SASL_SSL (SCRAM-SHA-512) broker with ACLs ([`SecureBroker`]).
//! * [`tls`] — certificates a test makes for itself ([`TlsMaterial`]).
//! * [`postgres`] — the PostgreSQL container ([`Postgres`]).
//! * [`environment`] — both at once ([`Environment`]).
//! * [`process`] — a service binary killed and restarted ([`process::ServiceProcess`]).
//! * [`external`] — an existing cluster and database instead of containers.
//! * [`handler`] — one consumer handler driven in a transaction, no broker.
//! * [`error`] — [`HarnessError`].

pub mod admin;
pub mod broker;
pub mod cluster;
pub mod environment;
pub mod error;
pub mod external;
pub mod handler;
pub mod images;
pub mod kafka_env;
mod ports;
pub mod postgres;
pub mod process;
pub mod secure;
pub mod tls;

pub use admin::ClientSettings;
pub use broker::{Broker, BrokerNetwork};
pub use cluster::Cluster;
pub use environment::Environment;
pub use error::HarnessError;
pub use postgres::{Durability, Postgres};
pub use secure::SecureBroker;
pub use tls::TlsMaterial;
