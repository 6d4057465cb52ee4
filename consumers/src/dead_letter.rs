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

use crate::message::RawRecord;
use crate::retry::{Failure, RetryPolicy};
use crate::stats::Stats;
use crate::stop::Stop;

/// Longest `dlq-error-message` value, in bytes: error texts (a handler's, a
/// database's) can be long, and the broker refuses a record whose headers
/// push it past the topic's limit.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 2048;

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
        add(header::ERROR_MESSAGE, capped(&failure.reason, MAX_ERROR_MESSAGE_BYTES));
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

    /// `topic/partition@offset` of the original record.
    pub fn position(&self) -> String {
        let h = |name| self.header(name).unwrap_or("?");
        format!(
            "{}/{}@{}",
            h(header::ORIGINAL_TOPIC),
            h(header::ORIGINAL_PARTITION),
            h(header::ORIGINAL_OFFSET)
        )
    }

    /// The last value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn capped(text: &str, max: usize) -> String {
    const MARK: &str = "… (truncated)";
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Publishes `letter`, retrying every failure: a dead letter must not be
/// lost, and the record's offset is only committed once it is published.
///
/// A failed publish **halts the partition**: an error log says which record,
/// which dead-letter topic and why (with what to do when the topic is
/// missing, the record too large for it, or the client not authorised), the
/// halted-partitions gauge ([`StatsSnapshot::halted_partitions`](crate::StatsSnapshot::halted_partitions))
/// goes up, and the publish is tried again with a backoff that grows to
/// `max_delay` (30 s by default). Nothing after the record is committed
/// meanwhile; once the cause is fixed the next try publishes it and the
/// partition resumes by itself. Returns `None` when a stop (shutdown,
/// revocation) came first; the record is then left uncommitted and
/// redelivered.
pub(crate) async fn publish<P: Publisher>(
    publisher: &P,
    letter: &DeadLetter,
    policy: &RetryPolicy,
    stop: &Stop,
    stats: &Stats,
) -> Option<Delivery> {
    let mut delays = policy.endless_delays();
    let mut halt = None;
    loop {
        let result: Result<Delivery, PublishError> = tokio::select! {
            biased;
            r = publisher.publish(letter.record()) => r,
            _ = stop.expired() => return None,
        };
        let error = match result {
            Ok(d) => {
                if halt.is_some() {
                    tracing::info!(topic = %letter.topic, "dead letter published; the partition resumes");
                }
                return Some(d);
            }
            Err(e) => e,
        };
        let delay = delays.next().unwrap_or(policy.max_delay);
        let hint = hint(&error);
        if halt.is_none() {
            halt = Some(Halted::new(stats));
        }
        tracing::error!(
            topic = %letter.topic,
            original = %letter.position(),
            error = %error,
            hint,
            ?delay,
            "cannot publish dead letter: partition halted, nothing after this record is committed; retrying",
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.requested() => return None,
        }
    }
}

/// Holds the halted-partitions gauge up while it lives.
struct Halted<'a>(&'a Stats);

impl<'a> Halted<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.halt_started();
        Halted(stats)
    }
}

impl Drop for Halted<'_> {
    fn drop(&mut self) {
        self.0.halt_ended();
    }
}

/// What an operator can do about a failed dead-letter publish.
fn hint(error: &PublishError) -> &'static str {
    let text = error.to_string().to_ascii_lowercase();
    if text.contains("unknown topic") || text.contains("unknowntopic") {
        "the dead-letter topic does not exist: create it (saga topics creates every <topic>.dlq)"
    } else if text.contains("too large") || text.contains("toolarge") || text.contains("size") {
        "the record is larger than the dead-letter topic accepts: raise its max.message.bytes"
    } else if text.contains("authoriz") || text.contains("authentic") {
        "the consumer may not write to the dead-letter topic: grant it WRITE on the topic"
    } else if error.is_fatal() {
        "the dead-letter producer failed fatally: restart the consumer"
    } else {
        "the broker did not take the record: see the error"
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
    fn long_error_texts_are_capped_on_a_character_boundary() {
        let long = Failure { reason: "é".repeat(5_000), ..failure() };
        let letter = DeadLetter::new(&raw(), &long, "c");
        let text = letter.header(header::ERROR_MESSAGE).expect("utf-8 header");
        assert!(text.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", text.len());
        assert!(text.len() > MAX_ERROR_MESSAGE_BYTES - 20);
        assert!(text.ends_with("(truncated)"));
        assert_eq!(capped("short", 10), "short");
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
        let stats = Stats::default();
        let d = publish(&p, &letter, &RetryPolicy::default(), &Stop::default(), &stats).await;
        assert_eq!(d.map(|d| d.offset), Some(5));
        assert_eq!(stats.snapshot().halted_partitions, 0, "the gauge comes down on success");
        assert_eq!(*p.published.lock().expect("not poisoned"), vec!["payment.commands.dlq".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_publish_retries() {
        let p = FlakyPublisher { failures: Mutex::new(u32::MAX), published: Mutex::new(vec![]) };
        let stop = Stop::default();
        let stats = Stats::default();
        let (s, st) = (stop.clone(), stats.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            assert_eq!(st.snapshot().halted_partitions, 1, "halted while it fails");
            s.request(Duration::from_secs(1));
        });
        let letter = DeadLetter::new(&raw(), &failure(), "c");
        let d = publish(&p, &letter, &RetryPolicy::default(), &stop, &stats).await;
        assert!(d.is_none());
        assert_eq!(stats.snapshot().halted_partitions, 0);
        assert!(p.published.lock().expect("not poisoned").is_empty());
    }
}
