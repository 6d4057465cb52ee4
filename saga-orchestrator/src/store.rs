//! The `saga` table: where the orchestrator logs each saga's state, and the
//! writes that store a [`Transition`] together with its commands.
//!
//! Every write takes the caller's transaction. A transition is stored by
//! [`create`] (a new saga) or [`save`] (a saga read with [`lock`] or
//! [`lock_overdue`]): the new state and one outbox row per command go into
//! that transaction, so they commit together or not at all — the saga logs
//! before it acts, and never acts without logging.
//!
//! Concurrency: [`lock`] reads a saga with `SELECT … FOR UPDATE`, so a second
//! transaction that wants the same saga (another orchestrator instance, the
//! timeout sweeper) waits until the first commits and then reads the state it
//! left. [`lock_overdue`] uses `FOR UPDATE SKIP LOCKED`: a sweeper never waits
//! for a saga that someone else is advancing, and two sweepers never pick the
//! same saga. [`save`] also checks the version it read, a second line of
//! defence should a caller ever save a state it did not lock.
//!
//! Time: the saga's clock is the database's ([`now`]), so deadlines set by
//! one orchestrator instance and checked by another do not depend on how well
//! their clocks agree.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::command::Command;
use crate::state::OrderSaga;
use crate::transition::Transition;

/// Table recording this crate's applied migrations (each crate keeps its own,
/// so migration versions of different crates never collide).
pub const MIGRATIONS_TABLE: &str = "_saga_orchestrator_migrations";

/// Creates or upgrades everything the orchestrator writes to: the outbox
/// (its commands), the consumer inbox (its dedupe) and the `saga` table
/// (`saga-orchestrator/migrations/*.sql`, tracked in [`MIGRATIONS_TABLE`]).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    outbox::migrate_service(pool, sqlx::migrate!(), MIGRATIONS_TABLE).await.map_err(StoreError::Migrate)
}

/// A failed operation on the `saga` table or the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Running the outbox, inbox or saga table migrations failed.
    #[error("migrating the orchestrator's schema")]
    Migrate(#[source] outbox::ServiceMigrateError),
    /// Reading the database clock failed.
    #[error("reading the database clock")]
    ReadClock(#[source] sqlx::Error),
    /// Inserting a new saga failed.
    #[error("inserting saga {saga_id}")]
    InsertSaga {
        /// The saga.
        saga_id: Uuid,
        /// Database error.
        #[source]
        source: sqlx::Error,
    },
    /// Reading and locking a saga failed.
    #[error("locking saga {saga_id}")]
    LockSaga {
        /// The saga.
        saga_id: Uuid,
        /// Database error.
        #[source]
        source: sqlx::Error,
    },
    /// Reading a saga (without locking it) failed.
    #[error("reading saga {saga_id}")]
    LoadSaga {
        /// The saga.
        saga_id: Uuid,
        /// Database error.
        #[source]
        source: sqlx::Error,
    },
    /// Finding and locking overdue sagas failed (or the transaction to do it
    /// could not be opened).
    #[error("locking overdue sagas")]
    LockOverdue(#[source] sqlx::Error),
    /// Locking the sagas of a batch of replies failed.
    #[error("cannot lock the sagas of a batch")]
    LockMany(#[source] sqlx::Error),
    /// Committing a sweep's transaction failed; nothing of it was stored.
    #[error("committing a sweep")]
    CommitSweep(#[source] sqlx::Error),
    /// A stored state could not be read back as an [`OrderSaga`] (written by
    /// an incompatible version, or edited by hand).
    #[error("decoding the stored state of saga {saga_id}")]
    DecodeState {
        /// The saga.
        saga_id: Uuid,
        /// The decoding error.
        #[source]
        source: sqlx::Error,
    },
    /// Updating a saga failed.
    #[error("updating saga {saga_id}")]
    UpdateSaga {
        /// The saga.
        saga_id: Uuid,
        /// Database error.
        #[source]
        source: sqlx::Error,
    },
    /// The saga changed since it was read: its version is no longer the one
    /// the caller holds. Read it again (under its lock) and retry.
    #[error("updating saga {saga_id}: version {version} is no longer current")]
    UpdateStale {
        /// The saga.
        saga_id: Uuid,
        /// The version the caller read.
        version: i64,
    },
    /// Moving the deadline of a saga that cannot be advanced failed.
    #[error("postponing saga {saga_id}")]
    PostponeSaga {
        /// The saga.
        saga_id: Uuid,
        /// Database error.
        #[source]
        source: sqlx::Error,
    },
    /// A command could not be encoded into a message.
    #[error("encoding a command of saga {saga_id}")]
    EncodeCommand {
        /// The saga.
        saga_id: Uuid,
        /// What the codec reported.
        #[source]
        source: crate::error::Error,
    },
    /// Writing a command into the outbox failed.
    #[error("enqueueing {message_type} of saga {saga_id}")]
    EnqueueCommand {
        /// The saga.
        saga_id: Uuid,
        /// Avro name of the command.
        message_type: &'static str,
        /// What the outbox reported.
        #[source]
        source: outbox::OutboxError,
    },
}

impl StoreError {
    /// The database error underneath, if the failure came from the database
    /// (for telling transient failures from permanent ones).
    pub fn sqlx_error(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::ReadClock(source)
            | StoreError::LockOverdue(source)
            | StoreError::LockMany(source)
            | StoreError::CommitSweep(source)
            | StoreError::InsertSaga { source, .. }
            | StoreError::LockSaga { source, .. }
            | StoreError::LoadSaga { source, .. }
            | StoreError::UpdateSaga { source, .. }
            | StoreError::PostponeSaga { source, .. } => Some(source),
            StoreError::EnqueueCommand { source: outbox::OutboxError::Enqueue(source), .. } => Some(source),
            _ => None,
        }
    }
}

/// A saga as read from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSaga {
    /// Its state.
    pub state: OrderSaga,
    /// How many times it was written (1 = just started).
    pub version: i64,
}

/// A saga whose deadline has passed, locked by [`lock_overdue`]. Its state is
/// decoded one saga at a time, so one unreadable row does not hide the others.
#[derive(Debug)]
pub struct Overdue {
    /// The saga.
    pub saga_id: Uuid,
    /// Its state, or why it cannot be read.
    pub saga: Result<StoredSaga, StoreError>,
}

/// The database's current time (`clock_timestamp()`, which moves on within a
/// transaction): the clock of every saga event.
pub async fn now(tx: &mut PgConnection) -> Result<DateTime<Utc>, StoreError> {
    sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(tx).await.map_err(StoreError::ReadClock)
}

/// Stores a saga that [`start`](crate::start()) created, with its commands,
/// unless a saga with its id exists already (the `OrderCreated` was handled
/// before): then nothing is written and `false` is returned. Each command is
/// caused by `causation_id`.
pub async fn create(
    tx: &mut Transaction<'_, Postgres>,
    started: &Transition,
    causation_id: Option<Uuid>,
) -> Result<bool, StoreError> {
    let state = &started.state;
    let saga_id = state.saga_id();
    let inserted = sqlx::query(
        "INSERT INTO saga (saga_id, status, state, deadline) VALUES ($1, $2, $3, $4)
         ON CONFLICT (saga_id) DO NOTHING",
    )
    .bind(saga_id)
    .bind(state.status())
    .bind(Json(state))
    .bind(state.deadline())
    .execute(&mut **tx)
    .await
    .map_err(|source| StoreError::InsertSaga { saga_id, source })?
    .rows_affected()
        == 1;
    if inserted {
        enqueue_commands(tx, saga_id, &started.commands, causation_id).await?;
    }
    Ok(inserted)
}

/// Reads saga `saga_id` and locks its row until `tx` ends; `None` if there
/// is no such saga. A concurrent holder of the lock makes this wait.
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    saga_id: Uuid,
) -> Result<Option<StoredSaga>, StoreError> {
    let row = sqlx::query("SELECT state, version FROM saga WHERE saga_id = $1 FOR UPDATE")
        .bind(saga_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|source| StoreError::LockSaga { saga_id, source })?;
    row.map(|row| decode(saga_id, &row)).transpose()
}

/// Reads and locks every saga of `saga_ids` in ONE statement, in saga id
/// order — the fixed order that keeps two transactions locking overlapping
/// sets from deadlocking. Sagas that do not exist are missing from the map.
pub async fn lock_many(
    tx: &mut Transaction<'_, Postgres>,
    saga_ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredSaga>, StoreError> {
    let rows = sqlx::query(
        "SELECT saga_id, state, version FROM saga WHERE saga_id = ANY($1) ORDER BY saga_id FOR UPDATE",
    )
    .bind(saga_ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::LockMany)?;
    rows.iter()
        .map(|row| {
            let saga_id: Uuid = row.try_get("saga_id").map_err(StoreError::LockMany)?;
            Ok((saga_id, decode(saga_id, row)?))
        })
        .collect()
}

/// Reads saga `saga_id` without locking it (for monitoring and tests).
pub async fn load(conn: &mut PgConnection, saga_id: Uuid) -> Result<Option<StoredSaga>, StoreError> {
    let row = sqlx::query("SELECT state, version FROM saga WHERE saga_id = $1")
        .bind(saga_id)
        .fetch_optional(conn)
        .await
        .map_err(|source| StoreError::LoadSaga { saga_id, source })?;
    row.map(|row| decode(saga_id, &row)).transpose()
}

/// Locks up to `limit` running sagas whose deadline has passed (by the
/// database clock), earliest deadline first, skipping sagas that another
/// transaction holds: they are being advanced right now, and will be seen on
/// a later sweep if still overdue.
pub async fn lock_overdue(
    tx: &mut Transaction<'_, Postgres>,
    until: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<Overdue>, StoreError> {
    let rows = sqlx::query(
        "SELECT saga_id, state, version FROM saga
         WHERE deadline < LEAST(now(), $2)
         ORDER BY deadline
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .bind(until)
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::LockOverdue)?;
    rows.iter()
        .map(|row| {
            let saga_id: Uuid = row.try_get("saga_id").map_err(StoreError::LockOverdue)?;
            Ok(Overdue { saga_id, saga: decode(saga_id, row) })
        })
        .collect()
}

/// Stores `next`, the transition of the saga read as `before`, and enqueues
/// its commands (each caused by `causation_id`). Fails with
/// [`StoreError::UpdateStale`] if the saga's version moved since `before`.
/// Returns the new version.
pub async fn save(
    tx: &mut Transaction<'_, Postgres>,
    before: &StoredSaga,
    next: &Transition,
    causation_id: Option<Uuid>,
) -> Result<i64, StoreError> {
    let state = &next.state;
    let saga_id = before.state.saga_id();
    let updated = sqlx::query(
        "UPDATE saga SET status = $3, state = $4, deadline = $5, version = version + 1, updated_at = now()
         WHERE saga_id = $1 AND version = $2",
    )
    .bind(saga_id)
    .bind(before.version)
    .bind(state.status())
    .bind(Json(state))
    .bind(state.deadline())
    .execute(&mut **tx)
    .await
    .map_err(|source| StoreError::UpdateSaga { saga_id, source })?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::UpdateStale { saga_id, version: before.version });
    }
    enqueue_commands(tx, saga_id, &next.commands, causation_id).await?;
    Ok(before.version + 1)
}

/// Moves the deadline of a locked saga to `until` without touching its
/// state: for a saga that cannot be advanced (unreadable state), so that it
/// stops coming back on every sweep while an operator looks at it.
pub async fn postpone(
    tx: &mut Transaction<'_, Postgres>,
    saga_id: Uuid,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE saga SET deadline = $2, updated_at = now() WHERE saga_id = $1 AND deadline IS NOT NULL",
    )
    .bind(saga_id)
    .bind(until)
    .execute(&mut **tx)
    .await
    .map_err(|source| StoreError::PostponeSaga { saga_id, source })?;
    Ok(())
}

/// Writes each command into the outbox, in order, correlated with `saga_id`.
async fn enqueue_commands(
    tx: &mut Transaction<'_, Postgres>,
    saga_id: Uuid,
    commands: &[Command],
    causation_id: Option<Uuid>,
) -> Result<(), StoreError> {
    for command in commands {
        let message = command
            .to_outgoing(saga_id, causation_id)
            .map_err(|source| StoreError::EncodeCommand { saga_id, source })?;
        outbox::enqueue(tx, &message).await.map_err(|source| StoreError::EnqueueCommand {
            saga_id,
            message_type: command.message_type(),
            source,
        })?;
    }
    Ok(())
}

fn decode(saga_id: Uuid, row: &PgRow) -> Result<StoredSaga, StoreError> {
    let Json(state) = row
        .try_get::<Json<OrderSaga>, _>("state")
        .map_err(|source| StoreError::DecodeState { saga_id, source })?;
    let version = row.try_get("version").map_err(|source| StoreError::DecodeState { saga_id, source })?;
    Ok(StoredSaga { state, version })
}
