//! SQL of the payment service: the `payments` table. Every write takes the
//! caller's transaction; the handler decides, this module stores.
//!
//! The commands of one order are serialised by [`lock_order`], a
//! transaction-scoped advisory lock, so a void racing its authorize (or a
//! duplicate authorize) is applied strictly before or after it.

use chrono::{DateTime, Utc};
use consumers::{ErrorClass, HandlerError};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A failed payment-table operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// Taking the order's advisory lock failed.
    #[error("could not lock order {order_id}: {source}")]
    LockOrder {
        /// The order.
        order_id: Uuid,
        /// Database error.
        source: sqlx::Error,
    },
    /// Reading the order's payment failed.
    #[error("could not read the payment of order {order_id}: {source}")]
    ReadPayment {
        /// The order.
        order_id: Uuid,
        /// Database error.
        source: sqlx::Error,
    },
    /// Writing the order's payment failed.
    #[error("could not write the payment of order {order_id}: {source}")]
    WritePayment {
        /// The order.
        order_id: Uuid,
        /// Database error.
        source: sqlx::Error,
    },
}

/// Database errors keep their class: connection loss is retried, a
/// constraint violation is dead-lettered.
impl From<PaymentError> for HandlerError {
    fn from(e: PaymentError) -> Self {
        let (PaymentError::LockOrder { source, .. }
        | PaymentError::ReadPayment { source, .. }
        | PaymentError::WritePayment { source, .. }) = &e;
        match consumers::classify::sqlx_error(source) {
            ErrorClass::Transient => HandlerError::transient(e),
            ErrorClass::Permanent => HandlerError::permanent(e),
        }
    }
}

/// State of a payment (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The amount is held under an authorization id.
    Authorized,
    /// Charged (after the stock commit); `captured_at` says when.
    Captured,
    /// Refused.
    Declined,
    /// Cancelled, or a tombstone left by a void that came first.
    Voided,
}

impl Status {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Authorized => "AUTHORIZED",
            Status::Captured => "CAPTURED",
            Status::Declined => "DECLINED",
            Status::Voided => "VOIDED",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [Status::Authorized, Status::Captured, Status::Declined, Status::Voided]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One row of `payments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The order (primary key).
    pub order_id: Uuid,
    /// Its state.
    pub status: Status,
    /// Set once authorized; kept when voided.
    pub authorization_id: Option<Uuid>,
    /// Amount asked for (absent on a tombstone).
    pub amount_minor: Option<i64>,
    /// Currency of the amount.
    pub currency: Option<String>,
    /// Why it was declined or voided.
    pub reason: Option<String>,
    /// When the decision was made.
    pub created_at: DateTime<Utc>,
    /// When the amount was captured, once it was.
    pub captured_at: Option<DateTime<Utc>>,
}

/// Serialises every command of `order_id` until the transaction ends.
pub async fn lock_order(conn: &mut PgConnection, order_id: Uuid) -> Result<(), PaymentError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('payment-service/order/' || $1::text, 0))")
        .bind(order_id)
        .execute(conn)
        .await
        .map_err(|source| PaymentError::LockOrder { order_id, source })?;
    Ok(())
}

/// The payment of `order_id`, if any.
pub async fn find_payment(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Payment>, PaymentError> {
    let err = |source| PaymentError::ReadPayment { order_id, source };
    let row = sqlx::query(
        "SELECT status, authorization_id, amount_minor, currency, reason, created_at, captured_at
         FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
    .map_err(err)?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("status").map_err(err)?;
    let status = Status::parse(&status)
        .ok_or_else(|| err(sqlx::Error::Decode(format!("unknown payment status `{status}`").into())))?;
    Ok(Some(Payment {
        order_id,
        status,
        authorization_id: row.try_get("authorization_id").map_err(err)?,
        amount_minor: row.try_get("amount_minor").map_err(err)?,
        currency: row.try_get("currency").map_err(err)?,
        reason: row.try_get("reason").map_err(err)?,
        created_at: row.try_get("created_at").map_err(err)?,
        captured_at: row.try_get("captured_at").map_err(err)?,
    }))
}

/// Inserts a new payment row. The caller holds [`lock_order`] and has
/// checked that none exists.
pub async fn insert_payment(conn: &mut PgConnection, p: &Payment) -> Result<(), PaymentError> {
    sqlx::query(
        "INSERT INTO payments (order_id, status, authorization_id, amount_minor, currency, reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(p.order_id)
    .bind(p.status.as_str())
    .bind(p.authorization_id)
    .bind(p.amount_minor)
    .bind(&p.currency)
    .bind(&p.reason)
    .bind(p.created_at)
    .execute(conn)
    .await
    .map_err(|source| PaymentError::WritePayment { order_id: p.order_id, source })?;
    Ok(())
}

/// Marks an authorized payment CAPTURED at `at`; returns whether a row was
/// authorized (and is now captured).
pub async fn capture(
    conn: &mut PgConnection,
    order_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, PaymentError> {
    let done = sqlx::query(
        "UPDATE payments SET status = 'CAPTURED', captured_at = $2, updated_at = now()
         WHERE order_id = $1 AND status = 'AUTHORIZED'",
    )
    .bind(order_id)
    .bind(at)
    .execute(conn)
    .await
    .map_err(|source| PaymentError::WritePayment { order_id, source })?;
    Ok(done.rows_affected() == 1)
}

/// Marks an authorized payment VOIDED with `reason`; the authorization id stays.
pub async fn void(conn: &mut PgConnection, order_id: Uuid, reason: &str) -> Result<(), PaymentError> {
    sqlx::query("UPDATE payments SET status = 'VOIDED', reason = $2, updated_at = now() WHERE order_id = $1")
        .bind(order_id)
        .bind(reason)
        .execute(conn)
        .await
        .map_err(|source| PaymentError::WritePayment { order_id, source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for s in [Status::Authorized, Status::Captured, Status::Declined, Status::Voided] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("PENDING"), None);
    }
}
