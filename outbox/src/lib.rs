//! # outbox — transactional outbox and relay
//!
//! A service writes its business change and the messages that announce it in
//! **one** PostgreSQL transaction ([`enqueue()`]); the [`OutboxRelay`] publishes
//! committed rows to Kafka. What commits is published; what rolls back is not.
//!
//! ```no_run
//! # async fn f(pool: sqlx::PgPool, msg: events::OutgoingMessage) -> Result<(), Box<dyn std::error::Error>> {
//! outbox::migrate(&pool).await?;
//! let mut tx = pool.begin().await?;
//! // ... business writes on &mut *tx ...
//! outbox::enqueue(&mut tx, &msg).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! ## Layout
//! * `migrations/` — the schema: `outbox` (rows), `outbox_keys` (per-key
//!   position and write lock, indexed by position for cleanup),
//!   `outbox_lanes` / `outbox_settings` / `outbox_relays` (lanes, leases,
//!   cursors), `outbox_parked`; SQL functions `outbox_positions_ahead`,
//!   `outbox_rebase` (0006) and `outbox_requeue_parked` (0007).
//! * [`enqueue`](mod@enqueue) — the write inside the caller's transaction, with
//!   the W3C trace context and a NOTIFY wake-up hint ([`set_notify`] turns the
//!   hint off for write-heavy databases with durable commits).
//! * [`schema`] — [`migrate_service`]: outbox, inbox and a service's own
//!   migrations in one call.
//! * [`store`] — the relay's reads (lanes' batches below the snapshot
//!   watermark, several lanes per statement) and writes (cursor moves and
//!   parking, fenced by lease epoch).
//! * [`lease`] — relay heartbeats, fair share, lane leases, lane count;
//!   `lease_clock` — a worker's local view of its lease.
//! * [`batch`] — pure decision logic: how far a batch moves the cursor, what
//!   gets parked.
//! * `send` — publishing one batch through [`producers::Publisher`];
//!   `topic_limits` — each topic's `max.message.bytes`, checked before a
//!   record is sent.
//! * `lane` — one lane's worker loop: read, send, record, with up to
//!   `pipeline_depth` batches out while it works off a backlog and one read
//!   per tick of the relay's `trickle_interval` grid otherwise;
//!   `read_schedule` — when a lane reads next, as a pure type; `coalesce` —
//!   lane reads and cursor moves that fall due together go out as one
//!   statement; `record` — cursor moves the lane does not wait for, settled
//!   in order as the answers come; `shared` — what the relay's tasks share;
//!   `relay` — [`OutboxRelay`], which runs the lease manager, the lane
//!   workers and the background tasks; `config` — [`RelayConfig`];
//!   `producer_settings` — the producer overrides the relay refuses.
//! * `wakeup` — LISTEN/NOTIFY wake-ups with reconnects.
//! * [`cleanup`] — bounded deletion of published rows after the retention.
//! * [`metrics`] — backlog, oldest age, publish rate and age at ack
//!   through `tracing` (OpenTelemetry-ready field names).
//! * `alarm` — [`LaneAlarm`]: lanes that halted (positions ahead), stalled
//!   or meet a topic that refuses the relay, logged, measured and readable
//!   through [`StatsHandle::alarms`].
//! * [`parked`] — listing parked rows, re-sending a key's parked rows in
//!   order ([`requeue_parked`]), discarding one by row id.
//! * [`rebase`](mod@rebase) — positions ahead of the transaction ids after a
//!   dump/restore or a move, and [`rebase()`], the recovery.
//! * [`reply`](mod@reply) — [`enqueue_reply`]: a consumer handler's reply, in
//!   the handler's transaction, correlated and caused by what it answers.
//!
//! ## Ordering and gap-freedom
//! Each row carries `tx` (its transaction id, `xid8`) and `pos`, its
//! commit-order-safe position: the greater of `tx` and the position of the
//! previous row of the same key. Enqueue takes the key's row lock in
//! `outbox_keys`, so writers of one key commit one after the other, in
//! position order. A relay reads its lane in `(pos, id)` order and only rows
//! with `pos < pg_snapshot_xmin(pg_current_snapshot())`: every transaction
//! below that watermark has ended, so no row can ever commit *behind* the
//! relay's cursor — a long transaction delays publication but is never
//! skipped (the gap that bit Watermill, #311). Per key, rows are published in
//! commit order. Lanes (`hash(key) mod lanes`) are leased to one relay at a
//! time, so several relays share the work without reordering a key.
//!
//! Traps: any long-running *write* transaction in the cluster holds the
//! watermark back (watch the oldest-age metric); transaction ids do not
//! survive a dump/restore or logical migration to a new cluster (Watermill
//! #576): stored cursors and key positions then sit above every new
//! transaction id. The relay refuses to start on such a database and a lane
//! that meets it halts with an alarm, instead of letting new rows sort
//! behind the cursors unread; stop every relay and run `saga outbox rebase`
//! ([`rebase()`]) to recover (see [`rebase`](mod@rebase)). The relay publishes what other
//! sessions can see, and with `synchronous_commit=off` they see commits
//! before they are on disk: a server crash could then take back a row that
//! was already published. Keep commits durable on an outbox database.
//!
//! ## Delivery semantics
//! **At least once.** A row's cursor position is recorded only after its
//! delivery report came back with `acks=all` from the idempotent producer,
//! and never on a transient failure (retried with backoff, never dropped).
//! A failed cursor write sends nothing again (the rows are acked): a later
//! write covers it or it is written again after a backoff. After a crash or
//! a lost lease the unrecorded rows are sent again by the lane's next holder:
//! duplicates are limited to what was unrecorded — per lane at most
//! `pipeline_depth` batches of `batch_size` rows — and carry the same
//! `event-id` header, so consumers deduplicate on the event id (never on
//! offsets). A read that returns after the lease margin ran out sends
//! nothing (another relay may hold the lane by then). The relay's producer
//! never times a record out
//! (`message.timeout.ms=0`): a broker outage stalls the relay (the backlog
//! and oldest-age metrics show it) rather than failing records, so a later
//! record of a key cannot overtake a timed-out earlier one. Producer
//! overrides that would reopen that gap (a timeout, fewer retries, more than
//! 5 requests in flight) are refused by [`OutboxRelay::new`].
//!
//! A record the broker rejects permanently (e.g. too large) is parked with
//! the reason in `outbox_parked`; later rows of its key queue up behind it
//! (also parked, also when they were already in the lane's pipeline), other
//! keys are unaffected. A record over its topic's `max.message.bytes` is
//! refused before it is sent, so the broker does not refuse the produce
//! batch around it; a record refused only with its batch is sent again, not
//! parked. A topic that refuses the relay itself (not authorised, unknown)
//! parks nothing: the lane retries it with backoff and raises an alarm.
//! (When a rejection only comes back with the delivery report, rows of that
//! key already handed to the producer in the same pipeline window are out.)
//! [`requeue_parked`] re-sends a key's parked rows, in order, once the cause
//! is fixed.
//!
//! A lane that cannot move on — no delivery report for `stall_after`, the
//! same row failing again and again, a refused topic — raises a
//! [`LaneAlarm`] saying which lane, row, topic and error, and since when
//! (error log, gauges `outbox_lane_stalled` and `outbox_lane_alarm_seconds`):
//! order requires every later row of the lane to wait behind it.
//!
//! Ordering across keys is not preserved (nor needed): keys live in
//! different lanes and partitions.

mod alarm;
pub mod batch;
pub mod cleanup;
mod coalesce;
mod config;
pub mod enqueue;
pub mod error;
mod lane;
pub mod lease;
mod lease_clock;
pub mod metrics;
pub mod parked;
mod producer_settings;
mod read_schedule;
pub mod rebase;
mod record;
mod relay;
pub mod reply;
pub mod schema;
mod send;
mod shared;
pub mod store;
mod topic_limits;
mod trace;
mod wakeup;

pub use alarm::{AlarmKind, LaneAlarm};
pub use config::RelayConfig;
pub use enqueue::{Enqueued, NOTIFY_CHANNEL, enqueue, set_notify};
pub use error::OutboxError;
pub use metrics::{Delivery, RelayStats};
pub use parked::{ParkedRow, discard_parked, list_parked, requeue_parked};
pub use rebase::{Rebased, rebase};
pub use relay::{OutboxRelay, StatsHandle};
pub use reply::enqueue_reply;
pub use schema::{ServiceMigrateError, migrate_service};
/// Re-exported: [`OutboxRelay::run`] stops when this token is cancelled.
pub use tokio_util::sync::CancellationToken;

/// Table recording this crate's applied migrations (each crate keeps its own,
/// so migration versions of different crates never collide).
pub const MIGRATIONS_TABLE: &str = "_outbox_migrations";

/// Creates or updates the outbox schema.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), OutboxError> {
    let mut m = sqlx::migrate!();
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m.run(pool).await?;
    Ok(())
}
