//! Every message type survives encode → decode unchanged, payloads carry the
//! single-object header of their schema, and the one shipped evolution
//! (OrderCreated v1 → v2) reads in both directions.

use chrono::{DateTime, TimeZone, Utc};
use events::codec::{self, CodecError, HEADER_LEN, MAGIC, SchemaRegistry};
use events::messages::{inventory::*, order::*, payment::*};
use events::{Message, OutgoingMessage};
use uuid::Uuid;

/// A timestamp with microsecond precision (what the wire carries).
fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("in range")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn lines() -> Vec<OrderLine> {
    vec![
        OrderLine { sku: "SKU-1".into(), quantity: 2, unit_price_minor: 1_250 },
        OrderLine { sku: "SKU-ü".into(), quantity: 1, unit_price_minor: 99 },
    ]
}

fn stock() -> Vec<StockLine> {
    vec![StockLine { sku: "SKU-1".into(), quantity: 2 }, StockLine { sku: "SKU-2".into(), quantity: 7 }]
}

/// Encodes, checks the header, decodes, and compares.
fn round_trip<M: Message + PartialEq + std::fmt::Debug>(m: M) {
    let bytes = codec::encode(&m).unwrap_or_else(|e| panic!("encode {}: {e}", M::NAME));
    assert_eq!(bytes[..2], MAGIC, "{}", M::NAME);
    let info = SchemaRegistry::embedded().lookup(M::NAME, M::VERSION).expect("schema registered");
    assert_eq!(bytes[2..HEADER_LEN], info.fingerprint.to_le_bytes(), "{}", M::NAME);
    let back: M = codec::decode(&bytes).unwrap_or_else(|e| panic!("decode {}: {e}", M::NAME));
    assert_eq!(back, m);
    // The generic JSON view names the same schema.
    let (writer, json) = SchemaRegistry::embedded().decode_json(&bytes).expect("decode_json");
    assert_eq!((writer.name.as_str(), writer.version), (M::NAME, M::VERSION));
    assert!(json.get("order_id").and_then(|v| v.as_str()).is_some(), "{json}");
}

#[test]
fn order_messages_round_trip() {
    round_trip(OrderCreated {
        order_id: id(1),
        customer_id: id(2),
        lines: lines(),
        total_minor: 2_599,
        currency: "EUR".into(),
        created_at: at(1_764_064_800_123_456),
        channel: "mobile".into(),
    });
    round_trip(v1::OrderCreated {
        order_id: id(1),
        customer_id: id(2),
        lines: vec![],
        total_minor: 0,
        currency: "JPY".into(),
        created_at: at(-1), // before the epoch
    });
    round_trip(OrderApproved { order_id: id(3), authorization_id: id(4), approved_at: at(0) });
    round_trip(OrderRejected { order_id: id(5), reason: "payment declined".into(), rejected_at: at(7) });
}

#[test]
fn inventory_messages_round_trip() {
    round_trip(ReserveInventory { order_id: id(1), lines: stock(), requested_at: at(10) });
    round_trip(InventoryReserved { order_id: id(1), lines: stock(), reserved_at: at(11) });
    round_trip(InventoryReservationFailed {
        order_id: id(1),
        reason: "insufficient stock".into(),
        unavailable_skus: vec!["SKU-2".into()],
        failed_at: at(12),
    });
    round_trip(ReleaseInventory { order_id: id(1), reason: "payment declined".into(), requested_at: at(13) });
    round_trip(InventoryReleased { order_id: id(1), released_at: at(14) });
    round_trip(CommitInventory { order_id: id(1), requested_at: at(15) });
    round_trip(InventoryCommitted { order_id: id(1), committed_at: at(16) });
}

#[test]
fn payment_messages_round_trip() {
    round_trip(AuthorizePayment {
        order_id: id(1),
        customer_id: id(2),
        amount_minor: i64::MAX,
        currency: "EUR".into(),
        requested_at: at(20),
    });
    round_trip(PaymentAuthorized {
        order_id: id(1),
        authorization_id: id(9),
        amount_minor: 2_599,
        currency: "EUR".into(),
        authorized_at: at(21),
    });
    round_trip(PaymentDeclined { order_id: id(1), reason: "insufficient funds".into(), declined_at: at(22) });
    round_trip(VoidPayment { order_id: id(1), reason: "stock commit failed".into(), requested_at: at(23) });
    round_trip(PaymentVoided { order_id: id(1), authorization_id: Some(id(9)), voided_at: at(24) });
    round_trip(PaymentVoided { order_id: id(1), authorization_id: None, voided_at: at(25) });
    round_trip(CapturePayment {
        order_id: id(1),
        authorization_id: id(9),
        amount_minor: 2_599,
        currency: "EUR".into(),
        requested_at: at(26),
    });
    round_trip(PaymentCaptured {
        order_id: id(1),
        authorization_id: id(9),
        amount_minor: 2_599,
        currency: "EUR".into(),
        captured_at: at(27),
    });
}

fn created_v2(channel: &str) -> OrderCreated {
    OrderCreated {
        order_id: id(1),
        customer_id: id(2),
        lines: lines(),
        total_minor: 2_599,
        currency: "EUR".into(),
        created_at: at(1_764_064_800_000_001),
        channel: channel.into(),
    }
}

#[test]
fn a_v2_reader_reads_v1_data_with_the_default() {
    let old = v1::OrderCreated {
        order_id: id(1),
        customer_id: id(2),
        lines: lines(),
        total_minor: 2_599,
        currency: "EUR".into(),
        created_at: at(1_764_064_800_000_001),
    };
    let bytes = codec::encode(&old).expect("encode v1");
    let new: OrderCreated = codec::decode(&bytes).expect("v2 reads v1");
    assert_eq!(new, created_v2(OrderCreated::DEFAULT_CHANNEL));
}

#[test]
fn a_v1_reader_reads_v2_data_and_drops_the_new_field() {
    let new = created_v2("store");
    let bytes = codec::encode(&new).expect("encode v2");
    let old: v1::OrderCreated = codec::decode(&bytes).expect("v1 reads v2");
    assert_eq!(old.order_id, new.order_id);
    assert_eq!(old.lines, new.lines);
    assert_eq!(old.created_at, new.created_at);
    // The payload still says it was written with v2.
    let (writer, json) = SchemaRegistry::embedded().decode_json(&bytes).expect("json");
    assert_eq!(writer.version, 2);
    assert_eq!(json["channel"], "store");
}

#[test]
fn decoding_as_another_message_is_incompatible_not_garbage() {
    // CommitInventory and InventoryCommitted have the same shape (uuid, long):
    // without the name check the bytes would resolve silently.
    let bytes = codec::encode(&CommitInventory { order_id: id(1), requested_at: at(1) }).expect("encode");
    let err = codec::decode::<InventoryCommitted>(&bytes).expect_err("different message");
    assert!(
        matches!(&err, CodecError::Incompatible { writer, reader, .. }
            if writer.contains("CommitInventory") && reader.contains("InventoryCommitted")),
        "{err}"
    );
}

#[test]
fn timestamps_keep_microseconds_and_drop_nanoseconds() {
    let precise = Utc.timestamp_opt(1_764_064_800, 123_456_789).single().expect("valid");
    let m = CommitInventory { order_id: id(1), requested_at: precise };
    let back: CommitInventory = codec::decode(&codec::encode(&m).expect("encode")).expect("decode");
    assert_eq!(back.requested_at, at(1_764_064_800_123_456));
}

#[test]
fn decode_json_shows_ids_as_strings_and_times_as_micros() {
    let bytes = codec::encode(&created_v2("web")).expect("encode");
    let (_, json) = SchemaRegistry::embedded().decode_json(&bytes).expect("json");
    assert_eq!(json["order_id"], id(1).to_string());
    assert_eq!(json["created_at"], 1_764_064_800_000_001i64);
    assert_eq!(json["lines"][1]["sku"], "SKU-ü");
}

#[test]
fn outgoing_message_carries_the_envelope_of_the_type() {
    let m = ReserveInventory { order_id: id(1), lines: stock(), requested_at: at(10) };
    let out = OutgoingMessage::new(&m).expect("encode");
    assert_eq!(out.topic, events::topics::INVENTORY_COMMANDS);
    assert_eq!(out.key, id(1).to_string());
    assert_eq!(out.envelope.message_type, "saga.inventory.ReserveInventory");
    assert_eq!(out.envelope.schema_version, 1);
    assert_eq!(out.envelope.aggregate_type, "order");
    let back: ReserveInventory = codec::decode(&out.payload).expect("decode");
    assert_eq!(back, m);
}

#[test]
fn a_registry_from_the_schema_folder_decodes_what_the_embedded_one_wrote() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let from_files = SchemaRegistry::from_dir(&dir).expect("load schemas/");
    let bytes = codec::encode(&created_v2("web")).expect("encode");
    let back: OrderCreated = from_files.decode(&bytes).expect("decode with files");
    assert_eq!(back, created_v2("web"));
}

#[test]
fn records_written_with_the_legacy_fingerprint_still_decode() {
    // Until issue 13 the header carried apache-avro's fingerprint (pinned as
    // `legacy` in schemas/fingerprints.txt). Records already on topics keep it.
    let pins = events::pinned::PinnedSet::embedded().expect("pins");
    let pin = pins.get(OrderCreated::NAME, 2).expect("pinned");
    assert_ne!(pin.legacy_fingerprint, pin.fingerprint);
    let mut bytes = codec::encode(&created_v2("web")).expect("encode");
    assert_eq!(bytes[2..HEADER_LEN], pin.fingerprint.to_le_bytes(), "writers use the new fingerprint");
    bytes[2..HEADER_LEN].copy_from_slice(&pin.legacy_fingerprint.to_le_bytes());
    let back: OrderCreated = codec::decode(&bytes).expect("legacy header decodes");
    assert_eq!(back, created_v2("web"));
    let old: v1::OrderCreated = codec::decode(&bytes).expect("and resolves to v1");
    assert_eq!(old.order_id, id(1));
    let (writer, _) = SchemaRegistry::embedded().decode_json(&bytes).expect("json");
    assert_eq!(writer.version, 2);
}
