//! [`Recorder`]: a lane's cursor moves on their way to the database.
//!
//! When a batch is acked the lane hands its cursor move to the relay's
//! cursor statement task and goes on reading and sending; it does not wait
//! for the write. The task answers moves in the order they were made (moves
//! of one lane that meet in one statement collapse to the furthest), and the
//! lane settles each answer as it arrives: only then is the cursor taken as
//! recorded, the lease clock extended and the batch counted as published.
//! If a move fails the lane waits for the moves after it, so that it knows
//! where the database's cursor is, and sends everything after that again.

use std::collections::VecDeque;
use std::time::Instant;

use crate::coalesce::Answer;
use crate::error::OutboxError;
use crate::lane::{LeaseClock, coalescer_gone};
use crate::metrics::Delivery;
use crate::relay::Shared;
use crate::store::{Cursor, CursorMove, LeaseToken};

/// A batch's outcome, to be booked once its cursor move is recorded.
pub(crate) struct Outcome {
    /// Where the cursor moves.
    pub(crate) to: Cursor,
    /// When the move was asked for (the lease runs from there).
    pub(crate) asked: Instant,
    /// Rows delivered and rows parked by the batch.
    pub(crate) delivered: usize,
    pub(crate) parked: usize,
    /// Per-row timings for the metrics.
    pub(crate) deliveries: Vec<Delivery>,
}

/// A move sent to the cursor statement task.
struct Pending {
    outcome: Outcome,
    answer: Answer<Result<(), OutboxError>>,
}

/// A lane's recorded cursor and the moves still on their way.
pub(crate) struct Recorder {
    lane: i32,
    /// The last position the database confirmed.
    pub(crate) cursor: Cursor,
    /// When the cursor last moved.
    pub(crate) last_advance: Instant,
    pending: VecDeque<Pending>,
}

impl Recorder {
    pub(crate) fn new(lane: i32, cursor: Cursor) -> Self {
        Recorder { lane, cursor, last_advance: Instant::now(), pending: VecDeque::new() }
    }

    /// Moves on their way.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends the move for `outcome` without waiting for it.
    pub(crate) fn submit(&mut self, shared: &Shared, token: LeaseToken<'_>, outcome: Outcome) {
        let m = CursorMove { lane: token.lane, epoch: token.epoch, to: outcome.to };
        let answer = shared.cursor_moves.submit(m);
        self.pending.push_back(Pending { outcome, answer });
    }

    /// Waits for the oldest move's answer (forever when none is on its way).
    /// Cancel-safe: the move stays queued until [`settle`](Self::settle).
    pub(crate) async fn answered(&mut self) -> Option<Result<(), OutboxError>> {
        match self.pending.front_mut() {
            Some(p) => (&mut p.answer).await,
            None => std::future::pending().await,
        }
    }

    /// Books the oldest move with `answer` (from [`answered`](Self::answered)).
    /// `Ok(true)`: recorded; `Ok(false)`: not recorded, its rows must go out
    /// again; `Err`: the lease is lost.
    pub(crate) fn settle(
        &mut self,
        answer: Option<Result<(), OutboxError>>,
        shared: &Shared,
        clock: &LeaseClock,
    ) -> Result<bool, OutboxError> {
        let Some(Pending { outcome, .. }) = self.pending.pop_front() else { return Ok(true) };
        match answer.unwrap_or_else(|| Err(coalescer_gone(self.lane, false))) {
            Ok(()) => {
                self.confirm(outcome, shared, clock);
                Ok(true)
            }
            Err(e @ OutboxError::LeaseLost { .. }) => Err(e),
            Err(e) => {
                // Delivered but not recorded: the rows go out again.
                tracing::warn!(lane = self.lane, error = %e, "outbox could not record a batch; will resend");
                Ok(false)
            }
        }
    }

    /// Books a move the database has made.
    pub(crate) fn confirm(&mut self, outcome: Outcome, shared: &Shared, clock: &LeaseClock) {
        self.cursor = outcome.to;
        clock.extend(outcome.asked, shared.config.lease_ttl);
        self.last_advance = Instant::now();
        shared.metrics.record_commit(outcome.asked.elapsed());
        shared.metrics.record_batch(self.lane, outcome.delivered, outcome.parked, &outcome.deliveries);
    }

    /// Waits for every move on its way. `Ok(true)` if all were recorded;
    /// `Err` as soon as one finds the lease lost.
    pub(crate) async fn drain(&mut self, shared: &Shared, clock: &LeaseClock) -> Result<bool, OutboxError> {
        let mut all = true;
        while !self.pending.is_empty() {
            let answer = self.answered().await;
            all &= self.settle(answer, shared, clock)?;
        }
        Ok(all)
    }
}
