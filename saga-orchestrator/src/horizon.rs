//! [`Horizon`]: up to which instant a step's timeout may fire — the rule that
//! makes a timeout mean "the participant did not answer", not "the
//! orchestrator has not read the answer yet".
//!
//! A deadline `D` may be acted on only once every reply that reached Kafka
//! before `D` has been applied. The sweeper proves that for an instant `t`
//! in two looks at the reply topics:
//!
//! 1. at `t` (the database's clock, the clock deadlines are set by) it reads
//!    the end offset of every reply partition: every reply appended before
//!    `t` lies below them;
//! 2. when the orchestrator group's committed offsets have reached those ends
//!    (on this look or a later one), every such reply has been applied and
//!    its effect committed — the group commits an offset only after the
//!    database commit — so deadlines up to `t` may fire.
//!
//! While the orchestrator was down, lagging, or could not reach the broker,
//! the horizon stays where it was, so replies waiting unread win over
//! deadlines that passed meanwhile: on restart the orchestrator first reads
//! them, then times out what is still unanswered. A participant that really
//! does not answer appends nothing, the group catches up, and its timeout
//! fires one or two sweeps late. A reply its service committed but had not
//! yet published at the deadline is late, like any reply after a timeout.
//!
//! Pure: the caller brings the clock and the offsets
//! ([`ReplyWatch`](crate::ReplyWatch) reads them from Kafka).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// One partition of a reply topic.
pub type PartitionKey = (String, i32);

/// What one look at a reply partition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The oldest offset still in the log (low watermark).
    pub low: i64,
    /// The offset the next record appended will get (high watermark).
    pub high: i64,
    /// The group's committed offset (the next one it will read); `None`
    /// when it has committed none on this partition.
    pub committed: Option<i64>,
}

impl PartitionOffsets {
    /// The first offset the group has not applied: records below `low` are
    /// gone and cannot be waited for, and a group that committed nothing
    /// starts at `low` (`auto.offset.reset = earliest`).
    fn applied_to(&self) -> i64 {
        self.committed.unwrap_or(self.low).max(self.low)
    }
}

/// The instant up to which deadlines may fire, advanced look by look. See
/// the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Horizon {
    /// Deadlines up to here may fire.
    confirmed: Option<DateTime<Utc>>,
    /// An instant and the ends read at it, waiting for the group to reach them.
    candidate: Option<(DateTime<Utc>, BTreeMap<PartitionKey, i64>)>,
}

impl Horizon {
    /// A horizon that lets nothing fire until the first look.
    pub fn new() -> Self {
        Horizon::default()
    }

    /// Deadlines up to this instant may fire; `None` before the group has
    /// been seen caught up once.
    pub fn confirmed(&self) -> Option<DateTime<Utc>> {
        self.confirmed
    }

    /// Takes one look: `at` is when it began (before the offsets were read),
    /// `partitions` every partition of every reply topic. Returns the
    /// confirmed horizon afterwards.
    pub fn observe(
        &mut self,
        at: DateTime<Utc>,
        partitions: &BTreeMap<PartitionKey, PartitionOffsets>,
    ) -> Option<DateTime<Utc>> {
        if partitions.is_empty() {
            // No reply topic to read (yet): nothing can be unread.
            self.confirm(at);
            return self.confirmed;
        }
        if let Some((_, ends)) = &self.candidate
            && ends.keys().any(|key| !partitions.contains_key(key))
        {
            // A partition seen before is missing: an incomplete look proves nothing.
            return self.confirmed;
        }
        let reached = |ends: &BTreeMap<PartitionKey, i64>| {
            ends.iter().all(|(key, end)| partitions.get(key).is_some_and(|p| p.applied_to() >= *end))
        };
        if let Some((candidate_at, ends)) = &self.candidate
            && reached(ends)
        {
            let candidate_at = *candidate_at;
            self.confirm(candidate_at);
            self.candidate = None;
        }
        let ends: BTreeMap<PartitionKey, i64> = partitions.iter().map(|(k, p)| (k.clone(), p.high)).collect();
        if reached(&ends) {
            self.confirm(at);
            self.candidate = None;
        } else if self.candidate.is_none() {
            self.candidate = Some((at, ends));
        }
        self.confirmed
    }

    fn confirm(&mut self, at: DateTime<Utc>) {
        self.confirmed = Some(self.confirmed.map_or(at, |c| c.max(at)));
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(secs)
    }

    fn look(parts: &[(i32, i64, i64, Option<i64>)]) -> BTreeMap<PartitionKey, PartitionOffsets> {
        parts
            .iter()
            .map(|&(p, low, high, committed)| {
                (("replies".to_owned(), p), PartitionOffsets { low, high, committed })
            })
            .collect()
    }

    #[test]
    fn a_caught_up_group_confirms_the_instant_of_the_look() {
        let mut h = Horizon::new();
        assert_eq!(h.confirmed(), None);
        assert_eq!(h.observe(t(10), &look(&[(0, 0, 5, Some(5)), (1, 0, 0, None)])), Some(t(10)));
    }

    #[test]
    fn unread_replies_hold_the_horizon_until_the_group_reaches_the_ends_seen() {
        let mut h = Horizon::new();
        // Down or lagging: 40 replies unread on partition 0.
        assert_eq!(h.observe(t(10), &look(&[(0, 0, 50, Some(10))])), None);
        // Still behind the ends seen at t=10, and more keep coming.
        assert_eq!(h.observe(t(11), &look(&[(0, 0, 60, Some(49))])), None);
        // Past what was there at t=10: t=10 is confirmed, not t=12 (60 > 55).
        assert_eq!(h.observe(t(12), &look(&[(0, 0, 70, Some(55))])), Some(t(10)));
        // A new candidate from t=12 (ends 70) is confirmed once reached.
        assert_eq!(h.observe(t(13), &look(&[(0, 0, 80, Some(70))])), Some(t(12)));
    }

    #[test]
    fn a_group_that_never_committed_is_caught_up_only_on_empty_partitions() {
        let mut h = Horizon::new();
        assert_eq!(h.observe(t(1), &look(&[(0, 7, 9, None)])), None);
        let mut h = Horizon::new();
        assert_eq!(h.observe(t(1), &look(&[(0, 9, 9, None)])), Some(t(1)));
        // Records deleted by retention before the group read them cannot be waited for.
        let mut h = Horizon::new();
        assert_eq!(h.observe(t(1), &look(&[(0, 9, 9, Some(3))])), Some(t(1)));
    }

    #[test]
    fn a_look_missing_a_partition_proves_nothing() {
        let mut h = Horizon::new();
        assert_eq!(h.observe(t(1), &look(&[(0, 0, 5, Some(0)), (1, 0, 5, Some(0))])), None);
        // Partition 1 is missing from the look (a metadata hiccup).
        assert_eq!(h.observe(t(2), &look(&[(0, 0, 5, Some(5))])), None);
        assert_eq!(h.observe(t(3), &look(&[(0, 0, 5, Some(5)), (1, 0, 5, Some(5))])), Some(t(3)));
    }

    #[test]
    fn the_horizon_never_moves_back() {
        let mut h = Horizon::new();
        assert_eq!(h.observe(t(5), &look(&[(0, 0, 1, Some(1))])), Some(t(5)));
        assert_eq!(h.observe(t(3), &look(&[(0, 0, 1, Some(1))])), Some(t(5)));
        assert_eq!(h.observe(t(6), &look(&[(0, 0, 9, Some(1))])), Some(t(5)));
    }
}
