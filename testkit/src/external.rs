//! Bring your own broker and database: when these variables are set, the
//! harness starts no container and hands tests the Kafka cluster and the
//! PostgreSQL server given instead.
//!
//! | variable | what |
//! |---|---|
//! | `SAGA_TEST_BOOTSTRAP_SERVERS` | an existing Kafka cluster |
//! | `SAGA_TEST_KAFKA_PROPERTIES_FILE` | its client properties (`KEY=VALUE` lines: security), optional |
//! | `SAGA_TEST_DATABASE_URL` | a PostgreSQL role that may `CREATE DATABASE` (each test makes its own) |
//!
//! Tests that must kill, pause or rewire the broker or the database (the
//! cluster, secured-listener and outage tests) need containers; they skip
//! themselves with a line on stderr when an external system is in use
//! ([`skip_unless_containers`]).

use crate::admin::ClientSettings;
use crate::error::HarnessError;

/// Bootstrap servers of an existing cluster.
pub const BOOTSTRAP_VAR: &str = "SAGA_TEST_BOOTSTRAP_SERVERS";
/// Client properties of that cluster.
pub const PROPERTIES_VAR: &str = "SAGA_TEST_KAFKA_PROPERTIES_FILE";
/// Administrative URL of an existing PostgreSQL server.
pub const DATABASE_VAR: &str = "SAGA_TEST_DATABASE_URL";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The external cluster, if one is configured.
pub fn kafka() -> Result<Option<ClientSettings>, HarnessError> {
    let Some(bootstrap) = var(BOOTSTRAP_VAR) else { return Ok(None) };
    let properties = match var(PROPERTIES_VAR) {
        Some(path) => producers::connection::parse_properties(&std::fs::read_to_string(&path)?)
            .map_err(|e| HarnessError::External(format!("{path}: {e}")))?,
        None => Vec::new(),
    };
    Ok(Some(ClientSettings { bootstrap, properties }))
}

/// The external cluster's client properties; none when testkit runs the
/// broker (or the file cannot be read: [`kafka`] reports that at start).
pub fn client_properties() -> Vec<(String, String)> {
    kafka().ok().flatten().map(|c| c.properties).unwrap_or_default()
}

/// A librdkafka configuration for `bootstrap` with [`client_properties`]:
/// what a test's own clients use, so they reach a secured external cluster too.
pub fn client_config(bootstrap: &str) -> rdkafka::ClientConfig {
    ClientSettings { bootstrap: bootstrap.to_owned(), properties: client_properties() }.client_config()
}

/// A producer configuration for `bootstrap` with [`client_properties`].
pub fn producer_config(bootstrap: &str) -> producers::ProducerConfig {
    producers::ProducerConfig { overrides: client_properties(), ..producers::ProducerConfig::new(bootstrap) }
}

/// Environment for a child process of this project (a service, `saga`):
/// the external cluster's properties file as `KAFKA_PROPERTIES_FILE`.
pub fn child_env() -> Vec<(&'static str, String)> {
    match (var(BOOTSTRAP_VAR), var(PROPERTIES_VAR)) {
        (Some(_), Some(path)) => vec![("KAFKA_PROPERTIES_FILE", path)],
        _ => Vec::new(),
    }
}

/// The external PostgreSQL server's administrative URL, if configured.
pub fn database() -> Option<String> {
    var(DATABASE_VAR)
}

/// Whether the broker or the database comes from outside.
pub fn in_use() -> bool {
    var(BOOTSTRAP_VAR).is_some() || var(DATABASE_VAR).is_some()
}

/// For tests that need containers: `true` (after saying so on stderr) when
/// an external system is in use and the test should return early.
pub fn skip_unless_containers(test: &str) -> bool {
    let skip = in_use();
    if skip {
        eprintln!(
            "skipped {test}: it starts its own containers, and an external broker or database is in use"
        );
    }
    skip
}

/// The error of a container-only operation on an external system.
pub(crate) fn unsupported(what: &str) -> HarnessError {
    HarnessError::External(format!("{what} needs a container; the broker or database is external"))
}

/// `url` with its database name replaced by `db`.
pub(crate) fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user:pass@host:port/dbname — the path starts after the authority.
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_end..].find('/').map(|i| i + authority_end).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        use super::with_database;
        assert_eq!(with_database("postgres://u:p@h:5432/postgres", "t1"), "postgres://u:p@h:5432/t1");
        assert_eq!(
            with_database("postgres://u:p@h/admin?sslmode=require", "t1"),
            "postgres://u:p@h/t1?sslmode=require"
        );
        assert_eq!(with_database("postgres://u@h:5432", "t1"), "postgres://u@h:5432/t1");
    }
}
