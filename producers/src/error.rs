//! [`PublishError`]: why a record was not published, and whether trying again
//! can help.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A failed publishing operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The configuration is unusable (empty servers, weakened guarantees).
    #[error("invalid producer configuration: {0}")]
    InvalidConfig(String),
    /// librdkafka refused to create the producer.
    #[error("could not create the producer: {0}")]
    CreateProducer(String),
    /// The record was not delivered. `retriable == false` means the broker (or
    /// librdkafka) will never accept this record as it is — e.g. it is too
    /// large — so the caller should park it rather than retry.
    #[error("delivery failed ({}): {reason}", if *retriable { "retriable" } else { "permanent" })]
    Delivery {
        /// Whether publishing the same record again can succeed.
        retriable: bool,
        /// librdkafka's description.
        reason: String,
    },
    /// The broker refuses the topic itself to this client — not authorised,
    /// or no such topic (or partition) — so no record of the topic can be
    /// published until an operator acts. `retriable` keeps the error code's
    /// usual classification (an unknown topic may be being created).
    #[error("the topic refuses records ({}): {reason}", if *retriable { "retriable" } else { "permanent" })]
    TopicRefused {
        /// Whether publishing the same record again can succeed.
        retriable: bool,
        /// librdkafka's description.
        reason: String,
    },
    /// The record — or the produce batch it travelled in: the broker refuses
    /// a whole batch over the topic's `max.message.bytes` — is too large.
    #[error("delivery failed (permanent): message size too large: {reason}")]
    TooLarge {
        /// librdkafka's description.
        reason: String,
    },
    /// The producer hit a fatal error (e.g. the idempotent producer lost its
    /// sequence); it must be dropped and a new one created. The record may be
    /// retried on the new producer.
    #[error("the producer failed fatally: {0}")]
    ProducerFatal(String),
    /// The producer went away before reporting the delivery.
    #[error("the producer was dropped before the delivery report")]
    Canceled,
}

impl PublishError {
    /// Whether publishing the same record again (after a backoff, possibly on
    /// a new producer) can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            PublishError::Delivery { retriable, .. } | PublishError::TopicRefused { retriable, .. } => {
                *retriable
            }
            PublishError::TooLarge { .. } => false,
            PublishError::ProducerFatal(_) | PublishError::Canceled => true,
            PublishError::InvalidConfig(_) | PublishError::CreateProducer(_) => false,
        }
    }

    /// Whether the producer must be replaced before publishing again.
    pub fn is_fatal(&self) -> bool {
        matches!(self, PublishError::ProducerFatal(_) | PublishError::Canceled)
    }

    /// Classifies an error reported for one record.
    pub fn from_kafka(err: &KafkaError) -> Self {
        match err.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fatal) => PublishError::ProducerFatal(err.to_string()),
            Some(code) if refuses_topic(code) => {
                PublishError::TopicRefused { retriable: !is_permanent(code), reason: err.to_string() }
            }
            Some(code) if is_too_large(code) => PublishError::TooLarge { reason: err.to_string() },
            Some(code) => PublishError::Delivery { retriable: !is_permanent(code), reason: err.to_string() },
            None => PublishError::Delivery { retriable: true, reason: err.to_string() },
        }
    }
}

/// Error codes that refuse a topic as a whole to this client: every record
/// of the topic meets them, whatever it holds.
pub fn refuses_topic(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::UnknownPartition
    )
}

/// Error codes that say a record, or the batch it was sent in, is too large.
pub fn is_too_large(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(code, C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize)
}

/// Error codes after which the same record can never be accepted. Everything
/// else (timeouts, leader changes, unknown topic while it is being created,
/// full queues) is worth retrying: an outbox must never drop a record on a
/// transient failure.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::PolicyViolation
            | C::UnsupportedForMessageFormat
            | C::BadMessage
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_permanent_and_timeouts_are_retriable() {
        let e =
            PublishError::from_kafka(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(!e.is_retriable());
        let e = PublishError::from_kafka(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut));
        assert!(e.is_retriable());
        let e = PublishError::from_kafka(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
        assert!(e.is_retriable() && !e.is_fatal());
        let e = PublishError::from_kafka(&KafkaError::MessageProduction(RDKafkaErrorCode::Fatal));
        assert!(e.is_retriable() && e.is_fatal());
    }

    #[test]
    fn topic_refusals_and_sizes_are_told_apart_and_keep_their_retriability() {
        let kafka = |c| PublishError::from_kafka(&KafkaError::MessageProduction(c));
        let e = kafka(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert!(matches!(e, PublishError::TopicRefused { retriable: false, .. }), "{e:?}");
        let e = kafka(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(matches!(e, PublishError::TopicRefused { retriable: true, .. }), "{e:?}");
        let e = kafka(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(e, PublishError::TooLarge { .. }) && !e.is_retriable(), "{e:?}");
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
