//! [`ProducerConfig`]: the few settings callers choose, plus raw librdkafka
//! overrides. The delivery guarantees are not negotiable: the producer is
//! always idempotent with `acks=all` (see [`ProducerConfig::client_config`]).

use rdkafka::ClientConfig;

use crate::error::PublishError;

/// Settings that the producer enforces whatever the overrides say.
pub const ENFORCED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// Settings of a [`crate::KafkaPublisher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Comma-separated `host:port` list, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// `client.id`, shown in broker logs and metrics.
    pub client_id: String,
    /// `linger.ms`: how long librdkafka waits to fill a batch. Small values
    /// favour latency, larger ones throughput.
    pub linger_ms: u32,
    /// Raw librdkafka settings applied after the defaults above (security,
    /// tuning: `message.timeout.ms`, `batch.num.messages`, ...). Overrides of
    /// `enable.idempotence` or `acks` are rejected by
    /// [`ProducerConfig::client_config`].
    pub overrides: Vec<(String, String)>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            client_id: "saga-producer".to_owned(),
            linger_ms: 5,
            overrides: Vec::new(),
        }
    }
}

impl ProducerConfig {
    /// A config for `bootstrap_servers` with the defaults otherwise.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        ProducerConfig { bootstrap_servers: bootstrap_servers.into(), ..Default::default() }
    }

    /// A config for `connection`: its bootstrap servers, its properties as
    /// overrides, the defaults otherwise.
    pub fn from_connection(connection: &crate::KafkaConnection) -> Result<Self, crate::ConnectionError> {
        Ok(ProducerConfig {
            bootstrap_servers: connection.bootstrap_servers.clone(),
            overrides: connection.resolved_properties()?,
            ..Default::default()
        })
    }

    /// Adds a raw librdkafka setting (builder style).
    pub fn with_override(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Checks the settings without connecting.
    pub fn validate(&self) -> Result<(), PublishError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(PublishError::InvalidConfig("bootstrap_servers is empty".into()));
        }
        for (key, value) in &self.overrides {
            if let Some((_, enforced)) = ENFORCED.iter().find(|(k, _)| k == key) {
                // `acks=-1` is the same as `acks=all`; anything else weakens the guarantee.
                let same = value == enforced || (key == "acks" && value == "-1");
                if !same {
                    return Err(PublishError::InvalidConfig(format!(
                        "`{key}={value}` would weaken delivery guarantees (`{key}` is always `{enforced}`)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The librdkafka configuration: defaults, then overrides, then the
    /// enforced guarantees.
    pub fn client_config(&self) -> Result<ClientConfig, PublishError> {
        self.validate()?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            .set("linger.ms", self.linger_ms.to_string())
            // Idempotence requires <= 5; librdkafka keeps order up to 5 with idempotence on.
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", "none");
        for (k, v) in &self.overrides {
            c.set(k, v);
        }
        for (k, v) in ENFORCED {
            c.set(*k, *v);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarantees_are_enforced_after_overrides() {
        let c = ProducerConfig::new("h:1").with_override("linger.ms", "50").client_config();
        let c = c.expect("valid config");
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("linger.ms"), Some("50"));
    }

    #[test]
    fn weakening_overrides_are_rejected() {
        let err = ProducerConfig::new("h:1").with_override("acks", "1").validate();
        assert!(matches!(err, Err(PublishError::InvalidConfig(_))));
        let err = ProducerConfig::new("h:1").with_override("enable.idempotence", "false").validate();
        assert!(matches!(err, Err(PublishError::InvalidConfig(_))));
        assert!(ProducerConfig::new("h:1").with_override("acks", "-1").validate().is_ok());
        assert!(matches!(ProducerConfig::new(" ").validate(), Err(PublishError::InvalidConfig(_))));
    }
}
