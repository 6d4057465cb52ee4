//! SQL of the inventory service: stock levels and reservations. Every write
//! takes the caller's transaction; the handler decides, this module stores.
//!
//! Locking, in the order the handler takes the locks (so two transactions
//! never wait on each other in a cycle):
//! 1. [`lock_order`] — a transaction-scoped advisory lock on the order id, so
//!    the commands of one order (a duplicate reserve, a release racing its
//!    reserve) are applied one after the other;
//! 2. [`lock_stock`] — the SKUs' stock rows, `FOR UPDATE` in SKU order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use consumers::{ErrorClass, HandlerError};
use events::messages::inventory::StockLine;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A failed stock or reservation operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StockError {
    /// Taking the order's advisory lock failed.
    #[error("could not lock order {order_id}: {source}")]
    LockOrder {
        /// The order.
        order_id: Uuid,
        /// Database error.
        source: sqlx::Error,
    },
    /// Reading the order's reservation failed.
    #[error("could not read the reservation of order {order_id}: {source}")]
    ReadReservation {
        /// The order.
        order_id: Uuid,
        /// Database error.
        source: sqlx::Error,
    },
    /// Writing the order's reservation failed.
    #[error("could not write the reservation of order {order_id}: {source}")]
    WriteReservation {
        /// The order.
        order_id: Uuid,
        /// Database error.
        source: sqlx::Error,
    },
    /// Locking or reading stock rows failed.
    #[error("could not lock stock rows: {0}")]
    LockStock(#[source] sqlx::Error),
    /// Changing stock levels failed (e.g. the CHECK on `reserved` refused).
    #[error("could not apply stock deltas: {0}")]
    ApplyDeltas(#[source] sqlx::Error),
    /// A SKU held by a reservation has no stock row: the data is inconsistent.
    #[error("SKU `{0}` has no stock row")]
    MissingStock(String),
}

/// Database errors keep their class (connection loss is retried, a
/// constraint violation is not); an inconsistency is permanent.
impl From<StockError> for HandlerError {
    fn from(e: StockError) -> Self {
        let class = match &e {
            StockError::LockOrder { source, .. }
            | StockError::ReadReservation { source, .. }
            | StockError::WriteReservation { source, .. }
            | StockError::LockStock(source)
            | StockError::ApplyDeltas(source) => consumers::classify::sqlx_error(source),
            StockError::MissingStock(_) => ErrorClass::Permanent,
        };
        match class {
            ErrorClass::Transient => HandlerError::transient(e),
            ErrorClass::Permanent => HandlerError::permanent(e),
        }
    }
}

/// State of a reservation (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The lines are held in `stock.reserved`.
    Reserved,
    /// Nothing was held.
    Failed,
    /// Given back, or a tombstone left by a release that came first.
    Released,
    /// The lines left `stock.on_hand`.
    Committed,
}

impl Status {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reserved => "RESERVED",
            Status::Failed => "FAILED",
            Status::Released => "RELEASED",
            Status::Committed => "COMMITTED",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [Status::Reserved, Status::Failed, Status::Released, Status::Committed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One row of `reservations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The order (primary key).
    pub order_id: Uuid,
    /// Its state.
    pub status: Status,
    /// The command's lines as received (empty for a tombstone).
    pub lines: Vec<StockLine>,
    /// Why it failed or was released.
    pub reason: Option<String>,
    /// For a failed reservation: the SKUs that were short.
    pub unavailable_skus: Vec<String>,
    /// When the reservation (or tombstone) was decided.
    pub created_at: DateTime<Utc>,
}

/// Stock of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The SKU.
    pub sku: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held by open reservations.
    pub reserved: i64,
}

impl StockLevel {
    /// Units that can still be reserved.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Quantities per SKU, summed over lines that repeat a SKU, in SKU order.
pub fn totals(lines: &[StockLine]) -> BTreeMap<String, i64> {
    let mut t = BTreeMap::new();
    for l in lines {
        *t.entry(l.sku.clone()).or_insert(0) += i64::from(l.quantity);
    }
    t
}

/// The SKUs of `wanted` that `levels` cannot cover (an unknown SKU counts as
/// unavailable), in SKU order. Empty means everything can be reserved.
pub fn unavailable(wanted: &BTreeMap<String, i64>, levels: &[StockLevel]) -> Vec<String> {
    wanted
        .iter()
        .filter(|(sku, qty)| !levels.iter().any(|l| &l.sku == *sku && l.available() >= **qty))
        .map(|(sku, _)| sku.clone())
        .collect()
}

/// Serialises every command of `order_id` until the transaction ends.
pub async fn lock_order(conn: &mut PgConnection, order_id: Uuid) -> Result<(), StockError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('inventory-service/order/' || $1::text, 0))")
        .bind(order_id)
        .execute(conn)
        .await
        .map_err(|source| StockError::LockOrder { order_id, source })?;
    Ok(())
}

/// The reservation of `order_id`, if any.
pub async fn find_reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, StockError> {
    let err = |source| StockError::ReadReservation { order_id, source };
    let row = sqlx::query(
        "SELECT status, lines, reason, unavailable_skus, created_at FROM reservations WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
    .map_err(err)?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("status").map_err(err)?;
    let status = Status::parse(&status)
        .ok_or_else(|| err(sqlx::Error::Decode(format!("unknown reservation status `{status}`").into())))?;
    let Json(lines): Json<Vec<StockLine>> = row.try_get("lines").map_err(err)?;
    Ok(Some(Reservation {
        order_id,
        status,
        lines,
        reason: row.try_get("reason").map_err(err)?,
        unavailable_skus: row.try_get("unavailable_skus").map_err(err)?,
        created_at: row.try_get("created_at").map_err(err)?,
    }))
}

/// Inserts a new reservation row. The caller holds [`lock_order`] and has
/// checked that none exists.
pub async fn insert_reservation(conn: &mut PgConnection, r: &Reservation) -> Result<(), StockError> {
    sqlx::query(
        "INSERT INTO reservations (order_id, status, lines, reason, unavailable_skus, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(r.order_id)
    .bind(r.status.as_str())
    .bind(Json(&r.lines))
    .bind(&r.reason)
    .bind(&r.unavailable_skus)
    .bind(r.created_at)
    .execute(conn)
    .await
    .map_err(|source| StockError::WriteReservation { order_id: r.order_id, source })?;
    Ok(())
}

/// Moves a reservation to `status`, recording `reason` when given.
pub async fn set_status(
    conn: &mut PgConnection,
    order_id: Uuid,
    status: Status,
    reason: Option<&str>,
) -> Result<(), StockError> {
    sqlx::query(
        "UPDATE reservations SET status = $2, reason = COALESCE($3, reason), updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(status.as_str())
    .bind(reason)
    .execute(conn)
    .await
    .map_err(|source| StockError::WriteReservation { order_id, source })?;
    Ok(())
}

/// [`lock_order`] for every order of `order_ids` in ONE statement, in order
/// id order (a batch's commands).
pub async fn lock_orders(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<(), StockError> {
    let mut sorted = order_ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('inventory-service/order/' || id::text, 0)) \
         FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) ORDER BY n",
    )
    .bind(&sorted)
    .execute(conn)
    .await
    .map_err(|source| StockError::LockOrder {
        order_id: sorted.first().copied().unwrap_or_default(),
        source,
    })?;
    Ok(())
}

/// The SKUs that the RESERVED reservations of `order_ids` hold: what a
/// release or commit of those orders will lock.
pub async fn held_skus(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<Vec<String>, StockError> {
    sqlx::query_scalar(
        "SELECT DISTINCT l->>'sku' FROM reservations r, jsonb_array_elements(r.lines) l \
         WHERE r.order_id = ANY($1) AND r.status = 'RESERVED'",
    )
    .bind(order_ids)
    .fetch_all(conn)
    .await
    .map_err(StockError::LockStock)
}

/// Locks the stock rows of `skus` (`FOR UPDATE`, in SKU order) and returns
/// them; SKUs without a row are simply absent from the result.
pub async fn lock_stock<'a>(
    conn: &mut PgConnection,
    skus: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<StockLevel>, StockError> {
    let skus: Vec<&str> = skus.into_iter().map(String::as_str).collect();
    let rows =
        sqlx::query("SELECT sku, on_hand, reserved FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE")
            .bind(&skus)
            .fetch_all(conn)
            .await
            .map_err(StockError::LockStock)?;
    rows.iter()
        .map(|r| {
            Ok(StockLevel {
                sku: r.try_get("sku")?,
                on_hand: r.try_get("on_hand")?,
                reserved: r.try_get("reserved")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StockError::LockStock)
}

/// Adds `on_hand_sign * qty` to `on_hand` and `reserved_sign * qty` to
/// `reserved` of each SKU in `quantities` — deltas, so that other orders'
/// concurrent changes to the same SKU are kept. The caller holds the rows'
/// locks ([`lock_stock`]); a SKU without a row is [`StockError::MissingStock`].
pub async fn apply_deltas(
    conn: &mut PgConnection,
    quantities: &BTreeMap<String, i64>,
    on_hand_sign: i64,
    reserved_sign: i64,
) -> Result<(), StockError> {
    let skus: Vec<&str> = quantities.keys().map(String::as_str).collect();
    let qty: Vec<i64> = quantities.values().copied().collect();
    let updated: Vec<String> = sqlx::query_scalar(
        "UPDATE stock s SET on_hand = s.on_hand + $2 * d.qty, reserved = s.reserved + $3 * d.qty, updated_at = now()
         FROM unnest($1::text[], $4::bigint[]) AS d(sku, qty)
         WHERE s.sku = d.sku
         RETURNING s.sku",
    )
    .bind(&skus)
    .bind(on_hand_sign)
    .bind(reserved_sign)
    .bind(&qty)
    .fetch_all(conn)
    .await
    .map_err(StockError::ApplyDeltas)?;
    match quantities.keys().find(|sku| !updated.contains(sku)) {
        Some(missing) => Err(StockError::MissingStock(missing.clone())),
        None => Ok(()),
    }
}

/// The stock of `sku`, unlocked (for inspection and tests).
pub async fn stock_level(conn: &mut PgConnection, sku: &str) -> Result<Option<StockLevel>, StockError> {
    let row = sqlx::query("SELECT sku, on_hand, reserved FROM stock WHERE sku = $1")
        .bind(sku)
        .fetch_optional(conn)
        .await
        .map_err(StockError::LockStock)?;
    row.map(|r| {
        Ok(StockLevel {
            sku: r.try_get("sku")?,
            on_hand: r.try_get("on_hand")?,
            reserved: r.try_get("reserved")?,
        })
    })
    .transpose()
    .map_err(StockError::LockStock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i32) -> StockLine {
        StockLine { sku: sku.into(), quantity }
    }

    fn level(sku: &str, on_hand: i64, reserved: i64) -> StockLevel {
        StockLevel { sku: sku.into(), on_hand, reserved }
    }

    #[test]
    fn totals_sum_repeated_skus_in_sku_order() {
        let t = totals(&[line("B", 1), line("A", 2), line("B", 3)]);
        assert_eq!(t.into_iter().collect::<Vec<_>>(), vec![("A".to_owned(), 2), ("B".to_owned(), 4)]);
    }

    #[test]
    fn unknown_and_short_skus_are_unavailable() {
        let wanted = totals(&[line("A", 2), line("B", 2), line("C", 1)]);
        let levels = [level("A", 5, 3), level("B", 5, 4)];
        assert_eq!(unavailable(&wanted, &levels), vec!["B".to_owned(), "C".to_owned()]);
        assert!(unavailable(&totals(&[line("A", 2)]), &levels).is_empty());
    }

    #[test]
    fn status_round_trips() {
        for s in [Status::Reserved, Status::Failed, Status::Released, Status::Committed] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("PENDING"), None);
    }
}
