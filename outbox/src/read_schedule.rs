//! [`ReadSchedule`]: when a lane reads next — the lane's read decisions as a
//! pure type (events in, decisions out, no I/O, no clock of its own), so
//! that each rule is unit-tested; `lane.rs` only performs them.
//!
//! Rules:
//! * A lane working off a backlog (its last read filled a batch) reads again
//!   at once.
//! * Otherwise it reads only on the ticks of the relay's `trickle_interval`
//!   grid — the first tick after it has reason to read — at most once per
//!   tick: rows that commit meanwhile go out together, and the lanes' reads
//!   fall due together and share a statement.
//! * A read that came back short (drained) waits for a wake-up (NOTIFY) or
//!   the poll interval: `poll_interval` when writers notify; while committed
//!   rows wait for the watermark, `watermark_poll_interval` doubling up to 8×;
//!   when writers do not notify, every tick for [`QUIET_TICKS`] empty reads
//!   after rows were found, then doubling from `watermark_poll_interval` up to
//!   `poll_interval`.

use std::time::{Duration, Instant};

/// When writers do not send the NOTIFY hint, a lane that found rows keeps
/// looking at every tick of the grid for this many empty reads (100 ms at the
/// default 5 ms), then backs off from `watermark_poll_interval` towards
/// `poll_interval`.
pub(crate) const QUIET_TICKS: u32 = 20;

/// The first tick of the grid `origin + k * every` after `t` (`t` itself
/// when `every` is zero). Lanes that trickle read on the same grid, so their
/// reads fall due together and share a statement.
pub(crate) fn next_tick(origin: Instant, t: Instant, every: Duration) -> Instant {
    let every_ns = every.as_nanos();
    if every_ns == 0 {
        return t;
    }
    let ticks = t.saturating_duration_since(origin).as_nanos() / every_ns + 1;
    origin + Duration::from_nanos(u64::try_from(ticks * every_ns).unwrap_or(u64::MAX))
}

/// The polling settings (from `RelayConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Polling {
    /// Longest polling interval.
    pub(crate) poll: Duration,
    /// Shortest polling interval.
    pub(crate) watermark_poll: Duration,
}

/// What a loop turn of the lane does about reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    /// Read now.
    pub(crate) read: bool,
    /// Not now: wait for this tick of the grid (while doing anything else).
    pub(crate) tick: Option<Instant>,
}

/// A lane's read schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadSchedule {
    /// The last read came back short: wait for a wake-up or a poll.
    drained: bool,
    /// The last read filled a batch: read again at once.
    backlog: bool,
    /// The tick the next read waits for.
    due: Option<Instant>,
    /// Committed rows after the cursor wait for the watermark.
    held_back: bool,
    /// Empty reads in a row with rows held back.
    held_polls: u32,
    /// Empty reads since a read found rows.
    quiet_polls: u32,
}

impl Default for ReadSchedule {
    fn default() -> Self {
        ReadSchedule {
            drained: false,
            backlog: false,
            due: None,
            held_back: false,
            held_polls: 0,
            quiet_polls: u32::MAX,
        }
    }
}

impl ReadSchedule {
    /// The turn at `now`: `may_send` says whether the lane may send at all
    /// (lease, pipeline room, no halt); `grid` and `every` are the relay's
    /// tick grid. Plans the next tick when there is reason to read and none
    /// is planned.
    pub(crate) fn turn(&mut self, may_send: bool, now: Instant, grid: Instant, every: Duration) -> Turn {
        if may_send && !self.drained && !self.backlog && self.due.is_none() {
            self.due = Some(next_tick(grid, now, every));
        }
        let may_read = self.backlog || self.due.is_some_and(|due| now >= due);
        let wanted = may_send && !self.drained;
        Turn { read: wanted && may_read, tick: if wanted && !may_read { self.due } else { None } }
    }

    /// A read goes out (the planned tick is used up).
    pub(crate) fn reading(&mut self) {
        self.due = None;
    }

    /// The read found nothing ready; `held_back`: rows wait for the
    /// watermark.
    pub(crate) fn found_nothing(&mut self, held_back: bool) {
        (self.drained, self.backlog, self.held_back) = (true, false, held_back);
        self.held_polls = if held_back { self.held_polls.saturating_add(1) } else { 0 };
        self.quiet_polls = if held_back { 0 } else { self.quiet_polls.saturating_add(1) };
    }

    /// The read found `rows` of at most `batch_size`.
    pub(crate) fn found(&mut self, rows: usize, batch_size: usize, held_back: bool) {
        self.drained = rows < batch_size;
        (self.backlog, self.held_back) = (!self.drained, held_back);
        (self.held_polls, self.quiet_polls) = (0, 0);
    }

    /// The read failed: look again after a wake-up or the long poll.
    pub(crate) fn failed(&mut self) {
        (self.drained, self.held_back, self.quiet_polls) = (true, false, u32::MAX);
    }

    /// The read's rows were not used (its lease ran out meanwhile): read
    /// again.
    pub(crate) fn discarded(&mut self) {
        self.drained = false;
    }

    /// A wake-up, a poll timer or a resend: there may be rows to read.
    pub(crate) fn woken(&mut self) {
        self.drained = false;
    }

    /// Whether the lane waits for a wake-up or a poll before reading.
    pub(crate) fn drained(&self) -> bool {
        self.drained
    }

    /// How long a drained lane waits before it polls; `notified`: writers
    /// send the NOTIFY hint.
    pub(crate) fn poll(&self, notified: bool, p: Polling) -> Duration {
        // `watermark_poll` doubled `n` times, at most `poll`.
        let doubled = |n: u32| p.watermark_poll.saturating_mul(2u32.saturating_pow(n)).min(p.poll);
        if self.held_back {
            // Doubling stops at 8x (40 ms by default): under a steady stream of
            // commits some transaction is nearly always open, and a longer
            // pause here becomes the relay's tail latency.
            doubled(self.held_polls.saturating_sub(1).min(3))
        } else if notified {
            p.poll
        } else if self.quiet_polls < QUIET_TICKS {
            // Writers do not notify and this lane found rows a moment ago:
            // look again at the next tick (reads of all lanes due at a tick
            // share one statement).
            Duration::ZERO
        } else {
            doubled(self.quiet_polls - QUIET_TICKS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(5);
    const POLLING: Polling =
        Polling { poll: Duration::from_millis(500), watermark_poll: Duration::from_millis(5) };

    #[test]
    fn reads_fall_due_on_the_shared_grid() {
        let origin = Instant::now();
        let at = |us: u64| origin + Duration::from_micros(us);
        // Two lanes handing over at different moments of one tick read again
        // at the same next tick.
        assert_eq!(next_tick(origin, at(5_100), EVERY), at(10_000));
        assert_eq!(next_tick(origin, at(9_900), EVERY), at(10_000));
        // A handover exactly on a tick waits a whole interval.
        assert_eq!(next_tick(origin, at(10_000), EVERY), at(15_000));
        assert_eq!(next_tick(origin, at(7_000), Duration::ZERO), at(7_000));
    }

    #[test]
    fn a_trickling_lane_reads_once_per_tick() {
        let grid = Instant::now();
        let mut s = ReadSchedule::default();
        let t = s.turn(true, grid + Duration::from_millis(1), grid, EVERY);
        assert_eq!(t, Turn { read: false, tick: Some(grid + EVERY) }, "waits for the next tick");
        let t = s.turn(true, grid + EVERY, grid, EVERY);
        assert!(t.read && t.tick.is_none(), "reads at the tick");
        s.reading();
        s.found(3, 1000, false);
        // A short read: drained, no tick planned until a wake-up.
        let t = s.turn(true, grid + EVERY, grid, EVERY);
        assert_eq!(t, Turn { read: false, tick: None });
        s.woken();
        let t = s.turn(true, grid + EVERY + Duration::from_millis(1), grid, EVERY);
        assert_eq!(t.tick, Some(grid + EVERY * 2), "at most once per tick");
    }

    #[test]
    fn a_backlog_reads_again_at_once_and_nothing_is_read_without_leave_to_send() {
        let grid = Instant::now();
        let mut s = ReadSchedule::default();
        s.found(1000, 1000, false);
        let t = s.turn(true, grid, grid, EVERY);
        assert!(t.read, "a full batch: read again at once");
        let t = s.turn(false, grid, grid, EVERY);
        assert_eq!(t, Turn { read: false, tick: None }, "no room or no lease: no read");
    }

    #[test]
    fn held_back_rows_poll_fast_doubling_to_eight_times() {
        let mut s = ReadSchedule::default();
        let waits: Vec<u64> = (0..6)
            .map(|_| {
                s.found_nothing(true);
                s.poll(true, POLLING).as_millis() as u64
            })
            .collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 40, 40]);
        s.found_nothing(false);
        assert_eq!(s.poll(true, POLLING), POLLING.poll, "notified: the long poll");
    }

    #[test]
    fn without_notify_a_lane_that_found_rows_keeps_looking_then_backs_off() {
        let mut s = ReadSchedule::default();
        assert_eq!(s.poll(false, POLLING).as_millis(), 500, "never found rows: the long poll");
        s.found(3, 1000, false);
        for _ in 0..QUIET_TICKS - 1 {
            s.found_nothing(false);
            assert_eq!(s.poll(false, POLLING), Duration::ZERO, "every tick");
        }
        let backing: Vec<u64> = (0..9)
            .map(|_| {
                s.found_nothing(false);
                s.poll(false, POLLING).as_millis() as u64
            })
            .collect();
        assert_eq!(backing, vec![5, 10, 20, 40, 80, 160, 320, 500, 500]);
        s.failed();
        assert_eq!(s.poll(false, POLLING).as_millis(), 500, "after a failed read: the long poll");
        assert!(s.drained());
    }
}
