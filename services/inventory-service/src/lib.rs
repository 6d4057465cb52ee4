//! # inventory-service
//!
//! Holds stock for the order saga. It consumes
//! [`INVENTORY_COMMANDS`](events::topics::INVENTORY_COMMANDS) and answers on
//! [`INVENTORY_REPLIES`](events::topics::INVENTORY_REPLIES):
//!
//! | command | state of the order's reservation | effect | reply |
//! |---|---|---|---|
//! | `ReserveInventory` | none, stock suffices | `reserved += qty` for every line, row RESERVED | `InventoryReserved` |
//! | `ReserveInventory` | none, a SKU short or unknown | nothing held, row FAILED | `InventoryReservationFailed` (with the SKUs) |
//! | `ReserveInventory` | RESERVED / COMMITTED / FAILED | none | the same reply as the first time |
//! | `ReserveInventory` | RELEASED (release came first) | none | `InventoryReservationFailed` "released before reserve" |
//! | `ReleaseInventory` | RESERVED | `reserved -= qty`, RELEASED | `InventoryReleased` |
//! | `ReleaseInventory` | none | RELEASED tombstone | `InventoryReleased` |
//! | `ReleaseInventory` | RELEASED / FAILED / COMMITTED | none (COMMITTED logs a warning) | `InventoryReleased` |
//! | `CommitInventory` | RESERVED | `on_hand -= qty`, `reserved -= qty`, COMMITTED | `InventoryCommitted` |
//! | `CommitInventory` | COMMITTED | none | `InventoryCommitted` |
//! | `CommitInventory` | none / FAILED / RELEASED | none | permanent error → dead letter |
//!
//! ## Delivery semantics
//! The [`consumers`] runtime delivers each command at least once and records
//! its event id in the inbox in the same transaction as the handler's effect,
//! so one delivery's effect is applied once. On top of that, every command is
//! idempotent per *order*: a command re-sent under a new event id finds the
//! reservation row and gets the same answer. The reply is written to the
//! outbox in that same transaction: an effect is never applied without its
//! reply, nor a reply sent for an effect that rolled back. The relay (`saga
//! relay`, a separate process) publishes the replies at least once.
//!
//! Concurrency: the commands of one order are serialised by an advisory lock
//! on the order id; stock rows are locked `FOR UPDATE` in SKU order, so two
//! orders racing for the last unit serialise and exactly one wins. When the
//! consumer runtime applies several commands in one transaction, every
//! stock row the batch may touch is locked first, in one statement in SKU
//! order, so two batches sharing SKUs wait for each other instead of
//! deadlocking. Stock changes are deltas, so compensations commute with
//! other orders' changes.
//!
//! ## Layout
//! * [`handler`] — [`InventoryHandler`]: the decisions and the replies.
//! * [`stock`] — SQL: stock levels, reservations, locks, deltas.
//! * [`seed`] — `SKU=QTY,...` seed lists and [`seed::seed_stock`].
//! * [`migrate`] — the outbox's, the inbox's and this service's migrations.

pub mod handler;
pub mod seed;
pub mod stock;

pub use handler::InventoryHandler;

/// Runs the outbox and inbox migrations and this service's own
/// (`migrations/`), each with its own bookkeeping table.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), outbox::ServiceMigrateError> {
    outbox::migrate_service(pool, sqlx::migrate!("./migrations"), "_inventory_service_migrations").await
}
