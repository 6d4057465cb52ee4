//! [`PaymentHandler`]: applies one payment command inside the consumer
//! runtime's transaction and enqueues the reply in the same transaction.
//!
//! Every command is idempotent per order (the payment row is the record of
//! what was decided), on top of the runtime's per-event inbox: a command
//! re-sent by the orchestrator under a new event id gets the same answer. A
//! decline is a reply, never a handler error.

use chrono::Utc;
use consumers::{Handler, HandlerError, InboundMessage};
use events::messages::payment::{
    AuthorizePayment, CapturePayment, PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentVoided,
    VoidPayment,
};
use outbox::enqueue_reply as reply;
use sqlx::{Postgres, Transaction};
use tracing::Instrument;
use uuid::Uuid;

use crate::payments::{self, Payment, Status};

/// Reason given to an authorize that arrives after its order was voided.
pub const VOIDED_BEFORE_AUTHORIZE: &str = "voided before authorize";
/// Reason given to a repeated authorize after the authorization was voided.
pub const ALREADY_VOIDED: &str = "authorization already voided";

/// The default per-payment limit, in minor units.
pub const DEFAULT_MAX_AMOUNT_MINOR: i64 = 100_000;

/// The payment service's [`Handler`] for
/// [`PAYMENT_COMMANDS`](events::topics::PAYMENT_COMMANDS).
#[derive(Debug, Clone, Copy)]
pub struct PaymentHandler {
    /// Amounts above this (in minor units, any currency) are declined; the
    /// stand-in for a real payment provider's decision, so that demos and
    /// tests can provoke a decline.
    pub max_amount_minor: i64,
}

impl Default for PaymentHandler {
    fn default() -> Self {
        PaymentHandler { max_amount_minor: DEFAULT_MAX_AMOUNT_MINOR }
    }
}

impl Handler for PaymentHandler {
    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        let span = tracing::info_span!("payment", message_type = %message.envelope.message_type,
            order_id = %message.envelope.aggregate_id);
        async {
            if message.is::<AuthorizePayment>() {
                self.authorize(message, &message.decode()?, tx).await
            } else if message.is::<VoidPayment>() {
                void(message, &message.decode()?, tx).await
            } else if message.is::<CapturePayment>() {
                capture(message, &message.decode()?, tx).await
            } else {
                Err(HandlerError::unknown_type(message))
            }
        }
        .instrument(span)
        .await
    }
}

impl PaymentHandler {
    /// Authorizes within the limit, declines above it; answers a repeat as
    /// before and refuses an authorize whose order was voided.
    async fn authorize(
        &self,
        m: &InboundMessage,
        cmd: &AuthorizePayment,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        payments::lock_order(tx, cmd.order_id).await?;
        if let Some(existing) = payments::find_payment(tx, cmd.order_id).await? {
            tracing::info!(status = existing.status.as_str(), "payment exists; answering as before");
            return match (existing.status, existing.authorization_id) {
                (Status::Authorized | Status::Captured, Some(authorization_id)) => {
                    reply(tx, m, &authorized(&existing, authorization_id, cmd)).await
                }
                (Status::Voided, None) => {
                    reply(tx, m, &declined(cmd.order_id, VOIDED_BEFORE_AUTHORIZE)).await
                }
                (Status::Voided, Some(_)) => reply(tx, m, &declined(cmd.order_id, ALREADY_VOIDED)).await,
                _ => {
                    let reason = existing.reason.clone().unwrap_or_default();
                    reply(
                        tx,
                        m,
                        &PaymentDeclined { order_id: cmd.order_id, reason, declined_at: existing.created_at },
                    )
                    .await
                }
            };
        }
        let mut record = Payment {
            order_id: cmd.order_id,
            status: Status::Authorized,
            authorization_id: Some(Uuid::now_v7()),
            amount_minor: Some(cmd.amount_minor),
            currency: Some(cmd.currency.clone()),
            reason: None,
            created_at: Utc::now(),
            captured_at: None,
        };
        if let Some(reason) = self.refusal(cmd) {
            record.status = Status::Declined;
            record.authorization_id = None;
            record.reason = Some(reason);
        }
        payments::insert_payment(tx, &record).await?;
        tracing::info!(status = record.status.as_str(), reason = record.reason, "payment decided");
        match (record.authorization_id, &record.reason) {
            (Some(authorization_id), _) => reply(tx, m, &authorized(&record, authorization_id, cmd)).await,
            (None, reason) => {
                let reason = reason.clone().unwrap_or_default();
                reply(
                    tx,
                    m,
                    &PaymentDeclined { order_id: cmd.order_id, reason, declined_at: record.created_at },
                )
                .await
            }
        }
    }

    /// Why `cmd` must be declined, if it must.
    fn refusal(&self, cmd: &AuthorizePayment) -> Option<String> {
        if cmd.amount_minor < 0 {
            Some(format!("invalid amount {}", cmd.amount_minor))
        } else if cmd.amount_minor > self.max_amount_minor {
            Some(format!(
                "amount {} {} exceeds the per-payment limit of {}",
                cmd.amount_minor, cmd.currency, self.max_amount_minor
            ))
        } else {
            None
        }
    }
}

/// Voids an authorization; leaves a tombstone when there is none yet. Always
/// answers `PaymentVoided`: a compensation cannot fail.
async fn void(
    m: &InboundMessage,
    cmd: &VoidPayment,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    payments::lock_order(tx, cmd.order_id).await?;
    let authorization_id = match payments::find_payment(tx, cmd.order_id).await? {
        None => {
            let tombstone = Payment {
                order_id: cmd.order_id,
                status: Status::Voided,
                authorization_id: None,
                amount_minor: None,
                currency: None,
                reason: Some(cmd.reason.clone()),
                created_at: Utc::now(),
                captured_at: None,
            };
            payments::insert_payment(tx, &tombstone).await?;
            tracing::info!("void before authorize: tombstone written");
            None
        }
        Some(p) if p.status == Status::Authorized => {
            payments::void(tx, cmd.order_id, &cmd.reason).await?;
            tracing::info!("authorization voided");
            p.authorization_id
        }
        Some(p) => {
            tracing::info!(status = p.status.as_str(), "nothing authorized; void is a no-op");
            p.authorization_id
        }
    };
    reply(tx, m, &PaymentVoided { order_id: cmd.order_id, authorization_id, voided_at: Utc::now() }).await
}

/// A payment refused for capture: the command does not match what this
/// service holds. Not a business decline (capture has none): a fault the
/// saga cannot have caused, so it goes to the dead-letter topic and the
/// saga, unanswered, stops in COMPLETION_FAILED for an operator.
#[derive(Debug, thiserror::Error)]
#[error("cannot capture order {order_id}: {problem}")]
pub struct CaptureRefused {
    /// The order.
    pub order_id: Uuid,
    /// What does not match.
    pub problem: String,
}

/// Captures the order's authorization (once): answers `PaymentCaptured`,
/// with the first capture's time when repeated.
async fn capture(
    m: &InboundMessage,
    cmd: &CapturePayment,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), HandlerError> {
    payments::lock_order(tx, cmd.order_id).await?;
    let refused =
        |problem: String| HandlerError::permanent(CaptureRefused { order_id: cmd.order_id, problem });
    let Some(p) = payments::find_payment(tx, cmd.order_id).await? else {
        return Err(refused("no payment is authorized for it".to_owned()));
    };
    if p.authorization_id != Some(cmd.authorization_id)
        || p.amount_minor != Some(cmd.amount_minor)
        || p.currency.as_deref() != Some(cmd.currency.as_str())
    {
        return Err(refused(format!(
            "the command names authorization {} of {} {}, the payment is {:?} of {:?} {:?}",
            cmd.authorization_id,
            cmd.amount_minor,
            cmd.currency,
            p.authorization_id,
            p.amount_minor,
            p.currency
        )));
    }
    let captured_at = match (p.status, p.captured_at) {
        (Status::Captured, Some(at)) => {
            tracing::info!("already captured; answering as before");
            at
        }
        (Status::Authorized, _) => {
            let at = Utc::now();
            if !payments::capture(tx, cmd.order_id, at).await? {
                return Err(refused("the authorization changed while capturing".to_owned()));
            }
            tracing::info!(amount_minor = cmd.amount_minor, "payment captured");
            at
        }
        (status, _) => return Err(refused(format!("the payment is {}", status.as_str()))),
    };
    let captured = PaymentCaptured {
        order_id: cmd.order_id,
        authorization_id: cmd.authorization_id,
        amount_minor: cmd.amount_minor,
        currency: cmd.currency.clone(),
        captured_at,
    };
    reply(tx, m, &captured).await
}

fn authorized(p: &Payment, authorization_id: Uuid, cmd: &AuthorizePayment) -> PaymentAuthorized {
    PaymentAuthorized {
        order_id: p.order_id,
        authorization_id,
        amount_minor: p.amount_minor.unwrap_or(cmd.amount_minor),
        currency: p.currency.clone().unwrap_or_else(|| cmd.currency.clone()),
        authorized_at: p.created_at,
    }
}

fn declined(order_id: Uuid, reason: &str) -> PaymentDeclined {
    PaymentDeclined { order_id, reason: reason.to_owned(), declined_at: Utc::now() }
}
