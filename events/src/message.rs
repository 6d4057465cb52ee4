//! The [`Message`] trait every typed message implements, and
//! [`OutgoingMessage`]: a message encoded and wrapped in its envelope, ready
//! for the outbox or a producer.

use chrono::Utc;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::codec::{self, CodecError};
use crate::envelope::Envelope;

/// A typed message with a schema in `schemas/`.
///
/// The constants tie the Rust type to its schema file
/// `schemas/<area>/<Name>.v<VERSION>.avsc` and to its topic.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Avro full name (namespace + name), e.g. `saga.inventory.ReserveInventory`.
    const NAME: &'static str;
    /// Schema version this type reads and writes.
    const VERSION: u32;
    /// Topic the message is published to (see [`crate::topics`]).
    const TOPIC: &'static str;
    /// Kind of aggregate the message is about (e.g. `order`).
    const AGGREGATE_TYPE: &'static str;
    /// Id of the aggregate; becomes the Kafka key so that one aggregate's
    /// messages stay in order on one partition.
    fn aggregate_id(&self) -> String;
}

/// A message encoded (Avro single-object encoding) with its envelope and
/// destination: what the outbox stores and the relay publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Destination topic.
    pub topic: String,
    /// Record key (= `envelope.aggregate_id`).
    pub key: String,
    /// Metadata, carried in headers.
    pub envelope: Envelope,
    /// Encoded body.
    pub payload: Vec<u8>,
}

impl OutgoingMessage {
    /// Encodes `message` and gives it a fresh envelope (UUIDv7 event id,
    /// current time, no correlation, no trace context).
    pub fn new<M: Message>(message: &M) -> Result<Self, CodecError> {
        let payload = codec::encode(message)?;
        let aggregate_id = message.aggregate_id();
        Ok(OutgoingMessage {
            topic: M::TOPIC.to_owned(),
            key: aggregate_id.clone(),
            envelope: Envelope {
                event_id: Uuid::now_v7(),
                message_type: M::NAME.to_owned(),
                schema_version: M::VERSION,
                aggregate_type: M::AGGREGATE_TYPE.to_owned(),
                aggregate_id,
                correlation_id: None,
                causation_id: None,
                occurred_at: Utc::now(),
                traceparent: None,
                tracestate: None,
            },
            payload,
        })
    }

    /// Sets the correlation id (the saga id).
    pub fn correlated_with(mut self, saga_id: Uuid) -> Self {
        self.envelope.correlation_id = Some(saga_id);
        self
    }

    /// Sets the causation id (the event id of the message being handled).
    pub fn caused_by(mut self, event_id: Uuid) -> Self {
        self.envelope.causation_id = Some(event_id);
        self
    }

    /// Sets the W3C trace context.
    pub fn with_trace_context(mut self, traceparent: Option<String>, tracestate: Option<String>) -> Self {
        self.envelope.traceparent = traceparent;
        self.envelope.tracestate = tracestate;
        self
    }
}
