//! Property test of the order saga: random sequences of replies (right,
//! wrong, duplicated, out of order), timers (current, stale, early) and
//! misrouted events, checked against the saga's invariants after every
//! transition, then driven to completion to show every run ends terminal
//! (a saga stopped on an unanswered compensation resumes on its reply).

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Fixture, names, short_name};
use proptest::prelude::*;
use proptest::{collection, option, sample};
use saga_orchestrator::{Command, Event, EventKind, OrderSaga, Step};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Action {
    /// One of the replies of [`reply`], `after` seconds after the last action.
    Reply { which: usize, after: i64 },
    /// A timer: of the current step (`step: None`) or of any step; `late`
    /// fires it at or after the pending deadline, otherwise at the clock.
    Timeout { step: Option<Step>, late: bool, after: i64 },
    /// A reply correlated with another saga.
    Misrouted { after: i64 },
}

/// Replies the services might send: every well-formed one, plus a
/// reservation of other lines and an authorization of another amount.
fn reply(fx: &Fixture, which: usize) -> EventKind {
    let mut all = fx.all_replies();
    all.push(fx.reserved_other_lines().into());
    all.push(fx.authorized_other_amount().into());
    all.swap_remove(which % all.len())
}

const REPLY_KINDS: usize = 10;

fn action() -> impl Strategy<Value = Action> {
    let after = 0i64..120;
    prop_oneof![
        6 => (0..REPLY_KINDS, after.clone()).prop_map(|(which, after)| Action::Reply { which, after }),
        3 => (option::weighted(0.4, sample::select(Step::ALL.to_vec())), any::<bool>(), after.clone())
            .prop_map(|(step, late, after)| Action::Timeout { step, late, after }),
        1 => after.prop_map(|after| Action::Misrouted { after }),
    ]
}

/// One saga under test and everything it emitted.
struct Run {
    fx: Fixture,
    state: OrderSaga,
    clock: DateTime<Utc>,
    log: Vec<Command>,
}

impl Run {
    fn start() -> Self {
        let fx = Fixture::new();
        let started = fx.start();
        assert_eq!(names(&started.commands), ["ReserveInventory"]);
        Run { state: started.state, clock: fx.t0, log: started.commands, fx }
    }

    fn count(&self, name: &str) -> usize {
        self.log.iter().filter(|c| short_name(c) == name).count()
    }

    fn sent(&self, name: &str) -> bool {
        self.count(name) > 0
    }

    fn act(&mut self, action: &Action) -> Result<(), TestCaseError> {
        match action {
            Action::Reply { which, after } => {
                self.clock += TimeDelta::seconds(*after);
                let kind = reply(&self.fx, *which);
                self.feed(Event::new(self.fx.saga_id, self.clock, kind))
            }
            Action::Timeout { step, late, after } => {
                self.clock += TimeDelta::seconds(*after);
                let step = match (*step, self.state.pending_step()) {
                    (Some(step), _) | (None, Some(step)) => step,
                    (None, None) => Step::ReserveInventory,
                };
                if *late && let Some(deadline) = self.state.deadline() {
                    self.clock = self.clock.max(deadline);
                }
                self.feed(Event::timed_out(self.fx.saga_id, self.clock, step))
            }
            Action::Misrouted { after } => {
                self.clock += TimeDelta::seconds(*after);
                let event = Event::new(Uuid::from_u128(0xbad), self.clock, self.fx.reserved());
                let result = self.state.handle(&event, &self.fx.config);
                prop_assert!(result.is_err(), "a misrouted event was accepted: {result:?}");
                Ok(())
            }
        }
    }

    /// Feeds one event of this saga and checks every per-transition invariant.
    fn feed(&mut self, event: Event) -> Result<(), TestCaseError> {
        let before = self.state.clone();
        let t = match self.state.handle(&event, &self.fx.config) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("own event refused: {e}"))),
        };
        // Only the awaited step's reply, or its timer once overdue, moves the
        // saga; a saga stopped on a compensation awaits only its reply.
        let is_timer = matches!(event.kind, EventKind::StepTimedOut { .. });
        let awaited = match &before {
            OrderSaga::CompensationFailed { step, .. } | OrderSaga::CompletionFailed { step, .. } => {
                event.kind.step() == *step && !is_timer
            }
            _ => before.pending().is_some_and(|(step, pending)| {
                event.kind.step() == step && (!is_timer || pending.is_overdue(event.at))
            }),
        };
        prop_assert_eq!(
            t.is_ignored(),
            !awaited,
            "{} for {} in {}",
            event.kind.name(),
            event.kind.step(),
            before.status()
        );
        if t.is_ignored() {
            prop_assert!(t.commands.is_empty(), "ignored event emitted {:?}", names(&t.commands));
            prop_assert_eq!(&t.state, &before);
            return Ok(());
        }
        if t.state.is_stuck() {
            // Giving up a compensation after its last attempt sends nothing.
            prop_assert!(t.commands.is_empty(), "{:?}", names(&t.commands));
            let (step, pending) = before.pending().ok_or_else(|| TestCaseError::fail("stuck from rest"))?;
            if let OrderSaga::CompletionFailed { step: stopped, failed_at, .. } = &t.state {
                // Giving up a retriable step after the pivot: never compensated.
                prop_assert_eq!(step.kind(), saga_orchestrator::StepKind::Retriable, "gave up {}", step);
                prop_assert_eq!(pending.attempt, self.fx.config.retry_attempts);
                prop_assert_eq!((*stopped, *failed_at), (step, event.at));
                self.check_stored_form(&t.state)?;
                self.state = t.state;
                return Ok(());
            }
            prop_assert!(matches!(step, Step::VoidPayment | Step::ReleaseInventory), "gave up {step}");
            prop_assert_eq!(pending.attempt, self.fx.config.compensation_attempts);
            let OrderSaga::CompensationFailed { step: stopped, reason, failed_at, .. } = &t.state else {
                return Err(TestCaseError::fail("stuck but not COMPENSATION_FAILED"));
            };
            let was = match &before {
                OrderSaga::VoidingPayment { reason, .. } | OrderSaga::ReleasingInventory { reason, .. } => {
                    reason
                }
                _ => return Err(TestCaseError::fail("gave up outside a compensation")),
            };
            prop_assert_eq!((*stopped, reason, *failed_at), (step, was, event.at));
            self.check_stored_form(&t.state)?;
            self.state = t.state;
            return Ok(());
        }
        // Every other effective transition emits exactly one message.
        prop_assert_eq!(t.commands.len(), 1, "{:?}", names(&t.commands));
        let command = &t.commands[0];
        self.check_command(command, &t.state)?;
        self.log.push(command.clone());
        self.check_stored_form(&t.state)?;
        self.state = t.state;
        Ok(())
    }

    /// Checks `command` against what was sent before it and the state it
    /// leads to.
    fn check_command(&self, command: &Command, next: &OrderSaga) -> Result<(), TestCaseError> {
        let compensating = self.sent("VoidPayment") || self.sent("ReleaseInventory");
        prop_assert_eq!(command.order_id(), self.fx.order_id);
        match command {
            Command::ReserveInventory(_) => prop_assert!(false, "ReserveInventory is only sent at start"),
            Command::AuthorizePayment(_) => {
                // The pivot is requested once, and never while compensating.
                prop_assert!(!self.sent("AuthorizePayment") && !compensating);
            }
            Command::CommitInventory(_) => {
                prop_assert!(self.sent("AuthorizePayment"), "commit before the pivot was requested");
                prop_assert!(!compensating, "CommitInventory after a compensation started");
            }
            Command::CapturePayment(_) => {
                prop_assert!(self.sent("CommitInventory"), "capture before the stock commit");
                prop_assert!(!compensating, "CapturePayment after a compensation started");
            }
            Command::VoidPayment(_) => {
                prop_assert!(self.sent("AuthorizePayment"), "void of a payment never requested");
                prop_assert!(!self.sent("ReleaseInventory"), "VoidPayment after ReleaseInventory");
                prop_assert!(!self.sent("CommitInventory"), "compensation after the pivot");
            }
            Command::ReleaseInventory(_) => {
                prop_assert!(self.sent("ReserveInventory"), "release of stock never requested");
                prop_assert!(!self.sent("CommitInventory"), "compensation after the pivot");
            }
            Command::OrderApproved(_) | Command::OrderRejected(_) => {
                prop_assert!(!self.sent("OrderApproved") && !self.sent("OrderRejected"), "second outcome");
            }
        }
        match command.step() {
            // A step's command is sent once per attempt: the n-th send of it
            // leaves the saga waiting on that step at attempt n.
            Some(step) => {
                let sends = self.count(short_name(command)) + 1;
                let pending = next.pending();
                prop_assert_eq!(pending.map(|(s, p)| (s, p.attempt as usize)), Some((step, sends)));
            }
            None => {
                prop_assert!(next.is_terminal());
                let expected =
                    if matches!(command, Command::OrderApproved(_)) { "APPROVED" } else { "REJECTED" };
                prop_assert_eq!(next.status(), expected);
            }
        }
        Ok(())
    }

    fn check_stored_form(&self, state: &OrderSaga) -> Result<(), TestCaseError> {
        let json = serde_json::to_value(state).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&json["state"], state.status());
        let back: OrderSaga = serde_json::from_value(json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, state);
        Ok(())
    }

    /// Invariants over the whole run so far.
    fn check_run(&self) -> Result<(), TestCaseError> {
        // Collapsing re-sends, the messages are T1..Tj then Cj..C1 (or a
        // prefix of it while running).
        let mut shape: Vec<&str> = names(&self.log);
        shape.dedup();
        const ALLOWED: [&[&str]; 5] = [
            &["ReserveInventory", "AuthorizePayment", "CommitInventory", "CapturePayment", "OrderApproved"],
            &["ReserveInventory", "OrderRejected"],
            &["ReserveInventory", "ReleaseInventory", "OrderRejected"],
            &["ReserveInventory", "AuthorizePayment", "ReleaseInventory", "OrderRejected"],
            &["ReserveInventory", "AuthorizePayment", "VoidPayment", "ReleaseInventory", "OrderRejected"],
        ];
        prop_assert!(
            ALLOWED.iter().any(|run| run.starts_with(&shape)),
            "not a (prefix of a) reverse-compensated run: {shape:?}"
        );
        let outcomes = self.count("OrderApproved") + self.count("OrderRejected");
        if let OrderSaga::CompensationFailed { step, .. } = &self.state {
            // Stopped, not finished: no outcome, and the compensation was
            // sent exactly as often as allowed.
            prop_assert_eq!(outcomes, 0);
            let compensation = if *step == Step::VoidPayment { "VoidPayment" } else { "ReleaseInventory" };
            prop_assert_eq!(self.count(compensation), self.fx.config.compensation_attempts as usize);
        } else if let OrderSaga::CompletionFailed { step, .. } = &self.state {
            // Stopped after the pivot: no outcome, nothing compensated, the
            // step sent exactly as often as allowed.
            prop_assert_eq!(outcomes, 0);
            prop_assert!(!self.sent("VoidPayment") && !self.sent("ReleaseInventory"));
            let command = if *step == Step::CommitInventory { "CommitInventory" } else { "CapturePayment" };
            prop_assert_eq!(self.count(command), self.fx.config.retry_attempts as usize);
        } else if self.state.is_terminal() {
            prop_assert!(matches!(self.state.status(), "APPROVED" | "REJECTED"));
            prop_assert_eq!(outcomes, 1);
            prop_assert!(
                self.log.last().is_some_and(|c| c.step().is_none()),
                "outcome is not the last message"
            );
            let approved = self.state.status() == "APPROVED";
            prop_assert_eq!(approved, self.sent("OrderApproved"));
        } else {
            prop_assert_eq!(outcomes, 0);
        }
        Ok(())
    }

    /// Answers the pending step (or the compensation a stopped saga waits
    /// on) successfully until the saga ends.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..6 {
            let step = match &self.state {
                OrderSaga::CompensationFailed { step, .. } | OrderSaga::CompletionFailed { step, .. } => {
                    *step
                }
                state => match state.pending_step() {
                    Some(step) => step,
                    None => break,
                },
            };
            self.clock += TimeDelta::seconds(1);
            let kind = self.fx.success_for(step);
            self.feed(Event::new(self.fx.saga_id, self.clock, kind))?;
            self.check_run()?;
        }
        prop_assert!(
            matches!(self.state.status(), "APPROVED" | "REJECTED"),
            "still {} after driving it",
            self.state.status()
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_replies_and_timers_keep_the_saga_invariants(actions in collection::vec(action(), 0..40)) {
        let mut run = Run::start();
        for action in &actions {
            run.act(action)?;
            run.check_run()?;
        }
        run.finish()?;
    }

    #[test]
    fn a_timed_out_step_is_compensated_in_reverse_or_retried(
        successes in 0usize..3,
        retries in 0usize..6,
    ) {
        // Succeed `successes` steps, time the next one out, then let every
        // later step succeed (re-timing out retried steps `retries` times).
        let mut run = Run::start();
        for _ in 0..successes {
            let step = run.state.pending_step().ok_or_else(|| TestCaseError::fail("ended early"))?;
            let kind = run.fx.success_for(step);
            run.feed(Event::new(run.fx.saga_id, run.clock, kind))?;
        }
        let deadline = run.state.deadline().ok_or_else(|| TestCaseError::fail("no deadline"))?;
        let step = run.state.pending_step().ok_or_else(|| TestCaseError::fail("no step"))?;
        run.clock = deadline;
        run.feed(Event::timed_out(run.fx.saga_id, run.clock, step))?;
        for _ in 0..retries {
            if run.state.is_stuck() {
                // The compensation was given up; `finish` answers it late.
                break;
            }
            let (step, pending) = run.state.pending().ok_or_else(|| TestCaseError::fail("ended early"))?;
            let (step, deadline) = (step, pending.deadline);
            run.clock = deadline;
            run.feed(Event::timed_out(run.fx.saga_id, run.clock, step))?;
        }
        run.finish()?;
        let expected: &[&str] = match successes {
            0 => &["ReserveInventory", "ReleaseInventory", "OrderRejected"],
            1 => &[
                "ReserveInventory",
                "AuthorizePayment",
                "VoidPayment",
                "ReleaseInventory",
                "OrderRejected",
            ],
            _ => &["ReserveInventory", "AuthorizePayment", "CommitInventory", "CapturePayment", "OrderApproved"],
        };
        let mut shape = names(&run.log);
        shape.dedup();
        prop_assert_eq!(shape, expected);
    }
}
