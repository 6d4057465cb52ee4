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
//! | `COMMITTING_INVENTORY` | `InventoryCommitted` | `CAPTURING_PAYMENT` | `CapturePayment` |
//! | `COMMITTING_INVENTORY` | timeout | `COMMITTING_INVENTORY`, attempt + 1 | `CommitInventory` |
//! | `COMMITTING_INVENTORY` | timeout of the last attempt | `COMPLETION_FAILED` | none |
//! | `CAPTURING_PAYMENT` | `PaymentCaptured` | `APPROVED` | `OrderApproved` |
//! | `CAPTURING_PAYMENT` | `PaymentCaptured`, other amount | `COMPLETION_FAILED` | none |
//! | `CAPTURING_PAYMENT` | timeout | `CAPTURING_PAYMENT`, attempt + 1 | `CapturePayment` |
//! | `CAPTURING_PAYMENT` | timeout of the last attempt | `COMPLETION_FAILED` | none |
//! | `VOIDING_PAYMENT` | `PaymentVoided` | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `VOIDING_PAYMENT` | timeout | `VOIDING_PAYMENT`, attempt + 1 | `VoidPayment` |
//! | `VOIDING_PAYMENT` | timeout of the last attempt | `COMPENSATION_FAILED` | none |
//! | `RELEASING_INVENTORY` | `InventoryReleased` | `REJECTED` | `OrderRejected` |
//! | `RELEASING_INVENTORY` | timeout | `RELEASING_INVENTORY`, attempt + 1 | `ReleaseInventory` |
//! | `RELEASING_INVENTORY` | timeout of the last attempt | `COMPENSATION_FAILED` | none |
//! | `COMPENSATION_FAILED` (void) | `PaymentVoided` | `RELEASING_INVENTORY` | `ReleaseInventory` |
//! | `COMPENSATION_FAILED` (release) | `InventoryReleased` | `REJECTED` | `OrderRejected` |
//! | `COMPLETION_FAILED` (commit) | `InventoryCommitted` | `CAPTURING_PAYMENT` | `CapturePayment` |
//! | `COMPLETION_FAILED` (capture) | `PaymentCaptured` | `APPROVED` | `OrderApproved` |
//! | any | anything else | unchanged | none ([`Ignored`]) |
//!
//! The rows are not written out one by one in the code: the function
//! consults each step's [`StepKind`] and [`Step::FORWARD`]. A reply that
//! succeeds moves to the next forward step (or approves after the last); a
//! refusal undoes the steps before the refused one; a reply that does not
//! match the order, or a timeout, undoes the step itself too when its kind
//! is compensated (compensatable, pivot), and re-sends it when its kind is
//! retried (retriable, compensation) until [`SagaConfig::attempts_of`] runs
//! out, when the saga stops (`COMPLETION_FAILED`, `COMPENSATION_FAILED`). A
//! retriable step is therefore never compensated and a compensated one
//! always is.
//!
//! Why a timeout compensates the step it interrupts: the request may have
//! landed and its reply been lost, so a timed-out reserve is released and a
//! timed-out authorization is voided (then released). The services keep a
//! tombstone for a compensation that overtakes its request, so compensating a
//! request that never arrives is harmless. After the pivot nothing is
//! compensated: the commit and the capture are re-sent until they are
//! acknowledged, up to `retry_attempts` sends, then the saga stops in
//! `COMPLETION_FAILED` for an operator (`saga resume` sends the step again). Compensations
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
use crate::step::{Pending, Step, StepKind};

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
    /// A timer of a step the saga is no longer on (or of the step a stopped
    /// saga gave up: it waits for the reply only).
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

    fn stop(state: OrderSaga) -> Self {
        Transition { state, commands: Vec::new(), ignored: None }
    }

    fn ignore(state: &OrderSaga, why: Ignored) -> Self {
        Transition { state: state.clone(), commands: Vec::new(), ignored: Some(why) }
    }
}

/// What a reply says about the step it answers.
enum Verdict {
    /// The step was done (with the authorization, for the pivot).
    Done(Option<Authorization>),
    /// The participant refused on a business rule: the step did nothing.
    Refused(String),
    /// The reply does not match the order: the step did something else.
    Mismatch(String),
}

/// Starts the saga of a created order at `at`: the saga waits on its
/// reservation, or, for an order whose lines, total or currency do not add up,
/// is rejected at once (nothing was requested, so nothing is compensated).
pub fn start(saga_id: Uuid, created: &OrderCreated, at: DateTime<Utc>, config: &SagaConfig) -> Transition {
    let order = OrderSnapshot::from_created(created);
    match order.invalid_reason() {
        Some(problem) => reject(saga_id, order, &format!("invalid order: {problem}"), at),
        None => forward(saga_id, order, None, Some(Step::FORWARD[0]), at, config),
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
    if let Some((step, _)) = state.stuck() {
        return Ok(resume_on_reply(state, step, &event.kind, event.at, config));
    }
    let Some((waiting_on, pending)) = state.pending() else {
        return Ok(Transition::ignore(state, Ignored::Finished));
    };
    if event.kind.step() != waiting_on {
        // A duplicate, a late reply, a stale timer.
        return Ok(match event.kind {
            EventKind::StepTimedOut { .. } => Transition::ignore(state, Ignored::StaleTimer { waiting_on }),
            _ => Transition::ignore(state, Ignored::NotAwaited { waiting_on }),
        });
    }
    if let EventKind::StepTimedOut { .. } = event.kind {
        if !pending.is_overdue(event.at) {
            return Ok(Transition::ignore(state, Ignored::BeforeDeadline { deadline: pending.deadline }));
        }
        return Ok(timed_out(state, waiting_on, pending, event.at, config));
    }
    Ok(answered(state, waiting_on, &event.kind, event.at, config))
}

/// The reply `kind` to `step`, the step the saga waits on.
fn answered(
    state: &OrderSaga,
    step: Step,
    kind: &EventKind,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    let (saga_id, order) = (state.saga_id(), state.order().clone());
    match judge(&order, state.authorization(), kind) {
        Verdict::Done(authorization) => {
            let authorization = authorization.or_else(|| state.authorization().cloned());
            match step.undoes() {
                // A compensation done: the next one back, or the end.
                Some(_) => {
                    let reason = reason_of(state).to_owned();
                    compensate(saga_id, order, step.compensate_back(false), reason, at, config)
                }
                None => forward(saga_id, order, authorization, step.next(), at, config),
            }
        }
        // Past the pivot nothing is undone: the saga stops for an operator.
        Verdict::Refused(problem) | Verdict::Mismatch(problem) if !step.kind().is_compensated() => {
            stop(state, step, problem, at)
        }
        // A refusal holds nothing: undo the steps before this one.
        Verdict::Refused(reason) => {
            compensate(saga_id, order, step.compensate_back(false), reason, at, config)
        }
        // A reply that does not match may hold something: undo this step too.
        Verdict::Mismatch(problem) => {
            compensate(saga_id, order, step.compensate_back(true), problem, at, config)
        }
    }
}

/// The timer of `step`, which the saga waits on, fired after its deadline:
/// what happens is the step kind's rule.
fn timed_out(
    state: &OrderSaga,
    step: Step,
    pending: &Pending,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    match (step.kind(), config.attempts_of(step)) {
        (StepKind::Compensatable | StepKind::Pivot, _) | (_, None) => {
            let (saga_id, order) = (state.saga_id(), state.order().clone());
            compensate(saga_id, order, step.compensate_back(true), timeout_reason(step, pending), at, config)
        }
        (StepKind::Retriable | StepKind::Compensation, Some(attempts)) if pending.attempt >= attempts => {
            let failure = format!(
                "no reply to {step} after {} attempts, the last due {}",
                pending.attempt,
                pending.deadline.to_rfc3339()
            );
            stop(state, step, failure, at)
        }
        (StepKind::Retriable | StepKind::Compensation, Some(_)) => {
            resend(state, step, pending.retry(step, at, config), at)
        }
    }
}

/// A stopped saga waits for the reply to its `step` and carries on from
/// there; nothing else moves it.
fn resume_on_reply(
    state: &OrderSaga,
    step: Step,
    kind: &EventKind,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    match kind {
        EventKind::StepTimedOut { .. } => Transition::ignore(state, Ignored::StaleTimer { waiting_on: step }),
        reply if reply.step() != step => Transition::ignore(state, Ignored::NotAwaited { waiting_on: step }),
        reply => match judge(state.order(), state.authorization(), reply) {
            Verdict::Done(_) => answered(state, step, reply, at, config),
            Verdict::Refused(_) | Verdict::Mismatch(_) => {
                Transition::ignore(state, Ignored::NotAwaited { waiting_on: step })
            }
        },
    }
}

/// What `reply` says about its step for this order.
fn judge(order: &OrderSnapshot, authorization: Option<&Authorization>, reply: &EventKind) -> Verdict {
    use EventKind as E;
    match reply {
        E::InventoryReserved(reserved) if order.reserves_exactly(&reserved.lines) => Verdict::Done(None),
        E::InventoryReserved(_) => {
            Verdict::Mismatch("inventory reserved other lines than the order's".to_owned())
        }
        E::InventoryReservationFailed(failed) => {
            let mut reason = format!("inventory reservation failed: {}", failed.reason);
            if !failed.unavailable_skus.is_empty() {
                reason.push_str(&format!(" (unavailable: {})", failed.unavailable_skus.join(", ")));
            }
            Verdict::Refused(reason)
        }
        E::PaymentAuthorized(authorized)
            if authorized.amount_minor == order.total_minor && authorized.currency == order.currency =>
        {
            Verdict::Done(Some(Authorization {
                authorization_id: authorized.authorization_id,
                amount_minor: authorized.amount_minor,
                currency: authorized.currency.clone(),
                authorized_at: authorized.authorized_at,
            }))
        }
        E::PaymentAuthorized(authorized) => Verdict::Mismatch(format!(
            "payment authorized {} {} but the order total is {} {}",
            authorized.amount_minor, authorized.currency, order.total_minor, order.currency
        )),
        E::PaymentDeclined(declined) => Verdict::Refused(format!("payment declined: {}", declined.reason)),
        E::PaymentCaptured(captured) => match authorization {
            Some(a)
                if a.authorization_id == captured.authorization_id
                    && a.amount_minor == captured.amount_minor
                    && a.currency == captured.currency =>
            {
                Verdict::Done(None)
            }
            _ => Verdict::Mismatch(format!(
                "payment captured {} {} under authorization {}, which is not the saga's authorization{}",
                captured.amount_minor,
                captured.currency,
                captured.authorization_id,
                authorization
                    .map(|a| format!(" {} of {} {}", a.authorization_id, a.amount_minor, a.currency))
                    .unwrap_or_default()
            )),
        },
        E::InventoryCommitted(_) | E::PaymentVoided(_) | E::InventoryReleased(_) => Verdict::Done(None),
        E::StepTimedOut { step } => Verdict::Mismatch(format!("the timer of {step} is not a reply")),
    }
}

/// The saga waiting on forward step `next` (its command sent as a first
/// attempt), or approved when there is none left.
fn forward(
    saga_id: Uuid,
    order: OrderSnapshot,
    authorization: Option<Authorization>,
    next: Option<Step>,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    use OrderSaga as S;
    let step = match next {
        Some(step) => step,
        None => {
            let Some(authorization) = authorization else {
                return reject(saga_id, order, "approved without a payment authorization", at);
            };
            let command = command::approved(&order, &authorization, at);
            return Transition::to(S::Approved { saga_id, order, authorization, approved_at: at }, command);
        }
    };
    let pending = Pending::first(step, at, config);
    let state = match (step, authorization) {
        (Step::ReserveInventory, _) => S::ReservingInventory { saga_id, order, pending },
        (Step::AuthorizePayment, _) => S::AuthorizingPayment { saga_id, order, pending },
        (Step::CommitInventory, Some(authorization)) => {
            S::CommittingInventory { saga_id, order, authorization, pending }
        }
        (Step::CapturePayment, Some(authorization)) => {
            S::CapturingPayment { saga_id, order, authorization, pending }
        }
        // A step after the pivot without its authorization, or a
        // compensation named as a forward step: not reachable from
        // `Step::FORWARD`; undo what the saga may hold.
        _ => {
            return compensate(
                saga_id,
                order,
                Step::AuthorizePayment.compensate_back(true),
                format!("{step} has no authorization"),
                at,
                config,
            );
        }
    };
    resend(&state, step, pending, at)
}

/// The saga compensating with `compensation` (its first attempt), or
/// rejected when nothing is left to undo.
fn compensate(
    saga_id: Uuid,
    order: OrderSnapshot,
    compensation: Option<Step>,
    reason: String,
    at: DateTime<Utc>,
    config: &SagaConfig,
) -> Transition {
    let Some(step) = compensation else { return reject(saga_id, order, &reason, at) };
    let pending = Pending::first(step, at, config);
    let state = match step {
        Step::VoidPayment => OrderSaga::VoidingPayment { saga_id, order, reason, pending },
        _ => OrderSaga::ReleasingInventory { saga_id, order, reason, pending },
    };
    resend(&state, step, pending, at)
}

/// `state` waiting on `step` at attempt `pending`, its command (re-)sent.
fn resend(state: &OrderSaga, step: Step, pending: Pending, at: DateTime<Utc>) -> Transition {
    let order = state.order();
    let command = match (step, state.authorization()) {
        (Step::ReserveInventory, _) => command::reserve(order, at),
        (Step::AuthorizePayment, _) => command::authorize(order, at),
        (Step::CommitInventory, _) => command::commit(order, at),
        (Step::CapturePayment, Some(authorization)) => command::capture(order, authorization, at),
        (Step::VoidPayment, _) => command::void(order, reason_of(state), at),
        (Step::ReleaseInventory, _) => command::release(order, reason_of(state), at),
        // Every state waiting on the capture holds its authorization
        // (`forward` builds no other); were one without, nothing can be
        // captured, and releasing the stock is what is left to undo.
        (Step::CapturePayment, None) => command::release(order, reason_of(state), at),
    };
    Transition::to(state.clone().with_pending(pending), command)
}

/// Stops the saga at `step`: a retried step out of attempts, or a step
/// after the pivot whose reply does not match.
fn stop(state: &OrderSaga, step: Step, failure: String, at: DateTime<Utc>) -> Transition {
    let (saga_id, order) = (state.saga_id(), state.order().clone());
    match (step.kind(), state.authorization()) {
        (StepKind::Retriable, Some(authorization)) => Transition::stop(OrderSaga::CompletionFailed {
            saga_id,
            order,
            authorization: authorization.clone(),
            step,
            failure,
            failed_at: at,
        }),
        _ => Transition::stop(OrderSaga::CompensationFailed {
            saga_id,
            order,
            step,
            reason: reason_of(state).to_owned(),
            failure,
            failed_at: at,
        }),
    }
}

/// Why the saga compensates; empty outside compensation.
fn reason_of(state: &OrderSaga) -> &str {
    match state {
        OrderSaga::VoidingPayment { reason, .. }
        | OrderSaga::ReleasingInventory { reason, .. }
        | OrderSaga::CompensationFailed { reason, .. } => reason,
        _ => "",
    }
}

fn timeout_reason(step: Step, pending: &Pending) -> String {
    format!("no reply to {step} by {} (attempt {})", pending.deadline.to_rfc3339(), pending.attempt)
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

    /// An operator's retry of a stopped saga (`COMPENSATION_FAILED`,
    /// `COMPLETION_FAILED`): the step it stopped on is sent again as a
    /// first attempt (a compensation with the saga's original reason), and
    /// the saga waits for it as before. `None` for a saga in any other state.
    pub fn resume(&self, at: DateTime<Utc>, config: &SagaConfig) -> Option<Transition> {
        let (saga_id, order) = (self.saga_id(), self.order().clone());
        match self {
            OrderSaga::CompensationFailed { step, reason, .. } => {
                Some(compensate(saga_id, order, Some(*step), reason.clone(), at, config))
            }
            OrderSaga::CompletionFailed { step, authorization, .. } => {
                Some(forward(saga_id, order, Some(authorization.clone()), Some(*step), at, config))
            }
            _ => None,
        }
    }

    /// [`transition`]: feeds `event` to this saga.
    pub fn handle(&self, event: &Event, config: &SagaConfig) -> Result<Transition, TransitionError> {
        transition(self, event, config)
    }

    /// The same state waiting on attempt `pending` (unchanged for states
    /// that wait on nothing).
    fn with_pending(mut self, next: Pending) -> Self {
        match &mut self {
            OrderSaga::ReservingInventory { pending, .. }
            | OrderSaga::AuthorizingPayment { pending, .. }
            | OrderSaga::CommittingInventory { pending, .. }
            | OrderSaga::CapturingPayment { pending, .. }
            | OrderSaga::VoidingPayment { pending, .. }
            | OrderSaga::ReleasingInventory { pending, .. } => *pending = next,
            OrderSaga::Approved { .. }
            | OrderSaga::Rejected { .. }
            | OrderSaga::CompensationFailed { .. }
            | OrderSaga::CompletionFailed { .. } => {}
        }
        self
    }
}
