//! One lane's worker: read a batch after the cursor below the watermark,
//! publish it, record the outcome under the lease epoch, repeat; sleep until
//! a notification or the poll interval when the lane is empty.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::alarm::{AlarmKind, LaneAlarm};
use crate::batch;
use crate::error::{OutboxError, coalescer_gone};
use crate::lease::LaneLease;
use crate::lease_clock::LeaseClock;
use crate::metrics::Delivery;
use crate::read_schedule::{Polling, ReadSchedule};
use crate::record::{Outcome, Recorder};
use crate::send::InFlight;
use crate::shared::Shared;
use crate::store::{self, Cursor, CursorMove, LaneRead, LeaseToken, OutboxRow};
use crate::wakeup::sleep_or_cancel;

/// Sleeps until `due` (forever when there is none).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

/// Moves the lane's cursor (nothing to park) along with whatever other lanes
/// move at the same moment.
async fn move_cursor(shared: &Shared, token: LeaseToken<'_>, to: Cursor) -> Result<(), OutboxError> {
    let m = CursorMove { lane: token.lane, epoch: token.epoch, to };
    shared.cursor_moves.call(m).await.unwrap_or_else(|| Err(coalescer_gone(token.lane, false)))
}

/// Everything one worker needs.
pub(crate) struct Lane {
    pub(crate) lease: LaneLease,
    pub(crate) clock: Arc<LeaseClock>,
    pub(crate) stop: CancellationToken,
}

fn backoff(shared: &Shared) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(shared.config.backoff_min)
        .with_max_delay(shared.config.backoff_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs the lane until stopped (`Ok`) or the lease is lost (`Err(LeaseLost)`).
///
/// Up to `pipeline_depth` batches are in flight or waiting for their cursor
/// move to be recorded: the next batch is read and handed to the producer
/// while earlier ones wait for their acks. Unless a
/// backlog is being worked off (the last read filled a batch), the lane
/// reads only on the ticks of a `trickle_interval` grid shared by the
/// relay's lanes — the first tick after a wake-up, at most once per tick: a
/// steady stream of commits costs one read, send and cursor write per tick
/// rather than per row, and the lanes' reads and cursor moves fall due
/// together and share statements (`coalesce.rs`). Outcomes are decided
/// strictly in batch order. After a retriable send failure every later
/// batch in flight is abandoned and the lane resumes after the last acked
/// row (their rows go out again: duplicates, same event ids). Cursor moves are sent
/// without waiting for them; a failed one is covered by a later one or
/// written again, never a reason to send rows again (`record.rs`).
pub(crate) async fn run(shared: Arc<Shared>, lane: Lane) -> Result<(), OutboxError> {
    let Lane { lease, clock, stop } = lane;
    let cfg = &shared.config;
    let token = LeaseToken { lane: lease.lane, owner: &cfg.relay_id, epoch: lease.epoch };
    let ttl_ms = i64::try_from(cfg.lease_ttl.as_millis()).unwrap_or(i64::MAX);
    let margin = cfg.lease_ttl / 4;
    let depth = cfg.pipeline_depth.max(1);
    let wake = shared.wakeups.lane(lease.lane);
    // Recorded position (and moves on their way), and the position after
    // the last row handed over.
    let mut recorder = Recorder::new(lease.lane, lease.cursor);
    let mut read_cursor = lease.cursor;
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut blocked: HashMap<String, Uuid> = HashMap::new();
    // When to read next (`read_schedule.rs`).
    let mut schedule = ReadSchedule::default();
    let polling = Polling { poll: cfg.poll_interval, watermark_poll: cfg.watermark_poll_interval };
    // Whether the lane sends (a batch stopped early; an operator must act).
    let mut halted = Halt::No;
    let mut retry: Option<ExponentialBackoff> = None;
    // Sending a batch failed (or parking it could not be recorded): resume
    // after the last acked row.
    let mut must_resend = false;
    let mut grace_deadline: Option<Instant> = None;
    let mut publisher = shared.publishers.current();
    tracing::info!(lane = lease.lane, epoch = lease.epoch, cursor = ?lease.cursor, "lane acquired");

    // Sleeps for the next backoff delay; true if stopped meanwhile.
    let pause = |retry: &mut Option<ExponentialBackoff>| {
        let d = retry.get_or_insert_with(|| backoff(&shared)).next().unwrap_or(cfg.backoff_max);
        let stop = stop.clone();
        async move { sleep_or_cancel(d, &stop).await }
    };

    loop {
        if must_resend {
            // Abandon everything after the failure and resume after the
            // last acked row (recorded or on its way).
            must_resend = false;
            in_flight.clear();
            blocked.clear();
            (read_cursor, halted) = (recorder.acked(), Halt::No);
            schedule.woken();
            shared.metrics.record_retry();
            if pause(&mut retry).await {
                break;
            }
            continue;
        }
        if recorder.must_rewrite() && in_flight.is_empty() {
            // Cursor writes failed and nothing on its way (no move, no batch
            // in flight) will cover them.
            if pause(&mut retry).await {
                break;
            }
            recorder.rewrite(&shared, token);
            continue;
        }
        if stop.is_cancelled() {
            // Let the batches in flight finish for a while (they are
            // recorded after the loop, within the same deadline).
            let deadline = *grace_deadline.get_or_insert_with(|| Instant::now() + cfg.shutdown_grace);
            if in_flight.is_empty() || Instant::now() >= deadline {
                break;
            }
        }
        // Batches not yet recorded (in flight, or acked with their cursor
        // move on its way) are what a crash sends again: at most `depth`.
        let unrecorded = in_flight.len() + recorder.unrecorded();
        let may_send =
            !stop.is_cancelled() && halted == Halt::No && unrecorded < depth && clock.valid_for(margin);

        // 1. Fill the pipeline.
        let turn = schedule.turn(may_send, Instant::now(), shared.grid, cfg.trickle_interval);
        if turn.read {
            schedule.reading();
            let fetch_started = Instant::now();
            let read = shared.reads.call(LaneRead { lane: lease.lane, after: read_cursor }).await;
            let read = read.unwrap_or_else(|| Err(coalescer_gone(lease.lane, true)));
            if let Ok(batch) = &read {
                shared.metrics.record_read(batch.rows.is_empty());
                if batch.watermark < read_cursor.pos {
                    // Nothing can ever commit below the watermark again, but
                    // the cursor is above it: the database's transaction
                    // ids started again lower (restored or moved). Rows
                    // written now would sort behind the cursor, unread.
                    positions_ahead(&shared, lease.lane, read_cursor, batch.watermark);
                    halted = Halt::UntilStopped;
                    break;
                }
            }
            match read {
                Ok(batch) if batch.rows.is_empty() => {
                    schedule.found_nothing(batch.held_back);
                    // Idle: move the cursor up to the watermark now and then,
                    // so lag is visible and key rows below every cursor can go.
                    let idle = in_flight.is_empty() && recorder.is_idle() && read_cursor == recorder.cursor();
                    if idle
                        && batch.watermark > recorder.cursor().pos
                        && recorder.last_advance.elapsed() >= cfg.idle_advance_interval
                    {
                        let to = Cursor { pos: batch.watermark, id: 0 };
                        let asked = Instant::now();
                        match move_cursor(&shared, token, to).await {
                            Ok(()) => {
                                recorder.confirm(to, asked, Vec::new(), &shared, &clock);
                                read_cursor = to;
                            }
                            Err(e @ OutboxError::LeaseLost { .. }) => return Err(e),
                            Err(e) => {
                                tracing::warn!(lane = lease.lane, error = %e, "outbox idle advance failed")
                            }
                        }
                    }
                }
                Ok(_) if !clock.valid_for(margin) => {
                    // The read waited past the lease margin: another relay
                    // may hold the lane by now. Send nothing; read again
                    // once the lease is renewed (or stop when it is lost).
                    tracing::warn!(lane = lease.lane, "outbox read outlived the lease margin; nothing sent");
                    shared.metrics.record_late_read();
                    schedule.discarded();
                }
                Ok(batch) => {
                    schedule.found(batch.rows.len(), cfg.batch_size, batch.held_back);
                    let limits = shared.topic_limits.of(&batch.rows).await;
                    let b = InFlight::start(&publisher, Arc::new(batch.rows), &mut blocked, &limits);
                    if let Some(c) = b.sent_until() {
                        read_cursor = c;
                    }
                    if b.stopped_early {
                        halted = Halt::UntilResolved;
                    }
                    shared.metrics.record_fetch(fetch_started.elapsed());
                    in_flight.push_back(b);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(lane = lease.lane, error = %e, "outbox fetch failed; backing off");
                    if in_flight.is_empty() && pause(&mut retry).await {
                        break;
                    }
                    // With batches out there is no pause: look again after a
                    // wake-up or the long poll.
                    schedule.failed();
                }
            }
        }

        let poll = schedule.poll(shared.notified.load(Ordering::Relaxed), polling);
        // 2. Nothing in flight: wait for a wake-up, the poll interval or stop.
        let Some(front) = in_flight.front_mut() else {
            if stop.is_cancelled() {
                break;
            }
            tokio::select! {
                answer = recorder.answered() => {
                    if recorder.settle(answer, &shared, &clock)? {
                        retry = None;
                    }
                    continue;
                }
                _ = wake.notified() => {}
                _ = sleep_until(turn.tick), if turn.tick.is_some() => {}
                _ = tokio::time::sleep(if may_send { poll } else { Duration::from_millis(50) }),
                    if schedule.drained() || !may_send => {}
                _ = stop.cancelled() => {}
            }
            schedule.woken();
            continue;
        };

        // 3. Wait for the oldest batch, or for new rows while there is room;
        // say so when its delivery reports take too long (`None`).
        let send_started = Instant::now();
        let (stall_at, stall_unreported) = (front.started + cfg.stall_after, !front.stall_reported);
        let report = tokio::select! {
            r = front.finish(&mut blocked) => Some(r),
            _ = tokio::time::sleep_until(stall_at.into()), if stall_unreported => None,
            answer = recorder.answered() => {
                if recorder.settle(answer, &shared, &clock)? {
                    retry = None;
                }
                continue;
            }
            _ = wake.notified(), if may_send => { schedule.woken(); continue; }
            _ = sleep_until(turn.tick), if turn.tick.is_some() => continue,
            _ = tokio::time::sleep(poll), if may_send && schedule.drained() => { schedule.woken(); continue; }
            _ = stop.cancelled(), if grace_deadline.is_none() => continue,
            _ = tokio::time::sleep_until(grace_deadline.unwrap_or_else(Instant::now).into()),
                if grace_deadline.is_some() => break,
        };
        let Some(report) = report else {
            if let Some(front) = in_flight.front_mut() {
                front.stall_reported = true;
                let waited = front.started.elapsed().as_secs();
                let error = format!(
                    "no delivery report for {waited} s (the broker is unreachable or refuses it with a \
                     retriable error, which librdkafka retries without end)"
                );
                stalled(&shared, lease.lane, AlarmKind::Stalled, front.rows.first(), error, front.sent_at);
            }
            continue;
        };
        let Some(done) = in_flight.pop_front() else { continue };
        shared.metrics.record_send(send_started.elapsed());
        if report.fatal {
            shared.publishers.replace(&publisher);
            publisher = shared.publishers.current();
        }
        let noticed = Utc::now();
        let decision = batch::decide(&done.rows, &report.outcomes);
        if let Some(to) = decision.advance_to {
            let deliveries: Vec<Delivery> = done
                .rows
                .iter()
                .zip(&report.acked_at)
                .take_while(|(r, _)| r.cursor() <= to)
                .map(|(r, acked_at)| Delivery {
                    event_id: r.event_id,
                    created_at: r.created_at,
                    sent_at: done.sent_at,
                    acked_at: acked_at.unwrap_or(noticed),
                })
                .collect();
            let (delivered, parked) = (decision.delivered, decision.park.len());
            let outcome = Outcome { to, delivered, parked, deliveries };
            if decision.park.is_empty() {
                recorder.submit(&shared, token, outcome);
            } else {
                // Parking writes its own transaction (cursors only move
                // forward, so moves still on their way cannot undo it). It
                // is idempotent, so a failure is tried again, not resent;
                // only a stop gives up (the next holder resends the batch).
                loop {
                    let asked = Instant::now();
                    match store::commit(&shared.pool, token, to, &decision.park, ttl_ms).await {
                        Ok(()) => {
                            recorder.confirm(to, asked, vec![outcome], &shared, &clock);
                            retry = None;
                            for p in &decision.park {
                                tracing::warn!(lane = lease.lane, row = p.id, reason = %p.reason, "outbox row parked");
                            }
                            break;
                        }
                        Err(e @ OutboxError::LeaseLost { .. }) => return Err(e),
                        Err(e) => {
                            tracing::warn!(lane = lease.lane, error = %e, "outbox could not park; trying again");
                            shared.metrics.record_failed_cursor_write();
                            if pause(&mut retry).await {
                                must_resend = true;
                                break;
                            }
                        }
                    }
                }
            }
        }
        if in_flight.is_empty() {
            blocked.clear();
        }
        if let Some(reason) = &decision.retry {
            tracing::warn!(lane = lease.lane, %reason, "outbox publish failed; backing off");
            // The first row the cursor did not pass is where the lane stands.
            let stuck = done.rows.iter().find(|r| decision.advance_to.is_none_or(|to| r.cursor() > to));
            let kind = if decision.refused { AlarmKind::TopicRefused } else { AlarmKind::Stalled };
            stalled(&shared, lease.lane, kind, stuck, reason.clone(), Utc::now());
            must_resend = true;
        } else if let Some(stall) = shared.metrics.alarms.clear_stall(lease.lane) {
            let secs = (Utc::now() - stall.since).num_milliseconds() as f64 / 1000.0;
            tracing::info!(
                lane = lease.lane,
                row = stall.row,
                stalled_secs = secs,
                "outbox lane moving again"
            );
        }
    }
    // Record what was acked, within the grace period.
    let deadline = grace_deadline.unwrap_or_else(|| Instant::now() + cfg.shutdown_grace);
    match tokio::time::timeout_at(deadline.into(), recorder.flush(&shared, token, &clock)).await {
        Ok(flushed) => flushed?,
        Err(_) => tracing::warn!(
            lane = lease.lane,
            unrecorded = recorder.unrecorded(),
            "outbox lane stopped with acked batches unrecorded; they go out again"
        ),
    }
    if halted == Halt::UntilStopped {
        // Keep the lease (no other relay may take the lane and publish it
        // wrongly) and send nothing until the relay stops.
        stop.cancelled().await;
    }
    shared.metrics.alarms.clear(lease.lane);
    tracing::info!(lane = lease.lane, epoch = lease.epoch, cursor = ?recorder.cursor(), "lane stopped");
    Ok(())
}

/// Whether a lane sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    /// It sends.
    No,
    /// A batch stopped early; nothing more is sent until it is resolved.
    UntilResolved,
    /// It found something only an operator can repair: nothing is sent
    /// until the relay stops.
    UntilStopped,
}

/// Raises the alarm of a lane stuck at `row` with `error` (a stall, or a
/// topic that refuses this client), keeping the start of one at the same
/// row, and logs it when it is new.
fn stalled(
    shared: &Shared,
    lane: i32,
    kind: AlarmKind,
    row: Option<&OutboxRow>,
    error: String,
    since: DateTime<Utc>,
) {
    let alarm =
        LaneAlarm { lane, kind, row: row.map(|r| r.id), topic: row.map(|r| r.topic.clone()), error, since };
    if shared.metrics.alarms.raise(alarm.clone()) {
        tracing::error!(
            lane,
            row = alarm.row,
            topic = alarm.topic.as_deref(),
            error = %alarm.error,
            since = %alarm.since,
            kind = kind.as_str(),
            gauge.outbox_lane_stalled = 1u64,
            "outbox lane stalled: every later row of the lane waits behind this one"
        );
    }
}

/// Raises and logs the alarm of a lane whose cursor is ahead of the watermark.
fn positions_ahead(shared: &Shared, lane: i32, cursor: Cursor, watermark: i64) {
    let error = format!(
        "lane {lane}: cursor position {} is ahead of the watermark {watermark}; {}",
        cursor.pos,
        crate::rebase::RECOVERY
    );
    tracing::error!(
        lane,
        cursor = cursor.pos,
        watermark,
        gauge.outbox_lane_halted = 1u64,
        "outbox lane halted: {error}"
    );
    shared.metrics.alarms.raise(LaneAlarm {
        lane,
        kind: AlarmKind::PositionsAhead,
        row: None,
        topic: None,
        error,
        since: Utc::now(),
    });
}
