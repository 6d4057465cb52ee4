//! The steps of the order saga, what kind each one is, and [`Pending`]: the
//! attempt a waiting state is on and when it is overdue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SagaConfig;

/// One request the saga sends and then waits on for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Step {
    /// `ReserveInventory` → `InventoryReserved` | `InventoryReservationFailed`.
    ReserveInventory,
    /// `AuthorizePayment` → `PaymentAuthorized` | `PaymentDeclined`: the pivot.
    AuthorizePayment,
    /// `CommitInventory` → `InventoryCommitted`, after the pivot.
    CommitInventory,
    /// `CapturePayment` → `PaymentCaptured`, after the pivot: the charge.
    CapturePayment,
    /// `VoidPayment` → `PaymentVoided`: undoes [`Step::AuthorizePayment`].
    VoidPayment,
    /// `ReleaseInventory` → `InventoryReleased`: undoes [`Step::ReserveInventory`].
    ReleaseInventory,
}

/// What a step is in the saga's structure (Richardson, *Microservices
/// Patterns*, ch. 4). The transition function consults it, not the step:
/// what a timeout does, whether a step is ever compensated, and how often
/// it is re-sent all follow from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// May be undone by a compensation; a timeout compensates it (and every
    /// earlier step) because the request may have landed.
    Compensatable,
    /// The last step that can fail on a business rule; it is compensatable
    /// too, and once it succeeds the saga never compensates.
    Pivot,
    /// After the pivot: must succeed on retry, so a timeout re-sends it, up
    /// to [`SagaConfig::retry_attempts`] sends; then the saga stops in
    /// `COMPLETION_FAILED`. Never compensated.
    Retriable,
    /// Undoes an earlier step; it cannot abort, so a timeout re-sends it, up
    /// to [`SagaConfig::compensation_attempts`] sends; then the saga stops
    /// in `COMPENSATION_FAILED`.
    Compensation,
}

impl StepKind {
    /// Whether a step of this kind is undone when the saga compensates.
    pub fn is_compensated(self) -> bool {
        matches!(self, StepKind::Compensatable | StepKind::Pivot)
    }

    /// Whether a timeout re-sends the step (true) or starts compensating.
    pub fn is_retried(self) -> bool {
        matches!(self, StepKind::Retriable | StepKind::Compensation)
    }
}

impl Step {
    /// Every step, in the order the saga may take them.
    pub const ALL: [Step; 6] = [
        Step::ReserveInventory,
        Step::AuthorizePayment,
        Step::CommitInventory,
        Step::CapturePayment,
        Step::VoidPayment,
        Step::ReleaseInventory,
    ];

    /// The steps of a successful saga, in order; after the last the order
    /// is approved.
    pub const FORWARD: [Step; 4] =
        [Step::ReserveInventory, Step::AuthorizePayment, Step::CommitInventory, Step::CapturePayment];

    /// The step's kind.
    pub fn kind(self) -> StepKind {
        match self {
            Step::ReserveInventory => StepKind::Compensatable,
            Step::AuthorizePayment => StepKind::Pivot,
            Step::CommitInventory | Step::CapturePayment => StepKind::Retriable,
            Step::VoidPayment | Step::ReleaseInventory => StepKind::Compensation,
        }
    }

    /// Whether a timeout re-sends the step's command (true) or starts
    /// compensating (false).
    pub fn retried_on_timeout(self) -> bool {
        self.kind().is_retried()
    }

    /// The compensation that undoes this step, for the kinds that are
    /// compensated; `None` for every other kind.
    pub fn compensation(self) -> Option<Step> {
        if !self.kind().is_compensated() {
            return None;
        }
        match self {
            Step::ReserveInventory => Some(Step::ReleaseInventory),
            Step::AuthorizePayment => Some(Step::VoidPayment),
            _ => None,
        }
    }

    /// The forward step a compensation undoes; `None` for forward steps.
    pub fn undoes(self) -> Option<Step> {
        Step::FORWARD.into_iter().find(|s| s.compensation() == Some(self))
    }

    /// The forward step after this one; `None` after the last (approve) and
    /// for compensations.
    pub fn next(self) -> Option<Step> {
        let at = Step::FORWARD.iter().position(|s| *s == self)?;
        Step::FORWARD.get(at + 1).copied()
    }

    /// The first compensation to run when the forward steps before
    /// `self` are to be undone (a compensation undoing `self` included when
    /// `including_self`): the compensation of the latest of them that is
    /// compensated. For a compensation, the one to run after it. `None`
    /// when nothing is left to undo: the saga is rejected.
    pub fn compensate_back(self, including_self: bool) -> Option<Step> {
        let from = self.undoes().unwrap_or(self);
        let at = Step::FORWARD.iter().position(|s| *s == from)?;
        let end = if including_self && self.undoes().is_none() { at + 1 } else { at };
        Step::FORWARD[..end].iter().rev().find_map(|s| s.compensation())
    }

    /// The step's name as stored and logged, e.g. `RESERVE_INVENTORY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReserveInventory => "RESERVE_INVENTORY",
            Step::AuthorizePayment => "AUTHORIZE_PAYMENT",
            Step::CommitInventory => "COMMIT_INVENTORY",
            Step::CapturePayment => "CAPTURE_PAYMENT",
            Step::VoidPayment => "VOID_PAYMENT",
            Step::ReleaseInventory => "RELEASE_INVENTORY",
        }
    }

    /// The step named `name` (its [`as_str`](Self::as_str) form, any case).
    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outstanding request of a waiting state: which attempt it is on, when
/// the step began and when the current attempt is overdue.
///
/// The step itself is implied by the state (see
/// [`OrderSaga::pending`](crate::OrderSaga::pending)), so a stored state
/// cannot name one step and wait on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// 1 for the first send of the step's command, +1 per re-send.
    pub attempt: u32,
    /// When the step's command was first sent.
    pub started_at: DateTime<Utc>,
    /// When the current attempt is overdue: the orchestrator feeds
    /// [`EventKind::StepTimedOut`](crate::EventKind::StepTimedOut) at or after
    /// this time. A hint: a timeout earlier than this is ignored.
    pub deadline: DateTime<Utc>,
}

impl Pending {
    /// The first attempt of a step whose command is sent at `at`.
    pub(crate) fn first(step: Step, at: DateTime<Utc>, config: &SagaConfig) -> Self {
        Pending { attempt: 1, started_at: at, deadline: config.deadline(step, at, 1) }
    }

    /// The next attempt, its command re-sent at `at`.
    pub(crate) fn retry(&self, step: Step, at: DateTime<Utc>, config: &SagaConfig) -> Self {
        let attempt = self.attempt.saturating_add(1);
        Pending { attempt, started_at: self.started_at, deadline: config.deadline(step, at, attempt) }
    }

    /// Whether the current attempt is overdue at `at`.
    pub fn is_overdue(&self, at: DateTime<Utc>) -> bool {
        at >= self.deadline
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn only_steps_after_the_pivot_and_compensations_are_retried() {
        let retried: Vec<Step> = Step::ALL.into_iter().filter(|s| s.retried_on_timeout()).collect();
        assert_eq!(
            retried,
            [Step::CommitInventory, Step::CapturePayment, Step::VoidPayment, Step::ReleaseInventory]
        );
        assert_eq!(Step::AuthorizePayment.kind(), StepKind::Pivot);
    }

    #[test]
    fn only_compensatable_steps_and_the_pivot_have_a_compensation() {
        for step in Step::ALL {
            assert_eq!(step.compensation().is_some(), step.kind().is_compensated(), "{step}");
            if let Some(compensation) = step.compensation() {
                assert_eq!(compensation.kind(), StepKind::Compensation);
                assert_eq!(compensation.undoes(), Some(step));
            }
        }
    }

    #[test]
    fn compensation_runs_back_over_the_compensated_steps() {
        use Step::*;
        // A failure reply: the failed step did nothing, the earlier ones are undone.
        assert_eq!(ReserveInventory.compensate_back(false), None);
        assert_eq!(AuthorizePayment.compensate_back(false), Some(ReleaseInventory));
        // A timeout: the step may have landed, so it is undone too.
        assert_eq!(ReserveInventory.compensate_back(true), Some(ReleaseInventory));
        assert_eq!(AuthorizePayment.compensate_back(true), Some(VoidPayment));
        // After a compensation, the next one back, then nothing.
        assert_eq!(VoidPayment.compensate_back(false), Some(ReleaseInventory));
        assert_eq!(ReleaseInventory.compensate_back(false), None);
        assert_eq!(
            Step::FORWARD.map(Step::next),
            [Some(AuthorizePayment), Some(CommitInventory), Some(CapturePayment), None]
        );
        assert_eq!(Step::parse("capture_payment"), Some(CapturePayment));
    }

    #[test]
    fn step_names_match_their_serde_form() {
        for step in Step::ALL {
            let json = serde_json::to_string(&step).expect("a step serialises");
            assert_eq!(json, format!("\"{step}\""));
        }
    }

    #[test]
    fn retry_keeps_the_start_and_backs_off() {
        let config = SagaConfig {
            step_timeout: Duration::from_secs(10),
            max_step_timeout: Duration::from_secs(100),
            ..Default::default()
        };
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let first = Pending::first(Step::CommitInventory, t0, &config);
        assert_eq!(first.deadline, t0 + TimeDelta::seconds(10));
        assert!(!first.is_overdue(t0 + TimeDelta::seconds(9)));
        assert!(first.is_overdue(first.deadline));

        let t1 = first.deadline;
        let second = first.retry(Step::CommitInventory, t1, &config);
        assert_eq!((second.attempt, second.started_at), (2, t0));
        assert_eq!(second.deadline, t1 + TimeDelta::seconds(20));
    }
}
