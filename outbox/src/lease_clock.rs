//! [`LeaseClock`]: a lane worker's local view of its lease, extended by the
//! relay's renewals and the lane's recorded cursor moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
