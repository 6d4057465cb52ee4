//! [`SagaConfig`]: how long the saga waits for a reply, and how retries back
//! off.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::Error;
use crate::step::{Step, StepKind};

/// Timing of the order saga.
///
/// A step's first attempt is overdue [`step_timeout`](Self::step_timeout)
/// (or the step's own entry in [`step_timeouts`](Self::step_timeouts))
/// after its command was sent. A step that is retried on timeout (the commit
/// and capture after the pivot, and the compensations) waits twice as long
/// after each re-send, capped at [`max_step_timeout`](Self::max_step_timeout),
/// so a service that is down for a while is not flooded with re-sent
/// commands; after [`retry_attempts`](Self::retry_attempts) (or
/// [`compensation_attempts`](Self::compensation_attempts)) sends it stops
/// for an operator instead of looping unseen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaConfig {
    /// How long the first attempt of a step waits for its reply.
    pub step_timeout: Duration,
    /// Longest wait of any retry (the cap of the doubling).
    pub max_step_timeout: Duration,
    /// Sends of a compensation without a reply after which the saga stops
    /// in `COMPENSATION_FAILED` (visible, no longer re-sent) for an
    /// operator: a compensation that keeps failing is a bug or an outage to
    /// look at, not something to loop on silently.
    pub compensation_attempts: u32,
    /// Sends of a retriable step (the stock commit, the payment capture)
    /// without a reply after which the saga stops in `COMPLETION_FAILED`
    /// (visible, no longer re-sent; a late reply or `saga resume` carries
    /// it on).
    pub retry_attempts: u32,
    /// First-attempt timeouts of single steps, overriding
    /// [`step_timeout`](Self::step_timeout) for them (e.g. a payment
    /// provider that takes longer than the stock service).
    pub step_timeouts: BTreeMap<Step, Duration>,
}

impl Default for SagaConfig {
    /// 30 s per step, retries backing off up to 10 min, a compensation or
    /// a retriable step sent 10 times (about 1 h 05 min of waiting) before
    /// the saga stops for an operator.
    fn default() -> Self {
        SagaConfig {
            step_timeout: Duration::from_secs(30),
            max_step_timeout: Duration::from_secs(600),
            compensation_attempts: 10,
            retry_attempts: 10,
            step_timeouts: BTreeMap::new(),
        }
    }
}

impl SagaConfig {
    /// Longest timeout accepted by [`validate`](Self::validate): one week. A
    /// saga that waits longer than this for a reply is a misconfiguration.
    pub const LONGEST_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Checks that the timeouts are positive, ordered and at most
    /// [`LONGEST_TIMEOUT`](Self::LONGEST_TIMEOUT), and that a compensation
    /// is sent at least once.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, problem| Err(Error::ValidateConfig { field, problem });
        if self.step_timeout.is_zero() {
            return invalid("step_timeout", "must be greater than zero");
        }
        if self.max_step_timeout < self.step_timeout {
            return invalid("max_step_timeout", "must be at least step_timeout");
        }
        if self.max_step_timeout > Self::LONGEST_TIMEOUT {
            return invalid("max_step_timeout", "must be at most one week");
        }
        if self.compensation_attempts == 0 {
            return invalid("compensation_attempts", "must be at least 1");
        }
        if self.retry_attempts == 0 {
            return invalid("retry_attempts", "must be at least 1");
        }
        for timeout in self.step_timeouts.values() {
            if timeout.is_zero() {
                return invalid("step_timeouts", "must be greater than zero");
            }
            if *timeout > self.max_step_timeout {
                return invalid("step_timeouts", "must be at most max_step_timeout");
            }
        }
        Ok(())
    }

    /// Sends of `step` after which a timeout stops the saga instead of
    /// re-sending; `None` for kinds that are not re-sent.
    pub fn attempts_of(&self, step: Step) -> Option<u32> {
        match step.kind() {
            StepKind::Retriable => Some(self.retry_attempts),
            StepKind::Compensation => Some(self.compensation_attempts),
            StepKind::Compensatable | StepKind::Pivot => None,
        }
    }

    /// The first-attempt timeout of `step`.
    pub fn first_timeout(&self, step: Step) -> Duration {
        self.step_timeouts.get(&step).copied().unwrap_or(self.step_timeout)
    }

    /// How long attempt `attempt` (1 = the first send) of `step` waits: its
    /// first timeout `× 2^(attempt − 1)`, capped at `max_step_timeout`.
    pub fn timeout_for(&self, step: Step, attempt: u32) -> Duration {
        let first = self.first_timeout(step);
        // 2^20 × any non-zero timeout of ≥ 1 µs exceeds a week; stop doubling there.
        let doublings = attempt.saturating_sub(1).min(20);
        let timeout = first.saturating_mul(1u32 << doublings);
        // max() keeps an unvalidated config (max below step) from shortening the first wait.
        timeout.min(self.max_step_timeout.max(first))
    }

    /// When attempt `attempt` of `step` sent at `sent_at` is overdue.
    /// Saturates at the largest representable time instead of overflowing.
    pub fn deadline(&self, step: Step, sent_at: DateTime<Utc>, attempt: u32) -> DateTime<Utc> {
        let wait = TimeDelta::from_std(self.timeout_for(step, attempt)).unwrap_or(TimeDelta::MAX);
        sent_at.checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Parses per-step timeouts as `STEP=DURATION` pairs separated by
    /// commas, e.g. `AUTHORIZE_PAYMENT=10s,COMMIT_INVENTORY=2m` (durations
    /// as humantime reads them: `500ms`, `10s`, `2m`).
    pub fn parse_step_timeouts(text: &str) -> Result<BTreeMap<Step, Duration>, String> {
        let mut timeouts = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, duration) =
                pair.split_once('=').ok_or_else(|| format!("`{pair}` is not STEP=DURATION"))?;
            let step = Step::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown step `{}` (known: {})", name.trim(), known.join(", "))
            })?;
            let duration = humantime::parse_duration(duration.trim())
                .map_err(|e| format!("`{}` for {step}: {e}", duration.trim()))?;
            timeouts.insert(step, duration);
        }
        Ok(timeouts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(step: u64, max: u64) -> SagaConfig {
        SagaConfig {
            step_timeout: Duration::from_secs(step),
            max_step_timeout: Duration::from_secs(max),
            ..SagaConfig::default()
        }
    }

    #[test]
    fn default_config_is_valid() {
        assert!(SagaConfig::default().validate().is_ok());
    }

    #[test]
    fn validate_refuses_zero_inverted_and_huge_timeouts() {
        let field = |c: SagaConfig| match c.validate() {
            Err(Error::ValidateConfig { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert_eq!(field(config(0, 10)), "step_timeout");
        assert_eq!(field(config(10, 5)), "max_step_timeout");
        assert_eq!(field(config(10, 8 * 24 * 3600)), "max_step_timeout");
    }

    const STEP: Step = Step::CommitInventory;

    #[test]
    fn retries_double_up_to_the_cap() {
        let c = config(10, 60);
        let secs: Vec<u64> = (1..=6).map(|a| c.timeout_for(STEP, a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 60, 60, 60]);
        assert_eq!(c.timeout_for(STEP, u32::MAX).as_secs(), 60);
        assert_eq!(c.timeout_for(STEP, 0).as_secs(), 10, "attempt 0 is treated as the first");
    }

    #[test]
    fn deadline_adds_the_timeout_and_saturates() {
        let c = config(10, 60);
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(c.deadline(STEP, t0, 1), t0 + TimeDelta::seconds(10));
        assert_eq!(c.deadline(STEP, t0, 3), t0 + TimeDelta::seconds(40));
        assert_eq!(c.deadline(STEP, DateTime::<Utc>::MAX_UTC, 1), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn a_step_timeout_of_its_own_overrides_the_default_for_that_step_only() {
        let mut c = config(10, 60);
        c.step_timeouts =
            SagaConfig::parse_step_timeouts("authorize_payment=25s, COMMIT_INVENTORY=500ms").expect("parses");
        assert_eq!(c.timeout_for(Step::AuthorizePayment, 1), Duration::from_secs(25));
        assert_eq!(c.timeout_for(Step::CommitInventory, 2), Duration::from_secs(1));
        assert_eq!(c.timeout_for(Step::ReserveInventory, 1), Duration::from_secs(10));
        assert!(c.validate().is_ok());
        assert!(
            matches!(SagaConfig::parse_step_timeouts("PACK_PARCEL=1s"), Err(e) if e.contains("unknown step"))
        );
        assert!(SagaConfig::parse_step_timeouts("VOID_PAYMENT").is_err());
        c.step_timeouts.insert(Step::VoidPayment, Duration::from_secs(61));
        assert!(c.validate().is_err(), "a step timeout above the cap");
    }

    #[test]
    fn only_retried_kinds_have_an_attempt_bound() {
        let c = SagaConfig { retry_attempts: 3, compensation_attempts: 5, ..SagaConfig::default() };
        assert_eq!(c.attempts_of(Step::CapturePayment), Some(3));
        assert_eq!(c.attempts_of(Step::ReleaseInventory), Some(5));
        assert_eq!(c.attempts_of(Step::AuthorizePayment), None);
    }
}
