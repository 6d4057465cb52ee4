//! [`migrate_service`]: the whole schema of a service that consumes and
//! publishes — the outbox's migrations, the consumer inbox's, then the
//! service's own — each tracked in its own bookkeeping table, so that
//! migration versions of different crates never collide.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

use crate::error::OutboxError;

/// Which part of a service's schema failed to migrate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceMigrateError {
    /// The outbox's migrations failed.
    #[error("outbox migrations")]
    Outbox(#[source] OutboxError),
    /// The consumer inbox's migrations failed.
    #[error("inbox migrations")]
    Inbox(#[source] consumers::ConsumerError),
    /// The service's own migrations failed.
    #[error("{table} migrations")]
    Service {
        /// The service's bookkeeping table.
        table: &'static str,
        /// What failed.
        #[source]
        source: MigrateError,
    },
}

/// Runs the outbox and inbox migrations, then `own` (the service's
/// `sqlx::migrate!()`) tracked in `table`.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), outbox::ServiceMigrateError> {
/// outbox::migrate_service(&pool, sqlx::migrate!("./migrations"), "_my_service_migrations").await
/// # }
/// ```
pub async fn migrate_service(
    pool: &PgPool,
    mut own: Migrator,
    table: &'static str,
) -> Result<(), ServiceMigrateError> {
    crate::migrate(pool).await.map_err(ServiceMigrateError::Outbox)?;
    consumers::migrate(pool).await.map_err(ServiceMigrateError::Inbox)?;
    own.dangerous_set_table_name(table);
    own.run(pool).await.map_err(|source| ServiceMigrateError::Service { table, source })
}
