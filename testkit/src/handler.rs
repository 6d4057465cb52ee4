//! Driving one consumer [`Handler`] without a broker, as the runtime would:
//! a message with a fresh envelope, handled in its own transaction that
//! commits only when the handler succeeds. For tests of a service's
//! decisions against a real database (see the inventory and payment
//! services' `tests/commands.rs`).

use consumers::{Handler, HandlerError, InboundMessage};
use events::{Message, OutgoingMessage};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::HarnessError;

/// A W3C trace context every [`inbound`] message carries, so tests can check
/// that replies continue it.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `message` as the runtime hands it to a handler: a fresh envelope, in saga
/// `saga`, carrying [`TRACEPARENT`].
pub fn inbound<M: Message>(message: &M, saga: Uuid) -> Result<InboundMessage, HarnessError> {
    let out = OutgoingMessage::new(message)
        .map_err(|e| HarnessError::Message(e.to_string()))?
        .correlated_with(saga)
        .with_trace_context(Some(TRACEPARENT.into()), None);
    Ok(InboundMessage::from_outgoing(out, 0, 0))
}

/// Runs `handler` on `message` in its own transaction: commits when it
/// succeeds, rolls back when it fails, and returns its verdict.
pub async fn handle_once<H: Handler>(
    pool: &PgPool,
    handler: &H,
    message: &InboundMessage,
) -> Result<Result<(), HandlerError>, HarnessError> {
    let mut tx = pool.begin().await?;
    let verdict = handler.handle(message, &mut tx).await;
    if verdict.is_ok() {
        tx.commit().await?;
    }
    Ok(verdict)
}
