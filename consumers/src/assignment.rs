//! The partitions a member works on, as decisions without I/O: which worker
//! gets a record, when a partition is paused and resumed, which offset may
//! be stored, which workers a revocation stops. The poll thread
//! ([`crate::poll`]) performs the decisions.
//!
//! Each partition has one worker at a time, identified by a *generation*:
//! reports of a worker that belongs to an earlier assignment of the same
//! partition (it was revoked, and maybe handed back since) are ignored, so
//! an offset is never stored for a partition on behalf of work done while
//! the member did not own it.

use std::collections::HashMap;

/// `(topic, partition)`.
pub(crate) type TopicPartition = (String, i32);

/// Flow control: a partition whose worker has `high` records waiting is
/// paused (librdkafka stops fetching it; the member keeps polling), and is
/// resumed once `low` or fewer are left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) high: u64,
    pub(crate) low: u64,
}

impl Limits {
    /// Pause at `high` waiting records, resume at half of it.
    pub(crate) fn new(high: usize) -> Self {
        let high = high.max(1) as u64;
        Limits { high, low: high / 2 }
    }
}

#[derive(Debug)]
struct Lane {
    generation: u64,
    /// Records handed to the worker, and of those, the ones it finished.
    dispatched: u64,
    finished: u64,
    /// Offset after the last record handed over: anything below it was
    /// delivered already (a refetch after a resume) and is dropped.
    next_offset: Option<i64>,
    paused: bool,
    /// Revoked or shutting down: takes no more records.
    stopping: bool,
}

/// What to do with a fetched record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnRecord {
    /// Hand it to the worker of `generation`; `start`: start that worker
    /// first; `pause`: then pause the partition (its worker is full).
    Deliver { generation: u64, start: bool, pause: bool },
    /// Delivered before, or its partition is stopping: drop it (it was not
    /// stored, so the next owner or the next fetch has it).
    Drop,
}

/// What to do after a worker reported records finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OnFinished {
    /// Store this offset (the next record to read) for the partition.
    pub(crate) store: Option<i64>,
    /// Resume fetching the partition.
    pub(crate) resume: bool,
}

/// What a worker's end means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnExited {
    /// It was asked to stop (or is of an earlier generation): expected.
    Stopped,
    /// It ended by itself: its records will never finish. The member must
    /// stop without storing anything more for the partition.
    Unexpected,
}

/// The member's partitions and their workers' progress.
#[derive(Debug)]
pub(crate) struct Assignment {
    lanes: HashMap<TopicPartition, Lane>,
    next_generation: u64,
    limits: Limits,
}

impl Assignment {
    pub(crate) fn new(limits: Limits) -> Self {
        Assignment { lanes: HashMap::new(), next_generation: 1, limits }
    }

    /// A record at `offset` of `tp` was fetched.
    pub(crate) fn on_record(&mut self, tp: &TopicPartition, offset: i64) -> OnRecord {
        let start = !self.lanes.contains_key(tp);
        if start {
            let generation = self.next_generation;
            self.next_generation += 1;
            let lane = Lane {
                generation,
                dispatched: 0,
                finished: 0,
                next_offset: None,
                paused: false,
                stopping: false,
            };
            self.lanes.insert(tp.clone(), lane);
        }
        let Some(lane) = self.lanes.get_mut(tp) else { return OnRecord::Drop };
        if lane.stopping || lane.next_offset.is_some_and(|next| offset < next) {
            return OnRecord::Drop;
        }
        lane.next_offset = Some(offset + 1);
        lane.dispatched += 1;
        let pause = !lane.paused && lane.dispatched - lane.finished >= self.limits.high;
        lane.paused |= pause;
        OnRecord::Deliver { generation: lane.generation, start, pause }
    }

    /// The worker of `generation` finished `count` more records of `tp`, the
    /// last one before `next_offset`.
    pub(crate) fn on_finished(
        &mut self,
        tp: &TopicPartition,
        generation: u64,
        next_offset: i64,
        count: u64,
    ) -> OnFinished {
        let Some(lane) = self.lanes.get_mut(tp).filter(|l| l.generation == generation) else {
            return OnFinished::default();
        };
        lane.finished = (lane.finished + count).min(lane.dispatched);
        let resume = lane.paused && !lane.stopping && lane.dispatched - lane.finished <= self.limits.low;
        lane.paused &= !resume;
        OnFinished { store: Some(next_offset), resume }
    }

    /// Marks the lanes of `tps` as stopping; returns those that have a
    /// worker to stop, with its generation.
    pub(crate) fn stop<'a>(
        &mut self,
        tps: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Vec<(TopicPartition, u64)> {
        let mut stopped = Vec::new();
        for tp in tps {
            if let Some(lane) = self.lanes.get_mut(tp) {
                lane.stopping = true;
                stopped.push((tp.clone(), lane.generation));
            }
        }
        stopped
    }

    /// Every partition with a worker.
    pub(crate) fn partitions(&self) -> Vec<TopicPartition> {
        self.lanes.keys().cloned().collect()
    }

    /// The worker of `generation` for `tp` ended.
    pub(crate) fn on_exited(&mut self, tp: &TopicPartition, generation: u64) -> OnExited {
        match self.lanes.get(tp) {
            Some(lane) if lane.generation == generation && !lane.stopping => OnExited::Unexpected,
            _ => OnExited::Stopped,
        }
    }

    /// Drops the lane of `tp` (after its revocation or at shutdown);
    /// returns whether it was paused.
    pub(crate) fn forget(&mut self, tp: &TopicPartition) -> bool {
        self.lanes.remove(tp).is_some_and(|l| l.paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("orders".to_owned(), p)
    }

    #[test]
    fn the_first_record_starts_a_worker_and_each_partition_has_its_own() {
        let mut a = Assignment::new(Limits::new(10));
        let first = a.on_record(&tp(0), 5);
        assert_eq!(first, OnRecord::Deliver { generation: 1, start: true, pause: false });
        assert_eq!(a.on_record(&tp(0), 6), OnRecord::Deliver { generation: 1, start: false, pause: false });
        assert_eq!(a.on_record(&tp(1), 0), OnRecord::Deliver { generation: 2, start: true, pause: false });
    }

    #[test]
    fn a_full_partition_is_paused_once_and_resumed_at_the_low_mark() {
        let mut a = Assignment::new(Limits::new(4));
        let pauses: Vec<bool> = (0..6)
            .map(|o| match a.on_record(&tp(0), o) {
                OnRecord::Deliver { pause, .. } => pause,
                OnRecord::Drop => panic!("dropped {o}"),
            })
            .collect();
        assert_eq!(pauses, [false, false, false, true, false, false], "paused when 4 wait, once");
        // 6 waiting; finishing 3 leaves 3 > low (2): still paused.
        assert_eq!(a.on_finished(&tp(0), 1, 3, 3), OnFinished { store: Some(3), resume: false });
        assert_eq!(a.on_finished(&tp(0), 1, 4, 1), OnFinished { store: Some(4), resume: true });
        assert_eq!(a.on_finished(&tp(0), 1, 6, 2), OnFinished { store: Some(6), resume: false });
    }

    #[test]
    fn records_fetched_again_after_a_resume_are_dropped() {
        let mut a = Assignment::new(Limits::new(100));
        for o in 0..3 {
            a.on_record(&tp(0), o);
        }
        assert_eq!(a.on_record(&tp(0), 1), OnRecord::Drop);
        assert!(matches!(a.on_record(&tp(0), 3), OnRecord::Deliver { .. }));
    }

    #[test]
    fn a_revoked_worker_never_stores_for_the_next_assignment() {
        let mut a = Assignment::new(Limits::new(100));
        a.on_record(&tp(0), 0);
        a.on_record(&tp(1), 0);
        assert_eq!(a.stop([&tp(0)]), vec![(tp(0), 1)]);
        assert_eq!(a.on_record(&tp(0), 1), OnRecord::Drop, "a stopping partition takes no records");
        // Its final report still counts while the lane exists...
        assert_eq!(a.on_finished(&tp(0), 1, 1, 1).store, Some(1));
        assert_eq!(a.on_exited(&tp(0), 1), OnExited::Stopped);
        a.forget(&tp(0));
        // ...but once the partition is assigned again, the old worker's
        // late reports are ignored.
        assert_eq!(a.on_record(&tp(0), 1), OnRecord::Deliver { generation: 3, start: true, pause: false });
        assert_eq!(a.on_finished(&tp(0), 1, 2, 1), OnFinished::default());
        assert_eq!(a.on_exited(&tp(0), 1), OnExited::Stopped);
    }

    #[test]
    fn a_worker_that_ends_by_itself_is_unexpected() {
        let mut a = Assignment::new(Limits::new(100));
        a.on_record(&tp(0), 0);
        assert_eq!(a.on_exited(&tp(0), 1), OnExited::Unexpected);
        let mut all = a.partitions();
        all.sort();
        assert_eq!(all, vec![tp(0)]);
    }

    #[test]
    fn a_paused_lane_is_reported_when_forgotten() {
        let mut a = Assignment::new(Limits::new(1));
        assert!(matches!(a.on_record(&tp(0), 0), OnRecord::Deliver { pause: true, .. }));
        assert!(a.forget(&tp(0)));
        assert!(!a.forget(&tp(0)));
    }
}
