//! [`LaneAlarm`]: a lane that stopped publishing and why, for operators.
//!
//! A lane raises an alarm when it halts (its cursor is ahead of the
//! database's transaction ids; the broker refuses a topic as a whole) or
//! stalls (it has been sending the same row again and again). Each alarm is
//! logged at ERROR when raised and again with every metrics report, with the
//! gauge `outbox_lane_alarm_seconds` (how long it has lasted) per lane, and is
//! readable through [`crate::StatsHandle::alarms`]. It is cleared when the
//! lane moves past the row or stops.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// What kind of trouble a lane is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlarmKind {
    /// The lane's cursor is ahead of the watermark: the database was restored
    /// or moved and its transaction ids started again lower. The lane sends
    /// nothing until every relay is stopped and `outbox_rebase()` ran.
    PositionsAhead,
    /// The broker refuses a topic to this client for every record (not
    /// authorised, unknown topic): nothing is parked; the lane sends the row
    /// again after each backoff (up to `backoff_max` apart) and every later
    /// row of the lane waits, until an operator fixes the ACL or the topic.
    TopicRefused,
    /// The lane keeps failing to publish one row (a retriable error, or no
    /// delivery report at all); every later row of the lane waits behind it.
    Stalled,
}

impl AlarmKind {
    /// A short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmKind::PositionsAhead => "positions_ahead",
            AlarmKind::TopicRefused => "topic_refused",
            AlarmKind::Stalled => "stalled",
        }
    }
}

/// A lane that does not publish, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneAlarm {
    /// Lane.
    pub lane: i32,
    /// Kind of trouble.
    pub kind: AlarmKind,
    /// The row the lane is stuck at, if it is stuck at one.
    pub row: Option<i64>,
    /// The row's topic, if any.
    pub topic: Option<String>,
    /// What went wrong, and for a halt how to recover.
    pub error: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// The relay's current alarms, one per lane at most.
#[derive(Debug, Default)]
pub(crate) struct Alarms {
    lanes: Mutex<BTreeMap<i32, LaneAlarm>>,
}

impl Alarms {
    /// Raises `alarm` for its lane. An alarm for the same row keeps its
    /// `since` (the trouble goes on) and only takes the new error; a refused
    /// topic stays the kind of it (the failures in between, such as the
    /// producer failing fatally over it, are its consequences). Returns
    /// whether it is new (and so worth a log line of its own).
    pub(crate) fn raise(&self, mut alarm: LaneAlarm) -> bool {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = lanes.get(&alarm.lane)
            && old.kind != AlarmKind::PositionsAhead
            && old.row == alarm.row
        {
            alarm.since = old.since;
            if old.kind == AlarmKind::TopicRefused {
                alarm.kind = AlarmKind::TopicRefused;
            }
            let changed = old.kind != alarm.kind;
            lanes.insert(alarm.lane, alarm);
            return changed;
        }
        lanes.insert(alarm.lane, alarm);
        true
    }

    /// Clears the lane's alarm, if any; returns it.
    pub(crate) fn clear(&self, lane: i32) -> Option<LaneAlarm> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).remove(&lane)
    }

    /// Clears the lane's alarm if it is a stall or a refused topic (the lane
    /// moved on).
    pub(crate) fn clear_stall(&self, lane: i32) -> Option<LaneAlarm> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        match lanes.get(&lane) {
            Some(a) if matches!(a.kind, AlarmKind::Stalled | AlarmKind::TopicRefused) => lanes.remove(&lane),
            _ => None,
        }
    }

    /// Every current alarm, by lane.
    pub(crate) fn current(&self) -> Vec<LaneAlarm> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Logs every current alarm at ERROR with its duration as a gauge.
    pub(crate) fn report(&self) {
        let now = Utc::now();
        for a in self.current() {
            let secs = (now - a.since).num_milliseconds() as f64 / 1000.0;
            tracing::error!(
                target: "outbox::metrics",
                lane = a.lane,
                kind = a.kind.as_str(),
                row = a.row,
                topic = a.topic.as_deref(),
                error = %a.error,
                since = %a.since,
                gauge.outbox_lane_alarm_seconds = secs,
                "outbox lane not publishing"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(lane: i32, kind: AlarmKind, row: Option<i64>, error: &str) -> LaneAlarm {
        LaneAlarm { lane, kind, row, topic: None, error: error.into(), since: Utc::now() }
    }

    #[test]
    fn an_ongoing_alarm_keeps_its_start() {
        let a = Alarms::default();
        let first = alarm(3, AlarmKind::Stalled, Some(7), "timed out");
        assert!(a.raise(first.clone()));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(!a.raise(alarm(3, AlarmKind::Stalled, Some(7), "still timed out")));
        let now = a.current();
        assert_eq!(now.len(), 1);
        assert_eq!((now[0].since, now[0].error.as_str()), (first.since, "still timed out"));
        // Another row is another stall.
        assert!(a.raise(alarm(3, AlarmKind::Stalled, Some(8), "timed out")));
        assert_ne!(a.current()[0].since, first.since);
    }

    #[test]
    fn a_refused_topic_stays_refused_for_its_row() {
        let a = Alarms::default();
        let refused = alarm(1, AlarmKind::TopicRefused, Some(4), "not authorised");
        assert!(a.raise(refused.clone()));
        assert!(!a.raise(alarm(1, AlarmKind::Stalled, Some(4), "producer failed fatally")));
        let now = a.current();
        assert_eq!((now[0].kind, now[0].since), (AlarmKind::TopicRefused, refused.since));
        // A stall that becomes a refusal is news.
        assert!(a.raise(alarm(2, AlarmKind::Stalled, Some(9), "x")));
        assert!(a.raise(alarm(2, AlarmKind::TopicRefused, Some(9), "not authorised")));
    }

    #[test]
    fn clearing_removes_the_lanes_alarm() {
        let a = Alarms::default();
        a.raise(alarm(1, AlarmKind::Stalled, Some(1), "x"));
        a.raise(alarm(2, AlarmKind::PositionsAhead, None, "y"));
        assert!(a.clear_stall(2).is_none(), "a halt is not a stall");
        assert!(a.clear(2).is_some());
        assert!(a.clear(2).is_none());
        assert!(a.clear_stall(1).is_some());
        assert!(a.current().is_empty());
    }
}
