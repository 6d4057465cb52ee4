//! [`Command`]: what a transition asks the orchestrator to send — the
//! requests to the services, their compensations, and the saga's outcome
//! events — and how each is built from the saga's state.

use chrono::{DateTime, Utc};
use events::messages::inventory::{CommitInventory, ReleaseInventory, ReserveInventory};
use events::messages::order::{OrderApproved, OrderRejected};
use events::messages::payment::{AuthorizePayment, CapturePayment, VoidPayment};
use events::{Message, OutgoingMessage};
use uuid::Uuid;

use crate::error::Error;
use crate::state::{Authorization, OrderSnapshot};
use crate::step::Step;

/// A message the saga wants sent. The orchestrator stores the commands of a
/// transition in its outbox in the same database transaction as the new
/// state, so a state is never saved without its commands or the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Starts [`Step::ReserveInventory`].
    ReserveInventory(ReserveInventory),
    /// Starts [`Step::AuthorizePayment`], the pivot.
    AuthorizePayment(AuthorizePayment),
    /// Starts (or retries) [`Step::CommitInventory`].
    CommitInventory(CommitInventory),
    /// Starts (or retries) [`Step::CapturePayment`].
    CapturePayment(CapturePayment),
    /// Starts (or retries) [`Step::VoidPayment`], a compensation.
    VoidPayment(VoidPayment),
    /// Starts (or retries) [`Step::ReleaseInventory`], a compensation.
    ReleaseInventory(ReleaseInventory),
    /// The saga's successful outcome (a domain event, not a request).
    OrderApproved(OrderApproved),
    /// The saga's failed outcome (a domain event, not a request).
    OrderRejected(OrderRejected),
}

/// Runs `$body` with `$m` bound to the message inside any variant.
macro_rules! with_message {
    ($command:expr, $m:ident => $body:expr) => {
        match $command {
            Command::ReserveInventory($m) => $body,
            Command::AuthorizePayment($m) => $body,
            Command::CommitInventory($m) => $body,
            Command::CapturePayment($m) => $body,
            Command::VoidPayment($m) => $body,
            Command::ReleaseInventory($m) => $body,
            Command::OrderApproved($m) => $body,
            Command::OrderRejected($m) => $body,
        }
    };
}

fn name_of<M: Message>(_: &M) -> &'static str {
    M::NAME
}

fn topic_of<M: Message>(_: &M) -> &'static str {
    M::TOPIC
}

impl Command {
    /// Avro name of the message, e.g. `saga.inventory.ReserveInventory`.
    pub fn message_type(&self) -> &'static str {
        with_message!(self, m => name_of(m))
    }

    /// Topic the message goes to.
    pub fn topic(&self) -> &'static str {
        with_message!(self, m => topic_of(m))
    }

    /// The order the message is about (its Kafka key).
    pub fn order_id(&self) -> Uuid {
        with_message!(self, m => m.order_id)
    }

    /// The step the command starts or retries; `None` for the outcome events.
    pub fn step(&self) -> Option<Step> {
        match self {
            Command::ReserveInventory(_) => Some(Step::ReserveInventory),
            Command::AuthorizePayment(_) => Some(Step::AuthorizePayment),
            Command::CommitInventory(_) => Some(Step::CommitInventory),
            Command::CapturePayment(_) => Some(Step::CapturePayment),
            Command::VoidPayment(_) => Some(Step::VoidPayment),
            Command::ReleaseInventory(_) => Some(Step::ReleaseInventory),
            Command::OrderApproved(_) | Command::OrderRejected(_) => None,
        }
    }

    /// Whether the command undoes an earlier step.
    pub fn is_compensation(&self) -> bool {
        self.step().is_some_and(|step| step.undoes().is_some())
    }

    /// Encodes the command into an outbox-ready message correlated with
    /// `saga_id` and, when given, caused by the event `causation_id`. Not
    /// pure: the envelope gets a fresh UUIDv7 event id and the current time.
    pub fn to_outgoing(&self, saga_id: Uuid, causation_id: Option<Uuid>) -> Result<OutgoingMessage, Error> {
        let message = with_message!(self, m => OutgoingMessage::new(m))
            .map_err(|source| Error::EncodeCommand { message_type: self.message_type(), source })?
            .correlated_with(saga_id);
        Ok(match causation_id {
            Some(id) => message.caused_by(id),
            None => message,
        })
    }
}

// Builders used by the transition function: each command is derived from
// the saga's data alone, so a re-send is identical but for `requested_at`.

pub(crate) fn reserve(order: &OrderSnapshot, at: DateTime<Utc>) -> Command {
    Command::ReserveInventory(ReserveInventory {
        order_id: order.order_id,
        lines: order.stock_lines(),
        requested_at: at,
    })
}

pub(crate) fn authorize(order: &OrderSnapshot, at: DateTime<Utc>) -> Command {
    Command::AuthorizePayment(AuthorizePayment {
        order_id: order.order_id,
        customer_id: order.customer_id,
        amount_minor: order.total_minor,
        currency: order.currency.clone(),
        requested_at: at,
    })
}

pub(crate) fn commit(order: &OrderSnapshot, at: DateTime<Utc>) -> Command {
    Command::CommitInventory(CommitInventory { order_id: order.order_id, requested_at: at })
}

pub(crate) fn capture(order: &OrderSnapshot, authorization: &Authorization, at: DateTime<Utc>) -> Command {
    Command::CapturePayment(CapturePayment {
        order_id: order.order_id,
        authorization_id: authorization.authorization_id,
        amount_minor: authorization.amount_minor,
        currency: authorization.currency.clone(),
        requested_at: at,
    })
}

pub(crate) fn void(order: &OrderSnapshot, reason: &str, at: DateTime<Utc>) -> Command {
    Command::VoidPayment(VoidPayment {
        order_id: order.order_id,
        reason: reason.to_owned(),
        requested_at: at,
    })
}

pub(crate) fn release(order: &OrderSnapshot, reason: &str, at: DateTime<Utc>) -> Command {
    Command::ReleaseInventory(ReleaseInventory {
        order_id: order.order_id,
        reason: reason.to_owned(),
        requested_at: at,
    })
}

pub(crate) fn approved(order: &OrderSnapshot, authorization: &Authorization, at: DateTime<Utc>) -> Command {
    Command::OrderApproved(OrderApproved {
        order_id: order.order_id,
        authorization_id: authorization.authorization_id,
        approved_at: at,
    })
}

pub(crate) fn rejected(order: &OrderSnapshot, reason: &str, at: DateTime<Utc>) -> Command {
    Command::OrderRejected(OrderRejected {
        order_id: order.order_id,
        reason: reason.to_owned(),
        rejected_at: at,
    })
}

#[cfg(test)]
mod tests {
    use events::messages::order::OrderLine;

    use super::*;

    fn order() -> OrderSnapshot {
        OrderSnapshot {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            lines: vec![OrderLine { sku: "A".into(), quantity: 2, unit_price_minor: 150 }],
            total_minor: 300,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn commands_carry_the_order_and_its_amounts() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let Command::AuthorizePayment(pay) = authorize(&order(), at) else { panic!("not an authorize") };
        assert_eq!(
            (pay.customer_id, pay.amount_minor, pay.currency.as_str()),
            (Uuid::from_u128(2), 300, "EUR")
        );
        let Command::ReserveInventory(reserve) = reserve(&order(), at) else { panic!("not a reserve") };
        assert_eq!((reserve.lines[0].sku.as_str(), reserve.lines[0].quantity), ("A", 2));
        assert_eq!(release(&order(), "why", at).order_id(), Uuid::from_u128(1));
    }

    #[test]
    fn to_outgoing_encodes_correlates_and_routes() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let saga_id = Uuid::from_u128(42);
        let cause = Uuid::from_u128(43);
        let command = void(&order(), "payment timed out", at);
        assert!(command.is_compensation());
        let message = command.to_outgoing(saga_id, Some(cause)).expect("encodes");
        assert_eq!(message.topic, "payment.commands");
        assert_eq!(message.key, Uuid::from_u128(1).to_string());
        assert_eq!(message.envelope.message_type, "saga.payment.VoidPayment");
        assert_eq!(message.envelope.correlation_id, Some(saga_id));
        assert_eq!(message.envelope.causation_id, Some(cause));
        let back: VoidPayment = events::decode(&message.payload).expect("decodes");
        assert_eq!(Command::VoidPayment(back), command);
    }

    #[test]
    fn outcome_events_start_no_step() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(rejected(&order(), "no", at).step(), None);
        assert_eq!(rejected(&order(), "no", at).topic(), "orders.events");
        assert_eq!(commit(&order(), at).step(), Some(Step::CommitInventory));
    }
}
