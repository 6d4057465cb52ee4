//! [`enqueue_reply`]: a consumer handler's answer to the message it handles,
//! enqueued in the handler's own transaction — so the effect, the inbox row
//! and the reply commit together or not at all.

use consumers::{ErrorClass, HandlerError, InboundMessage};
use events::{Message, OutgoingMessage};
use sqlx::{Postgres, Transaction};

use crate::enqueue::enqueue;
use crate::error::OutboxError;
use crate::trace;

/// Enqueues `reply` to `cause`: caused by its event id, correlated with its
/// saga (when it has one), and in its trace — a child of the current span
/// when an OpenTelemetry subscriber runs, else carrying the cause's own trace
/// context so the trace still links up.
///
/// Errors come back classified for the consumer runtime: a database error
/// that is worth retrying is transient; an encoding error (the type and its
/// schema disagree) or any other failure is permanent.
pub async fn enqueue_reply<M: Message>(
    tx: &mut Transaction<'_, Postgres>,
    cause: &InboundMessage,
    reply: &M,
) -> Result<(), HandlerError> {
    let env = &cause.envelope;
    let mut message = OutgoingMessage::new(reply)
        .map_err(|e| HandlerError::permanent(format!("encoding {}: {e}", M::NAME)))?
        .caused_by(env.event_id);
    if let Some(saga) = env.correlation_id {
        message = message.correlated_with(saga);
    }
    if trace::current_span_context().is_none() {
        message = message.with_trace_context(env.traceparent.clone(), env.tracestate.clone());
    }
    enqueue(tx, &message).await.map(|_| ()).map_err(|e| match &e {
        OutboxError::Enqueue(source) if consumers::classify::sqlx_error(source) == ErrorClass::Transient => {
            HandlerError::transient(e)
        }
        _ => HandlerError::permanent(e),
    })
}
