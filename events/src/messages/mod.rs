//! The typed messages of the order saga, one module per area.
//!
//! Each type mirrors one schema file `schemas/<area>/<Name>.v<N>.avsc` and
//! implements [`Message`](crate::Message) with that name and version; the
//! test `events/tests/registry.rs` fails when a schema has no type or a type
//! has no schema. All messages are about one aggregate, the order: every
//! message carries `order_id`, which is also its Kafka key.
//!
//! Field conventions (the same in every schema):
//! * ids are `{"type": "string", "logicalType": "uuid"}`, [`uuid::Uuid`] in
//!   Rust;
//! * money is an integer amount in minor units (`*_minor`, e.g. cents) plus an
//!   ISO 4217 `currency` code, never a float;
//! * timestamps are `{"type": "long", "logicalType": "timestamp-micros"}`,
//!   [`chrono::DateTime<Utc>`](chrono::DateTime) in Rust; sub-microsecond
//!   precision is dropped on encoding.
//!
//! Flow: the order service emits [`order::OrderCreated`]; the orchestrator
//! sends [`inventory::ReserveInventory`] → [`inventory::InventoryReserved`] |
//! [`inventory::InventoryReservationFailed`], then
//! [`payment::AuthorizePayment`] → [`payment::PaymentAuthorized`] |
//! [`payment::PaymentDeclined`], then [`inventory::CommitInventory`] →
//! [`inventory::InventoryCommitted`], then [`payment::CapturePayment`] →
//! [`payment::PaymentCaptured`] and [`order::OrderApproved`].
//! Compensations: [`inventory::ReleaseInventory`] →
//! [`inventory::InventoryReleased`], [`payment::VoidPayment`] →
//! [`payment::PaymentVoided`], ending in [`order::OrderRejected`].

mod catalog;
pub mod inventory;
pub mod order;
pub mod payment;
pub(crate) mod uuid_string;

pub(crate) use catalog::EMBEDDED_SCHEMAS;
pub use catalog::{ALL, MessageType};

/// Implements [`Message`](crate::Message) for a message type whose
/// `order_id: Uuid` field is the aggregate id.
macro_rules! order_message {
    ($ty:ty, $name:literal, $version:literal, $topic:expr) => {
        impl $crate::Message for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
            const TOPIC: &'static str = $topic;
            const AGGREGATE_TYPE: &'static str = $crate::messages::ORDER_AGGREGATE;
            fn aggregate_id(&self) -> String {
                self.order_id.to_string()
            }
        }
    };
}
pub(crate) use order_message;

/// The aggregate type of every message in this module.
pub const ORDER_AGGREGATE: &str = "order";
