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
    /// `VoidPayment` → `PaymentVoided`: undoes [`Step::AuthorizePayment`].
    VoidPayment,
    /// `ReleaseInventory` → `InventoryReleased`: undoes [`Step::ReserveInventory`].
    ReleaseInventory,
}

/// What a step is in the saga's structure (Richardson, *Microservices
/// Patterns*, ch. 4), which decides what its timeout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// May be undone by a compensation; a timeout compensates it (and every
    /// earlier step) because the request may have landed.
    Compensatable,
    /// The last step that can fail on a business rule; it is compensatable
    /// too, and once it succeeds the saga never compensates.
    Pivot,
    /// After the pivot: must succeed on retry, so a timeout re-sends it.
    Retriable,
    /// Undoes an earlier step; it cannot abort, so a timeout re-sends it.
    Compensation,
}

impl Step {
    /// Every step, in the order the saga may take them.
    pub const ALL: [Step; 5] = [
        Step::ReserveInventory,
        Step::AuthorizePayment,
        Step::CommitInventory,
        Step::VoidPayment,
        Step::ReleaseInventory,
    ];

    /// The step's kind.
    pub fn kind(self) -> StepKind {
        match self {
            Step::ReserveInventory => StepKind::Compensatable,
            Step::AuthorizePayment => StepKind::Pivot,
            Step::CommitInventory => StepKind::Retriable,
            Step::VoidPayment | Step::ReleaseInventory => StepKind::Compensation,
        }
    }

    /// Whether a timeout re-sends the step's command (true) or starts
    /// compensating (false).
    pub fn retried_on_timeout(self) -> bool {
        matches!(self.kind(), StepKind::Retriable | StepKind::Compensation)
    }

    /// The step's name as stored and logged, e.g. `RESERVE_INVENTORY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReserveInventory => "RESERVE_INVENTORY",
            Step::AuthorizePayment => "AUTHORIZE_PAYMENT",
            Step::CommitInventory => "COMMIT_INVENTORY",
            Step::VoidPayment => "VOID_PAYMENT",
            Step::ReleaseInventory => "RELEASE_INVENTORY",
        }
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
    pub(crate) fn first(at: DateTime<Utc>, config: &SagaConfig) -> Self {
        Pending { attempt: 1, started_at: at, deadline: config.deadline(at, 1) }
    }

    /// The next attempt, its command re-sent at `at`.
    pub(crate) fn retry(&self, at: DateTime<Utc>, config: &SagaConfig) -> Self {
        let attempt = self.attempt.saturating_add(1);
        Pending { attempt, started_at: self.started_at, deadline: config.deadline(at, attempt) }
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
        assert_eq!(retried, [Step::CommitInventory, Step::VoidPayment, Step::ReleaseInventory]);
        assert_eq!(Step::AuthorizePayment.kind(), StepKind::Pivot);
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
        let first = Pending::first(t0, &config);
        assert_eq!(first.deadline, t0 + TimeDelta::seconds(10));
        assert!(!first.is_overdue(t0 + TimeDelta::seconds(9)));
        assert!(first.is_overdue(first.deadline));

        let t1 = first.deadline;
        let second = first.retry(t1, &config);
        assert_eq!((second.attempt, second.started_at), (2, t0));
        assert_eq!(second.deadline, t1 + TimeDelta::seconds(20));
    }
}
