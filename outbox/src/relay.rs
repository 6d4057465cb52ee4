//! [`OutboxRelay`]: the process-level loop. It registers the relay, keeps its
//! fair share of lane leases (renewing, taking over expired lanes, handing
//! back surplus ones), runs one worker per held lane (see `lane.rs`), the
//! LISTEN wake-ups, the metrics report and the cleanup, and shuts all of it
//! down on a [`CancellationToken`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use producers::{KafkaPublisher, ProducerConfig};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alarm::LaneAlarm;
use crate::coalesce::Coalescer;
use crate::error::OutboxError;
use crate::lane::{self, Lane, LeaseClock};
use crate::lease::{self, LaneLease};
use crate::metrics::{self, Delivery, Metrics, RelayStats};
use crate::store::{self, Batch, CursorMove, LaneRead};
use crate::topic_limits::TopicLimits;
use crate::wakeup::{self, MAX_LANES, Wakeups, sleep_or_cancel};
use crate::{cleanup, migrate, producer_settings, rebase};

/// Settings of an [`OutboxRelay`].
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Unique id of this relay process (lease owner). Default: host, pid and a
    /// random suffix.
    pub relay_id: String,
    /// Rows per batch.
    pub batch_size: usize,
    /// Batches per lane handed to the producer and not yet recorded (not
    /// acked, or acked with the cursor write on its way): what a crash can
    /// send twice. At 1 a lane waits for each cursor write (which gathers
    /// company for up to a `trickle_interval`) before it reads again.
    pub pipeline_depth: usize,
    /// Unless it works off a backlog (its last read filled a batch), a lane
    /// reads only on the ticks of a grid of this interval shared by the
    /// relay's lanes, at most once per tick: rows that commit meanwhile go
    /// out together, so a steady stream costs fewer reads, sends and cursor
    /// writes, and the lanes' reads and cursor moves share statements. At
    /// most this much (half on average) is added to a row's latency.
    pub trickle_interval: Duration,
    /// Longest polling interval: an idle lane looks for rows this often
    /// when no notification arrives.
    pub poll_interval: Duration,
    /// Shortest polling interval: while committed rows wait for the
    /// watermark (an older transaction, maybe in another lane, is still open;
    /// its commit does not notify this lane), doubling while they wait. With
    /// enqueue's NOTIFY off ([`crate::set_notify`]) polling is what finds
    /// rows: a lane that found rows reads at every `trickle_interval` tick
    /// for 20 more ticks, then polls from this interval, doubling up to
    /// `poll_interval` while it finds none.
    pub watermark_poll_interval: Duration,
    /// Lease duration; a killed relay's lanes are taken over after this.
    pub lease_ttl: Duration,
    /// Total number of lanes to configure at start (`None`: keep the current
    /// setting). Changing it needs every relay stopped and the outbox drained.
    pub lanes: Option<i32>,
    /// Most lanes this relay holds at once (`None`: its fair share).
    pub max_lanes: Option<usize>,
    /// How long published rows are kept before cleanup deletes them.
    pub retention: Duration,
    /// How often cleanup runs (`Duration::ZERO` disables it).
    pub cleanup_interval: Duration,
    /// Rows deleted per cleanup statement.
    pub cleanup_batch: i64,
    /// How often the metrics report is logged (`Duration::ZERO` disables it).
    pub metrics_interval: Duration,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How often an idle lane moves its cursor up to the watermark.
    pub idle_advance_interval: Duration,
    /// How long a lane waits for a batch's delivery reports before it
    /// raises a stall alarm (see [`LaneAlarm`]): the lane, the row, the error
    /// (if any) and since when, logged and measured.
    pub stall_after: Duration,
    /// How long shutdown waits for in-flight deliveries.
    pub shutdown_grace: Duration,
    /// Whether to run the migrations at start.
    pub migrate: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            relay_id: default_relay_id(),
            batch_size: 1000,
            pipeline_depth: 4,
            trickle_interval: Duration::from_millis(5),
            poll_interval: Duration::from_millis(500),
            watermark_poll_interval: Duration::from_millis(5),
            lease_ttl: Duration::from_secs(10),
            lanes: None,
            max_lanes: None,
            retention: Duration::from_secs(3600),
            cleanup_interval: Duration::from_secs(30),
            cleanup_batch: 1000,
            metrics_interval: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            idle_advance_interval: Duration::from_secs(5),
            stall_after: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            migrate: true,
        }
    }
}

fn default_relay_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "relay".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

impl RelayConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), OutboxError> {
        let bad = |m: &str| Err(OutboxError::InvalidConfig(m.to_owned()));
        if self.relay_id.is_empty() {
            return bad("relay_id is empty");
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return bad("batch_size must be 1..=100000");
        }
        if self.pipeline_depth == 0 || self.pipeline_depth > 64 {
            return bad("pipeline_depth must be 1..=64");
        }
        if self.lease_ttl < Duration::from_millis(500) {
            return bad("lease_ttl must be at least 500 ms");
        }
        if self.poll_interval.is_zero() || self.watermark_poll_interval.is_zero() {
            return bad("poll intervals must be positive");
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return bad("need 0 < backoff_min <= backoff_max");
        }
        if self.stall_after.is_zero() {
            return bad("stall_after must be positive");
        }
        if self.cleanup_batch <= 0 {
            return bad("cleanup_batch must be positive");
        }
        Ok(())
    }
}

/// The relay's producer, replaced when it fails fatally.
pub(crate) struct Publishers {
    config: ProducerConfig,
    current: RwLock<Arc<KafkaPublisher>>,
}

impl Publishers {
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
    fn start(relay: OutboxRelay) -> Arc<Shared> {
        let OutboxRelay { pool, config, publishers, metrics, topic_limits } = relay;
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

/// Publishes committed outbox rows to Kafka. See the crate docs for the
/// guarantees.
pub struct OutboxRelay {
    pool: PgPool,
    config: RelayConfig,
    publishers: Publishers,
    metrics: Arc<Metrics>,
    topic_limits: TopicLimits,
}

/// A cheap handle to read a running relay's totals.
#[derive(Clone)]
pub struct StatsHandle(Arc<Metrics>);

impl StatsHandle {
    /// Totals since the relay started.
    pub fn get(&self) -> RelayStats {
        self.0.stats()
    }

    /// Takes the rows delivered since the last call, with their event ids and
    /// ack times (the periodic metrics report drains them too; disable it with
    /// `metrics_interval = 0` when reading them here). A benchmark or test
    /// matches them to its own commit times by event id.
    pub fn drain_deliveries(&self) -> Vec<Delivery> {
        self.0.drain_deliveries()
    }

    /// Lanes that do not publish right now, and why (see [`LaneAlarm`]).
    pub fn alarms(&self) -> Vec<LaneAlarm> {
        self.0.alarms.current()
    }
}

struct Worker {
    epoch: i64,
    clock: Arc<LeaseClock>,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), OutboxError>>,
}

impl OutboxRelay {
    /// A relay over `pool` publishing with a producer built from `producer`.
    ///
    /// The producer never times a record out (`message.timeout.ms=0`):
    /// librdkafka retries until the broker takes it, so a record can neither
    /// be dropped nor overtaken by a later record of its key after a timeout.
    /// Overrides that would let librdkafka fail a record and still deliver
    /// a later one of its key (a timeout, fewer retries, more than 5 requests
    /// in flight, ...) are refused with [`OutboxError::InvalidConfig`] naming
    /// the setting (see `producer_settings.rs`).
    pub fn new(pool: PgPool, producer: ProducerConfig, config: RelayConfig) -> Result<Self, OutboxError> {
        config.validate()?;
        let producer = producer_settings::for_relay(producer)?;
        let publisher = KafkaPublisher::new(&producer).map_err(OutboxError::CreatePublisher)?;
        // Without an admin client no size is checked before sending; the
        // broker's refusal still parks an oversized record.
        let admin = producer.client_config().ok().and_then(|c| match c.create() {
            Ok(admin) => Some(admin),
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay cannot read topic size limits");
                None
            }
        });
        Ok(OutboxRelay {
            pool,
            config,
            topic_limits: TopicLimits::new(admin),
            publishers: Publishers { config: producer, current: RwLock::new(Arc::new(publisher)) },
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// This relay's id (its lease owner name).
    pub fn relay_id(&self) -> &str {
        &self.config.relay_id
    }

    /// A handle to the relay's totals, usable while it runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.metrics.clone())
    }

    /// Runs until `cancel` fires, then stops every lane (in-flight batches get
    /// `shutdown_grace` to finish), releases its leases and returns.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), OutboxError> {
        let shared = Shared::start(self);
        let cfg = &shared.config;
        if cfg.migrate {
            migrate(&shared.pool).await?;
        }
        if let Some(n) = cfg.lanes {
            lease::configure_lanes(&shared.pool, n).await?;
        }
        let ahead = rebase::positions_ahead(&shared.pool).await?;
        if !ahead.is_empty() {
            let found = ahead.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            tracing::error!(
                relay = %cfg.relay_id,
                %found,
                gauge.outbox_positions_ahead = ahead.len() as u64,
                "outbox relay not started: {}",
                rebase::RECOVERY
            );
            return Err(OutboxError::PositionsAhead { found });
        }
        let background = cancel.child_token();
        let mut tasks = vec![tokio::spawn(wakeup::listen(
            shared.pool.clone(),
            shared.wakeups.clone(),
            background.clone(),
        ))];
        if !cfg.metrics_interval.is_zero() {
            tasks.push(tokio::spawn(metrics::report(
                shared.pool.clone(),
                shared.metrics.clone(),
                cfg.metrics_interval,
                background.clone(),
            )));
        }
        if !cfg.cleanup_interval.is_zero() {
            tasks.push(tokio::spawn(cleanup::run(
                shared.pool.clone(),
                cfg.retention,
                cfg.cleanup_batch,
                cfg.cleanup_interval,
                background.clone(),
            )));
        }
        tracing::info!(relay = %cfg.relay_id, "outbox relay started");

        let base = Instant::now();
        let mut workers = Workers::default();
        let tick = cfg.lease_ttl / 3;
        loop {
            if let Err(e) = manage(&shared, &mut workers, base).await {
                tracing::warn!(error = %e, "outbox lease management failed; retrying");
            }
            if sleep_or_cancel(tick, &cancel).await {
                break;
            }
        }

        let mut all = std::mem::take(&mut workers.running);
        all.append(&mut workers.stopping);
        for w in all.values() {
            w.stop.cancel();
        }
        for (lane, w) in all {
            let stopped = matches!(w.handle.await, Ok(Ok(())));
            if stopped && let Err(e) = lease::release(&shared.pool, &cfg.relay_id, lane, w.epoch).await {
                tracing::warn!(lane, error = %e, "could not release lane; it frees itself when the lease expires");
            }
        }
        background.cancel();
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = lease::deregister(&shared.pool, &cfg.relay_id).await {
            tracing::warn!(error = %e, "could not deregister the relay");
        }
        tracing::info!(relay = %cfg.relay_id, "outbox relay stopped");
        Ok(())
    }
}

/// The relay's lane workers: those that run, and surplus ones handed back
/// that are finishing their batches in flight. A stopping worker keeps its
/// lease renewed until it has stopped, then the lane is released; the lease
/// rounds never wait for it, so no other lane's lease runs out meanwhile.
#[derive(Default)]
struct Workers {
    running: BTreeMap<i32, Worker>,
    stopping: BTreeMap<i32, Worker>,
}

/// One lease-management round: heartbeat, renew, reap, rebalance.
async fn manage(shared: &Arc<Shared>, workers: &mut Workers, base: Instant) -> Result<(), OutboxError> {
    let cfg = &shared.config;
    lease::heartbeat(&shared.pool, &cfg.relay_id, cfg.lease_ttl).await?;

    // Workers that ended on their own (lease lost, or halted and stopped)
    // are forgotten.
    let finished: Vec<i32> =
        workers.running.iter().filter(|(_, w)| w.handle.is_finished()).map(|(l, _)| *l).collect();
    for lane in finished {
        if let Some(w) = workers.running.remove(&lane) {
            match w.handle.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(lane, error = %e, "lane worker ended"),
                Err(e) => tracing::error!(lane, error = %e, "lane worker panicked"),
            }
        }
    }
    // Handed-back workers that have stopped give their lane back.
    let stopped: Vec<i32> =
        workers.stopping.iter().filter(|(_, w)| w.handle.is_finished()).map(|(l, _)| *l).collect();
    for lane in stopped {
        if let Some(w) = workers.stopping.remove(&lane)
            && matches!(w.handle.await, Ok(Ok(())))
        {
            lease::release(&shared.pool, &cfg.relay_id, lane, w.epoch).await?;
            tracing::info!(lane, "lane handed back");
        }
    }

    let asked = Instant::now();
    let held: Vec<(i32, i64)> =
        workers.running.iter().chain(&workers.stopping).map(|(l, w)| (*l, w.epoch)).collect();
    let kept = lease::renew(&shared.pool, &cfg.relay_id, &held, cfg.lease_ttl).await?;
    for (lane, w) in workers.running.iter().chain(&workers.stopping) {
        if kept.contains(lane) {
            w.clock.extend(asked, cfg.lease_ttl);
        } else {
            tracing::warn!(lane, "lease lost; stopping the lane");
            w.stop.cancel();
        }
    }
    workers.running.retain(|lane, _| kept.contains(lane));
    workers.stopping.retain(|lane, _| kept.contains(lane));

    let census = lease::census(&shared.pool, cfg.lease_ttl).await?;
    shared.notified.store(census.notify, Ordering::Relaxed);
    let share = lease::fair_share(census.lanes, census.relays, cfg.max_lanes);
    let uncovered = lease::uncovered_lanes(census.lanes, census.relays, cfg.max_lanes);
    if uncovered != shared.uncovered.swap(uncovered, Ordering::Relaxed) && uncovered > 0 {
        tracing::warn!(
            lanes = census.lanes,
            relays = census.relays,
            max_lanes = cfg.max_lanes,
            uncovered,
            gauge.outbox_uncovered_lanes = uncovered,
            "outbox has more lanes than its relays may hold (relays x max_lanes): {uncovered} lane(s) are \
             published by nobody; run more relays, raise max_lanes or configure fewer lanes"
        );
    }
    let held = workers.running.len() + workers.stopping.len();
    if held < share {
        let asked = Instant::now();
        for l in lease::acquire(&shared.pool, &cfg.relay_id, share - held, cfg.lease_ttl).await? {
            spawn(shared, &mut workers.running, l, base, asked);
        }
    } else if workers.running.len() > share {
        // Hand back the surplus (highest lanes first) so others can take
        // them: stop them all at once, without waiting here.
        let surplus: Vec<i32> =
            workers.running.keys().rev().take(workers.running.len() - share).copied().collect();
        for lane in surplus {
            if let Some(w) = workers.running.remove(&lane) {
                w.stop.cancel();
                tracing::info!(lane, share, "handing the lane back");
                workers.stopping.insert(lane, w);
            }
        }
    }
    Ok(())
}

fn spawn(
    shared: &Arc<Shared>,
    workers: &mut BTreeMap<i32, Worker>,
    l: LaneLease,
    base: Instant,
    asked: Instant,
) {
    let clock = Arc::new(LeaseClock::new(base));
    clock.extend(asked, shared.config.lease_ttl);
    let stop = CancellationToken::new();
    let lane = Lane { lease: l, clock: clock.clone(), stop: stop.clone() };
    let handle = tokio::spawn(lane::run(shared.clone(), lane));
    // A fresh lane looks for rows at its first tick.
    shared.wakeups.lane(l.lane).notify_one();
    workers.insert(l.lane, Worker { epoch: l.epoch, clock, stop, handle });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_nonsense_is_refused() {
        assert!(RelayConfig::default().validate().is_ok());
        let bad = [
            RelayConfig { batch_size: 0, ..Default::default() },
            RelayConfig { pipeline_depth: 0, ..Default::default() },
            RelayConfig { lease_ttl: Duration::from_millis(10), ..Default::default() },
            RelayConfig { relay_id: String::new(), ..Default::default() },
            RelayConfig {
                backoff_min: Duration::from_secs(5),
                backoff_max: Duration::from_secs(1),
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(OutboxError::InvalidConfig(_))), "{c:?}");
        }
    }

    /// Overrides that let librdkafka fail a record and deliver a later one
    /// of its key are refused, with a message naming the setting.
    #[tokio::test]
    async fn new_refuses_producer_settings_that_can_open_a_gap() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://relay@127.0.0.1:1/none")
            .expect("lazy pool");
        let refused = [
            ("message.timeout.ms", "30000"),
            ("delivery.timeout.ms", "120000"),
            ("retries", "3"),
            ("message.send.max.retries", "0"),
            ("max.in.flight.requests.per.connection", "6"),
            ("max.in.flight", "100"),
            ("enable.gapless.guarantee", "false"),
            (" Message.Timeout.Ms ", "5"),
        ];
        for (k, v) in refused {
            let producer = ProducerConfig::new("127.0.0.1:9").with_override(k, v);
            let made = OutboxRelay::new(pool.clone(), producer, RelayConfig::default());
            match made {
                Err(OutboxError::InvalidConfig(m)) => {
                    assert!(m.contains(&k.trim().to_ascii_lowercase()), "{k}: {m}")
                }
                Err(e) => panic!("{k}={v}: wrong error {e}"),
                Ok(_) => panic!("{k}={v} was accepted"),
            }
        }
        let allowed = [
            ("message.timeout.ms", "0"),
            ("delivery.timeout.ms", "0"),
            ("max.in.flight.requests.per.connection", "5"),
            ("max.in.flight", "1"),
            ("retries", "2147483647"),
            ("enable.gapless.guarantee", "true"),
            ("linger.ms", "20"),
        ];
        for (k, v) in allowed {
            let producer = ProducerConfig::new("127.0.0.1:9").with_override(k, v);
            let made = OutboxRelay::new(pool.clone(), producer, RelayConfig::default());
            assert!(made.is_ok(), "{k}={v} refused: {:?}", made.err());
        }
    }

    #[test]
    fn default_relay_ids_are_unique() {
        assert_ne!(RelayConfig::default().relay_id, RelayConfig::default().relay_id);
    }
}
