//! [`Recorder`]: a lane's cursor moves on their way to the database.
//!
//! When a batch is acked the lane hands its cursor move to the relay's
//! cursor statement task and goes on reading and sending; it does not wait
//! for the write. The task answers moves in the order they were made (moves
//! of one lane that meet in one statement collapse to the furthest), and the
//! lane settles each answer as it arrives: only then is the cursor taken as
//! recorded, the lease clock extended and the batch counted as published.
//!
//! A move that fails loses nothing: its rows are in Kafka already, only the
//! record is missing. A later move covers it (cursors only move forward);
//! if none is on its way, the lane writes the furthest failed move again
//! after a backoff (a parking transaction is tried again the same way, by
//! the lane). Rows are sent again only when sending failed, from the
//! furthest acked position ([`Recorder::acked`]).

use std::collections::VecDeque;
use std::time::Instant;

use crate::coalesce::Answer;
use crate::error::{OutboxError, coalescer_gone};
use crate::lease_clock::LeaseClock;
use crate::metrics::Delivery;
use crate::shared::Shared;
use crate::store::{Cursor, CursorMove, LeaseToken};

/// A batch's outcome, to be booked once its cursor move is recorded.
pub(crate) struct Outcome {
    /// Where the cursor moves.
    pub(crate) to: Cursor,
    /// Rows delivered and rows parked by the batch.
    pub(crate) delivered: usize,
    pub(crate) parked: usize,
    /// Per-row timings for the metrics.
    pub(crate) deliveries: Vec<Delivery>,
}

/// A move sent to the cursor statement task, for one or more outcomes.
struct Pending {
    to: Cursor,
    /// When the move was asked for (a recorded move extends the lease from
    /// there).
    asked: Instant,
    outcomes: Vec<Outcome>,
    answer: Answer<Result<(), OutboxError>>,
}

/// A lane's recorded cursor and the moves not yet recorded.
pub(crate) struct Recorder {
    lane: i32,
    /// The furthest position the database confirmed.
    cursor: Cursor,
    /// The furthest position whose batch was acked, recorded or not.
    acked: Cursor,
    /// When the cursor last moved.
    pub(crate) last_advance: Instant,
    pending: VecDeque<Pending>,
    /// Outcomes whose move failed and that no confirmed move covers yet.
    failed: Vec<Outcome>,
}

impl Recorder {
    pub(crate) fn new(lane: i32, cursor: Cursor) -> Self {
        Recorder {
            lane,
            cursor,
            acked: cursor,
            last_advance: Instant::now(),
            pending: VecDeque::new(),
            failed: Vec::new(),
        }
    }

    /// The furthest position the database confirmed.
    pub(crate) fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Where the lane resumes after a failed send: everything up to here
    /// was acked by the broker (and is, or will be, recorded).
    pub(crate) fn acked(&self) -> Cursor {
        self.acked
    }

    /// Batches acked but not yet recorded (what a crash would send again).
    pub(crate) fn unrecorded(&self) -> usize {
        self.pending.iter().map(|p| p.outcomes.len()).sum::<usize>() + self.failed.len()
    }

    /// Nothing on its way and nothing failed.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.failed.is_empty()
    }

    /// Sends the move for `outcome` without waiting for it.
    pub(crate) fn submit(&mut self, shared: &Shared, token: LeaseToken<'_>, outcome: Outcome) {
        self.send(shared, token, vec![outcome]);
    }

    fn send(&mut self, shared: &Shared, token: LeaseToken<'_>, outcomes: Vec<Outcome>) {
        let Some(to) = outcomes.iter().map(|o| o.to).max() else { return };
        self.acked = self.acked.max(to);
        let answer = shared.cursor_moves.submit(CursorMove { lane: token.lane, epoch: token.epoch, to });
        self.pending.push_back(Pending { to, asked: Instant::now(), outcomes, answer });
    }

    /// Waits for the oldest move's answer (forever when none is on its way).
    /// Dropping the wait before it is ready loses nothing; once it is ready,
    /// hand the answer to [`settle`](Self::settle) before waiting again.
    pub(crate) async fn answered(&mut self) -> Option<Result<(), OutboxError>> {
        match self.pending.front_mut() {
            Some(p) => (&mut p.answer).await,
            None => std::future::pending().await,
        }
    }

    /// Books the oldest move with `answer` (from [`answered`](Self::answered)).
    /// `Ok(true)`: recorded; `Ok(false)`: not recorded, to be covered or
    /// written again; `Err`: the lease is lost.
    pub(crate) fn settle(
        &mut self,
        answer: Option<Result<(), OutboxError>>,
        shared: &Shared,
        clock: &LeaseClock,
    ) -> Result<bool, OutboxError> {
        let Some(p) = self.pending.pop_front() else { return Ok(true) };
        match answer.unwrap_or_else(|| Err(coalescer_gone(self.lane, false))) {
            Ok(()) => {
                self.confirm(p.to, p.asked, p.outcomes, shared, clock);
                Ok(true)
            }
            Err(e @ OutboxError::LeaseLost { .. }) => Err(e),
            Err(e) => {
                shared.metrics.record_failed_cursor_write();
                if p.to <= self.cursor {
                    // A parking transaction recorded further already.
                    for o in &p.outcomes {
                        shared.metrics.record_batch(self.lane, o.delivered, o.parked, &o.deliveries);
                    }
                    return Ok(true);
                }
                tracing::warn!(lane = self.lane, error = %e, "outbox could not record a batch; will write it again");
                self.failed.extend(p.outcomes);
                Ok(false)
            }
        }
    }

    /// Books a move to `to`, asked for at `asked`, that the database has
    /// made: its outcomes and any failed ones it covers.
    pub(crate) fn confirm(
        &mut self,
        to: Cursor,
        asked: Instant,
        outcomes: Vec<Outcome>,
        shared: &Shared,
        clock: &LeaseClock,
    ) {
        self.cursor = self.cursor.max(to);
        self.acked = self.acked.max(self.cursor);
        clock.extend(asked, shared.config.lease_ttl);
        self.last_advance = Instant::now();
        if !outcomes.is_empty() {
            // Time to record batches (an idle advance records none).
            shared.metrics.record_commit(asked.elapsed());
        }
        let (covered, failed): (Vec<Outcome>, Vec<Outcome>) =
            std::mem::take(&mut self.failed).into_iter().partition(|o| o.to <= self.cursor);
        self.failed = failed;
        for o in outcomes.iter().chain(&covered) {
            shared.metrics.record_batch(self.lane, o.delivered, o.parked, &o.deliveries);
        }
    }

    /// Failed moves wait and no move on its way will cover them: the lane
    /// backs off, then calls [`rewrite`](Self::rewrite).
    pub(crate) fn must_rewrite(&self) -> bool {
        self.pending.is_empty() && !self.failed.is_empty()
    }

    /// Writes the failed moves again, as one move to the furthest of them.
    pub(crate) fn rewrite(&mut self, shared: &Shared, token: LeaseToken<'_>) {
        let failed = std::mem::take(&mut self.failed);
        self.send(shared, token, failed);
    }

    /// Records everything acked: waits for the moves on their way and
    /// writes failed ones again (`backoff_min` apart) until none is left or
    /// the lease is lost. Unbounded: the caller bounds it.
    pub(crate) async fn flush(
        &mut self,
        shared: &Shared,
        token: LeaseToken<'_>,
        clock: &LeaseClock,
    ) -> Result<(), OutboxError> {
        loop {
            while !self.pending.is_empty() {
                let answer = self.answered().await;
                self.settle(answer, shared, clock)?;
            }
            if self.failed.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(shared.config.backoff_min).await;
            self.rewrite(shared, token);
        }
    }
}
