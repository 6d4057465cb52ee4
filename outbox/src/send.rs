//! Sending one batch through a [`Publisher`] and collecting each row's
//! [`RowOutcome`].
//!
//! Rows are handed to the publisher in batch order (the publisher queues them
//! at call time), then all delivery reports are awaited together, so a batch
//! costs about one broker round trip. A row whose publish fails *at once*
//! (librdkafka refuses to queue it) is handled before the next row is sent:
//! a permanent refusal (too large) blocks the rest of its key, a transient one
//! (queue full) stops the batch so nothing overtakes it.

use std::collections::HashMap;
use std::task::Poll;

use producers::{Publisher, Record};
use uuid::Uuid;

use crate::batch::RowOutcome;
use crate::store::OutboxRow;

/// The outcomes of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendReport {
    /// One outcome per row, in row order.
    pub(crate) outcomes: Vec<RowOutcome>,
    /// The publisher failed fatally and must be replaced.
    pub(crate) fatal: bool,
}

fn record(row: &OutboxRow) -> Record<'_> {
    Record {
        topic: &row.topic,
        key: Some(row.key.as_bytes()),
        payload: Some(&row.payload),
        headers: row.header_names.iter().zip(&row.header_values).map(|(k, v)| (k.as_str(), v.as_bytes())).collect(),
    }
}

/// Publishes `rows` in order and waits for every delivery report.
pub(crate) async fn send_batch<P: Publisher>(publisher: &P, rows: &[OutboxRow]) -> SendReport {
    let mut outcomes = vec![RowOutcome::NotSent; rows.len()];
    let mut fatal = false;
    let mut blocked: HashMap<&str, Uuid> = HashMap::new();
    let mut in_flight = Vec::with_capacity(rows.len());

    for (i, row) in rows.iter().enumerate() {
        if let Some(behind) = row.blocked_by.or_else(|| blocked.get(row.key.as_str()).copied()) {
            outcomes[i] = RowOutcome::Blocked(behind);
            continue;
        }
        let mut delivery = Box::pin(publisher.publish(record(row)));
        match futures::poll!(delivery.as_mut()) {
            Poll::Pending => in_flight.push((i, delivery)),
            Poll::Ready(Ok(_)) => outcomes[i] = RowOutcome::Delivered,
            Poll::Ready(Err(e)) if !e.is_retriable() => {
                outcomes[i] = RowOutcome::Rejected(e.to_string());
                blocked.insert(&row.key, row.event_id);
            }
            Poll::Ready(Err(e)) => {
                fatal |= e.is_fatal();
                outcomes[i] = RowOutcome::Failed(e.to_string());
                break;
            }
        }
    }

    let reports = futures::future::join_all(in_flight.into_iter().map(|(i, d)| async move { (i, d.await) })).await;
    for (i, report) in reports {
        outcomes[i] = match report {
            Ok(_) => RowOutcome::Delivered,
            // Rejected by the broker after being sent: later rows of its key
            // in this batch were already sent too; only not-yet-read rows of
            // the key will queue up behind it.
            Err(e) if !e.is_retriable() => RowOutcome::Rejected(e.to_string()),
            Err(e) => {
                fatal |= e.is_fatal();
                RowOutcome::Failed(e.to_string())
            }
        };
    }
    SendReport { outcomes, fatal }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use producers::{Delivery, PublishError};

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
        let p = Scripted::default();
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
        let p = Scripted::default();
        let rows = [row(1, "a", b"1"), row(2, "b", b"full"), row(3, "a", b"2")];
        let r = send_batch(&p, &rows).await;
        assert_eq!(r.outcomes[0], RowOutcome::Delivered);
        assert!(matches!(r.outcomes[1], RowOutcome::Failed(_)));
        assert_eq!(r.outcomes[2], RowOutcome::NotSent);
        assert_eq!(*p.sent.lock().expect("lock"), vec![b"1".to_vec()], "nothing sent after the failure");
    }

    #[tokio::test]
    async fn rows_of_a_key_parked_earlier_are_not_sent() {
        let p = Scripted::default();
        let behind = Uuid::from_u128(99);
        let mut blocked = row(1, "a", b"1");
        blocked.blocked_by = Some(behind);
        let r = send_batch(&p, &[blocked, row(2, "b", b"2")]).await;
        assert_eq!(r.outcomes, vec![RowOutcome::Blocked(behind), RowOutcome::Delivered]);
    }

    #[tokio::test]
    async fn a_late_failure_is_reported_for_its_row() {
        let p = Scripted::default();
        let rows = [row(1, "a", b"1"), row(2, "a", b"late"), row(3, "a", b"3")];
        let r = send_batch(&p, &rows).await;
        assert_eq!(r.outcomes[0], RowOutcome::Delivered);
        assert!(matches!(r.outcomes[1], RowOutcome::Failed(_)));
        assert!(!r.fatal);
    }
}
