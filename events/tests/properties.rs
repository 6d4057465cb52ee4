//! Properties of the codec over generated values of every message type:
//!
//! 1. encode → decode gives the value back (every type, every field range:
//!    any UUID, any i32/i64, any Unicode string, any timestamp from year 1 to
//!    9999, empty and long arrays, both union branches);
//! 2. anything that decodes re-encodes, and the re-encoded bytes decode to
//!    the same value (so a decoded value is always one the schema accepts —
//!    nothing decodes into a value the writer side would refuse);
//! 3. mutated payloads never panic, and when a mutation still decodes, the
//!    value passes the same checks: it re-encodes, round-trips, and the
//!    schema-level reader (`decode_json`) accepts the same bytes — the typed
//!    reader is never laxer than the schema.
//!
//! Run: `cargo test -p events --test properties` (`PROPTEST_CASES` for more).

use chrono::{DateTime, Utc};
use events::Message;
use events::codec::{self, SchemaRegistry};
use events::messages::{inventory::*, order::*, payment::*};
use proptest::prelude::*;
use uuid::Uuid;

mod mutation;
use mutation::{apply, mutation};

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Microsecond timestamps from 0001-01-01 to 9999-12-31.
fn at() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_135_596_800_000_000i64..=253_402_300_799_999_999)
        .prop_map(|us| DateTime::from_timestamp_micros(us).expect("in chrono's range"))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "\\PC{0,40}", "[A-Z]{3}"]
}

fn order_lines() -> impl Strategy<Value = Vec<OrderLine>> {
    prop::collection::vec(
        (text(), any::<i32>(), any::<i64>()).prop_map(|(sku, quantity, unit_price_minor)| OrderLine {
            sku,
            quantity,
            unit_price_minor,
        }),
        0..6,
    )
}

fn stock_lines() -> impl Strategy<Value = Vec<StockLine>> {
    prop::collection::vec(
        (text(), any::<i32>()).prop_map(|(sku, quantity)| StockLine { sku, quantity }),
        0..6,
    )
}

prop_compose! {
    fn any_order_created()(order_id in uuid(), customer_id in uuid(), lines in order_lines(), total_minor in any::<i64>(),
        currency in text(), created_at in at(), channel in text()) -> OrderCreated {
        OrderCreated { order_id, customer_id, lines, total_minor, currency, created_at, channel }
    }
}
prop_compose! {
    fn any_order_created_v1()(order_id in uuid(), customer_id in uuid(), lines in order_lines(), total_minor in any::<i64>(),
        currency in text(), created_at in at()) -> v1::OrderCreated {
        v1::OrderCreated { order_id, customer_id, lines, total_minor, currency, created_at }
    }
}
prop_compose! {
    fn any_order_approved()(order_id in uuid(), authorization_id in uuid(), approved_at in at()) -> OrderApproved {
        OrderApproved { order_id, authorization_id, approved_at }
    }
}
prop_compose! {
    fn any_order_rejected()(order_id in uuid(), reason in text(), rejected_at in at()) -> OrderRejected {
        OrderRejected { order_id, reason, rejected_at }
    }
}
prop_compose! {
    fn any_reserve_inventory()(order_id in uuid(), lines in stock_lines(), requested_at in at()) -> ReserveInventory {
        ReserveInventory { order_id, lines, requested_at }
    }
}
prop_compose! {
    fn any_inventory_reserved()(order_id in uuid(), lines in stock_lines(), reserved_at in at()) -> InventoryReserved {
        InventoryReserved { order_id, lines, reserved_at }
    }
}
prop_compose! {
    fn any_reservation_failed()(order_id in uuid(), reason in text(),
        unavailable_skus in prop::collection::vec(text(), 0..5), failed_at in at()) -> InventoryReservationFailed {
        InventoryReservationFailed { order_id, reason, unavailable_skus, failed_at }
    }
}
prop_compose! {
    fn any_release_inventory()(order_id in uuid(), reason in text(), requested_at in at()) -> ReleaseInventory {
        ReleaseInventory { order_id, reason, requested_at }
    }
}
prop_compose! {
    fn any_inventory_released()(order_id in uuid(), released_at in at()) -> InventoryReleased {
        InventoryReleased { order_id, released_at }
    }
}
prop_compose! {
    fn any_commit_inventory()(order_id in uuid(), requested_at in at()) -> CommitInventory {
        CommitInventory { order_id, requested_at }
    }
}
prop_compose! {
    fn any_inventory_committed()(order_id in uuid(), committed_at in at()) -> InventoryCommitted {
        InventoryCommitted { order_id, committed_at }
    }
}
prop_compose! {
    fn any_authorize_payment()(order_id in uuid(), customer_id in uuid(), amount_minor in any::<i64>(),
        currency in text(), requested_at in at()) -> AuthorizePayment {
        AuthorizePayment { order_id, customer_id, amount_minor, currency, requested_at }
    }
}
prop_compose! {
    fn any_payment_authorized()(order_id in uuid(), authorization_id in uuid(), amount_minor in any::<i64>(),
        currency in text(), authorized_at in at()) -> PaymentAuthorized {
        PaymentAuthorized { order_id, authorization_id, amount_minor, currency, authorized_at }
    }
}
prop_compose! {
    fn any_payment_declined()(order_id in uuid(), reason in text(), declined_at in at()) -> PaymentDeclined {
        PaymentDeclined { order_id, reason, declined_at }
    }
}
prop_compose! {
    fn any_void_payment()(order_id in uuid(), reason in text(), requested_at in at()) -> VoidPayment {
        VoidPayment { order_id, reason, requested_at }
    }
}
prop_compose! {
    fn any_payment_voided()(order_id in uuid(), authorization_id in prop::option::of(uuid()), voided_at in at()) -> PaymentVoided {
        PaymentVoided { order_id, authorization_id, voided_at }
    }
}

/// Property 1.
fn round_trips<M: Message + PartialEq + std::fmt::Debug>(m: &M) -> Result<(), TestCaseError> {
    let bytes = codec::encode(m).map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    let back: M = codec::decode(&bytes).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(&back, m);
    Ok(())
}

/// Properties 2 and 3 for whatever `bytes` decode to as `M` (nothing to
/// check when they do not decode: that they did not panic is the property).
fn decoded_values_are_sound<M: Message + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<bool, TestCaseError> {
    let Ok(value) = codec::decode::<M>(bytes) else { return Ok(false) };
    let again = codec::encode(&value).map_err(|e| {
        TestCaseError::fail(format!("{} decoded into a value it cannot encode: {e}", M::NAME))
    })?;
    let back: M = codec::decode(&again).map_err(|e| TestCaseError::fail(format!("re-encoded bytes: {e}")))?;
    prop_assert_eq!(&back, &value);
    prop_assert!(
        SchemaRegistry::embedded().decode_json(bytes).is_ok(),
        "{} decoded bytes the schema-level reader refuses",
        M::NAME
    );
    Ok(true)
}

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config
}

macro_rules! properties {
    ($($name:ident: $ty:ty = $strategy:expr;)*) => {
        mod round_trip {
            use super::*;
            proptest! {
                #![proptest_config(config())]
                $(#[test] fn $name(m in $strategy) { round_trips::<$ty>(&m)?; })*
            }
        }
        mod mutated {
            use super::*;
            proptest! {
                #![proptest_config(config())]
                $(#[test] fn $name(m in $strategy, mutations in prop::collection::vec(mutation(8, 6), 1..4)) {
                    let mut bytes = codec::encode(&m).expect("encode");
                    decoded_values_are_sound::<$ty>(&bytes)?;
                    for mutation in &mutations {
                        apply(&mut bytes, mutation);
                    }
                    decoded_values_are_sound::<$ty>(&bytes)?;
                })*
            }
        }
    };
}

properties! {
    order_created: OrderCreated = any_order_created();
    order_created_v1: v1::OrderCreated = any_order_created_v1();
    order_approved: OrderApproved = any_order_approved();
    order_rejected: OrderRejected = any_order_rejected();
    reserve_inventory: ReserveInventory = any_reserve_inventory();
    inventory_reserved: InventoryReserved = any_inventory_reserved();
    inventory_reservation_failed: InventoryReservationFailed = any_reservation_failed();
    release_inventory: ReleaseInventory = any_release_inventory();
    inventory_released: InventoryReleased = any_inventory_released();
    commit_inventory: CommitInventory = any_commit_inventory();
    inventory_committed: InventoryCommitted = any_inventory_committed();
    authorize_payment: AuthorizePayment = any_authorize_payment();
    payment_authorized: PaymentAuthorized = any_payment_authorized();
    payment_declined: PaymentDeclined = any_payment_declined();
    void_payment: VoidPayment = any_void_payment();
    payment_voided: PaymentVoided = any_payment_voided();
}

#[test]
fn the_soundness_check_can_fail() {
    // An unmutated payload is sound and decodes; a cut one does not decode.
    let m = CommitInventory {
        order_id: Uuid::nil(),
        requested_at: DateTime::from_timestamp_micros(5).expect("t"),
    };
    let bytes = codec::encode(&m).expect("encode");
    assert_eq!(decoded_values_are_sound::<CommitInventory>(&bytes).ok(), Some(true));
    assert_eq!(decoded_values_are_sound::<CommitInventory>(&bytes[..bytes.len() - 1]).ok(), Some(false));
    assert!(round_trips(&m).is_ok());
}
