//! Consumer configuration: a struct with defaults and validation; the raw
//! librdkafka settings stay reachable through [`ConsumerConfig::overrides`].

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::cleanup::InboxRetention;
use crate::retry::RetryPolicy;

/// Whether the runtime records events in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboxMode {
    /// Insert an inbox row in the handler's transaction and skip events
    /// already recorded: each event's effect is applied once.
    #[default]
    Enabled,
    /// No inbox: every delivery runs the handler, so redeliveries apply their
    /// effect again. Only for handlers that are idempotent by themselves, and
    /// for measuring the inbox's cost (the `inbox` benchmark).
    Disabled,
}

/// Everything a [`Consumer`](crate::Consumer) needs besides its handler, its
/// database pool and its dead-letter publisher.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `host:port[,host:port]`.
    pub bootstrap_servers: String,
    /// Kafka consumer group. Instances with the same group share partitions.
    pub group_id: String,
    /// Name under which events are recorded in the inbox. Two consumers that
    /// apply the same events to different effects need different names; by
    /// default (empty) it is the group id.
    pub consumer_name: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// librdkafka `client.id`, shown in broker logs.
    pub client_id: String,
    /// Where a group without a committed offset starts: `earliest` (default,
    /// nothing is skipped) or `latest`.
    pub auto_offset_reset: String,
    /// Inbox on (default) or off.
    pub inbox: InboxMode,
    /// Inbox cleanup, run beside the consumer while it runs (and stopped
    /// with it): rows older than the retention are deleted in batches. The
    /// default keeps 14 days, twice Kafka's default topic retention, so a
    /// replay of a whole topic is still recognised; see [`crate::cleanup`]
    /// for choosing it. `None` leaves cleanup to someone else (one consumer
    /// per database is enough; several running it is harmless).
    pub inbox_retention: Option<InboxRetention>,
    /// Retries of transient failures before a record is dead-lettered.
    pub retry: RetryPolicy,
    /// How often stored offsets are committed to Kafka. Offsets are also
    /// committed when partitions are revoked and at shutdown. `ZERO` commits
    /// (asynchronously) after every record. A longer interval only means more
    /// redeliveries after a crash, which the inbox skips.
    pub commit_interval: Duration,
    /// Transactions open at once over all partitions of the member. Keep it
    /// at or below the pool's `max_connections` (a worker waiting for a
    /// connection waits inside its attempt).
    pub max_in_flight: usize,
    /// Most records of one partition applied in one transaction (whatever
    /// has arrived, never waiting for more). 1 applies every record alone.
    pub max_batch: usize,
    /// Fetched records a partition's worker may have waiting before the
    /// partition is paused (resumed at half of it). Bounds memory and keeps
    /// the member polling while a partition retries.
    pub max_buffered: usize,
    /// Longest one attempt (transaction with the handler) may take; one
    /// that takes longer is rolled back and retried as transient.
    pub attempt_timeout: Duration,
    /// On revocation, how long a revoked partition's transaction in flight
    /// may still take before the partition is given up. The group's
    /// rebalance waits for this member at most that long.
    pub rebalance_grace: Duration,
    /// Longest wait between two tries of a dead-letter publish that fails
    /// (the partition is halted meanwhile; see [`crate::dead_letter`]).
    pub dead_letter_max_delay: Duration,
    /// On shutdown, how long the records being processed may still take.
    pub in_flight_grace: Duration,
    /// On shutdown, how long committing and leaving the group may take. The
    /// whole shutdown is bounded by `in_flight_grace + close_timeout`.
    pub close_timeout: Duration,
    /// librdkafka `group.instance.id`: static group membership. A member
    /// that restarts with the same id gets its partitions back at once,
    /// without a rebalance and without waiting out its old session; `None`
    /// joins dynamically (a restart waits for the dead member's session to
    /// expire). Stable per replica and unique in the group: a second live
    /// member with the same id fences the first, which then stops with
    /// [`ConsumerError::Fatal`](crate::ConsumerError::Fatal). See
    /// [`instance_id_for`].
    pub group_instance_id: Option<String>,
    /// librdkafka `session.timeout.ms`: how long the group waits for a
    /// member that stopped heartbeating before its partitions move to
    /// another member. With a [`group_instance_id`](Self::group_instance_id)
    /// a restarted member does not wait for it, so it only bounds a member
    /// that is gone for good or cut off. 20 s (Kafka's default is 45 s):
    /// six heartbeats (every 3 s) plus a broker failover of a few seconds
    /// fit in it, so a leader change or a long GC pause does not cost a
    /// rebalance.
    pub session_timeout: Duration,
    /// librdkafka `max.poll.interval.ms`: a member that does not poll for this
    /// long leaves the group; it is also how long a rebalance waits for the
    /// members to rejoin. The runtime polls on its own thread, whatever the
    /// workers do, so retries never approach it; `rebalance_grace` must
    /// stay below it.
    pub max_poll_interval: Duration,
    /// librdkafka settings of the connection (security), given to the
    /// consumer and to its dead-letter producer alike; see
    /// [`ConsumerConfig::with_connection`].
    pub connection: Vec<(String, String)>,
    /// Raw librdkafka settings of the consumer alone, applied last (tuning).
    pub overrides: Vec<(String, String)>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: String::new(),
            consumer_name: String::new(),
            topics: Vec::new(),
            client_id: "saga-consumer".into(),
            auto_offset_reset: "earliest".into(),
            inbox: InboxMode::Enabled,
            inbox_retention: Some(InboxRetention::default()),
            retry: RetryPolicy::default(),
            commit_interval: Duration::from_secs(1),
            max_in_flight: 8,
            max_batch: 64,
            max_buffered: 1_000,
            attempt_timeout: Duration::from_secs(30),
            rebalance_grace: Duration::from_secs(5),
            dead_letter_max_delay: Duration::from_secs(30),
            in_flight_grace: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            group_instance_id: None,
            session_timeout: Duration::from_secs(20),
            max_poll_interval: Duration::from_secs(300),
            connection: Vec::new(),
            overrides: Vec::new(),
        }
    }
}

impl ConsumerConfig {
    /// A default configuration for `group_id` reading `topics`.
    pub fn new(bootstrap_servers: impl Into<String>, group_id: impl Into<String>, topics: &[&str]) -> Self {
        ConsumerConfig {
            bootstrap_servers: bootstrap_servers.into(),
            group_id: group_id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    /// What a service binary runs with: `kafka`'s connection, client id
    /// `service`, and static membership with [`instance_id_for`]`(service)`.
    pub fn for_service(
        service: &str,
        kafka: &producers::KafkaConnection,
        group_id: impl Into<String>,
        topics: &[&str],
    ) -> Result<Self, producers::ConnectionError> {
        let config = ConsumerConfig {
            client_id: service.to_owned(),
            group_instance_id: instance_id_for(service),
            ..ConsumerConfig::new("", group_id, topics)
        };
        config.with_connection(kafka)
    }

    /// Takes bootstrap servers and connection properties from `kafka`.
    pub fn with_connection(
        mut self,
        kafka: &producers::KafkaConnection,
    ) -> Result<Self, producers::ConnectionError> {
        self.bootstrap_servers = kafka.bootstrap_servers.clone();
        self.connection = kafka.resolved_properties()?;
        Ok(self)
    }

    /// The inbox name: [`consumer_name`](Self::consumer_name), or the group
    /// id when it is empty.
    pub fn inbox_name(&self) -> &str {
        if self.consumer_name.is_empty() { &self.group_id } else { &self.consumer_name }
    }

    /// Checks the settings that would otherwise fail late or silently.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err("bootstrap_servers is empty".into());
        }
        if self.group_id.trim().is_empty() {
            return Err("group_id is empty".into());
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err("topics must be a non-empty list of topic names".into());
        }
        if let Some(t) = self.topics.iter().find(|t| t.ends_with(events::topics::DLQ_SUFFIX)) {
            return Err(format!(
                "topic `{t}` is a dead-letter topic; its failures would go to `{t}{}`",
                events::topics::DLQ_SUFFIX
            ));
        }
        if self.group_instance_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err("group_instance_id is empty (use None for dynamic membership)".into());
        }
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(format!(
                "auto_offset_reset must be `earliest` or `latest`, got `{}`",
                self.auto_offset_reset
            ));
        }
        self.retry.validate()?;
        if let Some(retention) = &self.inbox_retention {
            retention.validate()?;
        }
        for (name, value) in [
            ("max_in_flight", self.max_in_flight),
            ("max_batch", self.max_batch),
            ("max_buffered", self.max_buffered),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.attempt_timeout.is_zero() {
            return Err("attempt_timeout must be positive".into());
        }
        // What the group tolerates: a rebalance waits at most
        // max.poll.interval.ms for this member to rejoin, and the
        // revocation callback holds the member for up to rebalance_grace
        // (plus a margin for the workers' last reports).
        if self.rebalance_grace + Duration::from_secs(1) >= self.max_poll_interval {
            return Err(format!(
                "rebalance_grace ({:?}) plus 1 s must stay below max_poll_interval ({:?}): \
                 the group's rebalance would not wait for this member",
                self.rebalance_grace, self.max_poll_interval
            ));
        }
        // A record holds its partition for at most attempts x timeout +
        // backoff (worst_case_hold) before it is dead-lettered. The member
        // keeps polling meanwhile (the partition is paused, not the member),
        // so the group tolerates any hold. What it does not tolerate is one
        // attempt longer than a rebalance may wait: refuse that.
        if self.attempt_timeout >= self.max_poll_interval {
            return Err(format!(
                "attempt_timeout ({:?}) must stay below max_poll_interval ({:?})",
                self.attempt_timeout, self.max_poll_interval
            ));
        }
        Ok(())
    }

    /// Longest one record can hold its partition before it is
    /// dead-lettered: `max_attempts × attempt_timeout` plus the longest
    /// backoff between them (logged at start).
    pub fn worst_case_hold(&self) -> Duration {
        self.retry.worst_case_hold(self.attempt_timeout)
    }

    /// The librdkafka configuration: the connection, manual offset store
    /// and commit, the group, timeouts, then [`overrides`](Self::overrides).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.connection {
            c.set(k, v);
        }
        if let Some(id) = &self.group_instance_id {
            c.set("group.instance.id", id);
        }
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", &self.group_id)
            .set("client.id", &self.client_id)
            // Offsets are stored by the runtime after the database commit and
            // committed by it; nothing is committed behind its back.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &self.auto_offset_reset)
            .set("session.timeout.ms", millis(self.session_timeout))
            .set("max.poll.interval.ms", millis(self.max_poll_interval));
        for (k, v) in &self.overrides {
            c.set(k, v);
        }
        c
    }
}

/// The `group.instance.id` a service's replica uses: the environment
/// variable `KAFKA_GROUP_INSTANCE_ID` when set (empty: dynamic membership),
/// otherwise `<service>-<hostname>`. One replica per host needs nothing
/// more (a container's hostname is its own); replicas sharing a host must
/// each set the variable.
pub fn instance_id_for(service: &str) -> Option<String> {
    instance_id_from(service, std::env::var("KAFKA_GROUP_INSTANCE_ID").ok(), hostname())
}

fn instance_id_from(service: &str, set: Option<String>, host: Option<String>) -> Option<String> {
    match set {
        Some(id) if id.trim().is_empty() => None,
        Some(id) => Some(id),
        None => Some(match host {
            Some(h) => format!("{service}-{h}"),
            None => service.to_owned(),
        }),
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ConsumerConfig {
        ConsumerConfig::new("127.0.0.1:9092", "inventory", &["inventory.commands"])
    }

    #[test]
    fn defaults_are_valid_once_group_and_topics_are_set() {
        assert_eq!(valid().validate(), Ok(()));
        assert!(ConsumerConfig::default().validate().is_err());
        assert_eq!(valid().inbox_name(), "inventory");
        let named = ConsumerConfig { consumer_name: "inventory-v2".into(), ..valid() };
        assert_eq!(named.inbox_name(), "inventory-v2");
    }

    #[test]
    fn rejects_dlq_topics_bad_reset_and_graces_the_group_would_not_wait_for() {
        let dlq = ConsumerConfig { topics: vec!["inventory.commands.dlq".into()], ..valid() };
        assert!(dlq.validate().is_err());
        let reset = ConsumerConfig { auto_offset_reset: "smallest-ish".into(), ..valid() };
        assert!(reset.validate().is_err());
        let slow_rebalance = ConsumerConfig { rebalance_grace: Duration::from_secs(300), ..valid() };
        let err = slow_rebalance.validate().expect_err("grace too long");
        assert!(err.contains("rebalance_grace") && err.contains("max_poll_interval"), "{err}");
        let slow_attempt = ConsumerConfig { attempt_timeout: Duration::from_secs(301), ..valid() };
        assert!(slow_attempt.validate().expect_err("attempt too long").contains("attempt_timeout"));
        let zero = ConsumerConfig { attempt_timeout: Duration::ZERO, ..valid() };
        assert!(zero.validate().is_err());
        for bad in [
            ConsumerConfig { max_in_flight: 0, ..valid() },
            ConsumerConfig { max_batch: 0, ..valid() },
            ConsumerConfig { max_buffered: 0, ..valid() },
        ] {
            assert!(bad.validate().expect_err("zero").contains("at least 1"));
        }
        // A patient retry policy is fine: the member keeps polling.
        let patient = ConsumerConfig {
            retry: RetryPolicy {
                max_attempts: 100,
                max_delay: Duration::from_secs(60),
                ..RetryPolicy::default()
            },
            ..valid()
        };
        assert_eq!(patient.validate(), Ok(()));
        assert!(patient.worst_case_hold() > Duration::from_secs(100 * 30));
    }

    #[test]
    fn instance_ids_are_per_host_unless_set() {
        assert_eq!(instance_id_from("inv", None, Some("h1".into())).as_deref(), Some("inv-h1"));
        assert_eq!(
            instance_id_from("inv", Some("inv-2".into()), Some("h1".into())).as_deref(),
            Some("inv-2")
        );
        assert_eq!(instance_id_from("inv", Some(" ".into()), Some("h1".into())), None);
        let cfg = ConsumerConfig { group_instance_id: Some("inv-h1".into()), ..valid() };
        assert_eq!(cfg.client_config().get("group.instance.id"), Some("inv-h1"));
        assert_eq!(valid().client_config().get("group.instance.id"), None);
        assert!(ConsumerConfig { group_instance_id: Some("".into()), ..valid() }.validate().is_err());
    }

    #[test]
    fn connection_properties_reach_the_consumer_and_overrides_still_win() {
        let kafka = producers::KafkaConnection::new("b:1")
            .with_property("security.protocol", "SASL_SSL")
            .with_property("session.timeout.ms", "9000");
        let mut cfg = valid().with_connection(&kafka).expect("connection");
        assert_eq!(cfg.client_config().get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(cfg.client_config().get("bootstrap.servers"), Some("b:1"));
        // The consumer's own setting is applied after the connection's.
        assert_eq!(cfg.client_config().get("session.timeout.ms"), Some("20000"));
        cfg.overrides.push(("session.timeout.ms".into(), "6000".into()));
        assert_eq!(cfg.client_config().get("session.timeout.ms"), Some("6000"));
    }

    #[test]
    fn commits_are_manual_and_overrides_win() {
        let mut cfg = valid();
        cfg.overrides.push(("session.timeout.ms".into(), "6000".into()));
        let c = cfg.client_config();
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("group.id"), Some("inventory"));
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        assert_eq!(c.get("max.poll.interval.ms"), Some("300000"));
    }
}
