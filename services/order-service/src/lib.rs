//! # order-service
//!
//! Takes orders over HTTP and records the saga's verdict. Placing an order writes the order rows **and** the
//! `OrderCreated` event in one PostgreSQL transaction (the outbox); the relay
//! publishes the event, which starts the order saga. Nothing is published for
//! an order that was not stored, and no stored order goes unannounced.
//!
//! ## Layout
//! * [`api`] — the axum router: `POST /orders`, `GET /orders/{id}`, `GET /health`.
//! * [`request`] — the request body and its validation (4xx with a message).
//! * [`store`] — SQL: insert an order with its event, read one back.
//! * [`outcome`] — the consumer handler that applies `OrderApproved` /
//!   `OrderRejected` from `orders.events` (inbox-deduplicated).
//! * [`migrate`] — this service's migrations plus the outbox's.

pub mod api;
pub mod outcome;
pub mod request;
pub mod store;

/// Runs the outbox and inbox migrations and this service's own
/// (`migrations/`), each with its own bookkeeping table.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), outbox::ServiceMigrateError> {
    outbox::migrate_service(pool, sqlx::migrate!("./migrations"), "_order_service_migrations").await
}
