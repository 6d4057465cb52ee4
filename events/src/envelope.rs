//! The envelope: everything about a message except its body, carried in Kafka
//! record headers so that routers, the dead-letter tooling and tracing can read
//! it without decoding the Avro payload.
//!
//! Header names are plain ASCII, values are UTF-8 text (never binary), so any
//! Kafka tool can show them.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// Header names, in one place.
pub mod header {
    /// Unique id of this message (UUIDv7). Consumers dedupe on it.
    pub const EVENT_ID: &str = "event-id";
    /// Avro full name of the body's schema, e.g. `saga.inventory.ReserveInventory`.
    pub const MESSAGE_TYPE: &str = "message-type";
    /// Version of the writer schema (the `vN` in its `.avsc` file name).
    pub const SCHEMA_VERSION: &str = "schema-version";
    /// Kind of aggregate the message is about, e.g. `order`.
    pub const AGGREGATE_TYPE: &str = "aggregate-type";
    /// Id of that aggregate; also the Kafka record key (per-aggregate order).
    pub const AGGREGATE_ID: &str = "aggregate-id";
    /// Saga id that this message belongs to, if any.
    pub const CORRELATION_ID: &str = "correlation-id";
    /// Event id of the message that caused this one, if any.
    pub const CAUSATION_ID: &str = "causation-id";
    /// RFC 3339 time at which the producer created the message.
    pub const OCCURRED_AT: &str = "occurred-at";
    /// W3C trace context `traceparent`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace context `tracestate`.
    pub const TRACESTATE: &str = "tracestate";
}

/// Metadata of one message. See the [module docs](self) for the header layout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    /// Unique id of the message (UUIDv7, so ids sort by creation time).
    pub event_id: Uuid,
    /// Avro full name of the body's schema.
    pub message_type: String,
    /// Version of the schema the body was written with.
    pub schema_version: u32,
    /// Kind of aggregate, e.g. `order`.
    pub aggregate_type: String,
    /// Aggregate id; the Kafka key.
    pub aggregate_id: String,
    /// Saga id, when the message is part of a saga.
    pub correlation_id: Option<Uuid>,
    /// Event id of the message that caused this one.
    pub causation_id: Option<Uuid>,
    /// When the message was created.
    pub occurred_at: DateTime<Utc>,
    /// W3C `traceparent`, when the producer was inside a trace.
    pub traceparent: Option<String>,
    /// W3C `tracestate`.
    pub tracestate: Option<String>,
}

/// Why a set of headers is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A required header is absent.
    #[error("missing header `{0}`")]
    Missing(&'static str),
    /// A header is present but cannot be parsed.
    #[error("header `{name}` has an invalid value: {reason}")]
    Invalid {
        /// Header name.
        name: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl Envelope {
    /// Headers for this envelope, in a stable order. Optional fields that are
    /// `None` are left out.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (header::EVENT_ID, self.event_id.to_string()),
            (header::MESSAGE_TYPE, self.message_type.clone()),
            (header::SCHEMA_VERSION, self.schema_version.to_string()),
            (header::AGGREGATE_TYPE, self.aggregate_type.clone()),
            (header::AGGREGATE_ID, self.aggregate_id.clone()),
            (header::OCCURRED_AT, self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ];
        if let Some(c) = self.correlation_id {
            h.push((header::CORRELATION_ID, c.to_string()));
        }
        if let Some(c) = self.causation_id {
            h.push((header::CAUSATION_ID, c.to_string()));
        }
        if let Some(t) = &self.traceparent {
            h.push((header::TRACEPARENT, t.clone()));
        }
        if let Some(t) = &self.tracestate {
            h.push((header::TRACESTATE, t.clone()));
        }
        h
    }

    /// Parses an envelope from record headers. Unknown headers are ignored;
    /// when a header repeats, the last one wins (Kafka semantics for lookups).
    pub fn from_headers<'a, I>(headers: I) -> Result<Self, EnvelopeError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut raw: std::collections::HashMap<&'a str, &'a [u8]> = Default::default();
        for (k, v) in headers {
            raw.insert(k, v);
        }
        let text = |name: &'static str| -> Result<Option<&'a str>, EnvelopeError> {
            match raw.get(name) {
                None => Ok(None),
                Some(v) => std::str::from_utf8(v)
                    .map(Some)
                    .map_err(|e| EnvelopeError::Invalid { name, reason: e.to_string() }),
            }
        };
        let required = |name: &'static str| text(name)?.ok_or(EnvelopeError::Missing(name));
        let uuid = |name: &'static str, v: &str| {
            Uuid::parse_str(v).map_err(|e| EnvelopeError::Invalid { name, reason: e.to_string() })
        };
        let optional_uuid = |name: &'static str| -> Result<Option<Uuid>, EnvelopeError> {
            text(name)?.map(|v| uuid(name, v)).transpose()
        };
        let schema_version = required(header::SCHEMA_VERSION)?;
        let occurred_at = required(header::OCCURRED_AT)?;
        Ok(Envelope {
            event_id: uuid(header::EVENT_ID, required(header::EVENT_ID)?)?,
            message_type: non_empty(header::MESSAGE_TYPE, required(header::MESSAGE_TYPE)?)?,
            schema_version: schema_version.parse().map_err(|e: std::num::ParseIntError| {
                EnvelopeError::Invalid { name: header::SCHEMA_VERSION, reason: e.to_string() }
            })?,
            aggregate_type: non_empty(header::AGGREGATE_TYPE, required(header::AGGREGATE_TYPE)?)?,
            aggregate_id: non_empty(header::AGGREGATE_ID, required(header::AGGREGATE_ID)?)?,
            correlation_id: optional_uuid(header::CORRELATION_ID)?,
            causation_id: optional_uuid(header::CAUSATION_ID)?,
            occurred_at: DateTime::parse_from_rfc3339(occurred_at)
                .map_err(|e| EnvelopeError::Invalid { name: header::OCCURRED_AT, reason: e.to_string() })?
                .with_timezone(&Utc),
            traceparent: text(header::TRACEPARENT)?.map(str::to_owned),
            tracestate: text(header::TRACESTATE)?.map(str::to_owned),
        })
    }
}

fn non_empty(name: &'static str, v: &str) -> Result<String, EnvelopeError> {
    if v.is_empty() {
        return Err(EnvelopeError::Invalid { name, reason: "empty".into() });
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            event_id: Uuid::now_v7(),
            message_type: "saga.inventory.ReserveInventory".into(),
            schema_version: 1,
            aggregate_type: "order".into(),
            aggregate_id: Uuid::new_v4().to_string(),
            correlation_id: Some(Uuid::new_v4()),
            causation_id: None,
            occurred_at: DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
                .map(|t| t.with_timezone(&Utc))
                .expect("valid literal"),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
        }
    }

    #[test]
    fn headers_round_trip() {
        let e = sample();
        let h = e.to_headers();
        let back = Envelope::from_headers(h.iter().map(|(k, v)| (*k, v.as_bytes()))).expect("round trip");
        assert_eq!(e, back);
    }

    #[test]
    fn missing_and_invalid_headers_are_named() {
        let e = sample();
        let h: Vec<_> = e.to_headers().into_iter().filter(|(k, _)| *k != header::EVENT_ID).collect();
        let err =
            Envelope::from_headers(h.iter().map(|(k, v)| (*k, v.as_bytes()))).expect_err("invalid headers");
        assert_eq!(err, EnvelopeError::Missing(header::EVENT_ID));

        let mut h = e.to_headers();
        h.push((header::CORRELATION_ID, "not-a-uuid".into()));
        let err =
            Envelope::from_headers(h.iter().map(|(k, v)| (*k, v.as_bytes()))).expect_err("invalid headers");
        assert!(matches!(err, EnvelopeError::Invalid { name, .. } if name == header::CORRELATION_ID));
    }
}
