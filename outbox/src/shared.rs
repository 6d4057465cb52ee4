//! [`Shared`]: what the relay's tasks share — pool, settings, the producer
//! (replaced when it fails fatally), wake-ups, metrics, the statement
//! coalescers and the topics' size limits. Lanes (`lane.rs`) and their
//! recorders (`record.rs`) use it; the relay (`relay.rs`) makes it.

use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use producers::{KafkaPublisher, ProducerConfig};
use sqlx::PgPool;

use crate::coalesce::Coalescer;
use crate::config::RelayConfig;
use crate::error::OutboxError;
use crate::metrics::Metrics;
use crate::store::{self, Batch, CursorMove, LaneRead};
use crate::topic_limits::TopicLimits;
use crate::wakeup::{MAX_LANES, Wakeups};

/// The relay's producer, replaced when it fails fatally.
pub(crate) struct Publishers {
    config: ProducerConfig,
    current: RwLock<Arc<KafkaPublisher>>,
}

impl Publishers {
    /// Starts with `first`, made from `config` (which makes replacements).
    pub(crate) fn new(config: ProducerConfig, first: KafkaPublisher) -> Self {
        Publishers { config, current: RwLock::new(Arc::new(first)) }
    }

    pub(crate) fn current(&self) -> Arc<KafkaPublisher> {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces `failed` with a new producer (unless another worker did).
    pub(crate) fn replace(&self, failed: &Arc<KafkaPublisher>) {
        let mut cur = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !Arc::ptr_eq(&cur, failed) {
            return;
        }
        match KafkaPublisher::new(&self.config) {
            Ok(p) => {
                tracing::warn!("outbox producer failed fatally; replaced it");
                *cur = Arc::new(p);
            }
            Err(e) => tracing::error!(error = %e, "outbox could not replace its failed producer"),
        }
    }
}

/// State shared by the relay's tasks.
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) config: RelayConfig,
    pub(crate) publishers: Publishers,
    pub(crate) wakeups: Arc<Wakeups>,
    pub(crate) metrics: Arc<Metrics>,
    /// Whether writers send the NOTIFY hint (refreshed every lease round);
    /// without it, lanes poll fast while rows keep coming.
    pub(crate) notified: AtomicBool,
    /// Lanes the live relays cannot hold (`lease::uncovered_lanes`), as last
    /// warned about.
    pub(crate) uncovered: AtomicI64,
    /// Lane reads; reads due together share one statement.
    pub(crate) reads: Coalescer<LaneRead, Result<Batch, OutboxError>>,
    /// Cursor moves without parking; moves due together share one statement.
    pub(crate) cursor_moves: Coalescer<CursorMove, Result<(), OutboxError>>,
    /// Origin of the grid of `trickle_interval` ticks that trickling lanes
    /// read on, so that their reads fall due together.
    pub(crate) grid: Instant,
    /// Topics' `max.message.bytes`, checked before a record is sent.
    pub(crate) topic_limits: TopicLimits,
}

impl Shared {
    /// Starts the statement coalescers; needs the tokio runtime.
    pub(crate) fn start(
        pool: PgPool,
        config: RelayConfig,
        publishers: Publishers,
        metrics: Arc<Metrics>,
        topic_limits: TopicLimits,
    ) -> Arc<Shared> {
        let reads = {
            let (pool, metrics, limit) = (pool.clone(), metrics.clone(), config.batch_size as i64);
            // Lanes due at one tick wake together: no need to wait for them.
            Coalescer::spawn(MAX_LANES, Duration::ZERO, move |asks: Vec<LaneRead>| {
                let (pool, metrics) = (pool.clone(), metrics.clone());
                async move {
                    metrics.record_read_statement();
                    store::fetch_lanes(&pool, &asks, limit).await
                }
            })
        };
        let cursor_moves = {
            let (pool, metrics, owner) = (pool.clone(), metrics.clone(), config.relay_id.clone());
            let lease_ms = i64::try_from(config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
            // Lanes do not wait for their moves (`record.rs`), so a move can
            // wait a whole tick (at most 10 ms) for the moves of the other
            // lanes' acks: the rows are out already, only the record and a
            // crash's resend window wait with it.
            let gather = config.trickle_interval.min(Duration::from_millis(10));
            Coalescer::spawn(MAX_LANES, gather, move |moves: Vec<CursorMove>| {
                let (pool, metrics, owner) = (pool.clone(), metrics.clone(), owner.clone());
                async move {
                    metrics.record_cursor_statement();
                    store::advance_lanes(&pool, &owner, &moves, lease_ms).await
                }
            })
        };
        Arc::new(Shared {
            pool,
            config,
            publishers,
            wakeups: Wakeups::new(),
            metrics,
            notified: AtomicBool::new(true),
            uncovered: AtomicI64::new(0),
            reads,
            cursor_moves,
            grid: Instant::now(),
            topic_limits,
        })
    }
}
