//! The life of a record: envelope, inbox, handler, commit; retries; dead
//! letter — one record at a time, or several of one partition in one
//! transaction. Kafka offsets are not touched here: the partition's worker
//! reports the records finished and the poll thread stores their offsets.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt as _;
use producers::Publisher;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::classify::ErrorClass;
use crate::config::InboxMode;
use crate::dead_letter::{self, DeadLetter};
use crate::handler::{Handler, HandlerError};
use crate::inbox::{self, InboxEntry};
use crate::message::{InboundMessage, RawRecord};
use crate::retry::{self, Failure, Retried, RetryPolicy};
use crate::stats::Stats;
use crate::stop::Stop;

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler's transaction committed.
    Applied,
    /// The inbox already had the event; nothing was done.
    Duplicate,
    /// Published to the dead-letter topic.
    DeadLettered,
    /// The handler does not accept it ([`Handler::accepts`]): nothing done.
    Ignored,
    /// A stop (shutdown, revocation) interrupted it; its offset must not be
    /// stored.
    Cancelled,
}

impl Outcome {
    /// Whether the record's offset may be committed.
    pub(crate) fn is_finished(self) -> bool {
        !matches!(self, Outcome::Cancelled)
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchOutcome {
    /// One transaction applied (or skipped as duplicates) every record.
    Finished,
    /// The transaction failed and was rolled back: apply the records one by
    /// one, so that a poison record is dead-lettered alone.
    OneByOne,
    /// A stop came first; nothing was committed.
    Cancelled,
}

/// Everything needed to process records, minus Kafka consumption.
pub(crate) struct Pipeline<H, P> {
    pub(crate) name: String,
    pub(crate) pool: PgPool,
    pub(crate) handler: H,
    pub(crate) dead_letters: P,
    pub(crate) inbox: InboxMode,
    pub(crate) retry: RetryPolicy,
    /// Backoff of dead-letter publishes (halted partition).
    pub(crate) dead_letter_retry: RetryPolicy,
    pub(crate) attempt_timeout: Duration,
    /// Transactions open at once, over all partitions (`max_in_flight`).
    pub(crate) permits: Semaphore,
    pub(crate) stats: Stats,
}

impl<H: Handler, P: Publisher> Pipeline<H, P> {
    /// Processes `record` to one of the [`Outcome`]s.
    pub(crate) async fn process(&self, record: &RawRecord, stop: &Stop) -> Outcome {
        let message = match InboundMessage::from_record(record) {
            Ok(m) => m,
            Err(e) => {
                let failure = Failure {
                    class: ErrorClass::Permanent,
                    reason: e.reason().to_owned(),
                    attempts: 1,
                    first_failure_at: Utc::now(),
                };
                return self.dead_letter(record, failure, stop).await;
            }
        };
        if !self.handler.accepts(&message) {
            self.stats.ignored(1);
            return Outcome::Ignored;
        }
        let span = message.span();
        async {
            let attempt = |n: u32| {
                if n > 1 {
                    self.stats.retried(1);
                }
                self.bounded(self.attempt(&message))
            };
            match retry::retry(&self.retry, stop, attempt).await {
                Retried::Done { value, attempts } => match value {
                    InboxEntry::New => {
                        self.stats.applied();
                        tracing::debug!(attempts, "applied");
                        Outcome::Applied
                    }
                    InboxEntry::Duplicate => {
                        self.stats.duplicate();
                        tracing::info!("already applied; skipped");
                        Outcome::Duplicate
                    }
                },
                Retried::Failed(failure) => self.dead_letter(record, failure, stop).await,
                Retried::Cancelled => {
                    tracing::info!("stopped before the record finished; it will be redelivered");
                    Outcome::Cancelled
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Applies `records` (one partition, in offset order) in one transaction:
    /// one inbox statement for all, the handler once per new event, one
    /// commit. Any failure rolls everything back and asks for one-by-one.
    pub(crate) async fn process_batch(&self, records: &[RawRecord], stop: &Stop) -> BatchOutcome {
        let Ok(mut messages) = records.iter().map(InboundMessage::from_record).collect::<Result<Vec<_>, _>>()
        else {
            return BatchOutcome::OneByOne;
        };
        let before = messages.len();
        messages.retain(|m| self.handler.accepts(m));
        self.stats.ignored((before - messages.len()) as u64);
        if messages.is_empty() {
            return BatchOutcome::Finished;
        }
        let result = tokio::select! {
            biased;
            r = self.bounded(self.batch_attempt(&messages)) => r,
            _ = stop.expired() => return BatchOutcome::Cancelled,
        };
        match result {
            Ok((applied, duplicates)) => {
                self.stats.batch(applied, duplicates);
                tracing::debug!(records = records.len(), applied, duplicates, "batch applied");
                BatchOutcome::Finished
            }
            Err(e) => {
                tracing::debug!(records = records.len(), error = %e, "batch failed; applying one by one");
                BatchOutcome::OneByOne
            }
        }
    }

    /// Runs one attempt with a transaction permit, bounded by `attempt_timeout`.
    async fn bounded<T>(
        &self,
        attempt: impl Future<Output = Result<T, HandlerError>>,
    ) -> Result<T, HandlerError> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(HandlerError::transient("the consumer is closing"));
        };
        match tokio::time::timeout(self.attempt_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                self.stats.timed_out();
                Err(HandlerError::transient(format!("attempt timed out after {:?}", self.attempt_timeout)))
            }
        }
    }

    /// One attempt: a transaction with the inbox row and the handler's effect.
    async fn attempt(&self, message: &InboundMessage) -> Result<InboxEntry, HandlerError> {
        let mut tx = self.pool.begin().await?;
        if self.inbox == InboxMode::Enabled
            && inbox::record(&mut tx, &self.name, message).await? == InboxEntry::Duplicate
        {
            // Nothing was written; the rollback's own failure changes nothing.
            let _ = tx.rollback().await;
            return Ok(InboxEntry::Duplicate);
        }
        self.handle(message, &mut tx).await?;
        // If the acknowledgement of this commit is lost, the retry finds the
        // inbox row and reports a duplicate: the effect is still applied once.
        tx.commit().await?;
        Ok(InboxEntry::New)
    }

    /// One batch attempt; returns (applied, duplicates).
    async fn batch_attempt(&self, messages: &[InboundMessage]) -> Result<(u64, u64), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let new = match self.inbox {
            InboxMode::Enabled => inbox::record_batch(&mut tx, &self.name, messages).await?,
            InboxMode::Disabled => messages.iter().map(|m| m.envelope.event_id).collect(),
        };
        let mut seen = HashSet::with_capacity(new.len());
        let fresh: Vec<&InboundMessage> = messages
            .iter()
            .filter(|m| new.contains(&m.envelope.event_id) && seen.insert(m.envelope.event_id))
            .collect();
        if !fresh.is_empty() {
            self.handle_batch(&fresh, &mut tx).await?;
        }
        tx.commit().await?;
        let applied = fresh.len() as u64;
        Ok((applied, messages.len() as u64 - applied))
    }

    /// The handler, with its panics turned into permanent errors: a panic is
    /// a bug that replaying the record would hit again, and must not take
    /// the consumer down with it.
    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        self.unwound(AssertUnwindSafe(self.handler.handle(message, tx)).catch_unwind().await)
    }

    /// [`Handler::handle_batch`], with the same care as [`Self::handle`].
    async fn handle_batch(
        &self,
        messages: &[&InboundMessage],
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        self.unwound(AssertUnwindSafe(self.handler.handle_batch(messages, tx)).catch_unwind().await)
    }

    fn unwound(
        &self,
        outcome: Result<Result<(), HandlerError>, Box<dyn std::any::Any + Send>>,
    ) -> Result<(), HandlerError> {
        match outcome {
            Ok(result) => {
                if let Err(HandlerError::Deferred(_)) = &result {
                    self.stats.deferred();
                }
                result
            }
            Err(panic) => Err(HandlerError::permanent(format!("handler panicked: {}", panic_text(&*panic)))),
        }
    }

    async fn dead_letter(&self, record: &RawRecord, failure: Failure, stop: &Stop) -> Outcome {
        let letter = DeadLetter::new(record, &failure, &self.name);
        tracing::error!(
            position = %record.position(),
            class = %failure.class,
            attempts = failure.attempts,
            reason = %failure.reason,
            topic = %letter.topic,
            "dead-lettering record",
        );
        match dead_letter::publish(&self.dead_letters, &letter, &self.dead_letter_retry, stop, &self.stats)
            .await
        {
            Some(_) => {
                self.stats.dead_lettered();
                Outcome::DeadLettered
            }
            None => Outcome::Cancelled,
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use producers::{Delivery, PublishError, Record};
    use sqlx::{Postgres, Transaction};

    use super::*;
    use crate::dead_letter::header;

    /// A published record: topic, headers as text, payload.
    type Published = (String, Vec<(String, String)>, Option<Vec<u8>>);

    /// Remembers every record published.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Published>>);

    impl Publisher for Recorder {
        fn publish<'a>(
            &'a self,
            record: Record<'a>,
        ) -> impl std::future::Future<Output = Result<Delivery, PublishError>> + Send + 'a {
            let headers = record
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            self.0.lock().expect("not poisoned").push((
                record.topic.to_owned(),
                headers,
                record.payload.map(<[u8]>::to_vec),
            ));
            async { Ok(Delivery { partition: 0, offset: 0 }) }
        }
    }

    struct NeverCalled;

    impl Handler for NeverCalled {
        async fn handle(
            &self,
            _: &InboundMessage,
            _: &mut Transaction<'_, Postgres>,
        ) -> Result<(), HandlerError> {
            panic!("the handler must not run")
        }
    }

    /// Accepts nothing; handling anything would be a bug.
    struct AcceptsNothing;

    impl Handler for AcceptsNothing {
        fn accepts(&self, _: &InboundMessage) -> bool {
            false
        }

        async fn handle(
            &self,
            _: &InboundMessage,
            _: &mut Transaction<'_, Postgres>,
        ) -> Result<(), HandlerError> {
            panic!("an ignored message must not be handled")
        }
    }

    #[tokio::test]
    async fn a_message_the_handler_does_not_accept_is_finished_without_a_transaction() {
        let (_, headers) = envelope("saga.order.OrderCreated");
        // The pool is unreachable: any transaction would fail (and retry).
        let p = pipeline_with(AcceptsNothing, 3);
        assert_eq!(p.process(&record(headers.clone()), &Stop::default()).await, Outcome::Ignored);
        let two = [record(headers.clone()), record(headers)];
        assert_eq!(p.process_batch(&two, &Stop::default()).await, BatchOutcome::Finished);
        let s = p.stats.snapshot();
        assert_eq!((s.ignored, s.applied, s.retries, s.finished()), (3, 0, 0, 3));
    }

    /// A pool whose server refuses connections: every attempt fails transiently.
    fn unreachable_pool() -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy("postgres://nobody:nothing@127.0.0.1:1/none")
            .expect("a valid URL")
    }

    fn pipeline(max_attempts: u32) -> Pipeline<NeverCalled, Recorder> {
        pipeline_with(NeverCalled, max_attempts)
    }

    fn pipeline_with<H: Handler>(handler: H, max_attempts: u32) -> Pipeline<H, Recorder> {
        let retry = RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            factor: 2.0,
            jitter: false,
        };
        Pipeline {
            name: "test-consumer".into(),
            pool: unreachable_pool(),
            handler,
            dead_letters: Recorder::default(),
            inbox: InboxMode::Enabled,
            dead_letter_retry: retry.clone(),
            retry,
            attempt_timeout: Duration::from_secs(5),
            permits: Semaphore::new(4),
            stats: Stats::default(),
        }
    }

    /// A fresh envelope of `message_type`, and its record headers.
    fn envelope(message_type: &str) -> (events::Envelope, Vec<(String, Vec<u8>)>) {
        let envelope = events::Envelope {
            event_id: uuid::Uuid::now_v7(),
            message_type: message_type.into(),
            schema_version: 1,
            aggregate_type: "order".into(),
            aggregate_id: "k".into(),
            correlation_id: None,
            causation_id: None,
            occurred_at: Utc::now(),
            traceparent: None,
            tracestate: None,
        };
        let headers =
            envelope.to_headers().into_iter().map(|(k, v)| (k.to_owned(), v.into_bytes())).collect();
        (envelope, headers)
    }

    fn record(headers: Vec<(String, Vec<u8>)>) -> RawRecord {
        RawRecord {
            topic: "inventory.commands".into(),
            partition: 0,
            offset: 3,
            key: Some(b"k".to_vec()),
            payload: Some(b"garbage".to_vec()),
            headers,
            timestamp: None,
        }
    }

    fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn a_record_without_envelope_is_dead_lettered_at_once() {
        let p = pipeline(5);
        let outcome = p.process(&record(vec![("x".into(), b"y".to_vec())]), &Stop::default()).await;
        assert_eq!(outcome, Outcome::DeadLettered);
        let published = p.dead_letters.0.lock().expect("not poisoned");
        let (topic, headers, payload) = &published[0];
        assert_eq!(topic, "inventory.commands.dlq");
        assert_eq!(payload.as_deref(), Some(&b"garbage"[..]));
        assert_eq!(find(headers, "x"), Some("y"));
        assert_eq!(find(headers, header::ERROR_CLASS), Some("permanent"));
        assert_eq!(find(headers, header::ATTEMPTS), Some("1"));
        assert!(find(headers, header::ERROR_MESSAGE).is_some_and(|m| m.contains("missing header")));
        assert_eq!(p.stats.snapshot().dead_lettered, 1);
    }

    #[tokio::test]
    async fn an_unreachable_database_is_retried_then_dead_lettered_as_transient() {
        let (envelope, headers) = envelope("saga.test.Thing");
        let p = pipeline(3);
        let outcome = p.process(&record(headers), &Stop::default()).await;
        assert_eq!(outcome, Outcome::DeadLettered);
        let published = p.dead_letters.0.lock().expect("not poisoned");
        let (_, headers, _) = &published[0];
        assert_eq!(find(headers, header::ERROR_CLASS), Some("transient"));
        assert_eq!(find(headers, header::ATTEMPTS), Some("3"));
        assert_eq!(find(headers, header::CONSUMER), Some("test-consumer"));
        assert_eq!(
            find(headers, events::envelope::header::EVENT_ID),
            Some(envelope.event_id.to_string().as_str())
        );
        assert_eq!(p.stats.snapshot().retries, 2);
    }

    #[tokio::test]
    async fn shutdown_during_retries_leaves_the_record_unfinished() {
        let mut p = pipeline(1_000);
        p.retry.initial_delay = Duration::from_secs(60);
        p.retry.max_delay = Duration::from_secs(60);
        let (_, envelope_headers) = envelope("saga.test.Thing");
        let stop = Stop::default();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            s.request(Duration::from_secs(1));
        });
        let outcome = p.process(&record(envelope_headers), &stop).await;
        assert_eq!(outcome, Outcome::Cancelled);
        assert!(!outcome.is_finished());
        assert!(p.dead_letters.0.lock().expect("not poisoned").is_empty());
    }
}
