//! The poll thread's side of the partition workers: handing them records,
//! storing the offsets they report, pausing and resuming their partitions,
//! and stopping them (revocation, shutdown) within a bound. The decisions
//! come from [`Assignment`]; this module performs them on the librdkafka
//! consumer. It lives in the consumer's context (behind a mutex) because
//! the rebalance callback needs it too.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::assignment::{Assignment, OnExited, OnRecord, TopicPartition};
use crate::message::RawRecord;
use crate::stats::Stats;
use crate::stop::Stop;
use crate::worker::{Report, Worker};

/// How long past a stop's deadline the poll thread waits for a worker's last
/// report (the rollback of the attempt it cut off, a channel send).
const EXIT_MARGIN: Duration = Duration::from_millis(500);

/// A running worker, as the poll thread sees it.
struct Link {
    generation: u64,
    records: UnboundedSender<RawRecord>,
    stop: Stop,
}

/// Starts a worker on the async runtime.
pub(crate) type Spawn = Box<dyn Fn(Worker) + Send + Sync>;

/// The workers of one member.
pub(crate) struct Partitions {
    assignment: Assignment,
    links: HashMap<TopicPartition, Link>,
    reports: Receiver<Report>,
    report_sender: Sender<Report>,
    spawn: Spawn,
    max_batch: usize,
    stats: Stats,
    /// Offsets stored since the last commit.
    pub(crate) uncommitted: bool,
    /// A worker ended by itself: the member must stop.
    pub(crate) broken: Option<String>,
}

impl Partitions {
    pub(crate) fn new(assignment: Assignment, spawn: Spawn, max_batch: usize, stats: Stats) -> Self {
        let (report_sender, reports) = std::sync::mpsc::channel();
        Partitions {
            assignment,
            links: HashMap::new(),
            reports,
            report_sender,
            spawn,
            max_batch: max_batch.max(1),
            stats,
            uncommitted: false,
            broken: None,
        }
    }

    /// Hands a fetched record to its partition's worker (starting it first
    /// if needed), pausing the partition when the worker is full.
    pub(crate) fn dispatch<X: ConsumerContext, C: Consumer<X>>(&mut self, consumer: &C, record: RawRecord) {
        let tp = (record.topic.clone(), record.partition);
        let OnRecord::Deliver { generation, start, pause } = self.assignment.on_record(&tp, record.offset)
        else {
            return;
        };
        if start {
            let (records, receiver) = unbounded_channel();
            let stop = Stop::default();
            (self.spawn)(Worker {
                tp: tp.clone(),
                generation,
                records: receiver,
                stop: stop.clone(),
                reports: self.report_sender.clone(),
                max_batch: self.max_batch,
            });
            self.links.insert(tp.clone(), Link { generation, records, stop });
        }
        if let Some(link) = self.links.get(&tp).filter(|l| l.generation == generation) {
            // A worker that is gone has reported it; `drain` handles that.
            let _ = link.records.send(record);
        }
        if pause {
            set_paused(consumer, &tp, true);
            self.stats.paused();
        }
    }

    /// Applies every report waiting, without blocking.
    pub(crate) fn drain<X: ConsumerContext, C: Consumer<X>>(&mut self, consumer: &C) {
        while let Ok(report) = self.reports.try_recv() {
            self.apply(consumer, report, true);
        }
    }

    fn apply<X: ConsumerContext, C: Consumer<X>>(&mut self, consumer: &C, report: Report, store: bool) {
        match report {
            Report::Finished { tp, generation, next_offset, count } => {
                let decision = self.assignment.on_finished(&tp, generation, next_offset, count);
                if let (Some(next), true) = (decision.store, store) {
                    store_offset(consumer, &tp, next);
                    self.uncommitted = true;
                }
                if decision.resume {
                    set_paused(consumer, &tp, false);
                    self.stats.resumed();
                }
            }
            Report::Exited { tp, generation } => {
                if self.assignment.on_exited(&tp, generation) == OnExited::Unexpected {
                    let why = format!("the worker of {}/{} ended unexpectedly", tp.0, tp.1);
                    tracing::error!("{why}; stopping the consumer");
                    self.broken.get_or_insert(why);
                }
                if self.links.get(&tp).is_some_and(|l| l.generation == generation) {
                    self.links.remove(&tp);
                }
            }
        }
    }

    /// Every partition that has a worker.
    pub(crate) fn partitions(&self) -> Vec<TopicPartition> {
        self.assignment.partitions()
    }

    /// Stops the workers of `tps`: no new record or attempt starts, the one
    /// in progress gets `grace`. Waits for them (a little past the grace),
    /// storing what they finish unless `store` is false (the assignment was
    /// lost), then forgets the partitions. A worker still running after that
    /// can no longer store anything: its reports are of a forgotten
    /// generation.
    pub(crate) fn stop_and_wait<X: ConsumerContext, C: Consumer<X>>(
        &mut self,
        consumer: &C,
        tps: &[TopicPartition],
        grace: Duration,
        store: bool,
    ) {
        let mut waiting: HashMap<TopicPartition, u64> = self.assignment.stop(tps).into_iter().collect();
        for (tp, generation) in &waiting {
            if let Some(link) = self.links.get(tp).filter(|l| l.generation == *generation) {
                link.stop.request(grace);
            }
        }
        let deadline = Instant::now() + grace + EXIT_MARGIN;
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = match self.reports.recv_timeout(left) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            };
            if let Report::Exited { tp, generation } = &report
                && waiting.get(tp) == Some(generation)
            {
                waiting.remove(tp);
            }
            self.apply(consumer, report, store);
        }
        if !waiting.is_empty() {
            let late: Vec<String> = waiting.keys().map(|(t, p)| format!("{t}/{p}")).collect();
            tracing::warn!(
                partitions = %late.join(","),
                ?grace,
                "workers still busy after the grace period; their records will be redelivered",
            );
        }
        for tp in tps {
            if self.assignment.forget(tp) {
                self.stats.resumed();
            }
            self.links.remove(tp);
        }
    }
}

fn store_offset<X: ConsumerContext, C: Consumer<X>>(consumer: &C, tp: &TopicPartition, next: i64) {
    let mut tpl = TopicPartitionList::new();
    if let Err(e) = tpl
        .add_partition_offset(&tp.0, tp.1, Offset::Offset(next))
        .and_then(|()| consumer.store_offsets(&tpl))
    {
        // The partition is no longer assigned (the member lost it): the new
        // owner replays from the committed offset and the inbox skips what
        // was applied here.
        tracing::warn!(error = %e, topic = %tp.0, partition = tp.1, next, "cannot store offset");
    }
}

fn set_paused<X: ConsumerContext, C: Consumer<X>>(consumer: &C, tp: &TopicPartition, paused: bool) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.0, tp.1);
    let result = if paused { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
    match result {
        Ok(()) => tracing::debug!(topic = %tp.0, partition = tp.1, paused, "partition flow"),
        Err(e) => tracing::warn!(error = %e, topic = %tp.0, partition = tp.1, paused, "cannot pause/resume"),
    }
}

/// Commits the offsets stored so far. "Nothing to commit" is not an error;
/// other failures are logged: a missed commit only causes redeliveries.
pub(crate) fn commit_stored<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    mode: CommitMode,
    stats: &Stats,
) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => {
            if matches!(mode, CommitMode::Sync) {
                stats.committed();
            }
        }
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "offset commit failed; records may be redelivered"),
    }
}
