//! Decoding untrusted bytes returns a typed error, never panics, and never
//! allocates without bound: random bytes, random datums behind a valid
//! header, and mutations of valid payloads, fed to `decode` (for every message
//! type) and `decode_json`.
//!
//! Run: `cargo test -p events --test decode_fuzz` (set `PROPTEST_CASES` for a
//! longer run).

use chrono::DateTime;
use events::codec::{self, CodecError, HEADER_LEN, MAGIC, SchemaRegistry};
use events::messages::{inventory::*, order::*, payment::*};
use proptest::prelude::*;
use uuid::Uuid;

mod mutation;
use mutation::{apply, mutation};

/// Decodes `bytes` as every message type and as JSON; returns how many
/// attempts succeeded. Any panic fails the property.
fn decode_everything(bytes: &[u8]) -> usize {
    macro_rules! try_all {
        ($($t:ty),* $(,)?) => { 0 $(+ usize::from(codec::decode::<$t>(bytes).is_ok()))* };
    }
    let typed = try_all!(
        v1::OrderCreated,
        OrderCreated,
        OrderApproved,
        OrderRejected,
        ReserveInventory,
        InventoryReserved,
        InventoryReservationFailed,
        ReleaseInventory,
        InventoryReleased,
        CommitInventory,
        InventoryCommitted,
        AuthorizePayment,
        PaymentAuthorized,
        PaymentDeclined,
        VoidPayment,
        PaymentVoided,
    );
    typed + usize::from(SchemaRegistry::embedded().decode_json(bytes).is_ok())
}

fn at(micros: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_micros(micros).expect("in range")
}

/// One valid payload per schema shape, with non-trivial arrays and options.
fn valid_payloads() -> Vec<Vec<u8>> {
    let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042);
    let lines = vec![OrderLine { sku: "SKU-1".into(), quantity: 3, unit_price_minor: 1_000 }];
    let stock = vec![StockLine { sku: "SKU-1".into(), quantity: 3 }];
    let all: Vec<Result<Vec<u8>, CodecError>> = vec![
        codec::encode(&OrderCreated {
            order_id: id,
            customer_id: id,
            lines: lines.clone(),
            total_minor: 3_000,
            currency: "EUR".into(),
            created_at: at(1_764_064_800_000_000),
            channel: "web".into(),
        }),
        codec::encode(&v1::OrderCreated {
            order_id: id,
            customer_id: id,
            lines,
            total_minor: 3_000,
            currency: "EUR".into(),
            created_at: at(1),
        }),
        codec::encode(&OrderApproved { order_id: id, authorization_id: id, approved_at: at(2) }),
        codec::encode(&OrderRejected { order_id: id, reason: "no".into(), rejected_at: at(3) }),
        codec::encode(&ReserveInventory { order_id: id, lines: stock.clone(), requested_at: at(4) }),
        codec::encode(&InventoryReserved { order_id: id, lines: stock, reserved_at: at(5) }),
        codec::encode(&InventoryReservationFailed {
            order_id: id,
            reason: "short".into(),
            unavailable_skus: vec!["A".into(), "B".into()],
            failed_at: at(6),
        }),
        codec::encode(&ReleaseInventory { order_id: id, reason: "r".into(), requested_at: at(7) }),
        codec::encode(&InventoryReleased { order_id: id, released_at: at(8) }),
        codec::encode(&CommitInventory { order_id: id, requested_at: at(9) }),
        codec::encode(&InventoryCommitted { order_id: id, committed_at: at(10) }),
        codec::encode(&AuthorizePayment {
            order_id: id,
            customer_id: id,
            amount_minor: 3_000,
            currency: "EUR".into(),
            requested_at: at(11),
        }),
        codec::encode(&PaymentAuthorized {
            order_id: id,
            authorization_id: id,
            amount_minor: 3_000,
            currency: "EUR".into(),
            authorized_at: at(12),
        }),
        codec::encode(&PaymentDeclined { order_id: id, reason: "funds".into(), declined_at: at(13) }),
        codec::encode(&VoidPayment { order_id: id, reason: "r".into(), requested_at: at(14) }),
        codec::encode(&PaymentVoided { order_id: id, authorization_id: Some(id), voided_at: at(15) }),
        codec::encode(&PaymentVoided { order_id: id, authorization_id: None, voided_at: at(16) }),
    ];
    all.into_iter().map(|r| r.expect("samples encode")).collect()
}

fn fingerprints() -> Vec<u64> {
    SchemaRegistry::embedded().schemas().iter().map(|s| s.fingerprint).collect()
}

fn header(fingerprint: u64) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&fingerprint.to_le_bytes());
    h
}

/// Avro zig-zag varint of `n`.
fn varint(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return out;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// 1024 cases per property unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 1024;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        // Random bytes essentially never carry a known fingerprint.
        let ok = decode_everything(&bytes);
        prop_assert_eq!(ok, 0);
    }

    #[test]
    fn random_datums_behind_a_valid_header_never_panic(
        which in any::<prop::sample::Index>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let fps = fingerprints();
        let mut bytes = header(fps[which.index(fps.len())]);
        bytes.extend_from_slice(&body);
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_valid_payloads_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(12, 8), 1..4),
    ) {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let samples = SAMPLES.get_or_init(valid_payloads);
        let mut bytes = samples[which.index(samples.len())].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode_everything(&bytes);
    }
}

#[test]
fn every_strict_prefix_and_every_extension_of_a_valid_payload_is_an_error() {
    for payload in valid_payloads() {
        assert!(SchemaRegistry::embedded().decode_json(&payload).is_ok());
        for len in 0..payload.len() {
            assert_eq!(decode_everything(&payload[..len]), 0, "prefix of {len} bytes decoded");
        }
        let mut longer = payload.clone();
        longer.push(0);
        let err = SchemaRegistry::embedded().decode_json(&longer).expect_err("trailing byte");
        assert!(matches!(&err, CodecError::Malformed { reason } if reason.contains("trailing")), "{err}");
    }
}

#[test]
fn a_huge_length_prefix_is_refused_before_allocating() {
    // OrderRejected starts with order_id: a string. Claim 1 GiB for it.
    let fp = SchemaRegistry::embedded().lookup("saga.order.OrderRejected", 1).expect("schema").fingerprint;
    for claimed in [1i64 << 30, 1 << 40, i64::MAX] {
        let mut bytes = header(fp);
        bytes.extend(varint(claimed));
        bytes.extend_from_slice(b"abc");
        let err = codec::decode::<OrderRejected>(&bytes).expect_err("forged length");
        assert!(matches!(err, CodecError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("Unable to allocate"), "refused by the limit: {err}");
    }
    // The limit is ours (16 MiB), not apache-avro's default of 512 MiB.
    assert_eq!(apache_avro::util::max_allocation_bytes(0), codec::MAX_ALLOCATION_BYTES);
}

#[test]
fn a_huge_array_count_is_refused_before_allocating() {
    // ReserveInventory: order_id (string), then lines (array). Claim 2^40 items.
    let fp =
        SchemaRegistry::embedded().lookup("saga.inventory.ReserveInventory", 1).expect("schema").fingerprint;
    let mut bytes = header(fp);
    let id = Uuid::nil().to_string();
    bytes.extend(varint(id.len() as i64));
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend(varint(1 << 40));
    let err = codec::decode::<ReserveInventory>(&bytes).expect_err("forged count");
    assert!(err.to_string().contains("Unable to allocate"), "{err}");
}

#[test]
fn typed_errors_name_what_went_wrong() {
    let reg = SchemaRegistry::embedded();
    // Unknown fingerprint.
    let err = reg.decode_json(&header(0xdead_beef)).expect_err("unknown");
    assert!(matches!(err, CodecError::UnknownSchema { fingerprint: 0xdead_beef, .. }), "{err}");
    assert!(err.is_unknown_schema());

    // A uuid field holding a string that is not a UUID.
    let fp = reg.lookup("saga.inventory.InventoryReleased", 1).expect("schema").fingerprint;
    let mut bytes = header(fp);
    bytes.extend(varint(3));
    bytes.extend_from_slice(b"abc");
    bytes.extend(varint(0));
    let err = codec::decode::<InventoryReleased>(&bytes).expect_err("bad uuid");
    assert!(matches!(err, CodecError::Malformed { .. } | CodecError::InvalidValue { .. }), "{err}");

    // A timestamp chrono cannot represent: decodes as Avro, does not fit the type.
    let mut bytes = header(fp);
    let id = Uuid::nil().to_string();
    bytes.extend(varint(id.len() as i64));
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend(varint(i64::MAX));
    let err = codec::decode::<InventoryReleased>(&bytes).expect_err("timestamp out of range");
    assert!(matches!(err, CodecError::InvalidValue { .. }), "{err}");
    // ...while the generic JSON view still shows it.
    let (_, json) = reg.decode_json(&bytes).expect("json view");
    assert_eq!(json["released_at"], i64::MAX);

    // Not single-object encoded at all.
    let err = reg.decode_json(b"{\"order_id\":1}").expect_err("json text");
    assert!(matches!(err, CodecError::Malformed { .. }), "{err}");
    assert_eq!(header(0).len(), HEADER_LEN);
}
