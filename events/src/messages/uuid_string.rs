//! Serde adapters that write a [`Uuid`] as its hyphenated string.
//!
//! The schemas declare ids as `{"type": "string", "logicalType": "uuid"}`, the
//! form every Avro implementation understands. `uuid`'s own `Serialize` picks
//! 16 raw bytes when the format is not human-readable (apache-avro's default),
//! which an Avro `string` does not accept; these adapters always write the
//! string and read either form, so the wire format does not depend on a
//! process-global serde setting.

use std::fmt;

use serde::{Deserializer, Serializer, de};
use uuid::Uuid;

/// `#[serde(with = "uuid_string")]` for a `Uuid` field.
pub(crate) fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.as_hyphenated().encode_lower(&mut Uuid::encode_buffer()))
}

/// See [`serialize`].
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    d.deserialize_str(UuidVisitor)
}

struct UuidVisitor;

impl de::Visitor<'_> for UuidVisitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UUID as a string or 16 bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Uuid, E> {
        Uuid::parse_str(v).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Uuid, E> {
        Uuid::from_slice(v).map_err(E::custom)
    }
}

/// The same for an `Option<Uuid>` field (schema `["null", uuid]`).
pub(crate) mod option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Wrapped(#[serde(with = "super")] Uuid);

    pub(crate) fn serialize<S: Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        id.map(Wrapped).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}
