//! [`SagaHandler`]: the orchestrator's [`consumers::Handler`]. It starts a
//! saga for each `OrderCreated` and feeds the services' replies to the saga
//! they are correlated with.
//!
//! The consumer runtime opens a transaction, records the event in its inbox
//! and calls the handler in that transaction; the handler reads and locks the
//! saga, runs the pure [`transition`](crate::transition()), and writes the new
//! state and the resulting commands (through the outbox) into the same
//! transaction. The runtime then commits: the inbox row, the state change and
//! the commands land together, or none of them does and the record is
//! retried or dead-lettered.
//!
//! | message | what the handler does |
//! |---|---|
//! | `OrderCreated` | inserts the saga (id = order id) and its first command; a saga that exists already is left alone (a re-sent `OrderCreated`) |
//! | a reply the saga awaits | locks the saga, stores the next state and its commands |
//! | a reply the saga ignores (duplicate, late, after the end) | nothing but the inbox row |
//! | `OrderApproved` / `OrderRejected` | nothing: the orchestrator's own outcome events, read back from `orders.events` |
//! | a reply for no known saga, or for another order than its saga's | permanent error: dead-lettered with the reason |
//! | a body that does not decode, an unknown message type | permanent error: dead-lettered |
//! | a database failure | classified by [`consumers::classify`]; transient ones are retried |

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use consumers::{ErrorClass, Handler, HandlerError, InboundMessage};
use events::messages::order::{OrderApproved, OrderCreated, OrderRejected};
use sqlx::{Postgres, Transaction};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::config::SagaConfig;
use crate::event::{Event, EventKind};
use crate::state::OrderSaga;
use crate::store::{self, StoreError, StoredSaga};

/// The topics the orchestrator consumes: order events (to start sagas) and
/// the replies of the inventory and payment services.
pub const TOPICS: [&str; 3] =
    [events::topics::ORDER_EVENTS, events::topics::INVENTORY_REPLIES, events::topics::PAYMENT_REPLIES];

/// Starts and advances order sagas from consumed messages. See the
/// [module docs](self) for what each message does.
#[derive(Debug, Clone)]
pub struct SagaHandler {
    config: SagaConfig,
}

impl SagaHandler {
    /// A handler whose sagas time their steps by `config`.
    pub fn new(config: SagaConfig) -> Self {
        SagaHandler { config }
    }

    /// The timing of the sagas this handler starts and advances.
    pub fn config(&self) -> &SagaConfig {
        &self.config
    }

    /// `OrderCreated`: the saga of the order, stored with its first command.
    async fn start(
        &self,
        message: &InboundMessage,
        at: DateTime<Utc>,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        let created: OrderCreated = message.decode()?;
        let saga_id = created.order_id;
        let started = OrderSaga::start(saga_id, &created, at, &self.config);
        let stored =
            store::create(tx, &started, Some(message.envelope.event_id)).await.map_err(to_handler_error)?;
        if stored {
            tracing::info!(%saga_id, status = started.state.status(), "saga started");
        } else {
            tracing::info!(%saga_id, "saga exists already; OrderCreated seen before, ignored");
        }
        Ok(())
    }

    /// What `message` asks for, without touching the database.
    fn step(message: &InboundMessage) -> Result<Step, HandlerError> {
        if message.is::<OrderCreated>() {
            return Ok(Step::Start);
        }
        if message.is::<OrderApproved>() || message.is::<OrderRejected>() {
            tracing::debug!(message_type = %message.envelope.message_type, "our own outcome event; ignored");
            return Ok(Step::Skip);
        }
        let kind = match EventKind::decode(&message.envelope.message_type, &message.payload) {
            Ok(Some(kind)) => kind,
            Ok(None) => return Err(HandlerError::unknown_type(message)),
            Err(e) => return Err(HandlerError::permanent(format!("{e}: {}", source_text(&e)))),
        };
        // The saga id is the order id; a reply that lost its correlation id
        // still finds its saga through the order it is about.
        let Some(saga_id) = message.envelope.correlation_id.or(kind.order_id()) else {
            return Err(HandlerError::permanent(format!("{} carries no saga id", kind.name())));
        };
        Ok(Step::Reply { saga_id, kind })
    }

    /// A reply: the next state of `before`, the saga it is correlated with
    /// (locked by the caller). Returns the saga as it is now.
    async fn advance(
        &self,
        message: &InboundMessage,
        kind: EventKind,
        before: StoredSaga,
        at: DateTime<Utc>,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<StoredSaga, HandlerError> {
        let saga_id = before.state.saga_id();
        let event = Event { saga_id, at, kind };
        let next = before.state.handle(&event, &self.config).map_err(HandlerError::permanent)?;
        let from = before.state.status();
        if let Some(why) = next.ignored {
            tracing::info!(%saga_id, status = from, reply = event.kind.name(), ?why, "reply ignored");
            return Ok(before);
        }
        let version = store::save(tx, &before, &next, Some(message.envelope.event_id))
            .await
            .map_err(to_handler_error)?;
        tracing::info!(
            %saga_id,
            from,
            to = next.state.status(),
            reply = event.kind.name(),
            version,
            commands = ?next.commands.iter().map(|c| c.message_type()).collect::<Vec<_>>(),
            "saga advanced"
        );
        Ok(StoredSaga { state: next.state, version })
    }
}

/// What one message asks of the orchestrator.
enum Step {
    /// `OrderCreated`: start its saga.
    Start,
    /// A reply for saga `saga_id`.
    Reply { saga_id: Uuid, kind: EventKind },
    /// Our own outcome events.
    Skip,
}

fn unknown_saga(kind: &EventKind, saga_id: Uuid) -> HandlerError {
    HandlerError::permanent(format!("{} for unknown saga {saga_id}", kind.name()))
}

impl Handler for SagaHandler {
    /// `OrderApproved` / `OrderRejected` are the orchestrator's own outcome
    /// events, read back from `orders.events`: finished without a
    /// transaction or an inbox row.
    fn accepts(&self, message: &InboundMessage) -> bool {
        !(message.is::<OrderApproved>() || message.is::<OrderRejected>())
    }

    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        match Self::step(message)? {
            Step::Start => {
                let at = store::now(tx).await.map_err(to_handler_error)?;
                self.start(message, at, tx).await
            }
            Step::Reply { saga_id, kind } => {
                let Some(before) = store::lock(tx, saga_id).await.map_err(to_handler_error)? else {
                    return Err(unknown_saga(&kind, saga_id));
                };
                let at = store::now(tx).await.map_err(to_handler_error)?;
                self.advance(message, kind, before, at, tx).await.map(drop)
            }
            Step::Skip => Ok(()),
        }
    }

    /// A batch: one clock read, the sagas of every reply locked in one
    /// statement (in saga id order, so two members applying batches that
    /// share sagas never deadlock), then each message in order, as
    /// [`handle`](Self::handle) would, on the sagas as the batch left them.
    async fn handle_batch(
        &self,
        messages: &[&InboundMessage],
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        let steps = messages.iter().map(|m| Self::step(m)).collect::<Result<Vec<_>, _>>()?;
        let mut ids: Vec<Uuid> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Reply { saga_id, .. } => Some(*saga_id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut sagas = if ids.is_empty() {
            HashMap::new()
        } else {
            store::lock_many(tx, &ids).await.map_err(to_handler_error)?
        };
        let at = store::now(tx).await.map_err(to_handler_error)?;
        for (message, step) in messages.iter().zip(steps) {
            match step {
                Step::Start => self.start(message, at, tx).instrument(message.span()).await?,
                Step::Reply { saga_id, kind } => {
                    let Some(before) = sagas.remove(&saga_id) else {
                        return Err(unknown_saga(&kind, saga_id));
                    };
                    let after =
                        self.advance(message, kind, before, at, tx).instrument(message.span()).await?;
                    sagas.insert(saga_id, after);
                }
                Step::Skip => {}
            }
        }
        Ok(())
    }
}

/// A store failure as the consumer runtime sees it: database trouble is
/// classified (connection loss and deadlocks are retried), a state that
/// cannot be read or a command that cannot be encoded never will be, and a
/// stale version is retried (the retry reads the saga again).
pub fn to_handler_error(e: StoreError) -> HandlerError {
    let reason = format!("{e}: {}", source_text(&e));
    let class = match (&e, e.sqlx_error()) {
        (StoreError::UpdateStale { .. }, _) => ErrorClass::Transient,
        (_, Some(db)) => consumers::classify::sqlx_error(db),
        (_, None) => ErrorClass::Permanent,
    };
    match class {
        ErrorClass::Transient => HandlerError::Transient(reason),
        ErrorClass::Permanent => HandlerError::Permanent(reason),
    }
}

/// The chain of sources below `e`, for a dead letter's reason.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = e.source();
    while let Some(source) = next {
        parts.push(source.to_string());
        next = source.source();
    }
    parts.join(": ")
}
