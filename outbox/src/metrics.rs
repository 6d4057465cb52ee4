//! Relay metrics, reported through `tracing` with the field-name prefixes
//! that `tracing-opentelemetry`'s `MetricsLayer` turns into OpenTelemetry
//! instruments (`monotonic_counter.`, `histogram.`, `gauge.`); with a plain
//! fmt subscriber they are ordinary log fields.
//!
//! * per batch (target `outbox::metrics`, DEBUG): published rows
//!   (counter) and the age at ack of the batch's oldest row (histogram: from
//!   the writing transaction's `now()`, i.e. its start, to the delivery report);
//! * every `metrics_interval` (INFO): backlog rows, age of the oldest
//!   unpublished row and parked rows (gauges), plus the publish rate and
//!   latency percentiles over the interval for humans.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store;
use crate::wakeup::sleep_or_cancel;

/// Totals since the relay started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayStats {
    /// Rows delivered and recorded as published.
    pub published: u64,
    /// Rows parked (rejected, or blocked behind a rejected row).
    pub parked: u64,
    /// Batches recorded.
    pub batches: u64,
    /// Batches sent again: sending stopped on a retriable failure.
    pub retries: u64,
    /// Cursor writes and parking transactions (records of acked batches)
    /// that failed; each is covered by a later write or tried again, its
    /// rows are not resent.
    pub failed_cursor_writes: u64,
    /// Reads that came back after the lease margin had run out: their rows
    /// were not sent (the lane reads again under a renewed lease).
    pub late_reads: u64,
    /// Lane reads (queries for the next batch), including empty ones.
    pub reads: u64,
    /// Lane reads that found no row ready: the price of polling.
    pub empty_reads: u64,
    /// Statements that made the lane reads (reads of several lanes that are
    /// due together go out as one).
    pub read_statements: u64,
    /// Statements that moved lane cursors without parking (moves of several
    /// lanes that are due together go out as one).
    pub cursor_statements: u64,
    /// Time spent reading batches (waiting for a shared statement
    /// included) and handing them to the producer (all lanes together).
    pub fetch_time: Duration,
    /// Time the lanes spent waiting for delivery reports (with batches
    /// pipelined, only the part not overlapped by other work).
    pub send_time: Duration,
    /// Time from asking to record batches (a cursor write or parking) to
    /// the answer, summed over those writes; lanes wait only for parking.
    pub record_time: Duration,
}

impl RelayStats {
    /// What happened between `earlier` and `self` (two readings of one
    /// relay's totals).
    pub fn since(&self, earlier: &RelayStats) -> RelayStats {
        RelayStats {
            published: self.published.saturating_sub(earlier.published),
            parked: self.parked.saturating_sub(earlier.parked),
            batches: self.batches.saturating_sub(earlier.batches),
            retries: self.retries.saturating_sub(earlier.retries),
            failed_cursor_writes: self.failed_cursor_writes.saturating_sub(earlier.failed_cursor_writes),
            late_reads: self.late_reads.saturating_sub(earlier.late_reads),
            reads: self.reads.saturating_sub(earlier.reads),
            empty_reads: self.empty_reads.saturating_sub(earlier.empty_reads),
            read_statements: self.read_statements.saturating_sub(earlier.read_statements),
            cursor_statements: self.cursor_statements.saturating_sub(earlier.cursor_statements),
            fetch_time: self.fetch_time.saturating_sub(earlier.fetch_time),
            send_time: self.send_time.saturating_sub(earlier.send_time),
            record_time: self.record_time.saturating_sub(earlier.record_time),
        }
    }
}

/// One row the broker acknowledged and the relay recorded as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The message's event id.
    pub event_id: Uuid,
    /// The row's `created_at`: the writing transaction's `now()` (its start).
    pub created_at: DateTime<Utc>,
    /// When the relay read the row and handed it to the producer.
    pub sent_at: DateTime<Utc>,
    /// When the row's delivery report reached the relay: the broker's ack
    /// (for a row parked without being sent, when the lane dealt with it).
    /// The cursor is recorded after this.
    pub acked_at: DateTime<Utc>,
}

impl Delivery {
    /// Milliseconds from the writing transaction's start to the ack.
    pub fn age_at_ack_ms(&self) -> f64 {
        (self.acked_at - self.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0
    }
}

/// Most deliveries kept between two drains (a prefix is kept beyond that):
/// ~12 MB, minutes of a busy relay between two metrics reports.
const MAX_KEPT_DELIVERIES: usize = 200_000;

/// Counters shared by the lane workers.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    published: AtomicU64,
    parked: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    failed_cursor_writes: AtomicU64,
    late_reads: AtomicU64,
    reads: AtomicU64,
    empty_reads: AtomicU64,
    read_statements: AtomicU64,
    cursor_statements: AtomicU64,
    fetch_us: AtomicU64,
    send_us: AtomicU64,
    record_us: AtomicU64,
    /// Deliveries since the last drain, one per row.
    deliveries: Mutex<Vec<Delivery>>,
    /// Lanes that do not publish, and why.
    pub(crate) alarms: crate::alarm::Alarms,
}

impl Metrics {
    pub(crate) fn record_batch(&self, lane: i32, delivered: usize, parked: usize, deliveries: &[Delivery]) {
        self.published.fetch_add(delivered as u64, Ordering::Relaxed);
        self.parked.fetch_add(parked as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut kept) = self.deliveries.lock() {
            let room = MAX_KEPT_DELIVERIES.saturating_sub(kept.len());
            kept.extend(deliveries.iter().take(room));
        }
        let worst = deliveries.iter().map(Delivery::age_at_ack_ms).fold(0.0, f64::max);
        tracing::debug!(
            target: "outbox::metrics",
            lane,
            monotonic_counter.outbox_published = delivered as u64,
            monotonic_counter.outbox_parked = parked as u64,
            histogram.outbox_age_at_ack_ms = worst,
            "outbox batch published"
        );
    }

    /// Counts one lane read; `empty` when it found nothing ready.
    pub(crate) fn record_read(&self, empty: bool) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if empty {
            self.empty_reads.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one statement that read lanes.
    pub(crate) fn record_read_statement(&self) {
        self.read_statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one statement that moved lane cursors.
    pub(crate) fn record_cursor_statement(&self) {
        self.cursor_statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds time spent reading and handing over a batch.
    pub(crate) fn record_fetch(&self, d: Duration) {
        self.fetch_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds time spent waiting for a batch's delivery reports.
    pub(crate) fn record_send(&self, d: Duration) {
        self.send_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds time spent recording a batch's outcome.
    pub(crate) fn record_commit(&self, d: Duration) {
        self.record_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_late_read(&self) {
        self.late_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failed_cursor_write(&self) {
        self.failed_cursor_writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> RelayStats {
        RelayStats {
            published: self.published.load(Ordering::Relaxed),
            parked: self.parked.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed_cursor_writes: self.failed_cursor_writes.load(Ordering::Relaxed),
            late_reads: self.late_reads.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            empty_reads: self.empty_reads.load(Ordering::Relaxed),
            read_statements: self.read_statements.load(Ordering::Relaxed),
            cursor_statements: self.cursor_statements.load(Ordering::Relaxed),
            fetch_time: Duration::from_micros(self.fetch_us.load(Ordering::Relaxed)),
            send_time: Duration::from_micros(self.send_us.load(Ordering::Relaxed)),
            record_time: Duration::from_micros(self.record_us.load(Ordering::Relaxed)),
        }
    }

    /// Takes the deliveries recorded since the last call.
    pub(crate) fn drain_deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
    }
}

/// The `q` quantile (0..=1) of `sorted`, nearest rank; 0 when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Reports every `interval` until `cancel`.
pub(crate) async fn report(
    pool: PgPool,
    metrics: std::sync::Arc<Metrics>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut last = metrics.stats().published;
    while !sleep_or_cancel(interval, &cancel).await {
        let now = metrics.stats();
        let mut lat: Vec<f64> = metrics.drain_deliveries().iter().map(Delivery::age_at_ack_ms).collect();
        lat.sort_by(f64::total_cmp);
        let rate = (now.published - last) as f64 / interval.as_secs_f64();
        last = now.published;
        match store::backlog(&pool).await {
            Ok(b) => tracing::info!(
                target: "outbox::metrics",
                published_total = now.published,
                gauge.outbox_backlog = b.rows,
                gauge.outbox_oldest_age_seconds = b.oldest_age_secs,
                gauge.outbox_parked = b.parked,
                published_per_sec = rate,
                age_at_ack_p50_ms = quantile(&lat, 0.5),
                age_at_ack_p99_ms = quantile(&lat, 0.99),
                "outbox relay"
            ),
            Err(e) => tracing::warn!(error = %e, "outbox metrics: could not measure the backlog"),
        }
        metrics.alarms.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn batches_add_up() {
        let m = Metrics::default();
        let at = |ms: i64| {
            let created_at = DateTime::<Utc>::UNIX_EPOCH;
            Delivery {
                event_id: Uuid::new_v4(),
                created_at,
                sent_at: created_at,
                acked_at: created_at + chrono::TimeDelta::milliseconds(ms),
            }
        };
        m.record_batch(0, 3, 1, &[at(1), at(2), at(3)]);
        m.record_batch(1, 2, 0, &[at(4), at(5)]);
        m.record_retry();
        let st = m.stats();
        assert_eq!((st.published, st.parked, st.batches, st.retries), (5, 1, 2, 1));
        let drained: Vec<f64> = m.drain_deliveries().iter().map(Delivery::age_at_ack_ms).collect();
        assert_eq!(drained, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(m.drain_deliveries().is_empty());
        m.record_batch(0, 4, 0, &[]);
        let later = m.stats().since(&st);
        assert_eq!((later.published, later.parked, later.batches, later.retries), (4, 0, 1, 0));
    }
}
