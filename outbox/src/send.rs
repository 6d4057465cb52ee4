//! Sending one batch through a [`Publisher`] and collecting each row's
//! [`RowOutcome`].
//!
//! [`InFlight::start`] hands every row to the publisher at once, in batch
//! order (the publisher queues at call time), so a lane can start the next
//! batch while this one's delivery reports are outstanding; a task of its
//! own collects the reports, stamping each with its arrival time even while
//! the lane is busy elsewhere, and [`InFlight::finish`] waits for them. A
//! row whose publish fails *at once* (librdkafka refuses to queue it) is
//! handled before the next row is sent: a permanent refusal (too large)
//! blocks the rest of its key, a transient one (queue full) stops the batch
//! so nothing overtakes it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use producers::{Delivery, PublishError, Publisher, Record};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::batch::RowOutcome;
use crate::store::{Cursor, OutboxRow};
use crate::topic_limits::record_size;

/// Each sent row's index, delivery report and when the report arrived.
type Reports = JoinHandle<Vec<(usize, Result<Delivery, PublishError>, DateTime<Utc>)>>;

/// The outcomes of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendReport {
    /// One outcome per row, in row order.
    pub(crate) outcomes: Vec<RowOutcome>,
    /// When each row's delivery report arrived (rows not sent: `None`).
    pub(crate) acked_at: Vec<Option<DateTime<Utc>>>,
    /// The publisher failed fatally and must be replaced.
    pub(crate) fatal: bool,
}

/// A batch whose rows were handed to the publisher.
pub(crate) struct InFlight {
    pub(crate) rows: Arc<Vec<OutboxRow>>,
    /// When the rows were handed to the producer.
    pub(crate) sent_at: DateTime<Utc>,
    /// The same moment on the monotonic clock (stall detection).
    pub(crate) started: std::time::Instant,
    /// Whether the lane reported the batch as stalled (no delivery report
    /// for too long) already.
    pub(crate) stall_reported: bool,
    outcomes: Vec<RowOutcome>,
    acked_at: Vec<Option<DateTime<Utc>>>,
    fatal: bool,
    /// Sending stopped at a transient failure; later rows were not sent.
    pub(crate) stopped_early: bool,
    /// Rows handled (sent, blocked or rejected) before any stop.
    handled: usize,
    /// The topics' size limits the batch was checked against.
    limits: HashMap<String, usize>,
    reports: Option<Reports>,
}

fn record(row: &OutboxRow) -> Record<'_> {
    Record {
        topic: &row.topic,
        key: Some(row.key.as_bytes()),
        payload: Some(&row.payload),
        headers: row
            .header_names
            .iter()
            .zip(&row.header_values)
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect(),
    }
}

impl InFlight {
    /// Hands `rows` to `publisher` in order. `blocked` maps keys that are
    /// blocked behind a rejected row (of this or an earlier batch still in
    /// flight) to that row's event id; rejections found now, and rows the
    /// read marked as blocked by parked rows, are added.
    ///
    /// A row over its topic's `max.message.bytes` (`limits`, see
    /// `topic_limits.rs`) is rejected without being sent, so that the
    /// broker does not refuse the produce batch around it.
    pub(crate) fn start<P: Publisher + 'static>(
        publisher: &Arc<P>,
        rows: Arc<Vec<OutboxRow>>,
        blocked: &mut HashMap<String, Uuid>,
        limits: &HashMap<String, usize>,
    ) -> InFlight {
        let (sent_at, started) = (Utc::now(), std::time::Instant::now());
        let mut outcomes = vec![RowOutcome::NotSent; rows.len()];
        let mut acked_at = vec![None; rows.len()];
        let mut fatal = false;
        let mut stopped_early = false;
        let mut handled = 0;
        let mut pending = Vec::with_capacity(rows.len());
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());

        for (i, row) in rows.iter().enumerate() {
            if let Some(behind) = row.blocked_by.or_else(|| blocked.get(&row.key).copied()) {
                // Until this row is parked, later batches must not send
                // its key either, whatever their read said (the parked rows
                // may be requeued or discarded in between).
                blocked.entry(row.key.clone()).or_insert(behind);
                outcomes[i] = RowOutcome::Blocked(behind);
                handled = i + 1;
                continue;
            }
            if let Some(limit) = limits.get(&row.topic)
                && record_size(row) > *limit
            {
                outcomes[i] = RowOutcome::Rejected(format!(
                    "message size too large: a record of {} bytes is over the topic's max.message.bytes ({limit})",
                    record_size(row)
                ));
                blocked.insert(row.key.clone(), row.event_id);
                handled = i + 1;
                continue;
            }
            let (p, r) = (publisher.clone(), rows.clone());
            let mut delivery: Pin<Box<dyn Future<Output = Result<Delivery, PublishError>> + Send>> =
                Box::pin(async move { p.publish(record(&r[i])).await });
            // The first poll runs `publish`, which queues the record now.
            match delivery.as_mut().poll(&mut cx) {
                Poll::Pending => pending.push((i, delivery)),
                Poll::Ready(Ok(_)) => {
                    outcomes[i] = RowOutcome::Delivered;
                    acked_at[i] = Some(Utc::now());
                }
                Poll::Ready(Err(e)) => {
                    fatal |= e.is_fatal();
                    outcomes[i] = classify(&e, row, limits);
                    if let RowOutcome::Rejected(_) = outcomes[i] {
                        blocked.insert(row.key.clone(), row.event_id);
                    } else {
                        stopped_early = true;
                        break;
                    }
                }
            }
            handled = i + 1;
        }
        let rows_limits: HashMap<String, usize> = limits
            .iter()
            .filter(|(t, _)| rows.iter().any(|r| &r.topic == *t))
            .map(|(t, l)| (t.clone(), *l))
            .collect();
        let reports: Reports =
            tokio::spawn(futures::future::join_all(pending.into_iter().map(|(i, d)| async move {
                let report = d.await;
                (i, report, Utc::now())
            })));
        InFlight {
            rows,
            sent_at,
            started,
            stall_reported: false,
            outcomes,
            acked_at,
            fatal,
            stopped_early,
            handled,
            limits: rows_limits,
            reports: Some(reports),
        }
    }

    /// Cursor of the last row handed over (or handled without sending); the
    /// next batch is read after it.
    pub(crate) fn sent_until(&self) -> Option<Cursor> {
        self.handled.checked_sub(1).and_then(|i| self.rows.get(i)).map(OutboxRow::cursor)
    }

    /// Waits for every delivery report. Cancel-safe: if the returned future is
    /// dropped, calling `finish` again resumes waiting.
    pub(crate) async fn finish(&mut self, blocked: &mut HashMap<String, Uuid>) -> SendReport {
        if let Some(reports) = self.reports.as_mut() {
            let reports = match reports.await {
                Ok(reports) => reports,
                // The collecting task panicked: no report came back, so
                // every row it waited for counts as not sent (sent again).
                Err(e) => {
                    tracing::error!(error = %e, "outbox delivery reports lost; resending");
                    Vec::new()
                }
            };
            for (i, report, at) in reports {
                self.acked_at[i] = Some(at);
                let Some(row) = self.rows.get(i) else { continue };
                self.outcomes[i] = match report {
                    Ok(_) => RowOutcome::Delivered,
                    Err(e) => {
                        self.fatal |= e.is_fatal();
                        let outcome = classify(&e, row, &self.limits);
                        if let RowOutcome::Rejected(_) = outcome {
                            // Rejected by the broker after being sent: rows of
                            // its key sent after it are out already; rows not
                            // yet sent queue up behind it.
                            blocked.entry(row.key.clone()).or_insert(row.event_id);
                        }
                        outcome
                    }
                };
            }
            self.reports = None;
        }
        SendReport { outcomes: self.outcomes.clone(), acked_at: self.acked_at.clone(), fatal: self.fatal }
    }
}

/// What a publish error means for `row`:
/// * the topic refuses this client (not authorised, unknown): `Refused`,
///   sent again after a backoff, never parked (the lane raises an alarm);
/// * too large, but the row itself is within the topic's known limit: its
///   produce batch was refused as a whole — `Failed`, sent again;
/// * otherwise permanent: `Rejected` (parked); retriable: `Failed`.
fn classify(e: &PublishError, row: &OutboxRow, limits: &HashMap<String, usize>) -> RowOutcome {
    match e {
        PublishError::TopicRefused { .. } => RowOutcome::Refused(e.to_string()),
        PublishError::TooLarge { .. } if limits.get(&row.topic).is_some_and(|l| record_size(row) <= *l) => {
            RowOutcome::Failed(format!("refused with its produce batch, sending again: {e}"))
        }
        _ if !e.is_retriable() => RowOutcome::Rejected(e.to_string()),
        _ => RowOutcome::Failed(e.to_string()),
    }
}

impl Drop for InFlight {
    /// A batch dropped before its reports came back (abandoned after a
    /// failure, or at shutdown) stops its collecting task: librdkafka still
    /// delivers what it queued, nobody waits for the answers.
    fn drop(&mut self) {
        if let Some(reports) = self.reports.take() {
            reports.abort();
        }
    }
}

/// Publishes `rows` in order and waits for every delivery report.
#[cfg(test)]
pub(crate) async fn send_batch<P: Publisher + 'static>(publisher: &Arc<P>, rows: &[OutboxRow]) -> SendReport {
    let mut blocked = HashMap::new();
    let mut b = InFlight::start(publisher, Arc::new(rows.to_vec()), &mut blocked, &HashMap::new());
    b.finish(&mut blocked).await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Fails rows by payload: `b"big"` permanently at once, `b"full"`
    /// transiently at once, `b"late"` transiently at delivery time.
    #[derive(Default)]
    struct Scripted {
        sent: Mutex<Vec<Vec<u8>>>,
    }

    impl Publisher for Scripted {
        fn publish<'a>(
            &'a self,
            record: Record<'a>,
        ) -> impl std::future::Future<Output = Result<Delivery, PublishError>> + Send + 'a {
            let payload = record.payload.unwrap_or_default().to_vec();
            let now = match payload.as_slice() {
                b"big" => Some(PublishError::Delivery { retriable: false, reason: "too large".into() }),
                b"full" => Some(PublishError::Delivery { retriable: true, reason: "queue full".into() }),
                _ => None,
            };
            if now.is_none() {
                self.sent.lock().expect("lock").push(payload.clone());
            }
            async move {
                if let Some(e) = now {
                    return Err(e);
                }
                tokio::task::yield_now().await;
                if payload == b"late" {
                    return Err(PublishError::Delivery { retriable: true, reason: "timed out".into() });
                }
                Ok(Delivery { partition: 0, offset: 0 })
            }
        }
    }

    fn row(id: i64, key: &str, payload: &[u8]) -> OutboxRow {
        OutboxRow {
            id,
            pos: id,
            event_id: Uuid::from_u128(id as u128),
            topic: "t".into(),
            key: key.into(),
            header_names: vec!["event-id".into()],
            header_values: vec![id.to_string()],
            payload: payload.to_vec(),
            created_at: chrono::Utc::now(),
            blocked_by: None,
        }
    }

    #[tokio::test]
    async fn a_rejected_row_blocks_only_its_key() {
        let p = Arc::new(Scripted::default());
        let rows = [row(1, "a", b"big"), row(2, "b", b"1"), row(3, "a", b"2"), row(4, "b", b"3")];
        let r = send_batch(&p, &rows).await;
        assert_eq!(
            r.outcomes,
            vec![
                RowOutcome::Rejected("delivery failed (permanent): too large".into()),
                RowOutcome::Delivered,
                RowOutcome::Blocked(rows[0].event_id),
                RowOutcome::Delivered,
            ]
        );
        assert_eq!(*p.sent.lock().expect("lock"), vec![b"1".to_vec(), b"3".to_vec()]);
    }

    #[tokio::test]
    async fn an_immediate_transient_failure_stops_sending() {
        let p = Arc::new(Scripted::default());
        let rows = [row(1, "a", b"1"), row(2, "b", b"full"), row(3, "a", b"2")];
        let r = send_batch(&p, &rows).await;
        assert_eq!(r.outcomes[0], RowOutcome::Delivered);
        assert!(matches!(r.outcomes[1], RowOutcome::Failed(_)));
        assert_eq!(r.outcomes[2], RowOutcome::NotSent);
        assert_eq!(*p.sent.lock().expect("lock"), vec![b"1".to_vec()], "nothing sent after the failure");
    }

    #[tokio::test]
    async fn rows_of_a_key_parked_earlier_are_not_sent() {
        let p = Arc::new(Scripted::default());
        let behind = Uuid::from_u128(99);
        let mut blocked = row(1, "a", b"1");
        blocked.blocked_by = Some(behind);
        let r = send_batch(&p, &[blocked, row(2, "b", b"2")]).await;
        assert_eq!(r.outcomes, vec![RowOutcome::Blocked(behind), RowOutcome::Delivered]);
    }

    #[tokio::test]
    async fn a_rejection_blocks_the_key_in_the_next_batch_in_flight() {
        let p = Arc::new(Scripted::default());
        let mut blocked = HashMap::new();
        let first = Arc::new(vec![row(1, "a", b"big"), row(2, "b", b"1")]);
        let second = Arc::new(vec![row(3, "a", b"2"), row(4, "b", b"3")]);
        let mut b1 = InFlight::start(&p, first.clone(), &mut blocked, &HashMap::new());
        let mut b2 = InFlight::start(&p, second.clone(), &mut blocked, &HashMap::new());
        assert_eq!(b1.sent_until(), Some(first[1].cursor()));
        assert_eq!(b2.sent_until(), Some(second[1].cursor()));
        let r2 = b2.finish(&mut blocked).await;
        let r1 = b1.finish(&mut blocked).await;
        assert!(matches!(r1.outcomes[0], RowOutcome::Rejected(_)));
        assert_eq!(r2.outcomes, vec![RowOutcome::Blocked(first[0].event_id), RowOutcome::Delivered]);
        assert_eq!(*p.sent.lock().expect("lock"), vec![b"1".to_vec(), b"3".to_vec()]);
    }

    /// A row read as blocked (its key has parked rows) blocks its key for the
    /// later batches in the pipeline too: if the parked rows are requeued or
    /// discarded before it is parked, a later batch reads the key unblocked,
    /// and must not send a later row ahead of it.
    #[tokio::test]
    async fn a_row_read_as_blocked_blocks_its_key_for_later_batches_in_flight() {
        let p = Arc::new(Scripted::default());
        let mut blocked = HashMap::new();
        let behind = Uuid::from_u128(99);
        let mut first = row(1, "a", b"1");
        first.blocked_by = Some(behind);
        let first = Arc::new(vec![first, row(2, "b", b"2")]);
        // Read after the parked rows went: not marked blocked by the read.
        let second = Arc::new(vec![row(3, "a", b"3"), row(4, "b", b"4")]);
        let mut b1 = InFlight::start(&p, first, &mut blocked, &HashMap::new());
        let mut b2 = InFlight::start(&p, second, &mut blocked, &HashMap::new());
        let r1 = b1.finish(&mut blocked).await;
        let r2 = b2.finish(&mut blocked).await;
        assert_eq!(r1.outcomes, vec![RowOutcome::Blocked(behind), RowOutcome::Delivered]);
        assert_eq!(r2.outcomes, vec![RowOutcome::Blocked(behind), RowOutcome::Delivered]);
        assert_eq!(*p.sent.lock().expect("lock"), vec![b"2".to_vec(), b"4".to_vec()]);
    }

    #[tokio::test]
    async fn sending_stops_at_a_transient_failure_and_says_where() {
        let p = Arc::new(Scripted::default());
        let rows = Arc::new(vec![row(1, "a", b"1"), row(2, "b", b"full"), row(3, "c", b"3")]);
        let b = InFlight::start(&p, rows.clone(), &mut HashMap::new(), &HashMap::new());
        assert!(b.stopped_early);
        assert_eq!(b.sent_until(), Some(rows[0].cursor()));
        let rows = Arc::new(vec![row(1, "a", b"full")]);
        assert_eq!(InFlight::start(&p, rows, &mut HashMap::new(), &HashMap::new()).sent_until(), None);
    }

    #[tokio::test]
    async fn a_late_failure_is_reported_for_its_row() {
        let p = Arc::new(Scripted::default());
        let rows = [row(1, "a", b"1"), row(2, "a", b"late"), row(3, "a", b"3")];
        let r = send_batch(&p, &rows).await;
        assert_eq!(r.outcomes[0], RowOutcome::Delivered);
        assert!(matches!(r.outcomes[1], RowOutcome::Failed(_)));
        assert!(!r.fatal);
    }
}
