//! What the runtime hands to a handler: the Kafka record copied out of
//! librdkafka's buffer ([`RawRecord`]) and, once its headers parse as an
//! envelope, the [`InboundMessage`].

use chrono::{DateTime, Utc};
use rdkafka::Message as _;
use rdkafka::message::{BorrowedMessage, Headers as _};

use crate::handler::HandlerError;

/// A Kafka record as received, owned. Kept untouched so that a dead letter
/// carries exactly the bytes that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Record key (the aggregate id for our producers).
    pub key: Option<Vec<u8>>,
    /// Record value; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Record headers in their original order. A header with a null value
    /// is kept with an empty value.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Broker or producer timestamp, when the record has one.
    pub timestamp: Option<DateTime<Utc>>,
}

impl RawRecord {
    /// Copies a record out of librdkafka's buffer.
    pub fn from_kafka(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        RawRecord {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: m.timestamp().to_millis().and_then(DateTime::from_timestamp_millis),
        }
    }

    /// Headers as `(name, value)` pairs, for [`events::Envelope::from_headers`].
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// `topic/partition@offset`, for logs and error messages.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A record whose headers parsed as an [`events::Envelope`]: what a
/// [`Handler`](crate::Handler) receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Event id, type, aggregate, correlation, trace context.
    pub envelope: events::Envelope,
    /// The encoded body, as received; decode it with [`InboundMessage::decode`].
    pub payload: Vec<u8>,
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

impl InboundMessage {
    /// `message` as the runtime would hand it to a handler after reading it
    /// at `partition`/`offset` of its topic: for driving a handler without a
    /// broker (tests, replays from the outbox).
    pub fn from_outgoing(message: events::OutgoingMessage, partition: i32, offset: i64) -> Self {
        InboundMessage {
            envelope: message.envelope,
            payload: message.payload,
            topic: message.topic,
            partition,
            offset,
        }
    }

    /// Parses the envelope of `record`. A record without a valid envelope
    /// (missing or malformed headers, no value) can never be processed: the
    /// error is meant to be dead-lettered as permanent.
    pub fn from_record(record: &RawRecord) -> Result<Self, HandlerError> {
        let envelope = events::Envelope::from_headers(record.header_pairs())
            .map_err(|e| HandlerError::permanent(format!("invalid envelope: {e}")))?;
        let payload = record
            .payload
            .clone()
            .ok_or_else(|| HandlerError::permanent("record has no value (tombstone)"))?;
        Ok(InboundMessage {
            envelope,
            payload,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        })
    }

    /// The `consume` span of this message. It continues the producer's trace
    /// (W3C context carried in the envelope), so that a handler's logs and
    /// the replies it enqueues join it. The runtime runs [`Handler::handle`](crate::Handler::handle)
    /// inside it; a [`Handler::handle_batch`](crate::Handler::handle_batch)
    /// that works on several messages at once can enter each one's span.
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "consume",
            event_id = %self.envelope.event_id,
            message_type = %self.envelope.message_type,
            position = %format_args!("{}/{}@{}", self.topic, self.partition, self.offset),
        );
        let env = &self.envelope;
        telemetry::continue_trace_from(&span, env.traceparent.as_deref(), env.tracestate.as_deref());
        span
    }

    /// Whether the envelope says this message is of type `M` (by Avro full
    /// name; the schema version may differ, the codec resolves it).
    pub fn is<M: events::Message>(&self) -> bool {
        self.envelope.message_type == M::NAME
    }

    /// Decodes the body as `M`. A type mismatch or a body that does not
    /// decode is a [`HandlerError::Permanent`].
    pub fn decode<M: events::Message>(&self) -> Result<M, HandlerError> {
        if !self.is::<M>() {
            return Err(HandlerError::permanent(format!(
                "message type `{}` cannot be decoded as `{}`",
                self.envelope.message_type,
                M::NAME
            )));
        }
        Ok(events::decode::<M>(&self.payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: Vec<(String, Vec<u8>)>, payload: Option<Vec<u8>>) -> RawRecord {
        RawRecord {
            topic: "inventory.commands".into(),
            partition: 2,
            offset: 41,
            key: Some(b"order-1".to_vec()),
            payload,
            headers,
            timestamp: None,
        }
    }

    fn valid_headers() -> Vec<(String, Vec<u8>)> {
        let env = events::Envelope {
            event_id: uuid::Uuid::now_v7(),
            message_type: "saga.test.Thing".into(),
            schema_version: 1,
            aggregate_type: "order".into(),
            aggregate_id: "order-1".into(),
            correlation_id: None,
            causation_id: None,
            occurred_at: Utc::now(),
            traceparent: None,
            tracestate: None,
        };
        env.to_headers().into_iter().map(|(k, v)| (k.to_owned(), v.into_bytes())).collect()
    }

    #[test]
    fn a_valid_envelope_parses() {
        let r = record(valid_headers(), Some(vec![1, 2, 3]));
        let m = InboundMessage::from_record(&r).expect("valid");
        assert_eq!(m.envelope.message_type, "saga.test.Thing");
        assert_eq!(m.payload, vec![1, 2, 3]);
        assert_eq!((m.topic.as_str(), m.partition, m.offset), ("inventory.commands", 2, 41));
    }

    #[test]
    fn missing_headers_and_tombstones_are_permanent() {
        let err = InboundMessage::from_record(&record(vec![], Some(vec![1]))).expect_err("no headers");
        assert!(
            matches!(&err, HandlerError::Permanent(r) if r.starts_with("invalid envelope: missing header")),
            "{err}"
        );
        let err = InboundMessage::from_record(&record(valid_headers(), None)).expect_err("tombstone");
        assert!(matches!(&err, HandlerError::Permanent(r) if r.contains("tombstone")), "{err}");
    }

    #[test]
    fn position_is_readable() {
        assert_eq!(record(vec![], None).position(), "inventory.commands/2@41");
    }
}
