//! The catalog: every schema file embedded in the binary, and every Rust
//! message type. `events/tests/registry.rs` checks that the two agree with
//! each other and with the `schemas/` folder.

use super::{inventory, order, payment};
use crate::Message;

/// Identity of one Rust message type (its [`Message`] constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Avro full name.
    pub name: &'static str,
    /// Schema version the type reads and writes.
    pub version: u32,
    /// Topic it is published to.
    pub topic: &'static str,
}

impl MessageType {
    /// The identity of `M`.
    pub const fn of<M: Message>() -> Self {
        MessageType { name: M::NAME, version: M::VERSION, topic: M::TOPIC }
    }
}

/// Every message type defined in [`crate::messages`], old versions included.
pub const ALL: &[MessageType] = &[
    MessageType::of::<order::v1::OrderCreated>(),
    MessageType::of::<order::OrderCreated>(),
    MessageType::of::<order::OrderApproved>(),
    MessageType::of::<order::OrderRejected>(),
    MessageType::of::<inventory::ReserveInventory>(),
    MessageType::of::<inventory::InventoryReserved>(),
    MessageType::of::<inventory::InventoryReservationFailed>(),
    MessageType::of::<inventory::ReleaseInventory>(),
    MessageType::of::<inventory::InventoryReleased>(),
    MessageType::of::<inventory::CommitInventory>(),
    MessageType::of::<inventory::InventoryCommitted>(),
    MessageType::of::<payment::AuthorizePayment>(),
    MessageType::of::<payment::PaymentAuthorized>(),
    MessageType::of::<payment::PaymentDeclined>(),
    MessageType::of::<payment::VoidPayment>(),
    MessageType::of::<payment::PaymentVoided>(),
    MessageType::of::<payment::CapturePayment>(),
    MessageType::of::<payment::PaymentCaptured>(),
];

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../schemas/", $path)))),*]
    };
}

/// Every `.avsc` file, as (path relative to `schemas/`, JSON text).
pub(crate) const EMBEDDED_SCHEMAS: &[(&str, &str)] = embed![
    "order/OrderCreated.v1.avsc",
    "order/OrderCreated.v2.avsc",
    "order/OrderApproved.v1.avsc",
    "order/OrderRejected.v1.avsc",
    "inventory/ReserveInventory.v1.avsc",
    "inventory/InventoryReserved.v1.avsc",
    "inventory/InventoryReservationFailed.v1.avsc",
    "inventory/ReleaseInventory.v1.avsc",
    "inventory/InventoryReleased.v1.avsc",
    "inventory/CommitInventory.v1.avsc",
    "inventory/InventoryCommitted.v1.avsc",
    "payment/AuthorizePayment.v1.avsc",
    "payment/PaymentAuthorized.v1.avsc",
    "payment/PaymentDeclined.v1.avsc",
    "payment/VoidPayment.v1.avsc",
    "payment/PaymentVoided.v1.avsc",
    "payment/CapturePayment.v1.avsc",
    "payment/PaymentCaptured.v1.avsc",
];
