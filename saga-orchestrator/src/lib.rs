//! # saga-orchestrator — the order saga
//!
//! The saga that turns a created order into an approved or a rejected one:
//! reserve the stock, authorize the payment (the pivot), commit the stock,
//! capture the payment, approve; or, when a step fails or times out, undo the steps already taken
//! in reverse order and reject.
//!
//! The crate has two halves. The saga's logic: an enum of states,
//! [`OrderSaga`], and a pure transition function, [`transition()`], that maps
//! a state and an [`Event`] (a reply or a timer) to the next state and the
//! [`Command`]s to send. No I/O, no clock: the caller passes the time in the
//! event, so every rule below is tested without a broker or database. And
//! the runtime around it, the [`Orchestrator`]: a [`consumers`] handler
//! ([`SagaHandler`]) that stores each saga in PostgreSQL ([`store`]) and
//! writes its commands through the [`outbox`], and a timeout [`Sweeper`].
//! The binary `saga-orchestrator` runs it:
//!
//! ```no_run
//! # async fn f(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use saga_orchestrator::{Orchestrator, OrchestratorConfig};
//! saga_orchestrator::migrate(&pool).await?;
//! let config = OrchestratorConfig::new("127.0.0.1:9092", OrchestratorConfig::DEFAULT_GROUP_ID);
//! Orchestrator::new(pool, config)?.run(consumers::shutdown::on_signal()?).await?;
//! # Ok(()) }
//! ```
//!
//! ## The saga
//! ```text
//! OrderCreated
//!      │
//!      ▼
//! RESERVING_INVENTORY ──failed───────────────────────────────────▶ REJECTED
//!      │ reserved  └──timeout───────────────┐                          ▲
//!      ▼                                    ▼                          │ released
//! AUTHORIZING_PAYMENT ──declined──▶ RELEASING_INVENTORY ───────────────┘
//!      │ authorized └──timeout──┐           ▲
//!      │                        ▼           │ voided
//!      │                  VOIDING_PAYMENT ──┘
//!      ▼
//! COMMITTING_INVENTORY
//!      │ committed
//!      ▼
//! CAPTURING_PAYMENT
//!      │ captured
//!      ▼
//! APPROVED
//!
//! COMMITTING_INVENTORY / CAPTURING_PAYMENT ──last attempt timed out──▶ COMPLETION_FAILED
//! COMPLETION_FAILED ──committed / captured (late), or `saga resume`──▶ CAPTURING_PAYMENT / APPROVED
//! VOIDING_PAYMENT / RELEASING_INVENTORY ──last attempt timed out──▶ COMPENSATION_FAILED
//! COMPENSATION_FAILED ──voided / released (late)──▶ RELEASING_INVENTORY / REJECTED
//! ```
//! A timeout in `COMMITTING_INVENTORY`, `CAPTURING_PAYMENT`,
//! `VOIDING_PAYMENT` or `RELEASING_INVENTORY` re-sends that step's command
//! as a new attempt; it never changes the saga's direction (the step kinds,
//! [`StepKind`], decide it). A retriable step still unanswered after
//! [`SagaConfig::retry_attempts`] sends stops the saga in
//! `COMPLETION_FAILED`. Timeouts fire only once the orchestrator has applied
//! the replies that reached Kafka before them ([`horizon`]). A compensation still unanswered after
//! [`SagaConfig::compensation_attempts`] sends stops the saga in
//! `COMPENSATION_FAILED` (no deadline, nothing re-sent, the reason in the
//! stored state, an error logged): a stuck state for an operator, never a
//! silent loop. Its late reply — once the participant is fixed and its dead
//! letter re-driven with `saga redrive` — resumes the saga.
//!
//! The outcome is always T1…Tn or T1…Tj followed by Cj…C1 (Garcia-Molina &
//! Salem): a timed-out authorization (or one of the wrong amount) is voided
//! *and then* the stock released, each compensation awaited before the next;
//! a declined one has nothing to void and only releases. Once the payment is
//! authorized (the pivot) the saga only goes forward. The full table is in
//! [`transition`](mod@transition).
//!
//! ## Delivery semantics
//! The saga is written for at-least-once delivery in both directions.
//! * Replies may come twice, late or out of order. A reply is matched to the
//!   saga by its correlation id ([`Event::saga_id`]) and order id, and to the
//!   step the saga waits on; anything else — a duplicate of a handled reply, a
//!   late reply to a step being compensated, anything after the end — is
//!   [`Ignored`]: same state, no commands, never an error. Only an event for
//!   another saga is a [`TransitionError`].
//! * Commands may be sent more than once: a timeout of a retriable step or a
//!   compensation re-sends its command, and the orchestrator may re-send after
//!   a crash. The services dedupe on the order id; a compensation that
//!   overtakes its request leaves a tombstone that refuses the late request.
//!   That is why a timed-out reservation is released: it may have landed.
//! * The orchestrator stores the new state and its commands (through the
//!   outbox) in one transaction — the consumer's, which also holds the
//!   reply's inbox row — so a reply's effect is applied once and a state is
//!   never stored without its commands. It advances one saga from one
//!   instance at a time: the saga's row is locked (`SELECT … FOR UPDATE`)
//!   for the transition, and the timeout sweeper skips locked rows. Timers
//!   are best effort: a timer that fires before [`OrderSaga::deadline`] or
//!   for a step the saga has left is ignored, so a stale or duplicate timer
//!   is harmless.
//! * End to end, from the orchestrator's view: each reply is applied once
//!   (inbox), each command is published at least once (outbox relay), and a
//!   crash anywhere leaves either the old state with no new commands or the
//!   new state with all of them; the sweeper then re-sends or compensates
//!   whatever waits past its deadline, so every saga ends terminal — or,
//!   when a compensation goes unanswered too long, stops visibly in
//!   `COMPENSATION_FAILED` until its reply comes.
//!
//! ## Layout
//! The saga's logic (pure):
//! * [`state`] — [`OrderSaga`], its data ([`OrderSnapshot`],
//!   [`Authorization`]) and status names for the `saga` table.
//! * [`step`] — [`Step`], its [`StepKind`] (compensatable, pivot, retriable,
//!   compensation) and [`Pending`] (attempt and deadline of a waiting state).
//! * [`event`] — [`Event`] and [`EventKind`]: the replies and the timer.
//! * [`command`] — [`Command`]: the messages a transition emits.
//! * [`transition`](mod@transition) — [`start()`] and [`transition()`].
//! * [`config`] — [`SagaConfig`]: step timeout and retry back-off.
//! * [`error`] — [`TransitionError`] and [`Error`].
//!
//! The runtime (PostgreSQL, Kafka through the consumer and the outbox):
//! * [`store`] — the `saga` table (`migrations/`), [`migrate()`], and the
//!   writes that store a transition with its commands in the caller's
//!   transaction ([`StoreError`]).
//! * [`handler`] — [`SagaHandler`]: `OrderCreated` starts a saga, a reply
//!   advances it under its row lock.
//! * [`sweeper`] — [`Sweeper`]: times out overdue sagas, `FOR UPDATE SKIP
//!   LOCKED`, safe with several instances.
//! * [`operator`] — [`resume()`]: an operator sends a stopped saga's
//!   compensation again (`saga resume`).
//! * [`orchestrator`] — [`Orchestrator`] and [`OrchestratorConfig`]: the
//!   consumer and the sweeper until cancelled.
//! * `src/bin/saga-orchestrator.rs` — the binary: configuration from the
//!   environment, migrate, run.
//!
//! ## Example: a saga driven to approval
//! ```
//! use chrono::{TimeDelta, Utc};
//! use events::messages::inventory::{InventoryCommitted, InventoryReserved};
//! use events::messages::order::{OrderCreated, OrderLine};
//! use events::messages::payment::{PaymentAuthorized, PaymentCaptured};
//! use saga_orchestrator::{Command, Event, OrderSaga, SagaConfig};
//! use uuid::Uuid;
//!
//! let config = SagaConfig::default();
//! let (saga_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
//! let now = Utc::now();
//! let created = OrderCreated {
//!     order_id,
//!     customer_id: Uuid::now_v7(),
//!     lines: vec![OrderLine { sku: "BOOK-1".into(), quantity: 2, unit_price_minor: 1250 }],
//!     total_minor: 2500,
//!     currency: "EUR".into(),
//!     created_at: now,
//!     channel: "web".into(),
//! };
//!
//! let started = OrderSaga::start(saga_id, &created, now, &config);
//! assert_eq!(started.state.status(), "RESERVING_INVENTORY");
//! let Command::ReserveInventory(reserve) = &started.commands[0] else { panic!() };
//!
//! let reserved = InventoryReserved { order_id, lines: reserve.lines.clone(), reserved_at: now };
//! let next = started.state.handle(&Event::new(saga_id, now, reserved), &config)?;
//! assert!(matches!(next.commands[..], [Command::AuthorizePayment(_)]));
//!
//! let authorization_id = Uuid::now_v7();
//! let authorized = PaymentAuthorized {
//!     order_id,
//!     authorization_id,
//!     amount_minor: 2500,
//!     currency: "EUR".into(),
//!     authorized_at: now,
//! };
//! let next = next.state.handle(&Event::new(saga_id, now, authorized), &config)?;
//! assert!(matches!(next.commands[..], [Command::CommitInventory(_)]));
//!
//! let later = now + TimeDelta::seconds(1);
//! let committed = InventoryCommitted { order_id, committed_at: later };
//! let next = next.state.handle(&Event::new(saga_id, later, committed), &config)?;
//! assert!(matches!(next.commands[..], [Command::CapturePayment(_)]));
//!
//! let captured =
//!     PaymentCaptured { order_id, authorization_id, amount_minor: 2500, currency: "EUR".into(), captured_at: later };
//! let done = next.state.handle(&Event::new(saga_id, later, captured.clone()), &config)?;
//! assert_eq!(done.state.status(), "APPROVED");
//! assert!(matches!(done.commands[..], [Command::OrderApproved(_)]));
//!
//! // A redelivered reply changes nothing.
//! let again = done.state.handle(&Event::new(saga_id, later, captured), &config)?;
//! assert!(again.is_ignored() && again.commands.is_empty() && again.state == done.state);
//! # Ok::<(), saga_orchestrator::TransitionError>(())
//! ```

pub mod command;
pub mod config;
pub mod error;
pub mod event;
pub mod handler;
pub mod horizon;
pub mod operator;
pub mod orchestrator;
pub mod reply_watch;
pub mod state;
pub mod step;
pub mod store;
pub mod sweeper;
pub mod transition;

pub use command::Command;
pub use config::SagaConfig;
pub use error::{Error, TransitionError};
pub use event::{Event, EventKind};
pub use handler::{SagaHandler, TOPICS};
pub use horizon::Horizon;
pub use operator::{ResumeError, Resumed, resume};
pub use orchestrator::{Orchestrator, OrchestratorConfig, OrchestratorError};
pub use reply_watch::{REPLY_TOPICS, ReplyWatch, WatchError};
pub use state::{Authorization, OrderSaga, OrderSnapshot};
pub use step::{Pending, Step, StepKind};
pub use store::{StoreError, StoredSaga, migrate};
pub use sweeper::{SweepReport, Sweeper, SweeperConfig};
pub use transition::{Ignored, Transition, start, transition};
