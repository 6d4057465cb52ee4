//! [`RelayConfig`]: the relay's settings, their defaults and validation.

use std::time::Duration;

use crate::error::OutboxError;

/// Settings of an [`OutboxRelay`](crate::OutboxRelay).
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
    /// raises a stall alarm (see [`LaneAlarm`](crate::LaneAlarm)): the lane, the row, the error
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

    #[test]
    fn default_relay_ids_are_unique() {
        assert_ne!(RelayConfig::default().relay_id, RelayConfig::default().relay_id);
    }
}
