//! The optional Confluent framing against recorded registry answers
//! (`tests/data/registry/answers.json`): registration under subjects that
//! suit several types per topic, ids cached, framing detected by the first
//! byte, a newer producer's schema (known only to the registry) resolved to
//! our version, and an unknown id reported as an unknown schema (deferred by
//! consumers, not dead-lettered).
//!
//! Run: `cargo test -p events --test confluent`.

use std::path::Path;
use std::sync::Arc;

use chrono::DateTime;
use events::codec::{self, CodecError, SchemaRegistry};
use events::confluent::{ConfluentCodec, Framing, RecordedRegistry, RegistryClient, SubjectStrategy};
use events::messages::inventory::{InventoryReservationFailed, InventoryReserved, StockLine};
use events::messages::order::{OrderCreated, OrderLine, OrderRejected, v1};
use events::topics::{INVENTORY_REPLIES, ORDER_EVENTS};
use events::{Message, SchemaInfo};
use uuid::Uuid;

fn recorded() -> RecordedRegistry {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/registry/answers.json");
    RecordedRegistry::from_json(&std::fs::read_to_string(path).expect("read answers")).expect("answers parse")
}

fn codec(strategy: SubjectStrategy) -> ConfluentCodec<RecordedRegistry> {
    ConfluentCodec::new(recorded(), Arc::new(SchemaRegistry::embedded().clone()), strategy)
}

fn created() -> OrderCreated {
    OrderCreated {
        order_id: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        lines: vec![OrderLine { sku: "SKU-1".into(), quantity: 2, unit_price_minor: 500 }],
        total_minor: 1_000,
        currency: "EUR".into(),
        created_at: DateTime::from_timestamp_micros(1_764_064_800_000_001).expect("in range"),
        channel: "store".into(),
    }
}

#[test]
fn encodes_with_the_registry_id_and_only_the_framing_differs() {
    let codec = codec(SubjectStrategy::default());
    let bytes = codec.encode(ORDER_EVENTS, &created()).expect("encode");
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 11], "magic 0, id 11 big-endian");
    assert_eq!(Framing::of(&bytes), Ok(Framing::Confluent { schema_id: 11 }));
    // The same datum as in the single-object encoding.
    let single = codec::encode(&created()).expect("single-object");
    assert_eq!(&bytes[5..], &single[10..]);
    assert_eq!(codec.decode::<OrderCreated>(&bytes).expect("decode"), created());
    // And a reader of either framing: the single-object payload decodes too.
    assert_eq!(codec.decode::<OrderCreated>(&single).expect("single-object decode"), created());
}

#[test]
fn ids_are_cached() {
    let writer = codec(SubjectStrategy::TopicRecordName);
    for _ in 0..3 {
        writer.encode(ORDER_EVENTS, &created()).expect("encode");
    }
    let bytes = writer.encode(ORDER_EVENTS, &created()).expect("encode");
    writer.decode::<OrderCreated>(&bytes).expect("decode");
    // One registration, and no lookup: the writer knows what it registered.
    assert_eq!(
        writer.client().calls(),
        vec!["POST /subjects/orders.events-saga.order.OrderCreated/versions"]
    );

    let reader = codec(SubjectStrategy::TopicRecordName);
    for _ in 0..3 {
        assert_eq!(reader.decode::<OrderCreated>(&bytes).expect("decode"), created());
    }
    assert_eq!(reader.client().calls(), vec!["GET /schemas/ids/11"], "fetched once");
}

#[test]
fn subjects_suit_several_message_types_per_topic() {
    let codec = codec(SubjectStrategy::TopicRecordName);
    let at = DateTime::from_timestamp_micros(5).expect("t");
    let reserved = InventoryReserved {
        order_id: Uuid::from_u128(3),
        lines: vec![StockLine { sku: "A".into(), quantity: 1 }],
        reserved_at: at,
    };
    let failed = InventoryReservationFailed {
        order_id: Uuid::from_u128(3),
        reason: "short".into(),
        unavailable_skus: vec!["A".into()],
        failed_at: at,
    };
    let a = codec.encode(INVENTORY_REPLIES, &reserved).expect("reserved");
    let b = codec.encode(INVENTORY_REPLIES, &failed).expect("failed");
    assert_eq!((a[4], b[4]), (12, 13), "two subjects, two ids, one topic");
    assert_eq!(codec.decode::<InventoryReserved>(&a).expect("decode"), reserved);
    assert_eq!(codec.decode::<InventoryReservationFailed>(&b).expect("decode"), failed);
    // Decoding one type's bytes as the other is refused, as with fingerprints.
    assert!(matches!(codec.decode::<InventoryReserved>(&b), Err(CodecError::Incompatible { .. })));

    let by_record = self::codec(SubjectStrategy::RecordName);
    by_record.encode(ORDER_EVENTS, &created()).expect("encode");
    assert_eq!(by_record.client().calls(), vec!["POST /subjects/saga.order.OrderCreated/versions"]);
}

/// OrderCreated v3 as a newer producer writes it (its schema is id 21 in
/// the registry; our files stop at v2).
#[derive(serde::Serialize, serde::Deserialize)]
struct CreatedV3 {
    order_id: String,
    customer_id: String,
    lines: Vec<OrderLine>,
    total_minor: i64,
    currency: String,
    created_at: i64,
    channel: String,
    coupon: Option<String>,
}

impl Message for CreatedV3 {
    const NAME: &'static str = "saga.order.OrderCreated";
    const VERSION: u32 = 3;
    const TOPIC: &'static str = ORDER_EVENTS;
    const AGGREGATE_TYPE: &'static str = "order";
    fn aggregate_id(&self) -> String {
        self.order_id.clone()
    }
}

#[test]
fn a_newer_producers_schema_from_the_registry_resolves_to_our_version() {
    let codec = codec(SubjectStrategy::default());
    let v3_text = codec.client().schema_by_id(21).expect("recorded v3");
    let v3 = SchemaRegistry::from_sources([("OrderCreated.v3.avsc", v3_text.as_str())]).expect("v3 parses");
    let m = created();
    let newer = CreatedV3 {
        order_id: m.order_id.to_string(),
        customer_id: m.customer_id.to_string(),
        lines: m.lines.clone(),
        total_minor: m.total_minor,
        currency: m.currency.clone(),
        created_at: m.created_at.timestamp_micros(),
        channel: m.channel.clone(),
        coupon: Some("WELCOME".into()),
    };
    let single = v3.encode(&newer).expect("encode v3");
    let mut bytes = vec![0, 0, 0, 0, 21];
    bytes.extend_from_slice(&single[10..]);

    assert_eq!(codec.decode::<OrderCreated>(&bytes).expect("v2 reads v3"), m);
    let old: v1::OrderCreated = codec.decode(&bytes).expect("v1 reads v3");
    assert_eq!(old.order_id, m.order_id);
    let writer: Arc<SchemaInfo> = codec.writer(21).expect("cached");
    assert_eq!(
        (writer.name.as_str(), writer.version),
        ("saga.order.OrderCreated", 0),
        "not one of our files"
    );
}

#[test]
fn an_unknown_id_is_an_unknown_schema_and_a_refused_registration_an_encode_error() {
    let codec = codec(SubjectStrategy::default());
    let err = codec.decode::<OrderCreated>(&[0, 0, 0, 1, 0x94, 2, 4]).expect_err("id 404");
    assert!(err.is_unknown_schema(), "{err}");
    assert!(err.to_string().contains("40403") || err.to_string().contains("not found"), "{err}");
    // Not cached: a later answer may know it.
    let _ = codec.decode::<OrderCreated>(&[0, 0, 0, 1, 0x94, 2, 4]);
    assert_eq!(codec.client().calls().len(), 2);

    let rejected =
        OrderRejected { order_id: Uuid::nil(), reason: "r".into(), rejected_at: DateTime::UNIX_EPOCH };
    let err = codec.encode(ORDER_EVENTS, &rejected).expect_err("409");
    assert!(matches!(&err, CodecError::Encode { reason, .. } if reason.contains("incompatible")), "{err}");

    // Cut headers are malformed, not unknown.
    assert!(matches!(codec.decode::<OrderCreated>(&[0, 0, 0]), Err(CodecError::Malformed { .. })));
    // The plain codec points at this one.
    let err =
        SchemaRegistry::embedded().decode_json(&[0, 0, 0, 0, 11, 1, 2, 3, 4, 5]).expect_err("confluent");
    assert!(err.to_string().contains("Confluent"), "{err}");
}
