//! [`Sweeper`]: the saga's timer. Every [`interval`](SweeperConfig::interval)
//! it times out the running sagas whose deadline has passed.
//!
//! One sweep is one transaction: lock up to
//! [`batch_size`](SweeperConfig::batch_size) overdue sagas with
//! `FOR UPDATE SKIP LOCKED` ([`store::lock_overdue`]), feed each an
//! [`EventKind::StepTimedOut`](crate::EventKind::StepTimedOut) for the step
//! it waits on, store the new states and enqueue their commands (the
//! compensation, or the re-sent command of a retried step; nothing when a
//! step is given up and the saga stops in `COMPENSATION_FAILED` or
//! `COMPLETION_FAILED`),
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
//! A saga whose stored state cannot be read, or whose new state cannot be
//! saved, is logged and postponed by
//! [`max_step_timeout`](crate::SagaConfig::max_step_timeout): each saga is
//! advanced under a savepoint of its own, so one saga's failure neither
//! rolls back nor holds up the other overdue sagas on every sweep.
//!
//! **Unread replies win.** With a [`ReplyWatch`] (the
//! [`Orchestrator`](crate::Orchestrator) always sets one) a deadline fires
//! only once the orchestrator group has applied every reply that reached
//! Kafka before it — the [`Horizon`] rule: after downtime, lag or a broker
//! outage the sweeper times out nothing the replies waiting unread would
//! answer. Without one (unit tests, or a library user's choice) deadlines
//! fire by the database clock alone.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::SagaConfig;
use crate::event::Event;
use crate::horizon::Horizon;
use crate::reply_watch::ReplyWatch;
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
    /// Of those, sagas stopped (`COMPENSATION_FAILED`, `COMPLETION_FAILED`)
    /// by this sweep.
    pub stopped: usize,
    /// Sagas whose transition ignored the timer (a deadline stored with more
    /// precision than the clock; they come back on the next sweep).
    pub ignored: usize,
    /// Sagas that could not be read or advanced, postponed.
    pub postponed: usize,
    /// Whether the sweep looked for overdue sagas at all: false while the
    /// group has not applied the replies that reached Kafka (see the
    /// [module docs](self)).
    pub held: bool,
}

/// Times out overdue sagas. See the [module docs](self).
#[derive(Debug)]
pub struct Sweeper {
    pool: PgPool,
    saga: SagaConfig,
    config: SweeperConfig,
    watch: Option<ReplyWatch>,
    horizon: Mutex<Horizon>,
}

impl Sweeper {
    /// A sweeper over the sagas in `pool`, timing retries by `saga`;
    /// deadlines fire by the database clock alone (see [`watching`](Self::watching)).
    pub fn new(pool: PgPool, saga: SagaConfig, config: SweeperConfig) -> Self {
        Sweeper { pool, saga, config, watch: None, horizon: Mutex::new(Horizon::new()) }
    }

    /// Fires a deadline only once the group `watch` reads for has applied
    /// every reply that reached Kafka before it.
    pub fn watching(mut self, watch: ReplyWatch) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Up to when deadlines may fire now, besides the database clock:
    /// `Ok(Some(None))` without a watch (the clock alone); with one, the
    /// horizon after a new look (`Ok(None)`: nothing may fire yet).
    async fn fire_until(&self) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
        let Some(watch) = &self.watch else { return Ok(Some(None)) };
        let mut conn = self.pool.acquire().await.map_err(StoreError::LockOverdue)?;
        let at = store::now(&mut conn).await?;
        let confirmed = match watch.look().await {
            Ok(look) => self.horizon.lock().map(|mut h| h.observe(at, &look)).unwrap_or(None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the reply topics' offsets; no step times out meanwhile");
                self.horizon.lock().map(|h| h.confirmed()).unwrap_or(None)
            }
        };
        let behind = confirmed.map_or(TimeDelta::MAX, |c| at - c);
        if behind > TimeDelta::seconds(30) {
            tracing::info!(horizon = ?confirmed, "replies unread in Kafka: timeouts held until they are applied");
        }
        Ok(confirmed.map(Some))
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
        let Some(until) = self.fire_until().await? else {
            return Ok(SweepReport { held: true, ..SweepReport::default() });
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::LockOverdue)?;
        let due = store::lock_overdue(&mut tx, until, i64::from(self.config.batch_size)).await?;
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
                    postpone(
                        &mut tx,
                        &mut report,
                        saga_id,
                        postpone_until,
                        "overdue saga cannot be read",
                        &e,
                    )
                    .await?;
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
                    postpone(&mut tx, &mut report, saga_id, postpone_until, "timer refused", &e).await?;
                    continue;
                }
            };
            if let Some(why) = next.ignored {
                tracing::debug!(%saga_id, ?why, "timer ignored");
                report.ignored += 1;
                continue;
            }
            let saved = match sqlx::Acquire::begin(&mut tx).await.map_err(StoreError::LockOverdue) {
                Ok(mut savepoint) => match store::save(&mut savepoint, &before, &next, None).await {
                    Ok(version) => {
                        savepoint.commit().await.map(|()| version).map_err(StoreError::LockOverdue)
                    }
                    Err(e) => {
                        let _ = savepoint.rollback().await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            let version = match saved {
                Ok(version) => version,
                Err(e) => {
                    postpone(
                        &mut tx,
                        &mut report,
                        saga_id,
                        postpone_until,
                        "timed-out saga cannot be saved",
                        &e,
                    )
                    .await?;
                    continue;
                }
            };
            tracing::info!(
                %saga_id,
                %step,
                from = before.state.status(),
                to = next.state.status(),
                version,
                commands = ?next.commands.iter().map(|c| c.message_type()).collect::<Vec<_>>(),
                "step timed out"
            );
            if let Some((step, failure)) = next.state.stuck() {
                tracing::error!(%saga_id, %step, %failure, status = next.state.status(),
                    "the saga stopped for an operator (a late reply or `saga resume` carries it on)");
                report.stopped += 1;
            }
            report.timed_out += 1;
        }
        tx.commit().await.map_err(StoreError::CommitSweep)?;
        Ok(report)
    }
}

/// Moves a saga the sweep cannot handle out of the way until `until`, so the
/// others go on, and says why in the log.
async fn postpone(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    report: &mut SweepReport,
    saga_id: uuid::Uuid,
    until: DateTime<Utc>,
    why: &str,
    error: &(dyn std::error::Error + Send + Sync),
) -> Result<(), StoreError> {
    tracing::error!(%saga_id, %error, source = ?error.source(), %until, "{why}; postponed");
    store::postpone(tx, saga_id, until).await?;
    report.postponed += 1;
    Ok(())
}
