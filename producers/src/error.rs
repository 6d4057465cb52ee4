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
            PublishError::Delivery { retriable, .. } => *retriable,
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
            Some(code) => PublishError::Delivery { retriable: !is_permanent(code), reason: err.to_string() },
            None => PublishError::Delivery { retriable: true, reason: err.to_string() },
        }
    }
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
}
