//! # payment-service
//!
//! Authorizes payments for the order saga: the saga's *pivot*, the last step
//! that can refuse on a business rule. It consumes
//! [`PAYMENT_COMMANDS`](events::topics::PAYMENT_COMMANDS) and answers on
//! [`PAYMENT_REPLIES`](events::topics::PAYMENT_REPLIES):
//!
//! | command | state of the order's payment | effect | reply |
//! |---|---|---|---|
//! | `AuthorizePayment` | none, amount within the limit | AUTHORIZED, new authorization id | `PaymentAuthorized` |
//! | `AuthorizePayment` | none, amount over the limit (or negative) | DECLINED | `PaymentDeclined` |
//! | `AuthorizePayment` | AUTHORIZED / DECLINED | none | the same reply as the first time |
//! | `AuthorizePayment` | VOIDED (void came first) | none | `PaymentDeclined` "voided before authorize" |
//! | `VoidPayment` | AUTHORIZED | VOIDED (authorization id kept) | `PaymentVoided` with the authorization id |
//! | `VoidPayment` | none | VOIDED tombstone | `PaymentVoided` without an authorization id |
//! | `VoidPayment` | VOIDED / DECLINED | none | `PaymentVoided` |
//!
//! The limit (`--max-amount-minor`, default
//! [`DEFAULT_MAX_AMOUNT_MINOR`](handler::DEFAULT_MAX_AMOUNT_MINOR)) stands in
//! for a payment provider's decision, so that demos can provoke a decline.
//!
//! ## Delivery semantics
//! The [`consumers`] runtime delivers each command at least once and records
//! its event id in the inbox in the same transaction as the handler's effect,
//! so one delivery's effect is applied once. On top of that, every command is
//! idempotent per *order*: a command re-sent under a new event id finds the
//! payment row and gets the same answer. The reply is written to the outbox in
//! that same transaction, and published at least once by the relay (`saga
//! relay`, a separate process). The commands of one order are serialised by
//! an advisory lock on the order id, so a void racing its authorize is applied
//! strictly before (tombstone) or after (void) it.
//!
//! ## Layout
//! * [`handler`] — [`PaymentHandler`]: the decisions and the replies.
//! * [`payments`] — SQL: the `payments` table and the per-order lock.
//! * [`migrate`] — the outbox's, the inbox's and this service's migrations.

pub mod handler;
pub mod payments;

pub use handler::PaymentHandler;

/// Runs the outbox and inbox migrations and this service's own
/// (`migrations/`), each with its own bookkeeping table.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), outbox::ServiceMigrateError> {
    outbox::migrate_service(pool, sqlx::migrate!("./migrations"), "_payment_service_migrations").await
}
