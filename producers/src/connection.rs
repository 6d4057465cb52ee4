//! [`KafkaConnection`]: where the cluster is and how to talk to it, the same
//! way in every binary: bootstrap servers, and any librdkafka property
//! (security, tuning) from a properties file, from `KAFKA_PROPERTIES` or
//! from repeated `-X KEY=VALUE` flags (the file first, flags win).
//!
//! ```
//! use producers::KafkaConnection;
//! let kafka = KafkaConnection::new("broker-1:9093")
//!     .with_property("security.protocol", "SASL_SSL")
//!     .with_property("sasl.mechanisms", "SCRAM-SHA-512");
//! let config = kafka.client_config()?;
//! assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
//! # Ok::<(), producers::ConnectionError>(())
//! ```
//!
//! A binary flattens it into its arguments (`features = ["clap"]`) and calls
//! [`KafkaConnection::verify`] at start, so a wrong password or an untrusted
//! certificate ends the process at once with librdkafka's own words.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext as _;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// Why a connection could not be configured or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A `-X` / `KAFKA_PROPERTIES` entry is not `KEY=VALUE`.
    #[error("Kafka property `{0}` is not KEY=VALUE")]
    Malformed(String),
    /// The properties file could not be read.
    #[error("reading Kafka properties file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The broker refused us: credentials, certificates, protocol.
    #[error("Kafka at {bootstrap} refused the connection: {reason}")]
    Refused {
        /// Bootstrap servers tried.
        bootstrap: String,
        /// librdkafka's account of it.
        reason: String,
    },
    /// librdkafka rejected the configuration.
    #[error("Kafka client configuration: {0}")]
    Client(#[source] KafkaError),
}

/// One `KEY=VALUE` librdkafka property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property(pub String, pub String);

impl FromStr for Property {
    type Err = ConnectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(Property(k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(ConnectionError::Malformed(s.to_owned())),
        }
    }
}

/// Bootstrap servers and librdkafka properties.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct KafkaConnection {
    /// Kafka bootstrap servers, `host:port[,host:port]`.
    #[cfg_attr(
        feature = "clap",
        arg(long = "bootstrap-servers", env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")
    )]
    pub bootstrap_servers: String,
    /// A librdkafka property, `KEY=VALUE` (repeatable; the env variable
    /// takes a comma-separated list), e.g. `-X security.protocol=SASL_SSL`.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'X', long = "kafka-property", env = "KAFKA_PROPERTIES", value_delimiter = ',')
    )]
    pub properties: Vec<Property>,
    /// A file of librdkafka properties, one `KEY=VALUE` a line (`#`
    /// comments); for secrets and values with commas. `-X` entries win.
    #[cfg_attr(feature = "clap", arg(long = "kafka-properties-file", env = "KAFKA_PROPERTIES_FILE"))]
    pub properties_file: Option<PathBuf>,
}

impl Default for KafkaConnection {
    fn default() -> Self {
        KafkaConnection::new("127.0.0.1:9092")
    }
}

impl KafkaConnection {
    /// A connection to `bootstrap_servers` with no further properties.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConnection {
            bootstrap_servers: bootstrap_servers.into(),
            properties: vec![],
            properties_file: None,
        }
    }

    /// Adds a property (builder style).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push(Property(key.into(), value.into()));
        self
    }

    /// The properties in force: the file's, then the listed ones.
    pub fn resolved_properties(&self) -> Result<Vec<(String, String)>, ConnectionError> {
        let mut out = match &self.properties_file {
            Some(path) => read_file(path)?,
            None => Vec::new(),
        };
        out.extend(self.properties.iter().map(|Property(k, v)| (k.clone(), v.clone())));
        Ok(out)
    }

    /// A librdkafka configuration with `bootstrap.servers` and the properties.
    pub fn client_config(&self) -> Result<ClientConfig, ConnectionError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in self.resolved_properties()? {
            c.set(k, v);
        }
        Ok(c)
    }

    /// Asks the cluster for metadata. A refusal (authentication, TLS) is an
    /// error at once; a cluster that does not answer within `timeout` is
    /// only logged, since librdkafka keeps trying and it may be starting.
    pub async fn verify(&self, timeout: Duration) -> Result<(), ConnectionError> {
        let config = self.client_config()?;
        let bootstrap = self.bootstrap_servers.clone();
        let outcome = tokio::task::spawn_blocking(move || probe(&config, timeout)).await;
        match outcome {
            Ok(Probe::Answered) => Ok(()),
            Ok(Probe::Refused(reason)) => Err(ConnectionError::Refused { bootstrap, reason }),
            Ok(Probe::Client(e)) => Err(ConnectionError::Client(e)),
            Ok(Probe::Silent(last)) => {
                tracing::warn!(%bootstrap, ?timeout, last_error = %last, "Kafka not reachable yet; going on");
                Ok(())
            }
            Err(join) => {
                tracing::warn!(error = %join, "Kafka probe task failed; going on");
                Ok(())
            }
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConnectionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConnectionError::File { path: path.to_owned(), source })?;
    parse_properties(&text)
}

/// `KEY=VALUE` lines; blank lines and `#`/`!` comments skipped.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConnectionError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.parse::<Property>().map(|Property(k, v)| (k, v)))
        .collect()
}

enum Probe {
    Answered,
    Refused(String),
    Silent(String),
    Client(KafkaError),
}

/// Remembers the errors librdkafka reports while probing.
#[derive(Default, Clone)]
struct Witness {
    refused: Arc<Mutex<Option<String>>>,
    last: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Witness {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{error}: {reason}");
        let fatal = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SSL
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        );
        let slot = if fatal { &self.refused } else { &self.last };
        if let Ok(mut s) = slot.lock() {
            *s = Some(text);
        }
    }
}

impl ProducerContext for Witness {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

fn probe(config: &ClientConfig, timeout: Duration) -> Probe {
    let witness = Witness::default();
    // A producer: its poll hands librdkafka's errors, with their reasons, to
    // the context (a consumer would return them as bare codes).
    let client = match BaseProducer::from_config_and_context(config, witness.clone()) {
        Ok(c) => c,
        Err(e) => return Probe::Client(e),
    };
    let step = Duration::from_millis(500);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let answered = client.client().fetch_metadata(None, step).is_ok();
        client.poll(Duration::ZERO);
        let refused = witness.refused.lock().ok().and_then(|s| s.clone());
        if let Some(reason) = refused {
            return Probe::Refused(reason);
        }
        if answered {
            return Probe::Answered;
        }
        if std::time::Instant::now() >= deadline {
            let last = witness.last.lock().ok().and_then(|s| s.clone()).unwrap_or_else(|| "no answer".into());
            return Probe::Silent(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_come_from_the_file_then_the_flags() {
        let dir = std::env::temp_dir().join(format!("kafka-props-{}", std::process::id()));
        std::fs::write(&dir, "# secrets\nsasl.password = from-file\n\nsecurity.protocol=SASL_SSL\n")
            .expect("write");
        let kafka = KafkaConnection { properties_file: Some(dir.clone()), ..KafkaConnection::new("h:1") }
            .with_property("sasl.password", "from-flag");
        let c = kafka.client_config().expect("config");
        std::fs::remove_file(&dir).ok();
        assert_eq!(c.get("sasl.password"), Some("from-flag"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("bootstrap.servers"), Some("h:1"));
    }

    #[test]
    fn malformed_entries_and_missing_files_are_errors() {
        assert!(matches!("no-equals".parse::<Property>(), Err(ConnectionError::Malformed(_))));
        assert!(matches!("=v".parse::<Property>(), Err(ConnectionError::Malformed(_))));
        assert_eq!("a.b=c=d".parse::<Property>().ok(), Some(Property("a.b".into(), "c=d".into())));
        let missing = KafkaConnection {
            properties_file: Some("/nonexistent/kafka.properties".into()),
            ..KafkaConnection::default()
        };
        assert!(matches!(missing.client_config(), Err(ConnectionError::File { .. })));
    }
}
