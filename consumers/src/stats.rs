//! Counters of what a consumer did, readable while it runs (tests,
//! benchmarks, health endpoints).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A cheap, cloneable handle on a consumer's counters.
#[derive(Debug, Clone, Default)]
pub struct Stats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    applied: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    ignored: AtomicU64,
    retries: AtomicU64,
    deferred: AtomicU64,
    timeouts: AtomicU64,
    batches: AtomicU64,
    batched: AtomicU64,
    commits: AtomicU64,
    revoked: AtomicU64,
    halted: AtomicU64,
    paused: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Records whose handler transaction committed.
    pub applied: u64,
    /// Records skipped because the inbox already had their event.
    pub duplicates: u64,
    /// Records published to a dead-letter topic.
    pub dead_lettered: u64,
    /// Records the handler does not accept (`Handler::accepts`), finished
    /// without a transaction.
    pub ignored: u64,
    /// Attempts beyond the first, over all records (counted as they start).
    pub retries: u64,
    /// Attempts that ended [deferred](crate::HandlerError::Deferred): the
    /// record waits for something outside it (a schema it does not know).
    pub deferred: u64,
    /// Attempts cut off by `attempt_timeout` (then retried as transient).
    pub timeouts: u64,
    /// Transactions that applied several records at once.
    pub batches: u64,
    /// Records finished in those transactions (applied or duplicates).
    pub batched_records: u64,
    /// Offset commits that the broker acknowledged (synchronous ones only:
    /// revocation and shutdown).
    pub commits: u64,
    /// Partitions taken from this member by rebalances (or lost), not
    /// counting its own shutdown.
    pub revoked_partitions: u64,
    /// Partitions halted right now because their dead letter cannot be
    /// published (topic missing, record too large, not authorised). Alert
    /// when it stays above zero.
    pub halted_partitions: u64,
    /// Partitions paused right now because their buffer of fetched records
    /// is full (their worker is slower than the fetch, or retrying).
    pub paused_partitions: u64,
}

impl StatsSnapshot {
    /// Records finished (applied, skipped, dead-lettered or ignored): the
    /// ones whose offsets may be committed.
    pub fn finished(&self) -> u64 {
        self.applied + self.duplicates + self.dead_lettered + self.ignored
    }
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0;
        StatsSnapshot {
            applied: c.applied.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            ignored: c.ignored.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            deferred: c.deferred.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            batched_records: c.batched.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            revoked_partitions: c.revoked.load(Ordering::Relaxed),
            halted_partitions: c.halted.load(Ordering::Relaxed),
            paused_partitions: c.paused.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn applied(&self) {
        self.0.applied.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.0.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.0.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ignored(&self, n: u64) {
        self.0.ignored.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self, n: u32) {
        self.0.retries.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    pub(crate) fn committed(&self) {
        self.0.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn revoked(&self, partitions: usize) {
        self.0.revoked.fetch_add(partitions as u64, Ordering::Relaxed);
    }

    pub(crate) fn deferred(&self) {
        self.0.deferred.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.0.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch(&self, applied: u64, duplicates: u64) {
        self.0.batches.fetch_add(1, Ordering::Relaxed);
        self.0.batched.fetch_add(applied + duplicates, Ordering::Relaxed);
        self.0.applied.fetch_add(applied, Ordering::Relaxed);
        self.0.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    }

    pub(crate) fn halt_started(&self) {
        self.0.halted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn halt_ended(&self) {
        self.0.halted.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn paused(&self) {
        self.0.paused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn resumed(&self) {
        self.0.paused.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters() {
        let s = Stats::default();
        let t = s.clone();
        s.applied();
        t.duplicate();
        t.dead_lettered();
        s.retried(3);
        let snap = s.snapshot();
        assert_eq!(
            snap,
            StatsSnapshot { applied: 1, duplicates: 1, dead_lettered: 1, retries: 3, ..Default::default() }
        );
        assert_eq!(snap.finished(), 3);
    }
}
