//! # producers — publishing to Kafka
//!
//! One small trait, [`Publisher`], and its production implementation,
//! [`KafkaPublisher`]: an rdkafka `FutureProducer` that is always idempotent
//! (`enable.idempotence=true`) and always waits for the full in-sync replica set
//! (`acks=all`). The outbox relay and the consumers' dead-letter middleware
//! publish through it; tests can substitute their own [`Publisher`].
//!
//! ## Layout
//! * [`config`] — [`ProducerConfig`]: bootstrap servers, client id, linger, and
//!   raw librdkafka overrides as an escape hatch (security, tuning). The
//!   delivery guarantees cannot be overridden.
//! * [`connection`] — [`KafkaConnection`]: bootstrap servers and librdkafka
//!   properties (`-X`, `KAFKA_PROPERTIES`, a properties file), the same in
//!   every binary, and a start-up check that reports a refusal clearly.
//! * [`record`] — [`Record`]: a borrowed record (topic, key, payload, headers),
//!   built from an [`events::OutgoingMessage`] with [`Record::from_outgoing`].
//! * [`publisher`] — the [`Publisher`] trait and [`Delivery`].
//! * [`kafka`] — [`KafkaPublisher`].
//! * [`error`] — [`PublishError`], with the retriable / permanent split callers
//!   need to decide between "retry with backoff" and "park the record".
//!
//! ## Delivery semantics
//! A returned [`Delivery`] means the broker acknowledged the record with
//! `acks=all`. Within one producer session the idempotent producer neither
//! duplicates nor reorders records of one partition, even when it retries
//! internally. Across sessions (a restarted process re-sending a record whose
//! acknowledgement it never saw) a record can be duplicated: consumers must
//! deduplicate on the event id header, never on offsets.
//!
//! [`KafkaPublisher::publish`] hands the record to librdkafka *when it is
//! called*, not when the returned future is first polled, so records published
//! by consecutive calls are queued — and, per partition, written — in call
//! order even if the caller awaits the futures later or all at once.

pub mod config;
pub mod connection;
pub mod error;
pub mod kafka;
pub mod publisher;
pub mod record;

pub use config::ProducerConfig;
pub use connection::{ConnectionError, KafkaConnection};
pub use error::PublishError;
pub use kafka::KafkaPublisher;
pub use publisher::{Delivery, Publisher};
pub use record::Record;
