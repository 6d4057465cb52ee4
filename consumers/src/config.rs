//! Consumer configuration: a struct with defaults and validation; the raw
//! librdkafka settings stay reachable through [`ConsumerConfig::overrides`].

use std::time::Duration;

use rdkafka::ClientConfig;

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
    /// Retries of transient failures before a record is dead-lettered.
    pub retry: RetryPolicy,
    /// How often stored offsets are committed to Kafka. Offsets are also
    /// committed when partitions are revoked and at shutdown. `ZERO` commits
    /// (asynchronously) after every record. A longer interval only means more
    /// redeliveries after a crash, which the inbox skips.
    pub commit_interval: Duration,
    /// On shutdown, how long the record being processed may still take.
    pub in_flight_grace: Duration,
    /// On shutdown, how long committing and leaving the group may take. The
    /// whole shutdown is bounded by `in_flight_grace + close_timeout`.
    pub close_timeout: Duration,
    /// librdkafka `session.timeout.ms`: how soon a crashed member's
    /// partitions move to another member. The default is Kafka's, 45 s. Do
    /// not go much lower without measuring: a broker busy serving a large
    /// fetch may answer heartbeats late (tansu's SQLite engine took 28 s for
    /// a first fetch of 5,000 records, and a 6 s session expired over and
    /// over, discarding each fetch and never consuming anything).
    pub session_timeout: Duration,
    /// librdkafka `max.poll.interval.ms`: a member that does not poll for this
    /// long leaves the group. Must exceed the worst-case retry time.
    pub max_poll_interval: Duration,
    /// Raw librdkafka settings applied last (security, tuning).
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
            retry: RetryPolicy::default(),
            commit_interval: Duration::from_secs(1),
            in_flight_grace: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(45),
            max_poll_interval: Duration::from_secs(300),
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
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(format!(
                "auto_offset_reset must be `earliest` or `latest`, got `{}`",
                self.auto_offset_reset
            ));
        }
        self.retry.validate()?;
        let worst = self.retry.worst_case_delay();
        if worst >= self.max_poll_interval {
            return Err(format!(
                "the retry policy may wait {worst:?} in total, not below max_poll_interval ({:?}): \
                 the consumer would be evicted from its group while retrying",
                self.max_poll_interval
            ));
        }
        Ok(())
    }

    /// The librdkafka configuration: manual offset store and commit, the
    /// group, timeouts, then [`overrides`](Self::overrides).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
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
    fn rejects_dlq_topics_bad_reset_and_retry_longer_than_poll_interval() {
        let dlq = ConsumerConfig { topics: vec!["inventory.commands.dlq".into()], ..valid() };
        assert!(dlq.validate().is_err());
        let reset = ConsumerConfig { auto_offset_reset: "smallest-ish".into(), ..valid() };
        assert!(reset.validate().is_err());
        let patient = ConsumerConfig {
            retry: RetryPolicy {
                max_attempts: 100,
                max_delay: Duration::from_secs(60),
                ..RetryPolicy::default()
            },
            ..valid()
        };
        let err = patient.validate().expect_err("retries too long");
        assert!(err.contains("max_poll_interval"), "{err}");
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
