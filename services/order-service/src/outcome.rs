//! [`OutcomeHandler`]: records the saga's verdict on an order. Consumes
//! `orders.events` through the consumers runtime (inbox dedupe, offsets after
//! the commit) and moves the order out of PENDING, the saga's semantic lock.

use consumers::{Handler, HandlerError, InboundMessage};
use events::messages::order::{OrderApproved, OrderCreated, OrderRejected};
use sqlx::{Postgres, Transaction};

/// Applies `OrderApproved` / `OrderRejected` to the `orders` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutcomeHandler;

impl Handler for OutcomeHandler {
    /// `OrderCreated` (any version) is this service's own event on the
    /// topic: finished without a transaction or an inbox row.
    fn accepts(&self, message: &InboundMessage) -> bool {
        message.envelope.message_type != <OrderCreated as events::Message>::NAME
    }

    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        if message.is::<OrderApproved>() {
            let e: OrderApproved = message.decode()?;
            settle(tx, e.order_id, "APPROVED", None).await
        } else if message.is::<OrderRejected>() {
            let e: OrderRejected = message.decode()?;
            settle(tx, e.order_id, "REJECTED", Some(&e.reason)).await
        } else if message.envelope.message_type == <OrderCreated as events::Message>::NAME {
            Ok(()) // our own event (any version): nothing to do
        } else {
            Err(HandlerError::unknown_type(message))
        }
    }
}

/// Moves a PENDING order to its final status. A verdict for an order that is
/// already final is a redelivery and changes nothing; a verdict for an order
/// this service never stored is a permanent error (dead letter, for ops).
async fn settle(
    tx: &mut Transaction<'_, Postgres>,
    order_id: uuid::Uuid,
    status: &'static str,
    reason: Option<&str>,
) -> Result<(), HandlerError> {
    let updated = sqlx::query(
        "UPDATE orders SET status = $2, reason = $3, updated_at = now()
         WHERE order_id = $1 AND status = 'PENDING'",
    )
    .bind(order_id)
    .bind(status)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 1 {
        tracing::info!(%order_id, status, "order settled");
        return Ok(());
    }
    let exists: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?;
    match exists {
        Some(current) => {
            tracing::info!(%order_id, %current, verdict = status, "order already settled; ignoring");
            Ok(())
        }
        None => Err(HandlerError::permanent(format!("no order {order_id} to mark {status}"))),
    }
}
