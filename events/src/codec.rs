//! The codec: Avro single-object encoding, the schema registry, and schema
//! resolution between versions.
//!
//! # Wire format
//!
//! Every payload is an [Avro single-object encoding]:
//!
//! ```text
//! C3 01 | 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint | Avro binary datum
//! ```
//!
//! The fingerprint is taken over the writer schema's Parsing Canonical Form
//! ([`crate::canonical`], as the specification, Java and fastavro compute
//! it; [`crate::fingerprint`]), so it identifies the exact schema the bytes
//! were written with and any Avro implementation finds it from the `.avsc`
//! files. Readers also accept the *legacy* fingerprint this crate wrote
//! before (apache-avro's, over a canonical form that kept logical types):
//! [`SchemaRegistry::by_fingerprint`] maps both to the schema. The optional
//! Confluent framing (first byte `00`) is [`crate::confluent`]'s.
//!
//! **Why this framing and not the Confluent wire format** (magic 0 + a 4-byte
//! id handed out by a schema-registry service): the fingerprint is a pure
//! function of the schema text. No registry service has to run, be reachable,
//! be backed up or agree between environments, and ids cannot drift between
//! clusters. Any tool holding the `.avsc` files — this crate, the `saga` CLI,
//! a Java or Python consumer years from now — computes the same fingerprints
//! and decodes any payload with no other context (not even the Kafka headers:
//! see [`SchemaRegistry::decode_json`]). The cost is 10 bytes of header
//! instead of 5, and a new schema version must ship to readers as a file
//! before they can read it (the compatibility gate in
//! `events/tests/compatibility.rs` guarantees that, once shipped, every
//! version reads every other; [`crate::store`] lets a running reader pick
//! new files up from `SAGA_SCHEMA_DIR`, and says what happens meanwhile).
//!
//! # Resolution
//!
//! [`SchemaRegistry::decode`] reads the datum with the *writer* schema named
//! by the fingerprint and resolves it to the *reader* schema of the Rust type
//! ([`Message::NAME`] and [`Message::VERSION`]), following the Avro rules:
//! fields the reader does not know are dropped, fields the writer did not
//! know get their default. So a v1 reader reads v2 data and a v2 reader reads
//! v1 data.
//!
//! # Errors, never panics
//!
//! Decoding untrusted bytes returns a [`CodecError`]: too short or wrong magic
//! or truncated datum or trailing bytes → [`CodecError::Malformed`]; a
//! fingerprint no schema file has → [`CodecError::UnknownSchema`] (the one
//! error that can go away: [`CodecError::is_unknown_schema`]); another
//! message, or a version that cannot be resolved → [`CodecError::Incompatible`];
//! a datum that decodes but does not fit the Rust type →
//! [`CodecError::InvalidValue`]. `events/tests/decode_fuzz.rs` feeds random
//! and mutated bytes to check this. Length prefixes are bounded: building a
//! registry caps apache-avro's process-wide allocation limit at
//! [`MAX_ALLOCATION_BYTES`], so a forged length cannot make the decoder
//! allocate gigabytes.
//!
//! [Avro single-object encoding]: https://avro.apache.org/docs/1.12.0/specification/#single-object-encoding

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::{Message, SchemaStore, canonical, fingerprint};

/// The two marker bytes that open every single-object encoded payload.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Magic plus fingerprint: the bytes before the Avro datum.
pub const HEADER_LEN: usize = 10;
/// Upper bound on one allocation while decoding (a string, bytes, or the items
/// of an array). Kafka's default record limit is 1 MiB, so no valid payload
/// comes close; a forged length prefix fails with [`CodecError::Malformed`]
/// instead of allocating. The limit is apache-avro's and process-wide: the
/// first registry built sets it, unless something else set it before.
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// Why encoding or decoding failed. Variants name the failed step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload's writer schema is not known to this reader (yet): a
    /// deployment-order problem, not a bad record. See
    /// [`CodecError::is_unknown_schema`] and [`crate::SchemaStore`].
    #[error("unknown schema: no known schema has fingerprint {fingerprint:#018x} ({detail})")]
    UnknownSchema {
        /// The fingerprint (or, in the Confluent framing, the schema id) in
        /// the payload header.
        fingerprint: u64,
        /// Where the reader looked.
        detail: String,
    },
    /// The payload is not a well-formed single-object encoded datum.
    #[error("malformed payload: {reason}")]
    Malformed {
        /// What was wrong with the bytes.
        reason: String,
    },
    /// The payload was written with a schema that the requested type cannot
    /// read (another message, or a version that does not resolve).
    #[error("incompatible schema: data written as {writer} cannot be read as {reader}: {reason}")]
    Incompatible {
        /// Writer schema, `name vN`.
        writer: String,
        /// Reader schema, `name vN`.
        reader: String,
        /// Why resolution failed.
        reason: String,
    },
    /// The datum decoded but its value does not fit the Rust type (or JSON).
    #[error("invalid value for {schema}: {reason}")]
    InvalidValue {
        /// Schema, `name vN`.
        schema: String,
        /// What did not fit.
        reason: String,
    },
    /// The message could not be written with its schema (the Rust type and
    /// the schema file disagree).
    #[error("cannot encode {schema}: {reason}")]
    Encode {
        /// Schema, `name vN`.
        schema: String,
        /// What the writer rejected.
        reason: String,
    },
    /// The requested message type has no schema in this registry.
    #[error("no schema {name} v{version} in the registry")]
    MissingSchema {
        /// Avro full name.
        name: String,
        /// Version.
        version: u32,
    },
    /// A schema file could not be read or is not a valid message schema.
    #[error("cannot load schema `{file}`: {reason}")]
    LoadSchema {
        /// File (or embedded path) of the schema.
        file: String,
        /// What was wrong.
        reason: String,
    },
}

impl CodecError {
    /// The writer schema is unknown to this reader. Unlike every other
    /// decoding error this one can go away without the record changing: once
    /// the reader is given the schema (a new build, a file in
    /// `SAGA_SCHEMA_DIR`, a registry answer) the same bytes decode. Consumers
    /// should retry such a record later, never dead-letter it.
    pub fn is_unknown_schema(&self) -> bool {
        matches!(self, CodecError::UnknownSchema { .. })
    }
}

/// One schema version known to a [`SchemaRegistry`].
#[derive(Debug, Clone)]
pub struct SchemaInfo {
    /// Avro full name, e.g. `saga.order.OrderCreated`.
    pub name: String,
    /// Version, from the file name `<Name>.v<N>.avsc`.
    pub version: u32,
    /// CRC-64-AVRO fingerprint of [`Self::canonical_form`]: what writers put
    /// in the header, and what Java and fastavro compute from the file.
    pub fingerprint: u64,
    /// The fingerprint written before this crate was spec-conformant
    /// ([`fingerprint::legacy`]); readers accept it for records already on
    /// topics.
    pub legacy_fingerprint: u64,
    /// The schema's Parsing Canonical Form ([`crate::canonical`]).
    pub canonical_form: String,
    /// CRC-64-AVRO of [`canonical::logical_form`]: changes when a logical
    /// type changes, which the fingerprint does not see. Pinned, never sent.
    pub logical_fingerprint: u64,
    /// The schema's JSON as written (docs, defaults and all): what a
    /// schema-registry service is given.
    pub text: String,
    /// The parsed schema.
    pub schema: Schema,
}

impl SchemaInfo {
    /// `name vN`, as used in error messages.
    pub fn label(&self) -> String {
        format!("{} v{}", self.name, self.version)
    }

    /// Builds the entry for a schema given as JSON text, with its canonical
    /// form and both fingerprints.
    pub fn new(name: String, version: u32, text: &str) -> Result<Self, CodecError> {
        let file = format!("{name} v{version}");
        let load_err = |reason: String| CodecError::LoadSchema { file: file.clone(), reason };
        let schema = Schema::parse_str(text).map_err(|e| load_err(e.to_string()))?;
        Self::from_parsed(name, version, text, schema).map_err(load_err)
    }

    fn from_parsed(name: String, version: u32, text: &str, schema: Schema) -> Result<Self, String> {
        let canonical_form = canonical::parsing_canonical_form(text).map_err(|e| e.to_string())?;
        let logical_form = canonical::logical_form(text).map_err(|e| e.to_string())?;
        Ok(SchemaInfo {
            logical_fingerprint: fingerprint::crc64_avro(logical_form.as_bytes()),
            fingerprint: fingerprint::crc64_avro(canonical_form.as_bytes()),
            legacy_fingerprint: fingerprint::legacy(&schema),
            name,
            version,
            canonical_form,
            text: text.to_owned(),
            schema,
        })
    }
}

/// All known schemas, by fingerprint and by (name, version).
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    by_fingerprint: HashMap<u64, SchemaInfo>,
    /// Legacy fingerprint → fingerprint.
    legacy: HashMap<u64, u64>,
    by_name: HashMap<String, BTreeMap<u32, u64>>,
}

/// The fingerprint in a payload's header, after checking the magic bytes.
pub fn payload_fingerprint(payload: &[u8]) -> Result<u64, CodecError> {
    if payload.len() < HEADER_LEN {
        return Err(malformed(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte single-object header",
            payload.len()
        )));
    }
    if payload[0] == crate::confluent::MAGIC {
        return Err(malformed(
            "starts with 00: Confluent framing (schema id), decode with events::confluent::ConfluentCodec"
                .to_owned(),
        ));
    }
    if payload[..2] != MAGIC {
        return Err(malformed(format!(
            "starts with {:02x} {:02x}, not the single-object marker c3 01",
            payload[0], payload[1]
        )));
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&payload[2..HEADER_LEN]);
    Ok(u64::from_le_bytes(fp))
}

/// Encodes `m` with its schema from [`SchemaRegistry::embedded`].
pub fn encode<M: Message>(m: &M) -> Result<Vec<u8>, CodecError> {
    SchemaRegistry::embedded().encode(m)
}

/// Decodes a payload into `M` with the schemas of [`SchemaStore::global`]:
/// the compiled-in ones plus those of `SAGA_SCHEMA_DIR`, reloaded when the
/// writer schema is unknown (see [`crate::store`] for the policy).
pub fn decode<M: Message>(payload: &[u8]) -> Result<M, CodecError> {
    SchemaStore::global().decode(payload)
}

impl SchemaRegistry {
    /// The schemas compiled into this crate from the repository's `schemas/`
    /// folder (the same files [`Self::from_dir`] would read).
    pub fn embedded() -> &'static SchemaRegistry {
        static EMBEDDED: OnceLock<SchemaRegistry> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            // The embedded files are fixed at compile time and every test run
            // loads them (events/tests/registry.rs), so this cannot fail in a
            // tested build.
            #[allow(clippy::expect_used)]
            SchemaRegistry::from_sources(crate::messages::EMBEDDED_SCHEMAS.iter().copied())
                .expect("embedded schemas are valid (checked by events/tests/registry.rs)")
        })
    }

    /// Loads every `*.avsc` file under `path` (recursively). File names must
    /// be `<Name>.v<N>.avsc`, where `Name` is the record's simple name.
    pub fn from_dir(path: &Path) -> Result<Self, CodecError> {
        let mut files = Vec::new();
        collect_avsc(path, &mut files)?;
        files.sort();
        let mut sources = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| CodecError::LoadSchema {
                file: file.display().to_string(),
                reason: e.to_string(),
            })?;
            sources.push((file.display().to_string(), text));
        }
        Self::from_sources(sources.iter().map(|(f, t)| (f.as_str(), t.as_str())))
    }

    /// Builds a registry from `(file name, schema JSON)` pairs; the file name
    /// (only its last component is used) gives the version.
    pub fn from_sources<'a, I>(sources: I) -> Result<Self, CodecError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let mut registry = SchemaRegistry::empty();
        for (file, text) in sources {
            let info = parse_schema_file(file, text)?;
            registry.insert(file, info)?;
        }
        Ok(registry)
    }

    /// A registry without schemas.
    pub fn empty() -> Self {
        SchemaRegistry { by_fingerprint: HashMap::new(), legacy: HashMap::new(), by_name: HashMap::new() }
    }

    /// Adds the schemas of `other` this registry lacks; returns how many.
    /// A schema both have (same fingerprint) is kept once; the same name and
    /// version with another canonical form is an error (a published version
    /// was edited) and leaves `self` unchanged.
    pub fn merge(&mut self, other: &SchemaRegistry) -> Result<usize, CodecError> {
        let new: Vec<&SchemaInfo> = other
            .schemas()
            .into_iter()
            .filter(|s| !self.by_fingerprint.contains_key(&s.fingerprint))
            .collect();
        for s in &new {
            if let Some(mine) = self.lookup(&s.name, s.version) {
                return Err(CodecError::LoadSchema {
                    file: s.label(),
                    reason: format!(
                        "conflicts with the known {}: canonical forms differ ({:#018x} vs {:#018x}); \
                         a published version must not change",
                        mine.label(),
                        s.fingerprint,
                        mine.fingerprint
                    ),
                });
            }
        }
        for s in &new {
            self.insert(&s.label(), (*s).clone())?;
        }
        Ok(new.len())
    }

    /// Number of schemas.
    pub fn len(&self) -> usize {
        self.by_fingerprint.len()
    }

    /// No schemas at all.
    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }

    fn insert(&mut self, file: &str, info: SchemaInfo) -> Result<(), CodecError> {
        let load_err = |reason: String| CodecError::LoadSchema { file: file.to_owned(), reason };
        if let Some(other) =
            self.by_fingerprint(info.fingerprint).or_else(|| self.by_fingerprint(info.legacy_fingerprint))
        {
            return Err(load_err(format!(
                "same canonical form (fingerprint {:#018x}) as {}; a change that only \
                 touches docs needs no new version",
                info.fingerprint,
                other.label()
            )));
        }
        let versions = self.by_name.entry(info.name.clone()).or_default();
        if versions.contains_key(&info.version) {
            return Err(load_err(format!("{} is defined twice", info.label())));
        }
        versions.insert(info.version, info.fingerprint);
        self.legacy.insert(info.legacy_fingerprint, info.fingerprint);
        self.by_fingerprint.insert(info.fingerprint, info);
        Ok(())
    }

    /// The schema `name` at `version`.
    pub fn lookup(&self, name: &str, version: u32) -> Option<&SchemaInfo> {
        let fp = self.by_name.get(name)?.get(&version)?;
        self.by_fingerprint.get(fp)
    }

    /// The schema with this fingerprint, or with this legacy fingerprint.
    pub fn by_fingerprint(&self, fingerprint: u64) -> Option<&SchemaInfo> {
        self.by_fingerprint
            .get(&fingerprint)
            .or_else(|| self.legacy.get(&fingerprint).and_then(|fp| self.by_fingerprint.get(fp)))
    }

    /// Every version of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<&SchemaInfo> {
        self.by_name
            .get(name)
            .map(|v| v.values().filter_map(|fp| self.by_fingerprint.get(fp)).collect())
            .unwrap_or_default()
    }

    /// Every schema, ordered by name then version.
    pub fn schemas(&self) -> Vec<&SchemaInfo> {
        let mut all: Vec<&SchemaInfo> = self.by_fingerprint.values().collect();
        all.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        all
    }

    /// The writer schema of a payload (from its header; the datum is not
    /// read). Lets a router dispatch on the message type without headers.
    pub fn writer_schema(&self, payload: &[u8]) -> Result<&SchemaInfo, CodecError> {
        let fingerprint = payload_fingerprint(payload)?;
        self.by_fingerprint(fingerprint).ok_or_else(|| CodecError::UnknownSchema {
            fingerprint,
            detail: format!("none of the {} schemas this reader knows", self.len()),
        })
    }

    /// Encodes `m` with the schema `M::NAME` v`M::VERSION`.
    pub fn encode<M: Message>(&self, m: &M) -> Result<Vec<u8>, CodecError> {
        let info = self.reader_for::<M>()?;
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&info.fingerprint.to_le_bytes());
        write_datum(info, m, &mut buf)?;
        Ok(buf)
    }

    /// Decodes a payload into `M`: reads the datum with the writer schema
    /// named by the fingerprint and resolves it to `M`'s schema.
    pub fn decode<M: Message>(&self, payload: &[u8]) -> Result<M, CodecError> {
        let reader = self.reader_for::<M>()?;
        let writer = self.writer_schema(payload)?;
        decode_datum(writer, reader, &payload[HEADER_LEN..])
    }

    /// Decodes any payload whose writer schema is known into JSON (records
    /// become objects, ids strings, timestamps integer microseconds since the
    /// epoch), for ops tools that do not know the Rust types.
    pub fn decode_json(&self, payload: &[u8]) -> Result<(SchemaInfo, serde_json::Value), CodecError> {
        let writer = self.writer_schema(payload)?;
        let value = read_datum(writer, &payload[HEADER_LEN..])?;
        let json = serde_json::Value::try_from(value)
            .map_err(|e| CodecError::InvalidValue { schema: writer.label(), reason: e.to_string() })?;
        Ok((writer.clone(), json))
    }

    /// The schema `M` reads and writes (`M::NAME` v`M::VERSION`).
    pub fn reader_for<M: Message>(&self) -> Result<&SchemaInfo, CodecError> {
        self.lookup(M::NAME, M::VERSION)
            .ok_or_else(|| CodecError::MissingSchema { name: M::NAME.to_owned(), version: M::VERSION })
    }
}

/// Appends the Avro binary datum of `m`, written with `info`'s schema.
pub(crate) fn write_datum<M: Message>(info: &SchemaInfo, m: &M, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let encode_err =
        |e: apache_avro::Error| CodecError::Encode { schema: info.label(), reason: e.to_string() };
    let writer = GenericDatumWriter::builder(&info.schema).build().map_err(encode_err)?;
    writer.write_ser(buf, m).map_err(encode_err)?;
    Ok(())
}

/// Reads `body` (a whole datum) with the `writer` schema and resolves it to
/// `reader`, the schema of `M`.
pub(crate) fn decode_datum<M: Message>(
    writer: &SchemaInfo,
    reader: &SchemaInfo,
    body: &[u8],
) -> Result<M, CodecError> {
    if writer.name != reader.name {
        return Err(CodecError::Incompatible {
            writer: writer.label(),
            reader: reader.label(),
            reason: "different message types".to_owned(),
        });
    }
    let value = read_datum(writer, body)?;
    let value = if writer.fingerprint == reader.fingerprint {
        value
    } else {
        value.resolve(&reader.schema).map_err(|e| CodecError::Incompatible {
            writer: writer.label(),
            reader: reader.label(),
            reason: e.to_string(),
        })?
    };
    apache_avro::from_value::<M>(&value)
        .map_err(|e| CodecError::InvalidValue { schema: reader.label(), reason: e.to_string() })
}

/// Reads one datum written with `writer`; the whole of `body` must be used.
pub(crate) fn read_datum(writer: &SchemaInfo, body: &[u8]) -> Result<Value, CodecError> {
    let reader = GenericDatumReader::builder(&writer.schema)
        .build()
        .map_err(|e| malformed(format!("schema {}: {e}", writer.label())))?;
    let mut cursor = body;
    let value =
        reader.read_value(&mut cursor).map_err(|e| malformed(format!("datum of {}: {e}", writer.label())))?;
    if !cursor.is_empty() {
        return Err(malformed(format!(
            "{} trailing bytes after the datum of {}",
            cursor.len(),
            writer.label()
        )));
    }
    // apache-avro 0.22 turns an end of input inside a string or boolean into
    // a null instead of an error; a truncated payload would otherwise decode.
    // (A union cut off right at its branch index still reads as its first
    // branch: a truncation exactly before a trailing optional field is not
    // detectable here. Kafka's record CRC guards against that in transit.)
    // Validation cannot fail to resolve names: the reader above just did.
    if !value.validate(&writer.schema) {
        return Err(malformed(format!(
            "datum of {} is truncated or does not match its schema",
            writer.label()
        )));
    }
    Ok(value)
}

fn malformed(reason: String) -> CodecError {
    CodecError::Malformed { reason }
}

/// Parses one `.avsc` file and checks that its file name matches the record.
fn parse_schema_file(file: &str, text: &str) -> Result<SchemaInfo, CodecError> {
    let load_err = |reason: String| CodecError::LoadSchema { file: file.to_owned(), reason };
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let (simple, version) = parse_file_name(base)
        .ok_or_else(|| load_err("file name is not `<Name>.v<N>.avsc` with N >= 1".to_owned()))?;
    let schema = Schema::parse_str(text).map_err(|e| load_err(e.to_string()))?;
    let Schema::Record(record) = &schema else {
        return Err(load_err("a message schema must be a record".to_owned()));
    };
    if record.name.name() != simple {
        return Err(load_err(format!(
            "file name says `{simple}` but the record is `{}`",
            record.name.name()
        )));
    }
    let name = record.name.fullname(None);
    SchemaInfo::from_parsed(name, version, text, schema).map_err(load_err)
}

/// `OrderCreated.v2.avsc` → `("OrderCreated", 2)`.
fn parse_file_name(base: &str) -> Option<(&str, u32)> {
    let stem = base.strip_suffix(".avsc")?;
    let (simple, version) = stem.rsplit_once(".v")?;
    let version: u32 = version.parse().ok()?;
    (version >= 1 && !simple.is_empty()).then_some((simple, version))
}

pub(crate) fn collect_avsc(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CodecError> {
    let io_err =
        |e: std::io::Error| CodecError::LoadSchema { file: dir.display().to_string(), reason: e.to_string() };
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if path.is_dir() {
            collect_avsc(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_name_and_version() {
        assert_eq!(parse_file_name("OrderCreated.v2.avsc"), Some(("OrderCreated", 2)));
        assert_eq!(parse_file_name("OrderCreated.v0.avsc"), None);
        assert_eq!(parse_file_name("OrderCreated.avsc"), None);
        assert_eq!(parse_file_name("OrderCreated.v1.json"), None);
    }

    #[test]
    fn header_problems_are_malformed() {
        assert!(matches!(payload_fingerprint(&[0xC3, 0x01, 0]), Err(CodecError::Malformed { .. })));
        assert!(matches!(payload_fingerprint(&[0u8; 12]), Err(CodecError::Malformed { .. })));
        let mut ok = vec![0xC3, 0x01];
        ok.extend_from_slice(&42u64.to_le_bytes());
        assert_eq!(payload_fingerprint(&ok), Ok(42));
    }

    #[test]
    fn a_schema_whose_record_differs_from_its_file_name_is_refused() {
        let text = r#"{"type":"record","name":"A","namespace":"x","doc":"d","fields":[]}"#;
        let err = SchemaRegistry::from_sources([("B.v1.avsc", text)]).expect_err("name mismatch");
        assert!(matches!(err, CodecError::LoadSchema { .. }), "{err}");
        let twice = SchemaRegistry::from_sources([("A.v1.avsc", text), ("A.v2.avsc", text)])
            .expect_err("same canonical form twice");
        assert!(twice.to_string().contains("same canonical form"), "{twice}");
    }
}
