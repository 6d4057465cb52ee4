//! # events — the system's message contract
//!
//! Every message that crosses a service boundary is defined here: its Avro
//! schema (the `.avsc` files in the repository's `schemas/` folder, embedded at
//! build time), a serde Rust type, the [`Envelope`] carried in Kafka headers,
//! and the codec that turns one into bytes and back.
//!
//! This crate is the core of the dependency graph: it knows nothing about
//! Kafka clients or databases.
//!
//! ## Wire format
//! A record's value is the message body in [Avro single-object encoding]:
//! `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the writer schema's Parsing
//! Canonical Form (computed as the specification and Java do, see
//! [`canonical`]), then the Avro binary datum. The fingerprint is computed from the schema itself, so
//! no schema-registry service is needed and any tool holding the `.avsc`
//! files decodes any payload, without other context (see [`codec`] for why
//! this framing over the Confluent one). Readers resolve the writer's version
//! to their own, so producers and consumers upgrade independently; the test
//! `events/tests/compatibility.rs` refuses schema changes that would break
//! either direction. The [`Envelope`] travels beside the body in headers.
//!
//! ## Delivery semantics
//! Nothing here sends or receives; the guarantees are the transport's
//! (at-least-once: outbox relay → Kafka → consumer with inbox). What this
//! crate contributes: every message gets a unique UUIDv7
//! [`Envelope::event_id`], the key consumers dedupe on (offsets are not a
//! dedupe key: a re-sent message lands at a new offset), and every message is
//! keyed by its aggregate id ([`Message::aggregate_id`], the order id), so
//! one order's messages stay in order on one partition.
//!
//! [Avro single-object encoding]: https://avro.apache.org/docs/1.12.0/specification/#single-object-encoding
//!
//! ## Layout
//! * [`envelope`] — event id, type, aggregate, correlation/causation, trace
//!   context; to and from record headers.
//! * [`message`] — the [`Message`] trait and [`OutgoingMessage`].
//! * [`codec`] — Avro single-object encoding, the schema registry, schema
//!   resolution between versions.
//! * [`confluent`] — the optional Confluent framing (magic 0 + schema id)
//!   against a schema-registry service, ids cached.
//! * [`canonical`] — the Parsing Canonical Form, as the specification and
//!   Java compute it.
//! * [`fingerprint`] — CRC-64-AVRO of it (and the legacy fingerprint).
//! * [`pinned`] — published versions frozen: `schemas/fingerprints.txt`.
//! * [`store`] — the schemas a running reader knows (compiled in plus
//!   `SAGA_SCHEMA_DIR`) and the policy for an unknown writer schema.
//! * [`messages`] — the typed messages of the order saga.
//! * [`topics`] — topic names and keying rules.

pub mod canonical;
pub mod codec;
pub mod confluent;
pub mod envelope;
pub mod fingerprint;
pub mod message;
pub mod messages;
pub mod pinned;
pub mod store;
pub mod topics;

pub use codec::{CodecError, SchemaInfo, SchemaRegistry, decode, encode};
pub use envelope::{Envelope, EnvelopeError};
pub use message::{Message, OutgoingMessage};
pub use store::SchemaStore;
