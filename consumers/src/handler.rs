//! The handler API: what a service implements to consume a topic.
//!
//! A [`Handler`] receives one decoded [`InboundMessage`] and the open
//! PostgreSQL transaction in which the runtime has already recorded the event
//! in the inbox. The handler writes its effect (and, when it replies, the
//! reply's outbox row) through that transaction; the runtime commits it. The
//! handler never commits, never touches Kafka offsets and never retries: it
//! only says, through [`HandlerError`], whether a failure is worth retrying.

use std::future::Future;

use sqlx::{Postgres, Transaction};
use tracing::Instrument as _;

use crate::classify::{self, ErrorClass};
use crate::message::InboundMessage;

/// Business logic for one consumer.
///
/// Implementations may be written with `async fn`:
///
/// ```
/// use consumers::{Handler, HandlerError, InboundMessage};
/// use sqlx::{Postgres, Transaction};
///
/// struct CountEvents;
///
/// impl Handler for CountEvents {
///     async fn handle(
///         &self,
///         message: &InboundMessage,
///         tx: &mut Transaction<'_, Postgres>,
///     ) -> Result<(), HandlerError> {
///         sqlx::query("UPDATE counters SET n = n + 1 WHERE name = $1")
///             .bind(&message.envelope.message_type)
///             .execute(&mut **tx)
///             .await?; // sqlx errors are classified (connection loss = transient)
///         Ok(())
///     }
/// }
/// ```
///
/// The same message may be handed to `handle` more than once (a retry after
/// a transient error, a commit whose acknowledgement was lost), but at most
/// one of those transactions commits: the inbox row written before `handle`
/// runs makes every later attempt a duplicate. A handler must therefore do
/// all its durable work through `tx`; side effects outside the database
/// (HTTP calls, direct Kafka sends) are not covered by that guarantee.
pub trait Handler: Send + Sync {
    /// Applies `message` inside `tx`. Return [`HandlerError::Transient`] for
    /// failures that may succeed later (the runtime retries in place) and
    /// [`HandlerError::Permanent`] for failures that never will (the runtime
    /// sends the record to the dead-letter topic).
    fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether this handler has anything to do with `message`. A message it
    /// does not accept is finished at once — no transaction, no inbox row,
    /// no dead letter — and counted as
    /// [`ignored`](crate::StatsSnapshot::ignored): for the events of a topic
    /// that this consumer reads for others (a service reading its own
    /// events back). The default accepts everything; a message type the
    /// handler does not know should still reach [`handle`](Self::handle),
    /// which dead-letters it.
    fn accepts(&self, message: &InboundMessage) -> bool {
        let _ = message;
        true
    }

    /// Applies several new messages of one partition, in offset order, in
    /// one transaction (the runtime has recorded them all in the inbox, in
    /// one statement, and dropped the duplicates). The default calls
    /// [`handle`](Self::handle) for each, in order. Override it to share
    /// work between them — one lock statement for all the rows they touch
    /// (in a fixed order, so that two transactions never deadlock), one
    /// clock read, one write for all — with the same effect as handling
    /// them one after the other. An error rolls the whole batch back; the
    /// runtime then applies the messages one by one through `handle`, so a
    /// poison message is dead-lettered alone.
    fn handle_batch(
        &self,
        messages: &[&InboundMessage],
        tx: &mut Transaction<'_, Postgres>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for message in messages {
                self.handle(message, tx).instrument(message.span()).await?;
            }
            Ok(())
        }
    }
}

impl<H: Handler> Handler for std::sync::Arc<H> {
    fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (**self).handle(message, tx)
    }

    fn handle_batch(
        &self,
        messages: &[&InboundMessage],
        tx: &mut Transaction<'_, Postgres>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (**self).handle_batch(messages, tx)
    }

    fn accepts(&self, message: &InboundMessage) -> bool {
        (**self).accepts(message)
    }
}

/// Why a handler (or the runtime around it) could not apply a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// May succeed if tried again: database unreachable, serialization
    /// failure, deadlock, timeout. Retried with backoff, in place.
    #[error("transient: {0}")]
    Transient(String),
    /// Will fail the same way every time: undecodable body, unknown message
    /// type, a value the business rules reject. Dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Cannot be applied *yet*, and will be once something outside the
    /// record changes — typically a payload written with a schema this
    /// reader does not know yet (a deployment-order problem: the writer was
    /// upgraded first). Retried without an attempt limit (the backoff caps
    /// at the retry policy's `max_delay`), never dead-lettered; the
    /// partition waits, each wait is logged and counted
    /// ([`StatsSnapshot::deferred`](crate::StatsSnapshot::deferred)).
    #[error("deferred: {0}")]
    Deferred(String),
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn transient(reason: impl std::fmt::Display) -> Self {
        HandlerError::Transient(reason.to_string())
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(reason.to_string())
    }

    /// A failure that only a change outside the record (a deployment) fixes.
    pub fn deferred(reason: impl std::fmt::Display) -> Self {
        HandlerError::Deferred(reason.to_string())
    }

    /// The permanent error for a message type this handler does not know.
    pub fn unknown_type(message: &InboundMessage) -> Self {
        HandlerError::Permanent(format!(
            "unknown message type `{}` (schema v{}) on topic `{}`",
            message.envelope.message_type, message.envelope.schema_version, message.topic
        ))
    }

    /// Transient (deferred counts as transient) or permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            HandlerError::Transient(_) | HandlerError::Deferred(_) => ErrorClass::Transient,
            HandlerError::Permanent(_) => ErrorClass::Permanent,
        }
    }

    /// The reason without the class prefix.
    pub fn reason(&self) -> &str {
        match self {
            HandlerError::Transient(r) | HandlerError::Permanent(r) | HandlerError::Deferred(r) => r,
        }
    }
}

/// Database errors are classified by [`classify::sqlx_error`]: connection
/// loss, pool timeouts, serialization failures and deadlocks are transient;
/// constraint violations, bad data and SQL errors are permanent.
impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        match classify::sqlx_error(&e) {
            ErrorClass::Transient => HandlerError::Transient(e.to_string()),
            ErrorClass::Permanent => HandlerError::Permanent(e.to_string()),
        }
    }
}

/// Body decoding is deterministic — a body that does not decode now never
/// will — except for a writer schema this reader does not know yet
/// ([`events::CodecError::is_unknown_schema`]): the writer was deployed
/// first, and the same bytes decode once the reader has the schema (a new
/// build, or the file in `SAGA_SCHEMA_DIR`; see `events::store`). That one
/// is deferred, never dead-lettered.
impl From<events::CodecError> for HandlerError {
    fn from(e: events::CodecError) -> Self {
        if e.is_unknown_schema() {
            HandlerError::Deferred(format!("cannot decode body yet: {e}"))
        } else {
            HandlerError::Permanent(format!("cannot decode body: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_transient_and_row_not_found_is_permanent() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(HandlerError::from(io), HandlerError::Transient(_)));
        assert!(matches!(HandlerError::from(sqlx::Error::PoolTimedOut), HandlerError::Transient(_)));
        assert!(matches!(HandlerError::from(sqlx::Error::RowNotFound), HandlerError::Permanent(_)));
    }

    #[test]
    fn class_and_reason() {
        let e = HandlerError::permanent("bad sku");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(e.reason(), "bad sku");
        assert_eq!(e.to_string(), "permanent: bad sku");
        assert_eq!(HandlerError::transient("db down").class(), ErrorClass::Transient);
    }
}
