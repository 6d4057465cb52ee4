//! Commands to and replies of the inventory service (namespace
//! `saga.inventory`; commands on
//! [`topics::INVENTORY_COMMANDS`](crate::topics::INVENTORY_COMMANDS), replies on
//! [`topics::INVENTORY_REPLIES`](crate::topics::INVENTORY_REPLIES)).
//!
//! A reservation is identified by its order: reserving, releasing and
//! committing the same order twice must be harmless (the service dedupes on
//! `order_id`), and a release that arrives before its reserve leaves a
//! tombstone so the late reserve is refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{order_message, uuid_string};
use crate::topics::{INVENTORY_COMMANDS, INVENTORY_REPLIES};

/// A quantity of one SKU to reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// Stock-keeping unit.
    pub sku: String,
    /// Number of units, at least 1.
    pub quantity: i32,
}

/// Command: hold stock for every line of an order, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveInventory {
    /// The order the stock is held for (the reservation's id).
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// What to reserve.
    pub lines: Vec<StockLine>,
    /// When the orchestrator issued the command.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub requested_at: DateTime<Utc>,
}
order_message!(ReserveInventory, "saga.inventory.ReserveInventory", 1, INVENTORY_COMMANDS);

/// Reply: all lines of the order are reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReserved {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// What was reserved (equal to the command's lines).
    pub lines: Vec<StockLine>,
    /// When the reservation was made.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub reserved_at: DateTime<Utc>,
}
order_message!(InventoryReserved, "saga.inventory.InventoryReserved", 1, INVENTORY_REPLIES);

/// Reply: nothing was reserved (a business outcome, not an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReservationFailed {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Human-readable reason.
    pub reason: String,
    /// SKUs that did not have enough available stock.
    pub unavailable_skus: Vec<String>,
    /// When the reservation was refused.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub failed_at: DateTime<Utc>,
}
order_message!(InventoryReservationFailed, "saga.inventory.InventoryReservationFailed", 1, INVENTORY_REPLIES);

/// Command (compensation): give back the stock held for an order. Idempotent;
/// releasing an order with no reservation succeeds and leaves a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInventory {
    /// The order whose reservation is released.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Why the saga compensates.
    pub reason: String,
    /// When the orchestrator issued the command.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub requested_at: DateTime<Utc>,
}
order_message!(ReleaseInventory, "saga.inventory.ReleaseInventory", 1, INVENTORY_COMMANDS);

/// Reply: the reservation (if any) is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReleased {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// When the stock was given back.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub released_at: DateTime<Utc>,
}
order_message!(InventoryReleased, "saga.inventory.InventoryReleased", 1, INVENTORY_REPLIES);

/// Command (after the pivot): turn the reservation into a permanent stock
/// decrement. Retriable: it must always succeed on retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInventory {
    /// The order whose reservation is committed.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// When the orchestrator issued the command.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub requested_at: DateTime<Utc>,
}
order_message!(CommitInventory, "saga.inventory.CommitInventory", 1, INVENTORY_COMMANDS);

/// Reply: the reservation is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryCommitted {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// When the stock was committed.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub committed_at: DateTime<Utc>,
}
order_message!(InventoryCommitted, "saga.inventory.InventoryCommitted", 1, INVENTORY_REPLIES);
