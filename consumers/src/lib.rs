//! # consumers — the at-least-once consumer runtime
//!
//! Kafka delivers every record at least once; this crate makes each event's
//! *effect* happen once, and keeps a consumer running past records it cannot
//! process. A service implements a [`Handler`]; the runtime does the rest:
//!
//! ```no_run
//! # use consumers::{Consumer, ConsumerConfig, Handler, HandlerError, InboundMessage};
//! # struct MyHandler;
//! # impl Handler for MyHandler {
//! #     async fn handle(&self, _: &InboundMessage, _: &mut sqlx::Transaction<'_, sqlx::Postgres>)
//! #         -> Result<(), HandlerError> { Ok(()) }
//! # }
//! # async fn example(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! consumers::migrate(&pool).await?;
//! let config = ConsumerConfig::new("127.0.0.1:9092", "inventory", &["inventory.commands"]);
//! let consumer = Consumer::new(config, pool, MyHandler)?;
//! consumer.run(consumers::shutdown::on_signal()?).await?; // until SIGTERM/SIGINT
//! # Ok(()) }
//! ```
//!
//! ## Delivery semantics
//!
//! Records of different partitions are applied concurrently (a worker per
//! assigned partition, at most `max_in_flight` transactions at once); the
//! records of one partition — hence of one key — one after the other, in
//! offset order. For each record of a partition:
//!
//! 1. The headers are parsed as an [`events::Envelope`]. A record without a
//!    valid envelope is a permanent failure (step 5).
//! 2. A PostgreSQL transaction is opened and `(consumer name, event id)` is
//!    inserted into the inbox (`ON CONFLICT DO NOTHING`). If the row exists,
//!    the event was applied before: the handler is skipped, and the record
//!    counts as finished.
//! 3. The handler runs in that transaction and writes its effect (and any
//!    reply, through the outbox) there. The transaction commits. When
//!    several records of the partition are waiting, up to `max_batch` of
//!    them share one transaction: one inbox statement for all, the handler's
//!    [`handle_batch`](Handler::handle_batch) for the new events (by default
//!    `handle` for each, in order; a handler overrides it to lock the rows of
//!    the whole batch in one statement, in a fixed order), one commit; if it
//!    fails, they are applied one by one, so a poison record is
//!    dead-lettered alone.
//! 4. Only then is the record's offset + 1 stored, and stored offsets are
//!    committed to Kafka (every `commit_interval`, on partition revocation,
//!    at shutdown). A crash anywhere before the Kafka commit means the record
//!    is delivered again — at least once — and step 2 skips it if step 3 had
//!    committed: **the effect is applied exactly once**, as long as the
//!    inbox row outlives any redelivery ([`cleanup`]).
//! 5. A transient failure (database down or failing over, deadlock, an
//!    attempt over `attempt_timeout`; see [`classify`]) is retried in place
//!    with exponential backoff ([`RetryPolicy`]), holding the partition —
//!    and only that partition — so that the key's order is kept. A
//!    permanent failure, or a transient one that exhausts the attempts,
//!    sends the original record with `dlq-*` reason headers to
//!    `<topic>.dlq` ([`dead_letter`]); its offset is then committed and the
//!    partition continues. A [deferred](HandlerError::Deferred) failure (a
//!    schema the reader does not know yet) waits without an attempt limit
//!    and is never dead-lettered. If the dead letter itself cannot be
//!    published, the partition halts, visibly, until it can.
//!
//! Consumer groups: instances sharing a group id split the partitions. On
//! revocation the revoked partitions' workers stop within `rebalance_grace`
//! and their offsets are committed (module `rebalance`); any overlap during
//! a rebalance is a redelivery that the inbox primary key makes harmless,
//! even when both members process the event at the same moment.
//!
//! Shutdown ([`shutdown::on_signal`], or any [`CancellationToken`]): stop
//! fetching, give the records in flight `in_flight_grace` to finish (else
//! roll them back; they will be redelivered), commit, leave the group, all
//! within `in_flight_grace + close_timeout` and a second.
//!
//! Tracing: each record is handled inside a `consume` span that continues the
//! producer's W3C trace from the envelope's `traceparent` / `tracestate`
//! (through the `telemetry` crate), so a handler's logs, spans and the replies
//! it enqueues belong to the trace that started with the original request.
//!
//! What is *not* covered: effects outside the handler's transaction (HTTP
//! calls, direct Kafka sends) may repeat; with [`InboxMode::Disabled`] every
//! redelivery applies its effect again.
//!
//! ## Layout
//! * [`handler`](Handler) — the [`Handler`] trait and [`HandlerError`]
//!   (transient vs permanent).
//! * [`message`](InboundMessage) — [`RawRecord`] (the record as received) and
//!   [`InboundMessage`] (envelope + body, typed decoding).
//! * [`classify`] — which database errors are transient.
//! * [`inbox`] — the inbox insert, the migrations ([`migrate`]).
//! * [`retry`](RetryPolicy) — the backoff policy and the in-place retry loop.
//! * [`dead_letter`] — dead-letter records, their headers, publishing them.
//! * `process` — one record's (or one batch's) life: envelope, inbox,
//!   handler, retry, DLQ.
//! * `assignment` — pure decisions: which worker gets a record, pause and
//!   resume, which offsets may be stored.
//! * `worker` — a partition's worker: batches in offset order, reports.
//! * `partitions` — the poll thread's side of the workers.
//! * `poll` — the poll thread: polls, dispatches, commits, closes.
//! * `rebalance` — the librdkafka context: revocation within a bound.
//! * `stop` — a stop request with one deadline for a record's every stage.
//! * [`runtime`](Consumer) — the [`Consumer`]: wiring, run, shutdown bound.
//! * [`config`](ConsumerConfig) — [`ConsumerConfig`], [`InboxMode`].
//! * [`cleanup`] — deleting old inbox rows in batches; choosing the retention.
//! * [`shutdown`] — SIGTERM/SIGINT as a [`CancellationToken`].
//! * [`stats`](Stats) — counters of applied, skipped, dead-lettered records.

mod assignment;
pub mod classify;
pub mod cleanup;
mod config;
pub mod dead_letter;
mod error;
mod handler;
pub mod inbox;
mod message;
mod partitions;
mod poll;
mod process;
mod rebalance;
mod retry;
mod runtime;
pub mod shutdown;
mod stats;
mod stop;
mod worker;

pub use classify::ErrorClass;
pub use cleanup::InboxRetention;
pub use config::{ConsumerConfig, InboxMode, instance_id_for};
pub use dead_letter::DeadLetter;
pub use error::ConsumerError;
pub use handler::{Handler, HandlerError};
pub use inbox::migrate;
pub use message::{InboundMessage, RawRecord};
pub use retry::{Failure, RetryPolicy};
pub use runtime::Consumer;
pub use stats::{Stats, StatsSnapshot};
pub use tokio_util::sync::CancellationToken;
