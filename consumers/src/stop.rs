//! A stop request with a deadline: how a partition's work is told to end.
//!
//! Shutdown and revocation both end a partition's work the same way: no new
//! record or attempt starts, backoff sleeps are cut short, and the attempt
//! (or dead-letter publish) already running may finish until the deadline.
//! One deadline per record, set when the stop is requested, covers every
//! stage of it: an attempt that finishes just in time does not give the dead
//! letter that follows a second grace period.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A cloneable handle; every clone sees the same request.
#[derive(Debug, Clone)]
pub(crate) struct Stop(Arc<watch::Sender<Option<Instant>>>);

impl Default for Stop {
    fn default() -> Self {
        Stop(Arc::new(watch::Sender::new(None)))
    }
}

impl Stop {
    /// Asks the work to stop; what is running may take `grace` more. A
    /// second request can only bring the deadline closer.
    pub(crate) fn request(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.0.send_if_modified(|d| match d {
            Some(current) if *current <= deadline => false,
            _ => {
                *d = Some(deadline);
                true
            }
        });
    }

    /// Whether a stop was requested.
    pub(crate) fn is_requested(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Resolves once a stop is requested.
    pub(crate) async fn requested(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Resolves once a stop is requested and its deadline has passed.
    pub(crate) async fn expired(&self) {
        let mut rx = self.0.subscribe();
        loop {
            let deadline = match rx.wait_for(Option::is_some).await {
                Ok(d) => d.unwrap_or_else(Instant::now),
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_runs_from_the_request_and_only_moves_closer() {
        let stop = Stop::default();
        assert!(!stop.is_requested());
        let t0 = Instant::now();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            s.request(Duration::from_secs(10));
            tokio::time::sleep(Duration::from_secs(1)).await;
            s.request(Duration::from_secs(60)); // later: ignored
            s.request(Duration::from_secs(3)); // closer: wins (t0 + 5 s)
        });
        stop.requested().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        assert!(stop.is_requested());
        stop.expired().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }
}
