//! Retries in place, with exponential backoff (delays from `backon`).
//!
//! A transient failure is retried on the same record before the consumer
//! reads anything else from that partition, so the records of one key are
//! never reordered. While it retries, the whole partition waits (the runtime
//! processes records one at a time): that is the price of per-key order.
//! When the attempts run out the record is dead-lettered and the partition
//! moves on.
//!
//! Keep the worst-case retry time ([`RetryPolicy::worst_case_delay`]) below
//! the consumer's `max.poll.interval.ms`: while it retries, the consumer does
//! not poll, and librdkafka leaves the group after that interval (the
//! partition then moves to another member, which is safe thanks to the inbox
//! but costs a rebalance). [`ConsumerConfig::validate`](crate::ConsumerConfig::validate)
//! checks it.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::classify::ErrorClass;
use crate::handler::HandlerError;

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
    /// 65 s of waiting, well inside the default 300 s poll interval.
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

/// Resolves once shutdown has begun and the grace period for in-flight work
/// has elapsed.
pub(crate) async fn grace_expired(cancel: &CancellationToken, grace: Duration) {
    cancel.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// Runs `op(attempt)` (attempt counts from 1) until it succeeds, fails
/// permanently, or `policy` runs out.
///
/// Shutdown (`cancel`): a running attempt may finish within `grace`; no new
/// attempt starts after a transient failure, and a backoff sleep is cut
/// short. The caller must then leave the record uncommitted (it will be
/// redelivered).
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    grace: Duration,
    mut op: F,
) -> Retried<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    let mut delays = policy.delays();
    let mut first_failure_at = None;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = tokio::select! {
            r = op(attempt) => r,
            _ = grace_expired(cancel, grace) => return Retried::Cancelled,
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
        if cancel.is_cancelled() {
            return Retried::Cancelled;
        }
        let Some(delay) = delays.next() else {
            return Retried::Failed(failure(ErrorClass::Transient));
        };
        tracing::warn!(attempt, ?delay, error = %error, "transient failure; retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Retried::Cancelled,
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
        let out = retry(&fast(5), &CancellationToken::new(), Duration::from_secs(1), |attempt| {
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
        let out: Retried<()> = retry(&fast(5), &CancellationToken::new(), Duration::from_secs(1), |_| {
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
        let out: Retried<()> =
            retry(&fast(4), &CancellationToken::new(), Duration::from_secs(1), |n| async move {
                Err(HandlerError::transient(format!("timeout {n}")))
            })
            .await;
        let Retried::Failed(f) = out else { panic!("expected failure, got {out:?}") };
        assert_eq!((f.class, f.reason.as_str(), f.attempts), (ErrorClass::Transient, "timeout 4", 4));
        assert!(f.first_failure_at >= started && f.first_failure_at <= Utc::now());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_the_backoff_short() {
        let cancel = CancellationToken::new();
        let policy = RetryPolicy {
            initial_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            ..fast(5)
        };
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.cancel();
        });
        let t0 = tokio::time::Instant::now();
        let out: Retried<()> = retry(&policy, &cancel, Duration::from_secs(1), |_| async {
            Err(HandlerError::transient("down"))
        })
        .await;
        assert_eq!(out, Retried::Cancelled);
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_in_flight_attempt_may_finish_within_the_grace_period() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let quick = retry(&fast(3), &cancel, Duration::from_secs(5), |_| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, HandlerError>("done")
        })
        .await;
        assert_eq!(quick, Retried::Done { value: "done", attempts: 1 });

        let slow = retry(&fast(3), &cancel, Duration::from_secs(5), |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, HandlerError>("too late")
        })
        .await;
        assert_eq!(slow, Retried::Cancelled);
    }
}
