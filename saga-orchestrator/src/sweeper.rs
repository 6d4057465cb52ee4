//! [`Sweeper`]: the saga's timer. Every [`interval`](SweeperConfig::interval)
//! it times out the running sagas whose deadline has passed.
//!
//! One sweep is one transaction: lock up to
//! [`batch_size`](SweeperConfig::batch_size) overdue sagas with
//! `FOR UPDATE SKIP LOCKED` ([`store::lock_overdue`]), feed each an
//! [`EventKind::StepTimedOut`](crate::EventKind::StepTimedOut) for the step
//! it waits on, store the new states and enqueue their commands (the
//! compensation, or the re-sent command of a retried step; nothing when a
//! compensation is given up and the saga stops in `COMPENSATION_FAILED`),
//! commit.
//!
//! Why this is safe with several orchestrator instances, each running a
//! sweeper: a saga locked by one sweeper is skipped by the others, and a saga
//! being advanced by a reply is skipped too (it is not overdue any more once
//! the reply commits, or it is seen on the next sweep). A timeout is applied
//! at most once per deadline: the transition moves the deadline, so the saga
//! is not overdue after the sweep commits. A sweep that fails rolls back
//! entirely and the sagas are picked up again by the next one. Sweeps are
//! idempotent: a sweep that finds nothing overdue writes nothing.
//!
//! A saga whose stored state cannot be read is logged and postponed by
//! [`max_step_timeout`](crate::SagaConfig::max_step_timeout), so it cannot
//! hold up the other overdue sagas on every sweep.

use std::time::Duration;

use chrono::TimeDelta;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::SagaConfig;
use crate::event::Event;
use crate::state::OrderSaga;
use crate::store::{self, StoreError};

/// How often the sweeper looks, and how much it takes at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    /// Pause between sweeps. A timeout fires up to this late.
    pub interval: Duration,
    /// Most sagas timed out in one transaction. When a sweep finds a full
    /// batch, the next one starts at once.
    pub batch_size: u32,
}

impl Default for SweeperConfig {
    /// Every second, up to 100 sagas per transaction.
    fn default() -> Self {
        SweeperConfig { interval: Duration::from_secs(1), batch_size: 100 }
    }
}

impl SweeperConfig {
    /// Checks that the interval and the batch are positive.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("sweep interval must be greater than zero".into());
        }
        if self.batch_size == 0 {
            return Err("sweep batch size must be at least 1".into());
        }
        Ok(())
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Overdue sagas locked by this sweep.
    pub overdue: usize,
    /// Sagas whose step was timed out (compensated, re-sent, or given up).
    pub timed_out: usize,
    /// Of those, sagas stopped in `COMPENSATION_FAILED` by this sweep.
    pub stopped: usize,
    /// Sagas whose transition ignored the timer (a deadline stored with more
    /// precision than the clock; they come back on the next sweep).
    pub ignored: usize,
    /// Sagas that could not be read or advanced, postponed.
    pub postponed: usize,
}

/// Times out overdue sagas. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Sweeper {
    pool: PgPool,
    saga: SagaConfig,
    config: SweeperConfig,
}

impl Sweeper {
    /// A sweeper over the sagas in `pool`, timing retries by `saga`.
    pub fn new(pool: PgPool, saga: SagaConfig, config: SweeperConfig) -> Self {
        Sweeper { pool, saga, config }
    }

    /// Sweeps every [`interval`](SweeperConfig::interval) until `cancel`
    /// fires. A failed sweep is logged and tried again on the next tick: the
    /// sweeper outlives database outages.
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(interval = ?self.config.interval, batch = self.config.batch_size, "timeout sweeper running");
        loop {
            let full = match self.sweep_once().await {
                Ok(report) => {
                    if report.overdue > 0 {
                        tracing::info!(?report, "swept overdue sagas");
                    }
                    report.overdue >= self.config.batch_size as usize
                }
                Err(e) => {
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "sweep failed; retrying");
                    false
                }
            };
            if full && !cancel.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
        tracing::info!("timeout sweeper stopped");
    }

    /// One sweep, in one transaction (see the [module docs](self)).
    pub async fn sweep_once(&self) -> Result<SweepReport, StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::LockOverdue)?;
        let due = store::lock_overdue(&mut tx, i64::from(self.config.batch_size)).await?;
        let mut report = SweepReport { overdue: due.len(), ..SweepReport::default() };
        if due.is_empty() {
            // Nothing locked, nothing written.
            let _ = tx.rollback().await;
            return Ok(report);
        }
        let at = store::now(&mut tx).await?;
        let postpone_until =
            at + TimeDelta::from_std(self.saga.max_step_timeout).unwrap_or(TimeDelta::days(7));
        for overdue in due {
            let saga_id = overdue.saga_id;
            let before = match overdue.saga {
                Ok(before) => before,
                Err(e) => {
                    tracing::error!(%saga_id, error = %e, source = ?std::error::Error::source(&e),
                        until = %postpone_until, "overdue saga cannot be read; postponed");
                    store::postpone(&mut tx, saga_id, postpone_until).await?;
                    report.postponed += 1;
                    continue;
                }
            };
            // lock_overdue selects running sagas only; a terminal one here
            // has a stray deadline and nothing to time out.
            let Some(step) = before.state.pending_step() else { continue };
            let event = Event::timed_out(saga_id, at, step);
            let next = match before.state.handle(&event, &self.saga) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(%saga_id, error = %e, until = %postpone_until, "timer refused; postponed");
                    store::postpone(&mut tx, saga_id, postpone_until).await?;
                    report.postponed += 1;
                    continue;
                }
            };
            if let Some(why) = next.ignored {
                tracing::debug!(%saga_id, ?why, "timer ignored");
                report.ignored += 1;
                continue;
            }
            let version = store::save(&mut tx, &before, &next, None).await?;
            tracing::info!(
                %saga_id,
                %step,
                from = before.state.status(),
                to = next.state.status(),
                version,
                commands = ?next.commands.iter().map(|c| c.message_type()).collect::<Vec<_>>(),
                "step timed out"
            );
            if let OrderSaga::CompensationFailed { step, failure, .. } = &next.state {
                tracing::error!(%saga_id, %step, %failure,
                    "compensation failed: the saga stopped for an operator (a late reply resumes it)");
                report.stopped += 1;
            }
            report.timed_out += 1;
        }
        tx.commit().await.map_err(StoreError::CommitSweep)?;
        Ok(report)
    }
}
