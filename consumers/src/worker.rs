//! A partition's worker: applies its records in offset order, one batch at a
//! time, and reports what it finished to the poll thread, which stores the
//! offsets. One worker per assigned partition runs at once; they share the
//! pipeline (and its `max_in_flight` transaction permits).
//!
//! A batch is whatever has arrived for the partition, up to `max_batch`,
//! without waiting for more. A batch of one is applied as a single record;
//! a longer one in one transaction, and if that fails, one record at a
//! time so that a poison record is dead-lettered alone and the rest apply.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use producers::Publisher;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::assignment::TopicPartition;
use crate::handler::Handler;
use crate::message::RawRecord;
use crate::process::{BatchOutcome, Pipeline};
use crate::stop::Stop;

/// What a worker tells the poll thread.
#[derive(Debug)]
pub(crate) enum Report {
    /// `count` more records are finished (applied, duplicates or
    /// dead-lettered); the next one to read is at `next_offset`.
    Finished { tp: TopicPartition, generation: u64, next_offset: i64, count: u64 },
    /// The worker ended (stopped, or its channel closed).
    Exited { tp: TopicPartition, generation: u64 },
}

/// One worker's identity and wiring.
pub(crate) struct Worker {
    pub(crate) tp: TopicPartition,
    pub(crate) generation: u64,
    pub(crate) records: UnboundedReceiver<RawRecord>,
    pub(crate) stop: Stop,
    pub(crate) reports: Sender<Report>,
    pub(crate) max_batch: usize,
}

impl Worker {
    /// Runs until stopped or until its record channel closes.
    pub(crate) async fn run<H: Handler, P: Publisher>(mut self, pipeline: Arc<Pipeline<H, P>>) {
        // Reports the end however it comes, a panic included: the poll
        // thread then stops the consumer instead of feeding a dead worker.
        let _exit =
            ExitReport { tp: self.tp.clone(), generation: self.generation, reports: self.reports.clone() };
        let mut batch = Vec::with_capacity(self.max_batch);
        'records: loop {
            let first = tokio::select! {
                biased;
                _ = self.stop.requested() => break,
                r = self.records.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            batch.clear();
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.records.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.len() > 1 {
                match pipeline.process_batch(&batch, &self.stop).await {
                    BatchOutcome::Finished => {
                        self.finished(&batch);
                        continue;
                    }
                    BatchOutcome::Cancelled => break,
                    BatchOutcome::OneByOne => {}
                }
            }
            for (i, record) in batch.iter().enumerate() {
                if !pipeline.process(record, &self.stop).await.is_finished() {
                    break 'records;
                }
                self.finished(&batch[i..=i]);
            }
        }
    }

    fn finished(&self, records: &[RawRecord]) {
        // The poll thread may be gone (shutdown): nothing to report to then.
        let Some(last) = records.last() else { return };
        let report = Report::Finished {
            tp: self.tp.clone(),
            generation: self.generation,
            next_offset: last.offset + 1,
            count: records.len() as u64,
        };
        let _ = self.reports.send(report);
    }
}

/// Sends [`Report::Exited`] when dropped.
struct ExitReport {
    tp: TopicPartition,
    generation: u64,
    reports: Sender<Report>,
}

impl Drop for ExitReport {
    fn drop(&mut self) {
        let _ = self.reports.send(Report::Exited { tp: self.tp.clone(), generation: self.generation });
    }
}
