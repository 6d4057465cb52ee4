//! The crate's error type: what can stop a consumer. Failures of a single
//! record never do; they are retried or dead-lettered (see [`crate::HandlerError`]).

/// Why a consumer could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The configuration failed [`ConsumerConfig::validate`](crate::ConsumerConfig::validate).
    #[error("invalid consumer configuration: {0}")]
    InvalidConfig(String),
    /// librdkafka refused the configuration or could not create the client.
    #[error("cannot create the Kafka consumer")]
    CreateConsumer(#[source] rdkafka::error::KafkaError),
    /// The dead-letter producer could not be created.
    #[error("cannot create the dead-letter producer")]
    CreateDeadLetterPublisher(#[source] producers::PublishError),
    /// Subscribing to the topics failed.
    #[error("cannot subscribe to the topics")]
    Subscribe(#[source] rdkafka::error::KafkaError),
    /// Committing the final offsets or leaving the group failed or took too long.
    #[error("cannot close the consumer: {0}")]
    Close(String),
    /// librdkafka reported a fatal error, e.g. `FENCED_INSTANCE_ID`: another
    /// live member uses this consumer's `group.instance.id`.
    #[error("fatal Kafka consumer error (another member with the same group.instance.id?): {0}")]
    Fatal(String),
    /// Running the inbox migrations failed.
    #[error("cannot migrate the inbox table")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}
