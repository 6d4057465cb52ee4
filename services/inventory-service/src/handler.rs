//! [`InventoryHandler`]: applies one inventory command inside the consumer
//! runtime's transaction and enqueues the reply in the same transaction.
//!
//! Every command is idempotent per order (the reservation row is the record
//! of what was decided), on top of the runtime's per-event inbox: a command
//! re-sent by the orchestrator under a new event id gets the same answer.
//! Business refusals (not enough stock) are replies, never handler errors.

use std::collections::BTreeSet;

use chrono::Utc;
use consumers::{Handler, HandlerError, InboundMessage};
use events::messages::inventory::{
    CommitInventory, InventoryCommitted, InventoryReleased, InventoryReservationFailed, InventoryReserved,
    ReleaseInventory, ReserveInventory,
};
use outbox::enqueue_reply as reply;
use sqlx::{Postgres, Transaction};
use tracing::Instrument;

use crate::stock::{self, Reservation, Status};

/// Reason given to a reserve that arrives after its order was released.
pub const RELEASED_BEFORE_RESERVE: &str = "released before reserve";

/// The inventory service's [`Handler`] for
/// [`INVENTORY_COMMANDS`](events::topics::INVENTORY_COMMANDS).
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryHandler;

impl Handler for InventoryHandler {
    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        let span = tracing::info_span!("inventory", message_type = %message.envelope.message_type,
            order_id = %message.envelope.aggregate_id);
        async { apply(message, &Command::decode(message)?, Locks::Take, tx).await }.instrument(span).await
    }

    /// A batch of commands in one transaction: first the orders' advisory
    /// locks (one statement), then the stock rows that any of them may
    /// touch (one statement, in SKU order), then each command as
    /// [`handle`](Self::handle) applies it, without taking its locks again.
    /// Without the stock lock up front, two batches of different partitions
    /// lock shared SKUs in message order and deadlock.
    async fn handle_batch(
        &self,
        messages: &[&InboundMessage],
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        let commands = messages.iter().map(|m| Command::decode(m)).collect::<Result<Vec<_>, _>>()?;
        let mut skus = BTreeSet::new();
        let mut held = Vec::new();
        for command in &commands {
            match command {
                Command::Reserve(cmd) => skus.extend(cmd.lines.iter().map(|l| l.sku.clone())),
                Command::Release(_) | Command::Commit(_) => held.push(command.order_id()),
            }
        }
        // The orders first (what they hold cannot change under us then),
        // then every stock row: one statement each, in a fixed order.
        let orders: Vec<_> = commands.iter().map(Command::order_id).collect();
        stock::lock_orders(tx, &orders).await?;
        if !held.is_empty() {
            skus.extend(stock::held_skus(tx, &held).await?);
        }
        if !skus.is_empty() {
            stock::lock_stock(tx, &skus).await?;
        }
        for (m, command) in messages.iter().zip(&commands) {
            apply(m, command, Locks::Held, tx).instrument(m.span()).await?;
        }
        Ok(())
    }
}

/// An inventory command, decoded.
enum Command {
    Reserve(ReserveInventory),
    Release(ReleaseInventory),
    Commit(CommitInventory),
}

impl Command {
    fn decode(m: &InboundMessage) -> Result<Self, HandlerError> {
        if m.is::<ReserveInventory>() {
            Ok(Command::Reserve(m.decode()?))
        } else if m.is::<ReleaseInventory>() {
            Ok(Command::Release(m.decode()?))
        } else if m.is::<CommitInventory>() {
            Ok(Command::Commit(m.decode()?))
        } else {
            Err(HandlerError::unknown_type(m))
        }
    }

    fn order_id(&self) -> uuid::Uuid {
        match self {
            Command::Reserve(c) => c.order_id,
            Command::Release(c) => c.order_id,
            Command::Commit(c) => c.order_id,
        }
    }
}

/// Whether a command takes its locks itself, or runs in a batch that took
/// them all up front (the orders' advisory locks, the stock rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Locks {
    Take,
    Held,
}

async fn apply(
    m: &InboundMessage,
    command: &Command,
    locks: Locks,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    match command {
        Command::Reserve(cmd) => reserve(m, cmd, locks, tx).await,
        Command::Release(cmd) => release(m, cmd, locks, tx).await,
        Command::Commit(cmd) => commit(m, cmd, locks, tx).await,
    }
}

/// The order's advisory lock, unless the batch holds it already.
async fn lock_order(
    order_id: uuid::Uuid,
    locks: Locks,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    if locks == Locks::Take {
        stock::lock_order(tx, order_id).await?;
    }
    Ok(())
}

/// All lines or none. See the crate docs for the cases.
async fn reserve(
    m: &InboundMessage,
    cmd: &ReserveInventory,
    locks: Locks,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    lock_order(cmd.order_id, locks, tx).await?;
    if let Some(existing) = stock::find_reservation(tx, cmd.order_id).await? {
        tracing::info!(status = existing.status.as_str(), "reservation exists; answering as before");
        return match existing.status {
            Status::Reserved | Status::Committed => reply(tx, m, &reserved(&existing)).await,
            Status::Failed => reply(tx, m, &failed(&existing)).await,
            Status::Released => {
                let refusal = InventoryReservationFailed {
                    order_id: cmd.order_id,
                    reason: RELEASED_BEFORE_RESERVE.into(),
                    unavailable_skus: Vec::new(),
                    failed_at: Utc::now(),
                };
                reply(tx, m, &refusal).await
            }
        };
    }
    let wanted = stock::totals(&cmd.lines);
    let mut record = Reservation {
        order_id: cmd.order_id,
        status: Status::Reserved,
        lines: cmd.lines.clone(),
        reason: None,
        unavailable_skus: Vec::new(),
        created_at: Utc::now(),
    };
    if let Some(invalid) = invalid_lines(cmd) {
        record.status = Status::Failed;
        record.reason = Some(invalid);
    } else {
        let levels = stock::lock_stock(tx, wanted.keys()).await?;
        let short = stock::unavailable(&wanted, &levels);
        if short.is_empty() {
            stock::apply_deltas(tx, &wanted, 0, 1).await?;
        } else {
            record.status = Status::Failed;
            record.reason = Some(format!("insufficient stock for {}", short.join(", ")));
            record.unavailable_skus = short;
        }
    }
    stock::insert_reservation(tx, &record).await?;
    tracing::info!(status = record.status.as_str(), reason = record.reason, "reservation decided");
    match record.status {
        Status::Reserved => reply(tx, m, &reserved(&record)).await,
        _ => reply(tx, m, &failed(&record)).await,
    }
}

/// A command the business rules cannot accept (no lines, a quantity below 1):
/// refused like a shortage, so that the saga compensates instead of waiting.
fn invalid_lines(cmd: &ReserveInventory) -> Option<String> {
    if cmd.lines.is_empty() {
        return Some("invalid order: no lines".into());
    }
    cmd.lines
        .iter()
        .find(|l| l.quantity < 1)
        .map(|l| format!("invalid order: quantity {} for SKU {}", l.quantity, l.sku))
}

/// Gives back what a RESERVED reservation holds; leaves a tombstone when there
/// is none yet. Always answers `InventoryReleased`: a compensation cannot fail.
async fn release(
    m: &InboundMessage,
    cmd: &ReleaseInventory,
    locks: Locks,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    lock_order(cmd.order_id, locks, tx).await?;
    match stock::find_reservation(tx, cmd.order_id).await? {
        None => {
            let tombstone = Reservation {
                order_id: cmd.order_id,
                status: Status::Released,
                lines: Vec::new(),
                reason: Some(cmd.reason.clone()),
                unavailable_skus: Vec::new(),
                created_at: Utc::now(),
            };
            stock::insert_reservation(tx, &tombstone).await?;
            tracing::info!("release before reserve: tombstone written");
        }
        Some(r) if r.status == Status::Reserved => {
            let held = stock::totals(&r.lines);
            if locks == Locks::Take {
                stock::lock_stock(tx, held.keys()).await?;
            }
            stock::apply_deltas(tx, &held, 0, -1).await?;
            stock::set_status(tx, cmd.order_id, Status::Released, Some(&cmd.reason)).await?;
            tracing::info!("reservation released");
        }
        Some(r) if r.status == Status::Committed => {
            tracing::warn!("release of a committed reservation ignored: the stock has left the warehouse");
        }
        Some(r) => tracing::info!(status = r.status.as_str(), "nothing held; release is a no-op"),
    }
    reply(tx, m, &InventoryReleased { order_id: cmd.order_id, released_at: Utc::now() }).await
}

/// Turns a RESERVED reservation into a stock decrement. Committing anything
/// else is a saga bug: a permanent error, dead-lettered with the reason.
async fn commit(
    m: &InboundMessage,
    cmd: &CommitInventory,
    locks: Locks,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    lock_order(cmd.order_id, locks, tx).await?;
    match stock::find_reservation(tx, cmd.order_id).await? {
        Some(r) if r.status == Status::Reserved => {
            let held = stock::totals(&r.lines);
            if locks == Locks::Take {
                stock::lock_stock(tx, held.keys()).await?;
            }
            stock::apply_deltas(tx, &held, -1, -1).await?;
            stock::set_status(tx, cmd.order_id, Status::Committed, None).await?;
            tracing::info!("reservation committed");
        }
        Some(r) if r.status == Status::Committed => tracing::info!("already committed"),
        Some(r) => {
            return Err(HandlerError::permanent(format!(
                "cannot commit the reservation of order {}: it is {}",
                cmd.order_id,
                r.status.as_str()
            )));
        }
        None => {
            return Err(HandlerError::permanent(format!(
                "cannot commit order {}: no reservation",
                cmd.order_id
            )));
        }
    }
    reply(tx, m, &InventoryCommitted { order_id: cmd.order_id, committed_at: Utc::now() }).await
}

fn reserved(r: &Reservation) -> InventoryReserved {
    InventoryReserved { order_id: r.order_id, lines: r.lines.clone(), reserved_at: r.created_at }
}

fn failed(r: &Reservation) -> InventoryReservationFailed {
    InventoryReservationFailed {
        order_id: r.order_id,
        reason: r.reason.clone().unwrap_or_default(),
        unavailable_skus: r.unavailable_skus.clone(),
        failed_at: r.created_at,
    }
}
