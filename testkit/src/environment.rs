//! A broker and a PostgreSQL server together, started in parallel.

use crate::{Broker, HarnessError, Postgres};

/// What an end-to-end test needs: a broker and a database server.
#[derive(Debug)]
pub struct Environment {
    /// The Kafka-protocol broker.
    pub broker: Broker,
    /// The PostgreSQL server.
    pub postgres: Postgres,
}

impl Environment {
    /// Starts both containers concurrently and waits until both answer.
    pub async fn start() -> Result<Environment, HarnessError> {
        let (broker, postgres) = tokio::join!(Broker::start(), Postgres::start());
        Ok(Environment { broker: broker?, postgres: postgres? })
    }
}
