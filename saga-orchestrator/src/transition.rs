//! The transition function: `(state, event) → (state, commands)`, pure and
//! total over the states and events of [`OrderSaga`].
//!
//! | state | event | new state | commands |
//! |---|---|---|---|
//! | — | `OrderCreated` ([`start`]) | `RESERVING_INVENTORY` | `ReserveInventory` |
//! | — | `OrderCreated`, inconsistent | `REJECTED` | `OrderRejected` |
//! | `RESERVING_INVENTORY` | `InventoryReserved` | `AUTHORIZING_PAYMENT` | `AuthorizePayment` |
//! | `RESERVING_INVENTORY` | `InventoryReserved`, other lines | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `RESERVING_INVENTORY` | `InventoryReservationFailed` | `REJECTED` | `OrderRejected` |
//! | `RESERVING_INVENTORY` | timeout | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `AUTHORIZING_PAYMENT` | `PaymentAuthorized` | `COMMITTING_INVENTORY` | `CommitInventory` |
//! | `AUTHORIZING_PAYMENT` | `PaymentAuthorized`, other amount | `VOIDING_PAYMENT` | `VoidPayment` |
//! | `AUTHORIZING_PAYMENT` | `PaymentDeclined` | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `AUTHORIZING_PAYMENT` | timeout | `VOIDING_PAYMENT` | `VoidPayment` |
//! | `COMMITTING_INVENTORY` | `InventoryCommitted` | `APPROVED` | `OrderApproved` |
//! | `COMMITTING_INVENTORY` | timeout | `COMMITTING_INVENTORY`, attempt + 1 | `CommitInventory` |
//! | `VOIDING_PAYMENT` | `PaymentVoided` | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `VOIDING_PAYMENT` | timeout | `VOIDING_PAYMENT`, attempt + 1 | `VoidPayment` |
//! | `VOIDING_PAYMENT` | timeout of the last attempt | `COMPENSATION_FAILED` | none |
//! | `RELEASING_INVENTORY` | `InventoryReleased` | `REJECTED` | `OrderRejected` |
//! | `RELEASING_INVENTORY` | timeout | `RELEASING_INVENTORY`, attempt + 1 | `ReleaseInventory` |
//! | `RELEASING_INVENTORY` | timeout of the last attempt | `COMPENSATION_FAILED` | none |
//! | `COMPENSATION_FAILED` (void) | `PaymentVoided` | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `COMPENSATION_FAILED` (release) | `InventoryReleased` | `REJECTED` | `OrderRejected` |
//! | any | anything else | unchanged | none ([`Ignored`]) |
//!
//! Why a timeout compensates the step it interrupts: the request may have
//! landed and its reply been lost, so a timed-out reserve is released and a
//! timed-out authorization is voided (then released). The services keep a
//! tombstone for a compensation that overtakes its request, so compensating a
//! request that never arrives is harmless. After the pivot nothing is
//! compensated: the commit is re-sent until it is acknowledged. Compensations
//! cannot abort, so they too are re-sent until acknowledged; each re-send is
//! a new attempt with a longer deadline (see [`SagaConfig`]), visible in the
//! state for monitoring. A compensation still unanswered after
//! `compensation_attempts` sends stops the saga in `COMPENSATION_FAILED`
//! rather than looping silently: an operator fixes the participant and
//! re-drives its dead letter, and the late reply resumes the saga.
//!
//! The contract checks (reserved lines, authorized amount) turn a reply that
//! does not match the order into a failure of its step, compensated like any
//! other: the saga never commits stock or approves an order on a reply it
//! cannot account for.

use chrono::{DateTime, Utc};
use events::messages::order::OrderCreated;
use uuid::Uuid;

use crate::command::{self, Command};
use crate::config::SagaConfig;
use crate::error::TransitionError;
use crate::event::{Event, EventKind};
use crate::state::{Authorization, OrderSaga, OrderSnapshot};
use crate::step::{Pending, Step};

/// The outcome of feeding one event to a saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The saga's new state (equal to the old one when ignored).
    pub state: OrderSaga,
    /// What to send, in order (empty when ignored).
    pub commands: Vec<Command>,
    /// Why the event changed nothing, when it did not.
    pub ignored: Option<Ignored>,
}

/// Why an event of the saga was ignored. Each reason is a normal occurrence
/// with at-least-once delivery and timers, not an error: the orchestrator
/// logs it and moves on (it need not even write the unchanged state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The saga has finished; a late or duplicate reply changes nothing.
    Finished,
    /// A reply to a step the saga is not waiting on: a duplicate of a reply
    /// already handled, or a late reply to a step being compensated.
    NotAwaited {
        /// The step the saga waits on.
        waiting_on: Step,
    },
    /// A timer of a step the saga is no longer on (or of the compensation
    /// a stopped saga gave up: it waits for the reply only).
    StaleTimer {
        /// The step the saga waits on.
        waiting_on: Step,
    },
    /// A timer of the current step that fired before its deadline (a timer
    /// of an earlier attempt, or another instance's clock running ahead).
    BeforeDeadline {
        /// The current attempt's deadline.
        deadline: DateTime<Utc>,
    },
}

impl Transition {
    /// Whether the event was ignored.
    pub fn is_ignored(&self) -> bool {
        self.ignored.is_some()
    }

    fn to(state: OrderSaga, command: Command) -> Self {
        Transition { state, commands: vec![command], ignored: None }
    }

    fn ignore(state: &OrderSaga, why: Ignored) -> Self {
        Transition { state: state.clone(), commands: Vec::new(), ignored: Some(why) }
    }
}

/// Starts the saga of a created order at `at`: the saga waits on its
/// reservation, or, for an order whose lines, total or currency do not add up,
/// is rejected at once (nothing was requested, so nothing is compensated).
pub fn start(saga_id: Uuid, created: &OrderCreated, at: DateTime<Utc>, config: &SagaConfig) -> Transition {
    let order = OrderSnapshot::from_created(created);
    match order.invalid_reason() {
        Some(problem) => reject(saga_id, order, &format!("invalid order: {problem}"), at),
        None => {
            let command = command::reserve(&order, at);
            Transition::to(
                OrderSaga::ReservingInventory { saga_id, order, pending: Pending::first(at, config) },
                command,
            )
        }
    }
}

/// Feeds `event` to the saga in `state`.
///
/// Errors only for an event that belongs to another saga or order (a routing
/// fault; the state is untouched). Every reply or timer of this saga gives
/// `Ok`: either a step forward or back, or the unchanged state with no
/// commands and the reason in [`Transition::ignored`].
pub fn transition(
    state: &OrderSaga,
    event: &Event,
    config: &SagaConfig,
) -> Result<Transition, TransitionError> {
    if event.saga_id != state.saga_id() {
        return Err(TransitionError::MatchSaga { expected: state.saga_id(), got: event.saga_id });
    }
    let expected = state.order().order_id;
    if let Some(got) = event.kind.order_id()
        && got != expected
    {
        return Err(TransitionError::MatchOrder { message_type: event.kind.name(), expected, got });
    }
    if let OrderSaga::CompensationFailed { step, reason, .. } = state {
        return Ok(resume(state, *step, reason, &event.kind, event.at, config));
    }
    let Some((waiting_on, pending)) = state.pending() else {
        return Ok(Transition::ignore(state, Ignored::Finished));
    };
    if let EventKind::StepTimedOut { step } = event.kind
        && step == waiting_on
        && !pending.is_overdue(event.at)
    {
        return Ok(Transition::ignore(state, Ignored::BeforeDeadline { deadline: pending.deadline }));
    }
    Ok(advance(state, waiting_on, &event.kind, event.at, config))
}

/// The step forward or back for an event of this saga, which is waiting on
/// `waiting_on`; a timer of `waiting_on` reaching here is overdue. Each arm
/// names the step its event must answer, so an event for any other step
/// falls through to the ignoring arms.
fn advance(
    state: &OrderSaga,
    waiting_on: Step,
    kind: &EventKind,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    use EventKind as E;
    use OrderSaga as S;

    let saga_id = state.saga_id();
    let order = state.order().clone();
    match (state, kind) {
        (S::ReservingInventory { .. }, E::InventoryReserved(reserved)) => {
            if order.reserves_exactly(&reserved.lines) {
                let command = command::authorize(&order, at);
                Transition::to(
                    S::AuthorizingPayment { saga_id, order, pending: Pending::first(at, config) },
                    command,
                )
            } else {
                release(
                    saga_id,
                    order,
                    "inventory reserved other lines than the order's".to_owned(),
                    at,
                    config,
                )
            }
        }
        (S::ReservingInventory { .. }, E::InventoryReservationFailed(failed)) => {
            let mut reason = format!("inventory reservation failed: {}", failed.reason);
            if !failed.unavailable_skus.is_empty() {
                reason.push_str(&format!(" (unavailable: {})", failed.unavailable_skus.join(", ")));
            }
            reject(saga_id, order, &reason, at)
        }
        (S::ReservingInventory { pending, .. }, E::StepTimedOut { step: Step::ReserveInventory }) => {
            release(saga_id, order, timeout_reason(waiting_on, pending), at, config)
        }

        (S::AuthorizingPayment { .. }, E::PaymentAuthorized(authorized)) => {
            if authorized.amount_minor == order.total_minor && authorized.currency == order.currency {
                let authorization = Authorization {
                    authorization_id: authorized.authorization_id,
                    amount_minor: authorized.amount_minor,
                    currency: authorized.currency.clone(),
                    authorized_at: authorized.authorized_at,
                };
                let command = command::commit(&order, at);
                let pending = Pending::first(at, config);
                Transition::to(S::CommittingInventory { saga_id, order, authorization, pending }, command)
            } else {
                let reason = format!(
                    "payment authorized {} {} but the order total is {} {}",
                    authorized.amount_minor, authorized.currency, order.total_minor, order.currency
                );
                void(saga_id, order, reason, at, config)
            }
        }
        (S::AuthorizingPayment { .. }, E::PaymentDeclined(declined)) => {
            release(saga_id, order, format!("payment declined: {}", declined.reason), at, config)
        }
        (S::AuthorizingPayment { pending, .. }, E::StepTimedOut { step: Step::AuthorizePayment }) => {
            void(saga_id, order, timeout_reason(waiting_on, pending), at, config)
        }

        (S::CommittingInventory { authorization, .. }, E::InventoryCommitted(_)) => {
            let command = command::approved(&order, authorization, at);
            Transition::to(
                S::Approved { saga_id, order, authorization: authorization.clone(), approved_at: at },
                command,
            )
        }
        (
            S::CommittingInventory { authorization, pending, .. },
            E::StepTimedOut { step: Step::CommitInventory },
        ) => {
            let command = command::commit(&order, at);
            let (authorization, pending) = (authorization.clone(), pending.retry(at, config));
            Transition::to(S::CommittingInventory { saga_id, order, authorization, pending }, command)
        }

        (S::VoidingPayment { reason, .. }, E::PaymentVoided(_)) => {
            release(saga_id, order, reason.clone(), at, config)
        }
        (S::VoidingPayment { reason, pending, .. }, E::StepTimedOut { step: Step::VoidPayment })
            if pending.attempt >= config.compensation_attempts =>
        {
            give_up(saga_id, order, Step::VoidPayment, reason, pending, at)
        }
        (S::VoidingPayment { reason, pending, .. }, E::StepTimedOut { step: Step::VoidPayment }) => {
            let command = command::void(&order, reason, at);
            let (reason, pending) = (reason.clone(), pending.retry(at, config));
            Transition::to(S::VoidingPayment { saga_id, order, reason, pending }, command)
        }

        (S::ReleasingInventory { reason, .. }, E::InventoryReleased(_)) => reject(saga_id, order, reason, at),
        (S::ReleasingInventory { reason, pending, .. }, E::StepTimedOut { step: Step::ReleaseInventory })
            if pending.attempt >= config.compensation_attempts =>
        {
            give_up(saga_id, order, Step::ReleaseInventory, reason, pending, at)
        }
        (S::ReleasingInventory { reason, pending, .. }, E::StepTimedOut { step: Step::ReleaseInventory }) => {
            let command = command::release(&order, reason, at);
            let (reason, pending) = (reason.clone(), pending.retry(at, config));
            Transition::to(S::ReleasingInventory { saga_id, order, reason, pending }, command)
        }

        // Everything else answers, or is the timer of, another step than
        // `waiting_on`: a duplicate, a late reply, a stale timer.
        (_, E::StepTimedOut { .. }) => Transition::ignore(state, Ignored::StaleTimer { waiting_on }),
        _ => Transition::ignore(state, Ignored::NotAwaited { waiting_on }),
    }
}

/// A saga stopped in `COMPENSATION_FAILED` waits for the reply to its
/// compensation `step` and carries on from there; nothing else moves it.
fn resume(
    state: &OrderSaga,
    step: Step,
    reason: &str,
    kind: &EventKind,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    let (saga_id, order) = (state.saga_id(), state.order().clone());
    match (step, kind) {
        (Step::VoidPayment, EventKind::PaymentVoided(_)) => {
            release(saga_id, order, reason.to_owned(), at, config)
        }
        (Step::ReleaseInventory, EventKind::InventoryReleased(_)) => reject(saga_id, order, reason, at),
        (_, EventKind::StepTimedOut { .. }) => {
            Transition::ignore(state, Ignored::StaleTimer { waiting_on: step })
        }
        _ => Transition::ignore(state, Ignored::NotAwaited { waiting_on: step }),
    }
}

/// Stops the saga: compensation `step` got no reply to its last attempt.
fn give_up(
    saga_id: Uuid,
    order: OrderSnapshot,
    step: Step,
    reason: &str,
    pending: &Pending,
    at: DateTime<Utc>,
) -> Transition {
    let failure = format!(
        "no reply to {step} after {} attempts, the last due {}",
        pending.attempt,
        pending.deadline.to_rfc3339()
    );
    let state = OrderSaga::CompensationFailed {
        saga_id,
        order,
        step,
        reason: reason.to_owned(),
        failure,
        failed_at: at,
    };
    Transition { state, commands: Vec::new(), ignored: None }
}

fn timeout_reason(step: Step, pending: &Pending) -> String {
    format!("no reply to {step} by {} (attempt {})", pending.deadline.to_rfc3339(), pending.attempt)
}

/// Starts compensating the payment (the reservation is released after it).
fn void(
    saga_id: Uuid,
    order: OrderSnapshot,
    reason: String,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    let command = command::void(&order, &reason, at);
    Transition::to(
        OrderSaga::VoidingPayment { saga_id, order, reason, pending: Pending::first(at, config) },
        command,
    )
}

/// Starts compensating the reservation.
fn release(
    saga_id: Uuid,
    order: OrderSnapshot,
    reason: String,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    let command = command::release(&order, &reason, at);
    Transition::to(
        OrderSaga::ReleasingInventory { saga_id, order, reason, pending: Pending::first(at, config) },
        command,
    )
}

/// Ends the saga rejected; nothing is held any more.
fn reject(saga_id: Uuid, order: OrderSnapshot, reason: &str, at: DateTime<Utc>) -> Transition {
    let command = command::rejected(&order, reason, at);
    Transition::to(
        OrderSaga::Rejected { saga_id, order, reason: reason.to_owned(), rejected_at: at },
        command,
    )
}

impl OrderSaga {
    /// [`start`]: the saga of a created order.
    pub fn start(
        saga_id: Uuid,
        created: &OrderCreated,
        at: DateTime<Utc>,
        config: &SagaConfig,
    ) -> Transition {
        start(saga_id, created, at, config)
    }

    /// An operator's retry of a saga stopped in `COMPENSATION_FAILED`: its
    /// compensation is sent again as a first attempt, with the saga's
    /// original reason, and the saga waits for it as before. `None` for a
    /// saga in any other state.
    pub fn resume_compensation(&self, at: DateTime<Utc>, config: &SagaConfig) -> Option<Transition> {
        let OrderSaga::CompensationFailed { saga_id, order, step, reason, .. } = self else { return None };
        let (saga_id, order, reason) = (*saga_id, order.clone(), reason.clone());
        match step {
            Step::VoidPayment => Some(void(saga_id, order, reason, at, config)),
            Step::ReleaseInventory => Some(release(saga_id, order, reason, at, config)),
            _ => None,
        }
    }

    /// [`transition`]: feeds `event` to this saga.
    pub fn handle(&self, event: &Event, config: &SagaConfig) -> Result<Transition, TransitionError> {
        transition(self, event, config)
    }
}
