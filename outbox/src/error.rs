//! [`OutboxError`]: every failed outbox operation, named for the operation.

/// A failed outbox operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// Running the outbox migrations failed.
    #[error("could not migrate the outbox schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Writing the outbox row in the caller's transaction failed.
    #[error("could not enqueue the message: {0}")]
    Enqueue(#[source] sqlx::Error),
    /// Reading a batch of rows to publish failed.
    #[error("could not fetch outbox rows for lane {lane}: {source}")]
    Fetch {
        /// Lane being read.
        lane: i32,
        /// Database error (shared by every lane the statement read).
        source: std::sync::Arc<sqlx::Error>,
    },
    /// Recording a batch's outcome (cursor, parked rows) failed.
    #[error("could not record the outcome of a batch in lane {lane}: {source}")]
    Commit {
        /// Lane being written.
        lane: i32,
        /// Database error (shared by every lane the statement wrote).
        source: std::sync::Arc<sqlx::Error>,
    },
    /// The relay no longer holds the lane's lease (it expired and another
    /// relay took it, or the relay is a zombie). Its work for the lane stops.
    #[error("the lease on lane {lane} (epoch {epoch}) was lost")]
    LeaseLost {
        /// Lane.
        lane: i32,
        /// Epoch the relay thought it held.
        epoch: i64,
    },
    /// Acquiring, renewing or releasing lane leases failed.
    #[error("could not manage lane leases: {0}")]
    Lease(#[source] sqlx::Error),
    /// Changing the number of lanes failed or is unsafe right now.
    #[error("could not configure lanes: {0}")]
    ConfigureLanes(String),
    /// Turning the NOTIFY wake-up hint on or off failed.
    #[error("could not switch the outbox NOTIFY hint: {0}")]
    ConfigureNotify(#[source] sqlx::Error),
    /// Listening for wake-up notifications failed.
    #[error("could not listen for outbox notifications: {0}")]
    Listen(#[source] sqlx::Error),
    /// Deleting published rows failed.
    #[error("could not clean up published rows: {0}")]
    Cleanup(#[source] sqlx::Error),
    /// Measuring the backlog failed.
    #[error("could not measure the outbox backlog: {0}")]
    Measure(#[source] sqlx::Error),
    /// Reading or changing parked rows failed.
    #[error("could not access parked rows: {0}")]
    Parked(#[source] sqlx::Error),
    /// Creating the Kafka producer failed.
    #[error("could not create the producer: {0}")]
    CreatePublisher(#[source] producers::PublishError),
    /// Checking or repairing positions ahead of the transaction ids failed.
    #[error("could not check or rebase outbox positions: {0}")]
    Rebase(#[source] sqlx::Error),
    /// Stored positions are ahead of the database's transaction ids (a
    /// restored or moved database): the relay does not start.
    #[error("{found}; {}", crate::rebase::RECOVERY)]
    PositionsAhead {
        /// What was found ahead.
        found: String,
    },
    /// The relay configuration is unusable.
    #[error("invalid relay configuration: {0}")]
    InvalidConfig(String),
}

/// The error for a request the relay's statement task no longer answers
/// (it only stops when the relay does).
pub(crate) fn coalescer_gone(lane: i32, read: bool) -> OutboxError {
    let source = std::sync::Arc::new(sqlx::Error::WorkerCrashed);
    match read {
        true => OutboxError::Fetch { lane, source },
        false => OutboxError::Commit { lane, source },
    }
}
