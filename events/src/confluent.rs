//! Optional: the Confluent wire format, for users who run a
//! Confluent-compatible schema registry.
//!
//! ```text
//! 00 | 4-byte big-endian schema id | Avro binary datum
//! ```
//!
//! The default framing stays single-object encoding (`C3 01` + fingerprint,
//! see [`crate::codec`]); a reader tells the two apart by the first byte
//! ([`Framing::of`]), so a topic may carry both while producers switch.
//!
//! * **Registration.** Schemas are registered from the repository's files
//!   (the [`SchemaRegistry`]'s [`SchemaInfo::text`], docs and defaults
//!   included, so the registry's own compatibility checks see the defaults).
//! * **Subjects.** [`SubjectStrategy::TopicRecordName`] (default,
//!   `<topic>-<record full name>`) or [`SubjectStrategy::RecordName`]
//!   (`<record full name>`) suit topics carrying several message types, as
//!   ours do (`inventory.replies` has four); `TopicName` (`<topic>-value`)
//!   only suits one type per topic.
//! * **Caching.** Each (subject, schema) is registered once per codec and
//!   each id fetched once: after the first message of a type, encoding and
//!   decoding make no registry calls.
//! * **Unknown ids.** An id the registry cannot answer for (unreachable, or
//!   unknown) is [`CodecError::UnknownSchema`] — deferred by consumers, like
//!   an unknown fingerprint — never a dead letter.
//!
//! The HTTP client is the caller's ([`RegistryClient`]): this crate stays free
//! of network code. [`RecordedRegistry`] answers from recorded REST answers
//! (the registry API's JSON), for tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::Message;
use crate::codec::{self, CodecError, SchemaInfo, SchemaRegistry};

/// First byte of a Confluent-framed payload.
pub const MAGIC: u8 = 0;
/// Magic plus schema id.
pub const HEADER_LEN: usize = 5;

/// How a payload is framed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `C3 01` + CRC-64-AVRO fingerprint (little-endian).
    SingleObject {
        /// The writer schema's fingerprint.
        fingerprint: u64,
    },
    /// `00` + schema id (big-endian).
    Confluent {
        /// The registry's id of the writer schema.
        schema_id: u32,
    },
}

impl Framing {
    /// Detects the framing by the first byte.
    pub fn of(payload: &[u8]) -> Result<Framing, CodecError> {
        match payload.first() {
            Some(&MAGIC) => {
                let id: [u8; 4] =
                    payload.get(1..HEADER_LEN).and_then(|b| b.try_into().ok()).ok_or_else(|| {
                        CodecError::Malformed {
                            reason: format!(
                                "{} bytes, shorter than the 5-byte Confluent header",
                                payload.len()
                            ),
                        }
                    })?;
                Ok(Framing::Confluent { schema_id: u32::from_be_bytes(id) })
            }
            _ => codec::payload_fingerprint(payload).map(|fingerprint| Framing::SingleObject { fingerprint }),
        }
    }
}

/// How subjects are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectStrategy {
    /// `<topic>-value`: one message type per topic only.
    TopicName,
    /// `<record full name>`: the type's versions shared by every topic.
    RecordName,
    /// `<topic>-<record full name>`: several types per topic, versions per topic.
    #[default]
    TopicRecordName,
}

impl SubjectStrategy {
    /// The subject of `record` (full name) on `topic`.
    pub fn subject(&self, topic: &str, record: &str) -> String {
        match self {
            SubjectStrategy::TopicName => format!("{topic}-value"),
            SubjectStrategy::RecordName => record.to_owned(),
            SubjectStrategy::TopicRecordName => format!("{topic}-{record}"),
        }
    }
}

/// Why the registry did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema registry: {reason}")]
pub struct RegistryError {
    /// The registry's message (or the transport's).
    pub reason: String,
}

/// The two calls of a Confluent-compatible registry the codec needs.
pub trait RegistryClient: Send + Sync {
    /// `POST /subjects/{subject}/versions` with `{"schema": schema}`;
    /// returns the `id` of the answer (the same id when already registered).
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError>;
    /// `GET /schemas/ids/{id}`; returns the answer's `schema` text.
    fn schema_by_id(&self, id: u32) -> Result<String, RegistryError>;
}

/// Encodes and decodes the Confluent framing, with ids cached.
pub struct ConfluentCodec<C> {
    client: C,
    schemas: Arc<SchemaRegistry>,
    strategy: SubjectStrategy,
    ids: Mutex<HashMap<(String, u64), u32>>,
    writers: Mutex<HashMap<u32, Arc<SchemaInfo>>>,
}

impl<C: RegistryClient> ConfluentCodec<C> {
    /// A codec registering and resolving against `schemas` (usually
    /// [`SchemaRegistry::embedded`]) through `client`.
    pub fn new(client: C, schemas: Arc<SchemaRegistry>, strategy: SubjectStrategy) -> Self {
        ConfluentCodec { client, schemas, strategy, ids: Mutex::default(), writers: Mutex::default() }
    }

    /// The registry client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The schema id of `M`'s schema under its subject on `topic`,
    /// registering it on first use.
    pub fn schema_id<M: Message>(&self, topic: &str) -> Result<u32, CodecError> {
        let info = self.schemas.reader_for::<M>()?;
        let subject = self.strategy.subject(topic, &info.name);
        let key = (subject, info.fingerprint);
        if let Some(id) = lock(&self.ids).get(&key) {
            return Ok(*id);
        }
        let id = self.client.register(&key.0, &info.text).map_err(|e| CodecError::Encode {
            schema: info.label(),
            reason: format!("registering under subject {}: {e}", key.0),
        })?;
        lock(&self.ids).insert(key, id);
        // What we registered is what that id means: no need to fetch it back.
        lock(&self.writers).entry(id).or_insert_with(|| Arc::new(info.clone()));
        Ok(id)
    }

    /// Encodes `m` for `topic`: `00`, the schema id, the datum.
    pub fn encode<M: Message>(&self, topic: &str, m: &M) -> Result<Vec<u8>, CodecError> {
        let id = self.schema_id::<M>(topic)?;
        let info = self.schemas.reader_for::<M>()?;
        let mut buf = Vec::with_capacity(128);
        buf.push(MAGIC);
        buf.extend_from_slice(&id.to_be_bytes());
        codec::write_datum(info, m, &mut buf)?;
        Ok(buf)
    }

    /// Decodes either framing into `M` (detected by the first byte): a
    /// single-object payload with [`SchemaRegistry::decode`], a Confluent one
    /// with the writer schema its id names (fetched once, then cached),
    /// resolved to `M`'s schema.
    pub fn decode<M: Message>(&self, payload: &[u8]) -> Result<M, CodecError> {
        match Framing::of(payload)? {
            Framing::SingleObject { .. } => self.schemas.decode(payload),
            Framing::Confluent { schema_id } => {
                let writer = self.writer(schema_id)?;
                let reader = self.schemas.reader_for::<M>()?;
                codec::decode_datum(&writer, reader, &payload[HEADER_LEN..])
            }
        }
    }

    /// The writer schema of a registry id.
    pub fn writer(&self, schema_id: u32) -> Result<Arc<SchemaInfo>, CodecError> {
        if let Some(w) = lock(&self.writers).get(&schema_id) {
            return Ok(Arc::clone(w));
        }
        let unknown =
            |detail: String| CodecError::UnknownSchema { fingerprint: u64::from(schema_id), detail };
        let text = self
            .client
            .schema_by_id(schema_id)
            .map_err(|e| unknown(format!("schema id {schema_id}: {e}")))?;
        // The name and version of the files when the registry's schema is one
        // of them (by canonical form), else version 0.
        let probe = SchemaInfo::new(String::new(), 0, &text)
            .map_err(|e| unknown(format!("schema id {schema_id} is not a usable schema: {e}")))?;
        let info = match self.schemas.by_fingerprint(probe.fingerprint) {
            Some(known) => known.clone(),
            None => {
                let apache_avro::Schema::Record(record) = &probe.schema else {
                    return Err(unknown(format!("schema id {schema_id} is not a record")));
                };
                SchemaInfo { name: record.name.fullname(None), ..probe }
            }
        };
        let info = Arc::new(info);
        lock(&self.writers).insert(schema_id, Arc::clone(&info));
        Ok(info)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A [`RegistryClient`] answering from recorded REST exchanges: a JSON array
/// of `{"request": {"method", "path"}, "response": {"status", "body"}}`, the
/// bodies as the registry's API returns them (`{"id": 1}`,
/// `{"schema": "..."}`, `{"error_code": 40403, "message": "..."}`). Counts
/// the calls, so tests can show the cache at work.
#[derive(Debug, Default)]
pub struct RecordedRegistry {
    answers: HashMap<(String, String), (u16, serde_json::Value)>,
    calls: Mutex<Vec<String>>,
}

impl RecordedRegistry {
    /// Reads recorded exchanges.
    pub fn from_json(text: &str) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError { reason: format!("recorded answers: {reason}") };
        let exchanges: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut answers = HashMap::new();
        for x in exchanges {
            let field = |v: &serde_json::Value, k: &str| {
                v.get(k)
                    .and_then(|f| f.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("no {k} in {x}")))
            };
            let method = field(&x["request"], "method")?;
            let path = field(&x["request"], "path")?;
            let status = x["response"]["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
            answers.insert((method, path), (status, x["response"]["body"].clone()));
        }
        Ok(RecordedRegistry { answers, calls: Mutex::default() })
    }

    /// The calls made so far, as `METHOD path`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    fn answer(&self, method: &str, path: String) -> Result<&serde_json::Value, RegistryError> {
        lock(&self.calls).push(format!("{method} {path}"));
        let (status, body) = self
            .answers
            .get(&(method.to_owned(), path.clone()))
            .ok_or_else(|| RegistryError { reason: format!("no recorded answer for {method} {path}") })?;
        if *status >= 400 {
            let message = body.get("message").and_then(|m| m.as_str()).unwrap_or("error");
            return Err(RegistryError { reason: format!("{status} {message} ({method} {path})") });
        }
        Ok(body)
    }
}

impl RegistryClient for RecordedRegistry {
    fn register(&self, subject: &str, _schema: &str) -> Result<u32, RegistryError> {
        let body = self.answer("POST", format!("/subjects/{subject}/versions"))?;
        body.get("id")
            .and_then(|i| i.as_u64())
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| RegistryError { reason: format!("no id in {body}") })
    }

    fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let body = self.answer("GET", format!("/schemas/ids/{id}"))?;
        body.get("schema")
            .and_then(|s| s.as_str())
            .map(str::to_owned)
            .ok_or_else(|| RegistryError { reason: format!("no schema in {body}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_tells_the_framing() {
        assert_eq!(Framing::of(&[0, 0, 0, 1, 2, 9]), Ok(Framing::Confluent { schema_id: 258 }));
        let mut single = vec![0xC3, 0x01];
        single.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(Framing::of(&single), Ok(Framing::SingleObject { fingerprint: 7 }));
        assert!(matches!(Framing::of(&[0, 1]), Err(CodecError::Malformed { .. })));
        assert!(matches!(Framing::of(&[]), Err(CodecError::Malformed { .. })));
        assert!(matches!(Framing::of(b"{\"json\": 1}"), Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn subjects() {
        let r = "saga.inventory.InventoryReserved";
        assert_eq!(SubjectStrategy::TopicName.subject("inventory.replies", r), "inventory.replies-value");
        assert_eq!(SubjectStrategy::RecordName.subject("inventory.replies", r), r);
        assert_eq!(
            SubjectStrategy::default().subject("inventory.replies", r),
            "inventory.replies-saga.inventory.InventoryReserved"
        );
    }
}
