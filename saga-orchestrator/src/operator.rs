//! What an operator does to a saga by hand: [`resume`] a saga stopped in
//! `COMPENSATION_FAILED` or `COMPLETION_FAILED` once its participant works
//! again, when no late reply will come (its command was dropped, or its dead
//! letter is gone).
//! The `saga resume` command of the CLI calls it.

use sqlx::PgPool;
use uuid::Uuid;

use crate::config::SagaConfig;
use crate::store::{self, StoreError};

/// Why a saga could not be resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// No saga has this id.
    #[error("no saga {0}")]
    NotFound(Uuid),
    /// The saga is not stopped; it needs no resuming.
    #[error(
        "saga {saga_id} is {status}, not stopped (COMPENSATION_FAILED, COMPLETION_FAILED): nothing to resume"
    )]
    NotStopped {
        /// The saga.
        saga_id: Uuid,
        /// Its status.
        status: &'static str,
    },
    /// Reading or writing the saga failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Beginning or committing the transaction failed.
    #[error("resuming saga {saga_id}")]
    Database {
        /// The saga.
        saga_id: Uuid,
        /// Database error.
        #[source]
        source: sqlx::Error,
    },
}

/// A resumed saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Its status now (the step it waits on again).
    pub status: &'static str,
    /// The command sent again (its Avro name).
    pub command: &'static str,
}

/// Sends the step the saga `saga_id` stopped on (a compensation, or the
/// stock commit or payment capture after the pivot) again as a first attempt (deadline from `config`),
/// in one transaction with its outbox row, under the saga's row lock.
pub async fn resume(pool: &PgPool, saga_id: Uuid, config: &SagaConfig) -> Result<Resumed, ResumeError> {
    let database = |source| ResumeError::Database { saga_id, source };
    let mut tx = pool.begin().await.map_err(database)?;
    let before = store::lock(&mut tx, saga_id).await?.ok_or(ResumeError::NotFound(saga_id))?;
    let at = store::now(&mut tx).await?;
    let Some(next) = before.state.resume(at, config) else {
        return Err(ResumeError::NotStopped { saga_id, status: before.state.status() });
    };
    store::save(&mut tx, &before, &next, None).await?;
    tx.commit().await.map_err(database)?;
    let command = next.commands.first().map(|c| c.message_type()).unwrap_or_default();
    tracing::info!(%saga_id, status = next.state.status(), command, "stopped saga resumed by an operator");
    Ok(Resumed { status: next.state.status(), command })
}
