//! [`SagaConfig`]: how long the saga waits for a reply, and how retries back
//! off.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::Error;

/// Timing of the order saga.
///
/// A step's first attempt is overdue [`step_timeout`](Self::step_timeout)
/// after its command was sent. A step that is retried on timeout (the commit
/// after the pivot, and the compensations) waits twice as long after each
/// re-send, capped at [`max_step_timeout`](Self::max_step_timeout), so a
/// service that is down for a while is not flooded with re-sent commands.
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
}

impl Default for SagaConfig {
    /// 30 s per step, retries backing off up to 10 min, a compensation
    /// sent 10 times (about 1 h 05 min of waiting) before it is given up.
    fn default() -> Self {
        SagaConfig {
            step_timeout: Duration::from_secs(30),
            max_step_timeout: Duration::from_secs(600),
            compensation_attempts: 10,
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
        Ok(())
    }

    /// How long attempt `attempt` (1 = the first send) of a step waits:
    /// `step_timeout × 2^(attempt − 1)`, capped at `max_step_timeout`.
    pub fn timeout_for(&self, attempt: u32) -> Duration {
        // 2^20 × any non-zero timeout of ≥ 1 µs exceeds a week; stop doubling there.
        let doublings = attempt.saturating_sub(1).min(20);
        let timeout = self.step_timeout.saturating_mul(1u32 << doublings);
        // max() keeps an unvalidated config (max below step) from shortening the first wait.
        timeout.min(self.max_step_timeout.max(self.step_timeout))
    }

    /// When attempt `attempt` of a step sent at `sent_at` is overdue.
    /// Saturates at the largest representable time instead of overflowing.
    pub fn deadline(&self, sent_at: DateTime<Utc>, attempt: u32) -> DateTime<Utc> {
        let wait = TimeDelta::from_std(self.timeout_for(attempt)).unwrap_or(TimeDelta::MAX);
        sent_at.checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC)
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

    #[test]
    fn retries_double_up_to_the_cap() {
        let c = config(10, 60);
        let secs: Vec<u64> = (1..=6).map(|a| c.timeout_for(a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 60, 60, 60]);
        assert_eq!(c.timeout_for(u32::MAX).as_secs(), 60);
        assert_eq!(c.timeout_for(0).as_secs(), 10, "attempt 0 is treated as the first");
    }

    #[test]
    fn deadline_adds_the_timeout_and_saturates() {
        let c = config(10, 60);
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(c.deadline(t0, 1), t0 + TimeDelta::seconds(10));
        assert_eq!(c.deadline(t0, 3), t0 + TimeDelta::seconds(40));
        assert_eq!(c.deadline(DateTime::<Utc>::MAX_UTC, 1), DateTime::<Utc>::MAX_UTC);
    }
}
