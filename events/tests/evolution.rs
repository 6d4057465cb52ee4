//! A reader that meets a newer writer's schema does not fail for good: a
//! v1-only reader (a build that knows only `OrderCreated.v1.avsc`) receiving
//! v2 data from a v2 writer gets [`CodecError::UnknownSchema`] — the
//! retry-later error — until the v2 file appears in its schema directory,
//! then decodes the very same bytes into its v1 type (writer v2 resolved to
//! reader v1). See `events::store` for the policy.
//!
//! Run: `cargo test -p events --test evolution`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::DateTime;
use events::codec::{self, CodecError, SchemaRegistry};
use events::messages::order::{OrderCreated, OrderLine, v1};
use events::store::SchemaStore;
use uuid::Uuid;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn schema_text(file: &str) -> String {
    std::fs::read_to_string(schemas_dir().join(file)).expect("read schema")
}

/// The compiled-in schemas of a reader built before v2 existed.
fn v1_only() -> SchemaRegistry {
    let v1 = schema_text("order/OrderCreated.v1.avsc");
    SchemaRegistry::from_sources([("OrderCreated.v1.avsc", v1.as_str())]).expect("v1 parses")
}

/// A fresh, empty directory under the system temp dir.
fn empty_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("saga-evolution-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn v2_payload() -> (OrderCreated, Vec<u8>) {
    let m = OrderCreated {
        order_id: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        lines: vec![OrderLine { sku: "SKU-1".into(), quantity: 2, unit_price_minor: 500 }],
        total_minor: 1_000,
        currency: "EUR".into(),
        created_at: DateTime::from_timestamp_micros(1_764_064_800_000_001).expect("in range"),
        channel: "store".into(),
    };
    // The v2 writer: today's build.
    let bytes = codec::encode(&m).expect("encode v2");
    (m, bytes)
}

#[test]
fn a_v1_only_reader_defers_v2_data_until_it_holds_the_v2_schema() {
    let dir = empty_dir("defer");
    let reader = SchemaStore::new(v1_only(), Some(dir.clone())).with_reload_interval(Duration::ZERO);
    let (sent, bytes) = v2_payload();

    // v2 is unknown: a distinct, retry-later error (never "malformed").
    let err = reader.decode::<v1::OrderCreated>(&bytes).expect_err("v2 unknown to a v1-only reader");
    assert!(err.is_unknown_schema(), "{err}");
    let CodecError::UnknownSchema { fingerprint, detail } = &err else { unreachable!() };
    let v2_fp = SchemaRegistry::embedded()
        .lookup(<OrderCreated as events::Message>::NAME, 2)
        .expect("v2")
        .fingerprint;
    assert_eq!(*fingerprint, v2_fp);
    assert!(detail.contains("SAGA_SCHEMA_DIR"), "{detail}");
    assert_eq!(reader.unknown_schema_errors(), 1);

    // The v2 file is shipped to the reader's schema directory (no restart).
    std::fs::create_dir_all(dir.join("order")).expect("mkdir");
    std::fs::write(dir.join("order/OrderCreated.v2.avsc"), schema_text("order/OrderCreated.v2.avsc"))
        .expect("write");
    let got: v1::OrderCreated = reader.decode(&bytes).expect("decodes once v2 is known");
    assert_eq!(
        (got.order_id, got.customer_id, got.lines, got.total_minor, got.currency, got.created_at),
        (sent.order_id, sent.customer_id, sent.lines, sent.total_minor, sent.currency, sent.created_at)
    );
    assert!(reader.registry().lookup(<OrderCreated as events::Message>::NAME, 2).is_some());
    // The generic view shows the v2 field the v1 type drops.
    let (writer, json) = reader.decode_json(&bytes).expect("json");
    assert_eq!((writer.version, json["channel"].as_str()), (2, Some("store")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reloads_are_rate_limited() {
    let dir = empty_dir("rate");
    let reader =
        SchemaStore::new(v1_only(), Some(dir.clone())).with_reload_interval(Duration::from_secs(3600));
    let (_, bytes) = v2_payload();
    for _ in 0..5 {
        assert!(reader.decode::<v1::OrderCreated>(&bytes).expect_err("unknown").is_unknown_schema());
    }
    // Five unknown records, one directory scan.
    assert_eq!((reader.reloads(), reader.unknown_schema_errors()), (1, 5));
    // Within the interval a new file is not seen yet; an explicit reload sees it.
    std::fs::write(dir.join("OrderCreated.v2.avsc"), schema_text("order/OrderCreated.v2.avsc"))
        .expect("write");
    assert!(reader.decode::<v1::OrderCreated>(&bytes).is_err());
    assert_eq!(reader.reload(), 1);
    reader.decode::<v1::OrderCreated>(&bytes).expect("known after reload");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_or_conflicting_file_is_skipped_and_named() {
    let dir = empty_dir("bad");
    std::fs::write(dir.join("Broken.v1.avsc"), "{ not json").expect("write");
    // A file that gives the published v1 another canonical form.
    let edited = schema_text("order/OrderCreated.v1.avsc").replace("\"total_minor\"", "\"total\"");
    std::fs::write(dir.join("OrderCreated.v1.avsc"), edited).expect("write");
    std::fs::write(dir.join("OrderCreated.v2.avsc"), schema_text("order/OrderCreated.v2.avsc"))
        .expect("write");
    let reader = SchemaStore::new(v1_only(), Some(dir.clone())).with_reload_interval(Duration::ZERO);
    assert_eq!(reader.reload(), 1, "v2 loads, the other two are skipped");
    let v1_fp = v1_only().lookup(<OrderCreated as events::Message>::NAME, 1).expect("v1").fingerprint;
    assert_eq!(
        reader.registry().lookup(<OrderCreated as events::Message>::NAME, 1).expect("v1").fingerprint,
        v1_fp
    );

    let err = reader.decode_json(&[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]).expect_err("unknown");
    let text = err.to_string();
    assert!(text.contains("Broken.v1.avsc") && text.contains("conflicts"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_directory_an_unknown_schema_says_so() {
    let reader = SchemaStore::new(v1_only(), None);
    let (_, bytes) = v2_payload();
    let err = reader.decode::<v1::OrderCreated>(&bytes).expect_err("unknown");
    assert!(err.is_unknown_schema());
    assert!(err.to_string().contains("SAGA_SCHEMA_DIR is not set"), "{err}");
    // Other errors are not "unknown schema".
    assert!(!reader.decode::<v1::OrderCreated>(b"xx").expect_err("short").is_unknown_schema());
}
