//! Which images the harness runs.
//!
//! | variable | default (upstream) | local build (`compose/images/build.sh`) |
//! |---|---|---|
//! | `SAGA_BROKER_IMAGE` | `apache/kafka:4.4.0` | `saga/kafka:4.4.0` (or `saga/tansu:0.6.0`) |
//! | `SAGA_POSTGRES_IMAGE` | `postgres:15` | `saga/postgres:15` |
//!
//! The local Kafka image is Apache Kafka 4.4.0 built from a distribution
//! directory (`compose/images/kafka/`); tansu stays selectable. All broker
//! images take the same `KAFKA_*` listener variables, and both
//! PostgreSQL images the same `POSTGRES_*` variables, so the harness does not
//! care which one runs.

/// Default broker image (pulled from a registry).
pub const DEFAULT_BROKER_IMAGE: &str = "apache/kafka:4.4.0";
/// Default PostgreSQL image (pulled from a registry).
pub const DEFAULT_POSTGRES_IMAGE: &str = "postgres:15";

/// An image name split into repository and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository, e.g. `apache/kafka`.
    pub name: String,
    /// Tag, e.g. `3.9.1` (`latest` when none was given).
    pub tag: String,
}

impl ImageRef {
    /// Parses `name[:tag]`; a `:` inside a registry host (`host:5000/x`) is
    /// not taken for a tag.
    pub fn parse(s: &str) -> ImageRef {
        match s.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => {
                ImageRef { name: name.to_owned(), tag: tag.to_owned() }
            }
            _ => ImageRef { name: s.to_owned(), tag: "latest".to_owned() },
        }
    }

    /// `name:tag`.
    pub fn full(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

fn from_env(var: &str, default: &str) -> ImageRef {
    ImageRef::parse(&std::env::var(var).unwrap_or_else(|_| default.to_owned()))
}

/// The broker image to run.
pub fn broker_image() -> ImageRef {
    from_env("SAGA_BROKER_IMAGE", DEFAULT_BROKER_IMAGE)
}

/// The PostgreSQL image to run.
pub fn postgres_image() -> ImageRef {
    from_env("SAGA_POSTGRES_IMAGE", DEFAULT_POSTGRES_IMAGE)
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    #[test]
    fn parses_names_and_tags() {
        assert_eq!(ImageRef::parse("saga/tansu:0.6.0").tag, "0.6.0");
        assert_eq!(ImageRef::parse("postgres").tag, "latest");
        let r = ImageRef::parse("registry:5000/team/kafka");
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("registry:5000/team/kafka", "latest"));
        assert_eq!(ImageRef::parse("apache/kafka:4.4.0").full(), "apache/kafka:4.4.0");
    }
}
