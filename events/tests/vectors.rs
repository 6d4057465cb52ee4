//! Cross-language vectors: our Parsing Canonical Form and CRC-64-AVRO
//! fingerprint agree with the specification's published cases
//! (`tests/data/schema-tests.txt`, the file Java's `TestSchemaNormalization`
//! reads) and with what fastavro — which follows Java's `SchemaNormalization`
//! — computes for every schema file and for extra logical-type cases
//! (`tests/data/reference-vectors.json`, written by
//! `scripts/reference-vectors.py`).
//!
//! Run: `cargo test -p events --test vectors`.

use std::path::{Path, PathBuf};

use events::canonical::{canonical_form_of, parsing_canonical_form};
use events::codec::SchemaRegistry;
use events::fingerprint::{EMPTY64, crc64_avro};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// One case of schema-tests.txt.
#[derive(Debug)]
struct SpecCase {
    number: String,
    input: String,
    canonical: String,
    fingerprint: Option<i64>,
}

/// Reads the `<<INPUT`, `<<canonical`, `<<fingerprint` format (a here-doc
/// when `<<INPUT` ends the line, closed by a line `INPUT`).
fn spec_cases() -> Vec<SpecCase> {
    let text = std::fs::read_to_string(data("schema-tests.txt")).expect("read schema-tests.txt");
    let mut cases = Vec::new();
    let mut number = String::new();
    let mut lines = text.lines();
    let mut current: Option<SpecCase> = None;
    while let Some(line) = lines.next() {
        if let Some(n) =
            line.strip_prefix("// ").filter(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
        {
            number = n.to_owned();
        } else if let Some(rest) = line.strip_prefix("<<INPUT") {
            cases.extend(current.take());
            let input = if rest.trim().is_empty() {
                lines.by_ref().take_while(|l| *l != "INPUT").collect::<Vec<_>>().join("\n")
            } else {
                rest.trim().to_owned()
            };
            current =
                Some(SpecCase { number: number.clone(), input, canonical: String::new(), fingerprint: None });
        } else if let Some(c) = line.strip_prefix("<<canonical ") {
            current.as_mut().expect("canonical after input").canonical = c.to_owned();
        } else if let Some(f) = line.strip_prefix("<<fingerprint ") {
            current.as_mut().expect("fingerprint after input").fingerprint = Some(f.parse().expect("i64"));
        }
    }
    cases.extend(current);
    cases
}

/// The slow bit-by-bit Rabin fingerprint of Broder's paper, which Java's
/// `TestSchemaNormalization.altFingerprint` uses to cross-check the
/// table-driven one: the input is multiplied by x^64 (a leading 1 bit, then
/// eight zero bytes after it).
fn alt_fingerprint(bytes: &[u8]) -> u64 {
    fn extend(mut fp: u64, bytes: &[u8]) -> u64 {
        const ONE: u64 = 1 << 63;
        for &b in bytes {
            for bit in 0..8 {
                let overflow = fp & 1 != 0;
                fp >>= 1;
                if b & (1 << bit) != 0 {
                    fp |= ONE;
                }
                if overflow {
                    fp ^= EMPTY64;
                }
            }
        }
        fp
    }
    extend(extend(1 << 63, bytes), &[0; 8])
}

#[test]
fn the_specifications_schema_tests_pass() {
    let cases = spec_cases();
    assert_eq!(cases.len(), 34, "schema-tests.txt has cases 000..033");
    let mut fingerprints = 0;
    for case in &cases {
        let got = parsing_canonical_form(&case.input).unwrap_or_else(|e| panic!("case {}: {e}", case.number));
        assert_eq!(got, case.canonical, "case {}: canonical form of {}", case.number, case.input);
        if let Some(expected) = case.fingerprint {
            let fp = crc64_avro(got.as_bytes());
            assert_eq!(fp as i64, expected, "case {}: fingerprint", case.number);
            assert_eq!(alt_fingerprint(got.as_bytes()), fp, "case {}: slow algorithm", case.number);
            fingerprints += 1;
        }
    }
    assert_eq!(fingerprints, 26);
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(data("reference-vectors.json")).expect("read reference-vectors.json");
    serde_json::from_str(&text).expect("JSON")
}

fn u64_of(entry: &serde_json::Value) -> u64 {
    entry["fingerprint_u64"].as_u64().expect("fingerprint_u64")
}

#[test]
fn every_schema_file_has_the_canonical_form_and_fingerprint_fastavro_computes() {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let registry = SchemaRegistry::from_dir(&schemas).expect("schemas/ loads");
    let reference = reference();
    let files = reference["schema_files"].as_array().expect("schema_files");
    assert_eq!(
        files.len(),
        registry.len(),
        "a schema file without a reference vector: run scripts/reference-vectors.py"
    );
    for entry in files {
        let file = entry["file"].as_str().expect("file");
        let text = std::fs::read_to_string(schemas.join(file)).expect("read schema file");
        let canonical = parsing_canonical_form(&text).expect("canonical");
        assert_eq!(canonical, entry["canonical"].as_str().expect("canonical"), "{file}");
        let fp = crc64_avro(canonical.as_bytes());
        assert_eq!(fp, u64_of(entry), "{file}");
        assert_eq!(events::pinned::hex(fp), entry["fingerprint_le_hex"].as_str().expect("hex"), "{file}");
        // What the registry (and so every writer) uses.
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        let name =
            format!("{}.{}", json["namespace"].as_str().expect("ns"), json["name"].as_str().expect("name"));
        let version = file.rsplit_once(".v").and_then(|(_, v)| v.strip_suffix(".avsc")).expect("vN");
        let info = registry.lookup(&name, version.parse().expect("N")).expect("registered");
        assert_eq!((info.fingerprint, info.canonical_form.as_str()), (fp, canonical.as_str()), "{file}");
        let embedded = SchemaRegistry::embedded().lookup(&info.name, info.version).expect("embedded");
        assert_eq!(embedded.fingerprint, fp, "{file} embedded");
    }
}

#[test]
fn logical_types_and_names_agree_with_fastavro() {
    let reference = reference();
    let extra = reference["extra"].as_array().expect("extra");
    assert!(extra.len() >= 9);
    for entry in extra {
        let canonical =
            canonical_form_of(&entry["schema"]).unwrap_or_else(|e| panic!("{}: {e}", entry["schema"]));
        assert_eq!(canonical, entry["canonical"].as_str().expect("canonical"), "{}", entry["schema"]);
        assert_eq!(crc64_avro(canonical.as_bytes()), u64_of(entry), "{}", entry["schema"]);
    }
}

#[test]
fn a_written_header_is_the_one_java_and_fastavro_expect() {
    // The header of an OrderRejected payload carries fastavro's fingerprint
    // of the file, byte for byte.
    let m = events::messages::order::OrderRejected {
        order_id: uuid::Uuid::nil(),
        reason: "r".into(),
        rejected_at: chrono::DateTime::from_timestamp_micros(0).expect("epoch"),
    };
    let bytes = events::encode(&m).expect("encode");
    let reference = reference();
    let entry = reference["schema_files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|e| e["file"] == "order/OrderRejected.v1.avsc")
        .expect("vector");
    let hex: String = bytes[2..10].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    assert_eq!(hex, entry["fingerprint_le_hex"].as_str().expect("hex"));
}
