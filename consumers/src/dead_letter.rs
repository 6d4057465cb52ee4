//! Dead letters: records the consumer gives up on, parked on `<topic>.dlq`.
//!
//! A dead letter is the original record — same key, same payload bytes, all
//! original headers in their order — plus the `dlq-*` headers of
//! [`header`] that say where it came from and why it failed. Nothing is
//! re-encoded, so a record whose bytes are garbage is parked as that garbage.
//!
//! # What happens to later records of the same key
//!
//! While a record is retried, its partition waits, so later records of its
//! key wait too. Once it is dead-lettered, the consumer commits its offset
//! and **processes the later records of that key normally**. We chose this
//! over blocking the key until an operator intervenes because a stuck key
//! would stall every other key on the partition (one partition carries many
//! aggregates) and, for permanent errors, would stall it forever. The cost is
//! that a later record may be applied without the earlier one; handlers of
//! this system guard against that with state checks (a reply for a saga step
//! that is not pending is ignored or rejected), and operations re-drive the
//! dead letter after fixing its cause: re-publishing it to its original topic
//! with its original event id, which the inbox has not recorded (dead letters
//! are never written to the inbox), so the re-driven record is applied once.

use chrono::{DateTime, SecondsFormat, Utc};
use producers::{Delivery, PublishError, Publisher, Record};
use tokio_util::sync::CancellationToken;

use crate::message::RawRecord;
use crate::retry::{Failure, RetryPolicy, grace_expired};

/// Names of the headers added to a dead letter. Values are UTF-8 text.
pub mod header {
    /// Topic the record was read from.
    pub const ORIGINAL_TOPIC: &str = "dlq-original-topic";
    /// Partition it was read from.
    pub const ORIGINAL_PARTITION: &str = "dlq-original-partition";
    /// Offset it had there.
    pub const ORIGINAL_OFFSET: &str = "dlq-original-offset";
    /// `permanent`, or `transient` when the retries ran out.
    pub const ERROR_CLASS: &str = "dlq-error-class";
    /// The last error's message.
    pub const ERROR_MESSAGE: &str = "dlq-error-message";
    /// Number of attempts made (1 for a permanent error on the first try).
    pub const ATTEMPTS: &str = "dlq-attempts";
    /// RFC 3339 time of the first failed attempt.
    pub const FIRST_FAILURE_AT: &str = "dlq-first-failure-at";
    /// Name of the consumer (inbox name) that gave up.
    pub const CONSUMER: &str = "dlq-consumer";
}

/// A record ready to be published to its dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `<original topic>.dlq`.
    pub topic: String,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original payload, byte for byte.
    pub payload: Option<Vec<u8>>,
    /// Original headers first, then the `dlq-*` headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    /// Builds the dead letter of `record`, which `consumer` failed to apply.
    pub fn new(record: &RawRecord, failure: &Failure, consumer: &str) -> Self {
        let mut headers = record.headers.clone();
        let mut add = |name: &str, value: String| headers.push((name.to_owned(), value.into_bytes()));
        add(header::ORIGINAL_TOPIC, record.topic.clone());
        add(header::ORIGINAL_PARTITION, record.partition.to_string());
        add(header::ORIGINAL_OFFSET, record.offset.to_string());
        add(header::ERROR_CLASS, failure.class.as_str().to_owned());
        add(header::ERROR_MESSAGE, failure.reason.clone());
        add(header::ATTEMPTS, failure.attempts.to_string());
        add(header::FIRST_FAILURE_AT, rfc3339(failure.first_failure_at));
        add(header::CONSUMER, consumer.to_owned());
        DeadLetter {
            topic: events::topics::dead_letter_topic(&record.topic),
            key: record.key.clone(),
            payload: record.payload.clone(),
            headers,
        }
    }

    /// The record to hand to a [`Publisher`].
    pub fn record(&self) -> Record<'_> {
        Record {
            topic: &self.topic,
            key: self.key.as_deref(),
            payload: self.payload.as_deref(),
            headers: self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect(),
        }
    }

    /// The last value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Publishes `letter`, retrying every failure with the policy's backoff (a
/// dead letter must not be lost, and the record's offset is only committed
/// once it is published). Returns `None` when shutdown (`cancel` plus
/// `grace`) came first; the record is then left uncommitted and redelivered.
pub(crate) async fn publish<P: Publisher>(
    publisher: &P,
    letter: &DeadLetter,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    grace: std::time::Duration,
) -> Option<Delivery> {
    let mut delays = policy.endless_delays();
    loop {
        let result: Result<Delivery, PublishError> = tokio::select! {
            r = publisher.publish(letter.record()) => r,
            _ = grace_expired(cancel, grace) => return None,
        };
        let error = match result {
            Ok(d) => return Some(d),
            Err(e) => e,
        };
        let delay = delays.next().unwrap_or(policy.max_delay);
        tracing::error!(topic = %letter.topic, error = %error, ?delay, "cannot publish dead letter; retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::classify::ErrorClass;

    fn raw() -> RawRecord {
        RawRecord {
            topic: "payment.commands".into(),
            partition: 1,
            offset: 17,
            key: Some(b"order-9".to_vec()),
            payload: Some(vec![0xde, 0xad, 0xbe, 0xef]),
            headers: vec![("event-id".into(), b"not-a-uuid".to_vec()), ("x-custom".into(), vec![0, 1, 2])],
            timestamp: None,
        }
    }

    fn failure() -> Failure {
        Failure {
            class: ErrorClass::Transient,
            reason: "pool timed out".into(),
            attempts: 7,
            first_failure_at: DateTime::parse_from_rfc3339("2026-11-25T10:00:00.250Z")
                .map(|t| t.with_timezone(&Utc))
                .expect("valid literal"),
        }
    }

    #[test]
    fn keeps_the_original_record_and_adds_the_reason() {
        let letter = DeadLetter::new(&raw(), &failure(), "payment-service");
        assert_eq!(letter.topic, "payment.commands.dlq");
        assert_eq!(letter.key.as_deref(), Some(&b"order-9"[..]));
        assert_eq!(letter.payload, Some(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(&letter.headers[..2], &raw().headers[..], "original headers first, untouched");
        assert_eq!(letter.header(header::ORIGINAL_TOPIC), Some("payment.commands"));
        assert_eq!(letter.header(header::ORIGINAL_PARTITION), Some("1"));
        assert_eq!(letter.header(header::ORIGINAL_OFFSET), Some("17"));
        assert_eq!(letter.header(header::ERROR_CLASS), Some("transient"));
        assert_eq!(letter.header(header::ERROR_MESSAGE), Some("pool timed out"));
        assert_eq!(letter.header(header::ATTEMPTS), Some("7"));
        assert_eq!(letter.header(header::FIRST_FAILURE_AT), Some("2026-11-25T10:00:00.250Z"));
        assert_eq!(letter.header(header::CONSUMER), Some("payment-service"));

        let record = letter.record();
        assert_eq!(record.topic, "payment.commands.dlq");
        assert_eq!(record.headers.len(), 2 + 8);
        assert_eq!(record.headers[1], ("x-custom", &[0u8, 1, 2][..]));
    }

    /// Fails the first `failures` publishes, then succeeds; remembers topics.
    struct FlakyPublisher {
        failures: Mutex<u32>,
        published: Mutex<Vec<String>>,
    }

    impl Publisher for FlakyPublisher {
        async fn publish(&self, record: Record<'_>) -> Result<Delivery, PublishError> {
            {
                let mut left = self.failures.lock().expect("not poisoned");
                if *left > 0 {
                    *left -= 1;
                    return Err(PublishError::Delivery { retriable: true, reason: "broker down".into() });
                }
            }
            self.published.lock().expect("not poisoned").push(record.topic.to_owned());
            Ok(Delivery { partition: 0, offset: 5 })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn publishing_is_retried_until_it_succeeds() {
        let p = FlakyPublisher { failures: Mutex::new(3), published: Mutex::new(vec![]) };
        let letter = DeadLetter::new(&raw(), &failure(), "c");
        let d =
            publish(&p, &letter, &RetryPolicy::default(), &CancellationToken::new(), Duration::from_secs(1))
                .await;
        assert_eq!(d.map(|d| d.offset), Some(5));
        assert_eq!(*p.published.lock().expect("not poisoned"), vec!["payment.commands.dlq".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_publish_retries() {
        let p = FlakyPublisher { failures: Mutex::new(u32::MAX), published: Mutex::new(vec![]) };
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            c.cancel();
        });
        let letter = DeadLetter::new(&raw(), &failure(), "c");
        let d = publish(&p, &letter, &RetryPolicy::default(), &cancel, Duration::from_secs(1)).await;
        assert!(d.is_none());
        assert!(p.published.lock().expect("not poisoned").is_empty());
    }
}
