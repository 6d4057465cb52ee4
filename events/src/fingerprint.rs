//! Schema fingerprints: CRC-64-AVRO (the specification's 64-bit Rabin
//! fingerprint) of the Parsing Canonical Form.
//!
//! As a `u64` the fingerprint is the value Java's
//! `SchemaNormalization.parsingFingerprint64` returns (read as unsigned);
//! the single-object header carries it little-endian, so its hex dump is
//! what fastavro's `fingerprint(..., "CRC-64-AVRO")` prints.
//!
//! [`legacy`] is the fingerprint this crate wrote until it computed the
//! canonical form itself: apache-avro's, over a canonical form that keeps
//! logical types. Records written so far carry it; readers still accept it
//! (see [`SchemaRegistry`](crate::SchemaRegistry)), writers no longer use it.

use apache_avro::Schema;
use apache_avro::rabin::Rabin;

use crate::canonical::{self, CanonicalError};

/// The specification's `EMPTY` constant: the fingerprint of no bytes.
pub const EMPTY64: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = table();

const fn table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY64 & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
}

/// CRC-64-AVRO of `bytes`.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    bytes.iter().fold(EMPTY64, |fp, &b| (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize])
}

/// CRC-64-AVRO of the Parsing Canonical Form of the schema in `text`: the
/// fingerprint Java, fastavro and this crate's writers put in the header.
pub fn fingerprint_of(text: &str) -> Result<u64, CanonicalError> {
    Ok(crc64_avro(canonical::parsing_canonical_form(text)?.as_bytes()))
}

/// The fingerprint this crate wrote before it was spec-conformant
/// (apache-avro 0.22's Rabin fingerprint). Only for reading old records.
pub fn legacy(schema: &Schema) -> u64 {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_vector_for_null() {
        // share/test/data/schema-tests.txt: "null" -> 7195948357588979594
        assert_eq!(crc64_avro(br#""null""#) as i64, 7195948357588979594);
        assert_eq!(crc64_avro(b""), EMPTY64);
    }

    #[test]
    fn a_bare_uuid_has_the_header_java_and_fastavro_write() {
        // From issue 13: Java/fastavro header c3 01 c7 03 45 63 72 48 01 8f.
        let fp = fingerprint_of(r#"{"type":"string","logicalType":"uuid"}"#).expect("valid");
        assert_eq!(fp.to_le_bytes(), [0xc7, 0x03, 0x45, 0x63, 0x72, 0x48, 0x01, 0x8f]);
        // ...where apache-avro's (legacy) was 27 47 ef 38 93 5b 04 c0.
        let schema = Schema::parse_str(r#"{"type":"string","logicalType":"uuid"}"#).expect("valid");
        assert_eq!(legacy(&schema).to_le_bytes(), [0x27, 0x47, 0xef, 0x38, 0x93, 0x5b, 0x04, 0xc0]);
    }
}
