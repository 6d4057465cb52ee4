//! Retries in place, with exponential backoff (delays from `backon`).
//!
//! A transient failure is retried on the same record before the partition's
//! next record is touched, so the records of one key are never reordered.
//! While it retries, only its partition waits: the other partitions of the
//! member go on, and the member keeps polling (the partition is paused once
//! its buffer fills), so a long retry never gets it evicted from the group.
//! When the attempts run out the record is dead-lettered and the partition
//! moves on.
//!
//! Each attempt is bounded by `attempt_timeout`; a record therefore holds its
//! partition for at most [`RetryPolicy::worst_case_hold`] before it is
//! dead-lettered. A stop (shutdown, revocation) cuts that short at once.

use std::future::Future;
use std::time::Duration;

use crate::classify::ErrorClass;
use crate::handler::HandlerError;
use crate::stop::Stop;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
    /// Growth factor between delays.
    pub factor: f32,
    /// Adds up to 100% random jitter to each delay, so that consumers that
    /// failed together do not retry together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 10 attempts, 100 ms doubling up to 10 s, with jitter: at most about
    /// 65 s of waiting between attempts.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delays between attempts: `max_attempts - 1` of them.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let b = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter { b.with_jitter().build() } else { b.build() }
    }

    /// Delays for retrying something that must eventually succeed (publishing
    /// a dead letter): the same curve, never exhausted.
    pub fn endless_delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let b = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .without_max_times();
        if self.jitter { b.with_jitter().build() } else { b.build() }
    }

    /// Longest total time spent waiting between attempts (jitter included).
    pub fn worst_case_delay(&self) -> Duration {
        let no_jitter = RetryPolicy { jitter: false, ..self.clone() };
        let sum: Duration = no_jitter.delays().sum();
        if self.jitter { sum * 2 } else { sum }
    }

    /// Longest time one record can hold its partition before it is
    /// dead-lettered: every attempt running into `attempt_timeout`, plus
    /// the longest waits between them.
    pub fn worst_case_hold(&self, attempt_timeout: Duration) -> Duration {
        attempt_timeout.saturating_mul(self.max_attempts).saturating_add(self.worst_case_delay())
    }

    /// Rejects a policy that never attempts or never grows sensibly.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("retry max_attempts must be at least 1".into());
        }
        if !(self.factor >= 1.0 && self.factor.is_finite()) {
            return Err(format!("retry factor must be a finite number >= 1, got {}", self.factor));
        }
        if self.max_delay < self.initial_delay {
            return Err("retry max_delay must not be below initial_delay".into());
        }
        Ok(())
    }
}

/// The last failure of a record that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Permanent, or transient with the attempts exhausted.
    pub class: ErrorClass,
    /// The last error's message.
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failure_at: DateTime<Utc>,
}

/// How a retried operation ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Retried<T> {
    /// It succeeded on attempt number `attempts`.
    Done { value: T, attempts: u32 },
    /// It failed permanently, or transiently on every attempt.
    Failed(Failure),
    /// Shutdown began: the operation was neither finished nor given up on.
    Cancelled,
}

/// Runs `op(attempt)` (attempt counts from 1) until it succeeds, fails
/// permanently, or `policy` runs out of transient attempts.
///
/// A [`HandlerError::Deferred`] failure does not count as an attempt: it is
/// retried without limit, with the policy's delays capped at
/// `policy.max_delay`, until it turns into something else (see
/// [`HandlerError::Deferred`]).
///
/// Stop (`stop`): a running attempt may finish until the stop's deadline; no
/// new attempt starts after a failure, and a backoff sleep is cut short. The
/// caller must then leave the record uncommitted (it will be redelivered).
pub(crate) async fn retry<T, F, Fut>(policy: &RetryPolicy, stop: &Stop, mut op: F) -> Retried<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    let mut delays = policy.delays();
    let mut deferred_delays = policy.endless_delays();
    let mut first_failure_at = None;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = tokio::select! {
            biased;
            r = op(attempt) => r,
            _ = stop.expired() => return Retried::Cancelled,
        };
        let error = match result {
            Ok(value) => {
                return Retried::Done { value, attempts: attempt };
            }
            Err(e) => e,
        };
        let first = *first_failure_at.get_or_insert_with(Utc::now);
        let failure = |class| Failure {
            class,
            reason: error.reason().to_owned(),
            attempts: attempt,
            first_failure_at: first,
        };
        if let HandlerError::Permanent(_) = error {
            return Retried::Failed(failure(ErrorClass::Permanent));
        }
        if stop.is_requested() {
            return Retried::Cancelled;
        }
        let delay = if let HandlerError::Deferred(_) = error {
            let delay = deferred_delays.next().unwrap_or(policy.max_delay);
            tracing::warn!(attempt, ?delay, error = %error, "record deferred; waiting (not counted as an attempt)");
            delay
        } else {
            let Some(delay) = delays.next() else {
                return Retried::Failed(failure(ErrorClass::Transient));
            };
            tracing::warn!(attempt, ?delay, error = %error, "transient failure; retrying");
            delay
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.requested() => return Retried::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            factor: 2.0,
            jitter: false,
        }
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let d: Vec<_> = fast(7).delays().map(|d| d.as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(fast(1).delays().count(), 0);
        assert_eq!(fast(7).worst_case_delay().as_millis(), 3500);
        let jittered = RetryPolicy { jitter: true, ..fast(7) };
        assert_eq!(jittered.worst_case_delay().as_millis(), 7000);
        for (j, plain) in jittered.delays().zip(fast(7).delays()) {
            assert!(j >= plain && j <= plain * 2, "{j:?} vs {plain:?}");
        }
        assert!(RetryPolicy::default().worst_case_delay() < Duration::from_secs(300));
        assert_eq!(fast(2).endless_delays().take(100).count(), 100);
    }

    #[test]
    fn invalid_policies_are_rejected() {
        assert!(fast(0).validate().is_err());
        assert!(RetryPolicy { factor: 0.5, ..fast(3) }.validate().is_err());
        assert!(RetryPolicy { max_delay: Duration::from_millis(1), ..fast(3) }.validate().is_err());
        assert!(RetryPolicy::default().validate().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = retry(&fast(5), &Stop::default(), |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { if attempt < 3 { Err(HandlerError::transient("db down")) } else { Ok(attempt) } }
        })
        .await;
        assert_eq!(out, Retried::Done { value: 3, attempts: 3 });
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Retried<()> = retry(&fast(5), &Stop::default(), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(HandlerError::permanent("bad sku")) }
        })
        .await;
        let Retried::Failed(f) = out else { panic!("expected failure, got {out:?}") };
        assert_eq!((f.class, f.reason.as_str(), f.attempts), (ErrorClass::Permanent, "bad sku", 1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_retries_report_the_first_failure_time_and_count() {
        let started = Utc::now();
        let out: Retried<()> = retry(&fast(4), &Stop::default(), |n| async move {
            Err(HandlerError::transient(format!("timeout {n}")))
        })
        .await;
        let Retried::Failed(f) = out else { panic!("expected failure, got {out:?}") };
        assert_eq!((f.class, f.reason.as_str(), f.attempts), (ErrorClass::Transient, "timeout 4", 4));
        assert!(f.first_failure_at >= started && f.first_failure_at <= Utc::now());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_the_backoff_short() {
        let stop = Stop::default();
        let policy = RetryPolicy {
            initial_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            ..fast(5)
        };
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            s.request(Duration::from_secs(1));
        });
        let t0 = tokio::time::Instant::now();
        let out: Retried<()> =
            retry(&policy, &stop, |_| async { Err(HandlerError::transient("down")) }).await;
        assert_eq!(out, Retried::Cancelled);
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_in_flight_attempt_may_finish_within_the_grace_period() {
        let stop = Stop::default();
        stop.request(Duration::from_secs(5));
        let quick = retry(&fast(3), &stop, |_| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, HandlerError>("done")
        })
        .await;
        assert_eq!(quick, Retried::Done { value: "done", attempts: 1 });

        // The deadline is the request's, not the attempt's: 3 s are left.
        let t0 = tokio::time::Instant::now();
        let slow = retry(&fast(3), &stop, |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, HandlerError>("too late")
        })
        .await;
        assert_eq!(slow, Retried::Cancelled);
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn deferred_failures_do_not_use_up_the_attempts() {
        let calls = AtomicU32::new(0);
        let out = retry(&fast(2), &Stop::default(), |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match attempt {
                    1..=20 => Err(HandlerError::deferred("unknown schema")),
                    21 => Err(HandlerError::transient("db blip")),
                    _ => Ok(attempt),
                }
            }
        })
        .await;
        assert_eq!(out, Retried::Done { value: 22, attempts: 22 });
        assert_eq!(calls.load(Ordering::SeqCst), 22);
    }
}
