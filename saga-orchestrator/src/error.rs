//! The crate's error types: [`TransitionError`] for an event the saga refuses,
//! [`Error`] for everything around the state machine (configuration, turning
//! commands into messages and messages into events).

use events::CodecError;
use uuid::Uuid;

/// An event that [`transition`](crate::transition()) refuses: it belongs to
/// another saga. The saga's state is unchanged; the caller should park the
/// message (dead letter) rather than retry it, because it will never fit.
///
/// Late, duplicate or unexpected replies of *this* saga are not errors: they
/// are ignored (see [`Ignored`](crate::Ignored)), so one stray message can
/// never stop a saga.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The event's correlation id is another saga's id.
    #[error("matching saga: event correlated with saga {got} was handed to saga {expected}")]
    MatchSaga {
        /// The id of the saga that was handed the event.
        expected: Uuid,
        /// The correlation id the event carries.
        got: Uuid,
    },
    /// The reply is about another order than the saga's.
    #[error("matching order: {message_type} about order {got} was handed to the saga of order {expected}")]
    MatchOrder {
        /// Avro name of the reply.
        message_type: &'static str,
        /// The saga's order id.
        expected: Uuid,
        /// The order id in the reply.
        got: Uuid,
    },
}

/// Failures around the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`SagaConfig`](crate::SagaConfig) setting is out of range.
    #[error("validating saga config: {field} {problem}")]
    ValidateConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A [`Command`](crate::Command) could not be encoded into a message.
    #[error("encoding command {message_type}")]
    EncodeCommand {
        /// Avro name of the command.
        message_type: &'static str,
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
    /// A reply addressed to the saga could not be decoded.
    #[error("decoding reply {message_type}")]
    DecodeReply {
        /// Message type from the envelope.
        message_type: String,
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
}
