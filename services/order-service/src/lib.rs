//! # order-service
//!
//! Takes orders over HTTP and records the saga's verdict. Placing an order writes the order rows **and** the
//! `OrderCreated` event in one PostgreSQL transaction (the outbox); the relay
//! publishes the event, which starts the order saga. Nothing is published for
//! an order that was not stored, and no stored order goes unannounced.
//!
//! ## Layout
//! * [`api`] — the axum router: `POST /orders` (with `Idempotency-Key`),
//!   `GET /orders/{id}`, `GET /orders` (paged, by status), `GET /health`;
//!   every answer JSON, the status codes in its docs.
//! * [`request`] — the request body and its validation (4xx with a message).
//! * [`currency`] — the ISO 4217 codes an order may use.
//! * [`reason`] — the customer text of a rejection.
//! * [`store`] — SQL: insert an order with its event (once per idempotency
//!   key), read one back, list them.
//! * [`outcome`] — the consumer handler that applies `OrderApproved` /
//!   `OrderRejected` from `orders.events` (inbox-deduplicated).
//! * [`migrate`] — this service's migrations plus the outbox's.

pub mod api;
pub mod currency;
pub mod outcome;
pub mod reason;
pub mod request;
pub mod store;

/// Runs the outbox and inbox migrations and this service's own
/// (`migrations/`), each with its own bookkeeping table.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), outbox::ServiceMigrateError> {
    outbox::migrate_service(pool, sqlx::migrate!("./migrations"), "_order_service_migrations").await
}
