//! One lane's worker: read a batch after the cursor below the watermark,
//! publish it, record the outcome under the lease epoch, repeat; sleep until
//! a notification or the poll interval when the lane is empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::batch;
use crate::error::OutboxError;
use crate::lease::LaneLease;
use crate::relay::Shared;
use crate::send::send_batch;
use crate::store::{self, Cursor, LeaseToken};
use crate::wakeup::sleep_or_cancel;

/// The local view of a lane's lease: the instant until which this relay may
/// still send for it, measured from *before* each renewal was requested, so
/// it runs out no later than the database lease.
#[derive(Debug)]
pub(crate) struct LeaseClock {
    base: Instant,
    valid_until_ms: AtomicU64,
}

impl LeaseClock {
    pub(crate) fn new(base: Instant) -> Self {
        LeaseClock { base, valid_until_ms: AtomicU64::new(0) }
    }

    /// Records a renewal requested at `requested` for `ttl`.
    pub(crate) fn extend(&self, requested: Instant, ttl: Duration) {
        let until = (requested.saturating_duration_since(self.base) + ttl).as_millis() as u64;
        self.valid_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether the lease is still valid for at least `margin`.
    pub(crate) fn valid_for(&self, margin: Duration) -> bool {
        let now = (Instant::now().saturating_duration_since(self.base) + margin).as_millis() as u64;
        now < self.valid_until_ms.load(Ordering::Relaxed)
    }
}

/// Everything one worker needs.
pub(crate) struct Lane {
    pub(crate) lease: LaneLease,
    pub(crate) clock: Arc<LeaseClock>,
    pub(crate) stop: CancellationToken,
}

fn backoff(shared: &Shared) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(shared.config.backoff_min)
        .with_max_delay(shared.config.backoff_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs the lane until stopped (`Ok`) or the lease is lost (`Err(LeaseLost)`).
pub(crate) async fn run(shared: Arc<Shared>, lane: Lane) -> Result<(), OutboxError> {
    let Lane { lease, clock, stop } = lane;
    let cfg = &shared.config;
    let token = LeaseToken { lane: lease.lane, owner: &cfg.relay_id, epoch: lease.epoch };
    let ttl_ms = i64::try_from(cfg.lease_ttl.as_millis()).unwrap_or(i64::MAX);
    let margin = cfg.lease_ttl / 4;
    let wake = shared.wakeups.lane(lease.lane);
    let mut cursor = lease.cursor;
    let mut retry: Option<ExponentialBackoff> = None;
    let mut last_advance = Instant::now();
    tracing::info!(lane = lease.lane, epoch = lease.epoch, ?cursor, "lane acquired");

    // Sleeps for the next backoff delay; true if stopped meanwhile.
    let pause = |retry: &mut Option<ExponentialBackoff>| {
        let d = retry.get_or_insert_with(|| backoff(&shared)).next().unwrap_or(cfg.backoff_max);
        let stop = stop.clone();
        async move { sleep_or_cancel(d, &stop).await }
    };

    while !stop.is_cancelled() {
        if !clock.valid_for(margin) {
            // The lease manager renews; if it cannot, it stops this worker.
            if sleep_or_cancel(Duration::from_millis(50), &stop).await {
                break;
            }
            continue;
        }
        let fetch_started = Instant::now();
        let fetched = store::fetch(&shared.pool, lease.lane, cursor, cfg.batch_size as i64).await;
        let batch = match fetched {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(lane = lease.lane, error = %e, "outbox fetch failed; backing off");
                if pause(&mut retry).await {
                    break;
                }
                continue;
            }
        };

        if batch.rows.is_empty() {
            // Idle: move the cursor up to the watermark now and then, so lag
            // is visible and key rows below every cursor can be cleaned.
            if batch.watermark > cursor.pos && last_advance.elapsed() >= cfg.idle_advance_interval {
                let to = Cursor { pos: batch.watermark, id: 0 };
                let asked = Instant::now();
                match store::commit(&shared.pool, token, to, &[], ttl_ms).await {
                    Ok(()) => {
                        cursor = to;
                        clock.extend(asked, cfg.lease_ttl);
                        last_advance = Instant::now();
                    }
                    Err(e @ OutboxError::LeaseLost { .. }) => return Err(e),
                    Err(e) => tracing::warn!(lane = lease.lane, error = %e, "outbox idle advance failed"),
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(cfg.poll_interval) => {}
                _ = stop.cancelled() => break,
            }
            continue;
        }

        let fetch_took = fetch_started.elapsed();
        let send_started = Instant::now();
        let publisher = shared.publishers.current();
        let report = tokio::select! {
            r = send_batch(&*publisher, &batch.rows) => r,
            // On shutdown, give in-flight deliveries a grace period; rows
            // not recorded by then are sent again by the next holder.
            _ = async { stop.cancelled().await; tokio::time::sleep(cfg.shutdown_grace).await } => break,
        };
        if report.fatal {
            shared.publishers.replace(&publisher);
        }
        let acked_at = Utc::now();
        let send_took = send_started.elapsed();
        let decision = batch::decide(&batch.rows, &report.outcomes);
        if let Some(to) = decision.advance_to {
            let asked = Instant::now();
            match store::commit(&shared.pool, token, to, &decision.park, ttl_ms).await {
                Ok(()) => {
                    cursor = to;
                    clock.extend(asked, cfg.lease_ttl);
                    last_advance = Instant::now();
                    shared.metrics.record_phases(fetch_took, send_took, asked.elapsed());
                    let latencies: Vec<f64> = batch
                        .rows
                        .iter()
                        .take_while(|r| r.cursor() <= to)
                        .map(|r| (acked_at - r.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
                        .collect();
                    shared.metrics.record_batch(lease.lane, decision.delivered, decision.park.len(), &latencies);
                    for p in &decision.park {
                        tracing::warn!(lane = lease.lane, row = p.id, reason = %p.reason, "outbox row parked");
                    }
                }
                Err(e @ OutboxError::LeaseLost { .. }) => return Err(e),
                Err(e) => {
                    // Delivered but not recorded: the rows go out again
                    // (duplicates with the same event ids).
                    tracing::warn!(lane = lease.lane, error = %e, "outbox could not record a batch; will resend");
                    if pause(&mut retry).await {
                        break;
                    }
                    continue;
                }
            }
        }
        match decision.retry {
            Some(reason) => {
                shared.metrics.record_retry();
                tracing::warn!(lane = lease.lane, %reason, "outbox publish failed; backing off");
                if pause(&mut retry).await {
                    break;
                }
            }
            None => retry = None,
        }
    }
    tracing::info!(lane = lease.lane, epoch = lease.epoch, "lane stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_clock_runs_out_after_the_ttl() {
        let base = Instant::now();
        let c = LeaseClock::new(base);
        assert!(!c.valid_for(Duration::ZERO), "not valid before the first grant");
        c.extend(Instant::now(), Duration::from_secs(10));
        assert!(c.valid_for(Duration::from_secs(5)));
        assert!(!c.valid_for(Duration::from_secs(11)));
        // An older renewal never shortens the lease.
        c.extend(base, Duration::from_secs(1));
        assert!(c.valid_for(Duration::from_secs(5)));
    }
}
