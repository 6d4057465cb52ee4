//! Wake-ups: one LISTEN connection per relay turns `NOTIFY outbox, '<lane>'`
//! into a permit for that lane's worker. Notifications are hints only — a
//! worker also polls — and when the listening connection drops (its
//! notifications are lost) every lane is woken once it reconnects, so rows
//! committed meanwhile are found at once rather than at the next poll.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::enqueue::NOTIFY_CHANNEL;

/// Most lanes a relay can address (the schema's limit).
pub(crate) const MAX_LANES: usize = 1024;

/// One [`Notify`] per lane.
pub(crate) struct Wakeups {
    lanes: Vec<Notify>,
}

impl Wakeups {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Wakeups { lanes: (0..MAX_LANES).map(|_| Notify::new()).collect() })
    }

    /// The lane's notifier (lanes outside the range share the last one).
    pub(crate) fn lane(&self, lane: i32) -> &Notify {
        let i = usize::try_from(lane).unwrap_or(0).min(MAX_LANES - 1);
        &self.lanes[i]
    }

    /// Wakes every lane (after a reconnect: notifications may have been lost).
    pub(crate) fn wake_all(&self) {
        for n in &self.lanes {
            n.notify_one();
        }
    }
}

/// Listens until `cancel`; reconnects on its own after errors.
pub(crate) async fn listen(pool: PgPool, wakeups: Arc<Wakeups>, cancel: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "outbox listener could not connect; relying on polling");
                if sleep_or_cancel(delay, &cancel).await {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %e, "outbox LISTEN failed; relying on polling");
            if sleep_or_cancel(delay, &cancel).await {
                return;
            }
            continue;
        }
        delay = Duration::from_millis(100);
        wakeups.wake_all();
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = cancel.cancelled() => return,
            };
            match next {
                Ok(Some(n)) => match n.payload().parse::<i32>() {
                    Ok(lane) => wakeups.lane(lane).notify_one(),
                    Err(_) => wakeups.wake_all(),
                },
                // The connection dropped and was re-established: anything
                // notified in between is lost, so look at every lane.
                Ok(None) => {
                    tracing::info!("outbox listener reconnected; waking all lanes");
                    wakeups.wake_all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox listener failed; reconnecting");
                    wakeups.wake_all();
                    break;
                }
            }
        }
    }
}

/// Sleeps `d`; returns true if cancelled first.
pub(crate) async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
