//! [`OutboxRelay`]: the process-level loop. It registers the relay, keeps its
//! fair share of lane leases (renewing, taking over expired lanes, handing
//! back surplus ones), runs one worker per held lane (see `lane.rs`), the
//! LISTEN wake-ups, the metrics report and the cleanup, and shuts all of it
//! down on a [`CancellationToken`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use producers::{KafkaPublisher, ProducerConfig};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alarm::LaneAlarm;
use crate::config::RelayConfig;
use crate::error::OutboxError;
use crate::lane::{self, Lane};
use crate::lease::{self, LaneLease};
use crate::lease_clock::LeaseClock;
use crate::metrics::{self, Delivery, Metrics, RelayStats};
use crate::shared::{Publishers, Shared};
use crate::topic_limits::TopicLimits;
use crate::wakeup::{self, sleep_or_cancel};
use crate::{cleanup, migrate, producer_settings, rebase};

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
            publishers: Publishers::new(producer, publisher),
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
        let OutboxRelay { pool, config, publishers, metrics, topic_limits } = self;
        let shared = Shared::start(pool, config, publishers, metrics, topic_limits);
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
}
