//! What a published batch means for the lane: how far the cursor may move,
//! which rows to park. Pure logic, so every case is unit-tested.
//!
//! Rules:
//! * The cursor moves over a prefix of the batch in which every row was
//!   delivered or parked. It stops before the first row that failed in a
//!   retriable way or was not sent; that row and everything after it is sent
//!   again later (the only source of duplicates: at most one batch).
//! * A permanently rejected row is parked with the reason; the rest of its
//!   key's rows queue up behind it (parked as blocked). Other keys go on.

use uuid::Uuid;

use crate::store::{Cursor, OutboxRow, Park};

/// What happened to one row of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// The broker acknowledged it.
    Delivered,
    /// Not sent: its key is blocked behind the parked row with this event id.
    Blocked(Uuid),
    /// The broker (or librdkafka) will never accept it.
    Rejected(String),
    /// Sending failed but may work later.
    Failed(String),
    /// The topic refuses this client (not authorised, unknown): sent again
    /// later like `Failed`, never parked; the lane raises an alarm.
    Refused(String),
    /// Not sent because an earlier row of the batch failed.
    NotSent,
}

/// The decision for a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// New cursor, if it moves.
    pub advance_to: Option<Cursor>,
    /// Rows to park (all at or before `advance_to`).
    pub park: Vec<Park>,
    /// Rows delivered within the advanced prefix.
    pub delivered: usize,
    /// The first retriable failure, if the batch stopped early.
    pub retry: Option<String>,
    /// Whether that failure was the topic refusing this client.
    pub refused: bool,
}

/// Decides the batch's fate from its rows and their outcomes (same order).
pub fn decide(rows: &[OutboxRow], outcomes: &[RowOutcome]) -> Decision {
    let mut d = Decision::default();
    for (row, outcome) in rows.iter().zip(outcomes) {
        match outcome {
            RowOutcome::Delivered => d.delivered += 1,
            RowOutcome::Blocked(behind) => d.park.push(Park {
                id: row.id,
                pos: row.pos,
                reason: format!("blocked behind parked event {behind} of the same key"),
                blocked_by: Some(*behind),
            }),
            RowOutcome::Rejected(reason) => {
                d.park.push(Park { id: row.id, pos: row.pos, reason: reason.clone(), blocked_by: None })
            }
            RowOutcome::Failed(reason) => {
                d.retry = Some(reason.clone());
                break;
            }
            RowOutcome::Refused(reason) => {
                (d.retry, d.refused) = (Some(reason.clone()), true);
                break;
            }
            RowOutcome::NotSent => {
                d.retry.get_or_insert_with(|| "not sent".to_owned());
                break;
            }
        }
        d.advance_to = Some(row.cursor());
    }
    if outcomes.len() < rows.len() && d.retry.is_none() {
        d.retry = Some("missing outcomes".to_owned());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str) -> OutboxRow {
        OutboxRow {
            id,
            pos: 100 + id / 2,
            event_id: Uuid::from_u128(id as u128),
            topic: "t".into(),
            key: key.into(),
            header_names: vec![],
            header_values: vec![],
            payload: vec![],
            created_at: chrono::Utc::now(),
            blocked_by: None,
        }
    }

    #[test]
    fn all_delivered_moves_to_the_last_row() {
        let rows = [row(1, "a"), row(2, "b"), row(3, "a")];
        let d = decide(&rows, &[RowOutcome::Delivered, RowOutcome::Delivered, RowOutcome::Delivered]);
        assert_eq!(d.advance_to, Some(rows[2].cursor()));
        assert_eq!(d.delivered, 3);
        assert!(d.park.is_empty() && d.retry.is_none());
    }

    #[test]
    fn a_retriable_failure_stops_the_cursor_before_it() {
        let rows = [row(1, "a"), row(2, "b"), row(3, "a")];
        let d = decide(
            &rows,
            &[RowOutcome::Delivered, RowOutcome::Failed("timeout".into()), RowOutcome::Delivered],
        );
        assert_eq!(d.advance_to, Some(rows[0].cursor()));
        assert_eq!(d.retry.as_deref(), Some("timeout"));
        assert_eq!(d.delivered, 1);
    }

    #[test]
    fn a_failure_on_the_first_row_does_not_move_the_cursor() {
        let rows = [row(1, "a"), row(2, "b")];
        let d = decide(&rows, &[RowOutcome::NotSent, RowOutcome::NotSent]);
        assert_eq!(d.advance_to, None);
        assert!(d.retry.is_some());
    }

    #[test]
    fn rejected_rows_are_parked_and_do_not_stop_other_keys() {
        let rows = [row(1, "a"), row(2, "b"), row(3, "a"), row(4, "b")];
        let behind = rows[0].event_id;
        let d = decide(
            &rows,
            &[
                RowOutcome::Rejected("too large".into()),
                RowOutcome::Delivered,
                RowOutcome::Blocked(behind),
                RowOutcome::Delivered,
            ],
        );
        assert_eq!(d.advance_to, Some(rows[3].cursor()));
        assert_eq!(d.delivered, 2);
        assert_eq!(d.park.len(), 2);
        assert_eq!(d.park[0], Park { id: 1, pos: rows[0].pos, reason: "too large".into(), blocked_by: None });
        assert_eq!(d.park[1].id, 3);
        assert_eq!(d.park[1].blocked_by, Some(behind));
    }

    #[test]
    fn parks_after_a_failure_wait_for_the_retry() {
        let rows = [row(1, "a"), row(2, "b")];
        let d = decide(&rows, &[RowOutcome::Failed("x".into()), RowOutcome::Rejected("too large".into())]);
        assert!(d.park.is_empty());
        assert_eq!(d.advance_to, None);
    }

    #[test]
    fn a_refused_topic_stops_the_cursor_and_parks_nothing() {
        let rows = [row(1, "a"), row(2, "b"), row(3, "c")];
        let d = decide(
            &rows,
            &[RowOutcome::Delivered, RowOutcome::Refused("not authorised".into()), RowOutcome::Delivered],
        );
        assert_eq!(d.advance_to, Some(rows[0].cursor()));
        assert!(d.park.is_empty() && d.refused);
        assert_eq!(d.retry.as_deref(), Some("not authorised"));
    }

    #[test]
    fn missing_outcomes_count_as_not_sent() {
        let rows = [row(1, "a"), row(2, "b")];
        let d = decide(&rows, &[RowOutcome::Delivered]);
        assert_eq!(d.advance_to, Some(rows[0].cursor()));
        assert!(d.retry.is_some());
    }
}
