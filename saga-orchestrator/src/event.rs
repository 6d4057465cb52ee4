//! [`Event`]: what the saga reacts to — a service's reply, or a step's
//! timeout — with the saga it is correlated with and when it is handled.

use chrono::{DateTime, Utc};
use events::Message;
use events::messages::inventory::{
    InventoryCommitted, InventoryReleased, InventoryReservationFailed, InventoryReserved,
};
use events::messages::payment::{PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentVoided};
use uuid::Uuid;

use crate::error::Error;
use crate::step::Step;

/// One input of [`transition`](crate::transition()).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The saga the event is for: a reply's envelope correlation id, or the
    /// id of the saga whose timer fired.
    pub saga_id: Uuid,
    /// When the orchestrator handles the event. New deadlines count from it,
    /// and a timeout is honoured only at or after the pending deadline.
    /// Commands the transition emits carry it as `requested_at`.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event for saga `saga_id` handled at `at`.
    pub fn new(saga_id: Uuid, at: DateTime<Utc>, kind: impl Into<EventKind>) -> Self {
        Event { saga_id, at, kind: kind.into() }
    }

    /// The timer of `step` of saga `saga_id` fired at `at`.
    pub fn timed_out(saga_id: Uuid, at: DateTime<Utc>, step: Step) -> Self {
        Event { saga_id, at, kind: EventKind::StepTimedOut { step } }
    }
}

/// The replies the saga consumes, and its own timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Reply to [`Step::ReserveInventory`]: stock held.
    InventoryReserved(InventoryReserved),
    /// Reply to [`Step::ReserveInventory`]: nothing held.
    InventoryReservationFailed(InventoryReservationFailed),
    /// Reply to [`Step::AuthorizePayment`]: the pivot succeeded.
    PaymentAuthorized(PaymentAuthorized),
    /// Reply to [`Step::AuthorizePayment`]: refused.
    PaymentDeclined(PaymentDeclined),
    /// Reply to [`Step::CommitInventory`].
    InventoryCommitted(InventoryCommitted),
    /// Reply to [`Step::CapturePayment`].
    PaymentCaptured(PaymentCaptured),
    /// Reply to [`Step::VoidPayment`].
    PaymentVoided(PaymentVoided),
    /// Reply to [`Step::ReleaseInventory`].
    InventoryReleased(InventoryReleased),
    /// No reply to `step` arrived by the pending deadline.
    StepTimedOut {
        /// The step the timer was set for.
        step: Step,
    },
}

/// Implements `From<Message>` and the name for each reply variant.
macro_rules! replies {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for EventKind {
            fn from(reply: $variant) -> Self {
                EventKind::$variant(reply)
            }
        })*

        impl EventKind {
            /// Avro name of the reply, or `StepTimedOut` for the timer.
            pub fn name(&self) -> &'static str {
                match self {
                    $(EventKind::$variant(_) => <$variant as Message>::NAME,)*
                    EventKind::StepTimedOut { .. } => "StepTimedOut",
                }
            }

            /// The order a reply is about; `None` for the timer.
            pub fn order_id(&self) -> Option<Uuid> {
                match self {
                    $(EventKind::$variant(reply) => Some(reply.order_id),)*
                    EventKind::StepTimedOut { .. } => None,
                }
            }

            /// Decodes a reply the saga consumes from its Avro name and
            /// payload (as found in the envelope and record value);
            /// `Ok(None)` for a message type the saga does not consume.
            pub fn decode(message_type: &str, payload: &[u8]) -> Result<Option<EventKind>, Error> {
                $(if message_type == <$variant as Message>::NAME {
                    return events::decode::<$variant>(payload)
                        .map(|reply| Some(EventKind::$variant(reply)))
                        .map_err(|source| Error::DecodeReply {
                            message_type: message_type.to_owned(),
                            source,
                        });
                })*
                Ok(None)
            }
        }
    };
}

replies!(
    InventoryReserved,
    InventoryReservationFailed,
    PaymentAuthorized,
    PaymentDeclined,
    InventoryCommitted,
    PaymentCaptured,
    PaymentVoided,
    InventoryReleased,
);

impl EventKind {
    /// The step a reply answers, or the step a timeout is for.
    pub fn step(&self) -> Step {
        match self {
            EventKind::InventoryReserved(_) | EventKind::InventoryReservationFailed(_) => {
                Step::ReserveInventory
            }
            EventKind::PaymentAuthorized(_) | EventKind::PaymentDeclined(_) => Step::AuthorizePayment,
            EventKind::InventoryCommitted(_) => Step::CommitInventory,
            EventKind::PaymentCaptured(_) => Step::CapturePayment,
            EventKind::PaymentVoided(_) => Step::VoidPayment,
            EventKind::InventoryReleased(_) => Step::ReleaseInventory,
            EventKind::StepTimedOut { step } => *step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_back_an_encoded_reply_and_skips_other_types() {
        let reply = PaymentDeclined {
            order_id: Uuid::from_u128(7),
            reason: "insufficient funds".into(),
            declined_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let payload = events::encode(&reply).expect("encodes");
        let decoded = EventKind::decode(PaymentDeclined::NAME, &payload).expect("decodes");
        assert_eq!(decoded, Some(EventKind::PaymentDeclined(reply)));
        assert_eq!(EventKind::decode("saga.order.OrderCreated", &payload), Ok(None));
    }

    #[test]
    fn decode_reports_a_payload_of_the_wrong_type() {
        let reply =
            InventoryReleased { order_id: Uuid::from_u128(7), released_at: DateTime::<Utc>::UNIX_EPOCH };
        let payload = events::encode(&reply).expect("encodes");
        let err = EventKind::decode(PaymentVoided::NAME, &payload);
        assert!(matches!(err, Err(Error::DecodeReply { .. })), "{err:?}");
    }

    #[test]
    fn replies_name_their_step_and_order() {
        let kind = EventKind::from(InventoryCommitted {
            order_id: Uuid::from_u128(9),
            committed_at: DateTime::<Utc>::UNIX_EPOCH,
        });
        assert_eq!(kind.step(), Step::CommitInventory);
        assert_eq!(kind.order_id(), Some(Uuid::from_u128(9)));
        assert_eq!(kind.name(), "saga.inventory.InventoryCommitted");
        let timer = EventKind::StepTimedOut { step: Step::VoidPayment };
        assert_eq!((timer.step(), timer.order_id()), (Step::VoidPayment, None));
    }
}
