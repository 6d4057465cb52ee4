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
    retries: AtomicU64,
    commits: AtomicU64,
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
    /// Attempts beyond the first, over all records (counted as they start).
    pub retries: u64,
    /// Offset commits that the broker acknowledged (synchronous ones only:
    /// revocation and shutdown).
    pub commits: u64,
}

impl StatsSnapshot {
    /// Records finished (applied, skipped or dead-lettered): the ones whose
    /// offsets may be committed.
    pub fn finished(&self) -> u64 {
        self.applied + self.duplicates + self.dead_lettered
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
            retries: c.retries.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
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

    pub(crate) fn retried(&self, n: u32) {
        self.0.retries.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    pub(crate) fn committed(&self) {
        self.0.commits.fetch_add(1, Ordering::Relaxed);
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
            StatsSnapshot { applied: 1, duplicates: 1, dead_lettered: 1, retries: 3, commits: 0 }
        );
        assert_eq!(snap.finished(), 3);
    }
}
