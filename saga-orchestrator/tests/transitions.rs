//! Scenario tests of the order saga's transition function: the happy path,
//! a failure and a timeout at each step (each must yield exactly the
//! reverse-compensated run), retries after the pivot, and replies that come
//! twice, late or out of order.

mod common;

use chrono::TimeDelta;
use common::{Fixture, names};
use events::messages::order::OrderLine;
use saga_orchestrator::{Command, Event, EventKind, Ignored, OrderSaga, Step, Transition, TransitionError};
use uuid::Uuid;

/// Feeds `events` in order (each at `t0 + 1 s`), collecting every command.
fn run(fx: &Fixture, events: Vec<EventKind>) -> (OrderSaga, Vec<Command>) {
    let started = fx.start();
    let mut commands = started.commands;
    let mut state = started.state;
    for kind in events {
        let next = fx.feed(&state, fx.at(1), kind);
        assert!(!next.is_ignored(), "{} ignored in {}", commands.len(), state.status());
        commands.extend(next.commands);
        state = next.state;
    }
    (state, commands)
}

/// Drives the saga to `AUTHORIZING_PAYMENT`.
fn authorizing(fx: &Fixture) -> OrderSaga {
    let (state, _) = run(fx, vec![fx.reserved().into()]);
    assert_eq!(state.status(), "AUTHORIZING_PAYMENT");
    state
}

fn assert_ignored(t: &Transition, before: &OrderSaga, why: Ignored) {
    assert_eq!(t.ignored, Some(why));
    assert!(t.commands.is_empty(), "ignored event emitted {:?}", names(&t.commands));
    assert_eq!(&t.state, before, "ignored event changed the state");
}

#[test]
fn happy_path_reserves_authorizes_commits_and_approves() {
    let fx = Fixture::new();
    let started = fx.start();
    assert_eq!(started.state.status(), "RESERVING_INVENTORY");
    assert_eq!(started.state.pending_step(), Some(Step::ReserveInventory));
    assert_eq!(started.state.deadline(), Some(fx.at(30)));
    let [Command::ReserveInventory(reserve)] = &started.commands[..] else {
        panic!("{:?}", started.commands)
    };
    assert_eq!((reserve.order_id, &reserve.lines, reserve.requested_at), (fx.order_id, &fx.stock(), fx.t0));

    let authorizing = fx.feed(&started.state, fx.at(2), fx.reserved());
    assert_eq!(authorizing.state.status(), "AUTHORIZING_PAYMENT");
    assert_eq!(authorizing.state.deadline(), Some(fx.at(32)));
    let [Command::AuthorizePayment(pay)] = &authorizing.commands[..] else {
        panic!("{:?}", authorizing.commands)
    };
    assert_eq!(
        (pay.order_id, pay.customer_id, pay.amount_minor, pay.currency.as_str(), pay.requested_at),
        (fx.order_id, fx.customer_id, 399, "EUR", fx.at(2))
    );

    let committing = fx.feed(&authorizing.state, fx.at(3), fx.authorized());
    assert_eq!(committing.state.status(), "COMMITTING_INVENTORY");
    assert_eq!(committing.state.authorization().map(|a| a.authorization_id), Some(fx.authorization_id));
    let [Command::CommitInventory(commit)] = &committing.commands[..] else {
        panic!("{:?}", committing.commands)
    };
    assert_eq!(commit.order_id, fx.order_id);

    let capturing = fx.feed(&committing.state, fx.at(4), fx.committed());
    assert_eq!(capturing.state.status(), "CAPTURING_PAYMENT");
    let [Command::CapturePayment(capture)] = &capturing.commands[..] else {
        panic!("{:?}", capturing.commands)
    };
    assert_eq!(
        (capture.authorization_id, capture.amount_minor, capture.currency.as_str()),
        (fx.authorization_id, 399, "EUR")
    );

    let approved = fx.feed(&capturing.state, fx.at(5), fx.captured());
    assert_eq!(approved.state.status(), "APPROVED");
    assert!(approved.state.is_terminal());
    assert_eq!((approved.state.pending_step(), approved.state.deadline()), (None, None));
    let [Command::OrderApproved(done)] = &approved.commands[..] else { panic!("{:?}", approved.commands) };
    assert_eq!(
        (done.order_id, done.authorization_id, done.approved_at),
        (fx.order_id, fx.authorization_id, fx.at(5))
    );
}

#[test]
fn reservation_failure_rejects_without_compensating() {
    let fx = Fixture::new();
    let (state, commands) = run(&fx, vec![fx.reservation_failed().into()]);
    assert_eq!(names(&commands), ["ReserveInventory", "OrderRejected"]);
    let OrderSaga::Rejected { reason, .. } = &state else { panic!("{state:?}") };
    assert_eq!(reason, "inventory reservation failed: out of stock (unavailable: SKU-B)");
    let Some(Command::OrderRejected(rejected)) = commands.last() else { panic!() };
    assert_eq!(&rejected.reason, reason);
}

#[test]
fn payment_decline_releases_stock_then_rejects() {
    let fx = Fixture::new();
    let (state, commands) = run(&fx, vec![fx.reserved().into(), fx.declined().into(), fx.released().into()]);
    assert_eq!(
        names(&commands),
        ["ReserveInventory", "AuthorizePayment", "ReleaseInventory", "OrderRejected"]
    );
    assert_eq!(state.status(), "REJECTED");
    let Command::ReleaseInventory(release) = &commands[2] else { panic!() };
    assert_eq!(
        (release.order_id, release.reason.as_str()),
        (fx.order_id, "payment declined: insufficient funds")
    );
}

#[test]
fn commit_never_fails_on_a_business_rule_so_no_failure_path_exists_after_the_pivot() {
    // After the pivot, every reply except InventoryCommitted is ignored: a late
    // decline or a stray compensation reply cannot start compensating.
    let fx = Fixture::new();
    let (committing, _) = run(&fx, vec![fx.reserved().into(), fx.authorized().into()]);
    for kind in fx.all_replies().into_iter().filter(|k| !matches!(k, EventKind::InventoryCommitted(_))) {
        let t = fx.feed(&committing, fx.at(2), kind);
        assert_ignored(&t, &committing, Ignored::NotAwaited { waiting_on: Step::CommitInventory });
    }
}

#[test]
fn reserve_timeout_releases_the_maybe_landed_reservation_then_rejects() {
    let fx = Fixture::new();
    let started = fx.start();
    let releasing = fx.time_out(&started.state);
    assert_eq!(releasing.state.status(), "RELEASING_INVENTORY");
    let [Command::ReleaseInventory(release)] = &releasing.commands[..] else {
        panic!("{:?}", releasing.commands)
    };
    assert!(release.reason.starts_with("no reply to RESERVE_INVENTORY by "), "{}", release.reason);
    assert_eq!(release.requested_at, fx.at(30));

    let rejected = fx.feed(&releasing.state, fx.at(31), fx.released());
    assert_eq!(rejected.state.status(), "REJECTED");
    let [Command::OrderRejected(outcome)] = &rejected.commands[..] else { panic!("{:?}", rejected.commands) };
    assert_eq!(outcome.reason, release.reason);
}

#[test]
fn authorize_timeout_voids_then_releases_then_rejects_each_awaited() {
    let fx = Fixture::new();
    let authorizing = authorizing(&fx);
    let voiding = fx.time_out(&authorizing);
    assert_eq!(voiding.state.status(), "VOIDING_PAYMENT");
    assert_eq!(names(&voiding.commands), ["VoidPayment"]);

    // The release waits for the void: an InventoryReleased now is not awaited.
    let early = fx.feed(&voiding.state, fx.at(40), fx.released());
    assert_ignored(&early, &voiding.state, Ignored::NotAwaited { waiting_on: Step::VoidPayment });

    let releasing = fx.feed(&voiding.state, fx.at(41), fx.voided());
    assert_eq!(releasing.state.status(), "RELEASING_INVENTORY");
    let [Command::ReleaseInventory(release)] = &releasing.commands[..] else { panic!() };
    let [Command::VoidPayment(void)] = &voiding.commands[..] else { panic!() };
    assert_eq!(release.reason, void.reason, "the compensations carry the original reason");

    let rejected = fx.feed(&releasing.state, fx.at(42), fx.released());
    assert_eq!(names(&rejected.commands), ["OrderRejected"]);
    assert_eq!(rejected.state.status(), "REJECTED");
}

#[test]
fn the_full_reverse_run_after_an_authorize_timeout_is_exact() {
    let fx = Fixture::new();
    let started = fx.start();
    let mut commands = started.commands.clone();
    let t1 = fx.feed(&started.state, fx.at(1), fx.reserved());
    let t2 = fx.time_out(&t1.state);
    let t3 = fx.feed(&t2.state, fx.at(100), fx.voided());
    let t4 = fx.feed(&t3.state, fx.at(101), fx.released());
    for t in [t1, t2, t3, t4] {
        commands.extend(t.commands);
    }
    assert_eq!(
        names(&commands),
        ["ReserveInventory", "AuthorizePayment", "VoidPayment", "ReleaseInventory", "OrderRejected"]
    );
}

#[test]
fn commit_timeout_resends_commit_with_backoff_and_never_compensates() {
    let fx = Fixture::new();
    let (mut state, _) = run(&fx, vec![fx.reserved().into(), fx.authorized().into()]);
    let mut waits = Vec::new();
    for attempt in 2..=6 {
        let before = state.deadline().unwrap_or_else(|| panic!("no deadline"));
        let t = fx.time_out(&state);
        assert_eq!(names(&t.commands), ["CommitInventory"]);
        let Some((Step::CommitInventory, pending)) = t.state.pending() else { panic!("{:?}", t.state) };
        assert_eq!(pending.attempt, attempt);
        assert_eq!(pending.started_at, fx.at(1), "the step's start survives retries");
        waits.push((pending.deadline - before).num_seconds());
        state = t.state;
    }
    assert_eq!(waits, [60, 120, 240, 240, 240], "doubling, capped at max_step_timeout");
    let done = fx.feed(&state, fx.at(10_000), fx.committed());
    assert_eq!(done.state.status(), "CAPTURING_PAYMENT");
}

#[test]
fn compensation_timeouts_resend_the_same_compensation() {
    let fx = Fixture::new();
    let voiding = fx.time_out(&authorizing(&fx)).state;
    let again = fx.time_out(&voiding);
    assert_eq!(names(&again.commands), ["VoidPayment"]);
    assert_eq!(again.state.status(), "VOIDING_PAYMENT");
    assert_eq!(again.state.pending().map(|(_, p)| p.attempt), Some(2));

    let releasing = fx.feed(&again.state, fx.at(500), fx.voided()).state;
    assert_eq!(releasing.pending().map(|(_, p)| p.attempt), Some(1), "a new step starts at attempt 1");
    let again = fx.time_out(&releasing);
    assert_eq!(names(&again.commands), ["ReleaseInventory"]);
    assert_eq!(again.state.pending().map(|(_, p)| p.attempt), Some(2));
    let OrderSaga::ReleasingInventory { reason, .. } = &again.state else { panic!() };
    assert!(reason.starts_with("no reply to AUTHORIZE_PAYMENT"), "{reason}");
}

#[test]
fn a_timer_before_the_deadline_is_ignored() {
    let fx = Fixture::new();
    let started = fx.start().state;
    let early = fx.feed(&started, fx.at(29), EventKind::StepTimedOut { step: Step::ReserveInventory });
    assert_ignored(&early, &started, Ignored::BeforeDeadline { deadline: fx.at(30) });

    // A timer of attempt 1 arriving after attempt 2 was sent is ignored too.
    let (committing, _) = run(&fx, vec![fx.reserved().into(), fx.authorized().into()]);
    let retried = fx.time_out(&committing).state;
    let stale = fx.feed(&retried, fx.at(32), EventKind::StepTimedOut { step: Step::CommitInventory });
    assert!(matches!(stale.ignored, Some(Ignored::BeforeDeadline { .. })), "{:?}", stale.ignored);
}

#[test]
fn a_timer_of_a_step_already_left_is_ignored() {
    let fx = Fixture::new();
    let state = authorizing(&fx);
    let late = fx.feed(&state, fx.at(10_000), EventKind::StepTimedOut { step: Step::ReserveInventory });
    assert_ignored(&late, &state, Ignored::StaleTimer { waiting_on: Step::AuthorizePayment });
}

#[test]
fn duplicate_replies_are_ignored_in_every_later_state() {
    let fx = Fixture::new();
    let path: Vec<EventKind> =
        vec![fx.reserved().into(), fx.authorized().into(), fx.committed().into(), fx.captured().into()];
    let mut state = fx.start().state;
    let mut handled: Vec<EventKind> = Vec::new();
    for kind in path {
        state = fx.feed(&state, fx.at(1), kind.clone()).state;
        handled.push(kind);
        for dup in &handled {
            let t = fx.feed(&state, fx.at(2), dup.clone());
            assert!(t.is_ignored(), "duplicate {} handled in {}", dup.name(), state.status());
            assert!(t.commands.is_empty());
            assert_eq!(t.state, state);
        }
    }
    assert_eq!(state.status(), "APPROVED");
}

#[test]
fn replies_ahead_of_their_step_are_ignored() {
    let fx = Fixture::new();
    let reserving = fx.start().state;
    let ahead: [EventKind; 5] = [
        fx.authorized().into(),
        fx.declined().into(),
        fx.committed().into(),
        fx.voided().into(),
        fx.released().into(),
    ];
    for kind in ahead {
        let t = fx.feed(&reserving, fx.at(1), kind);
        assert_ignored(&t, &reserving, Ignored::NotAwaited { waiting_on: Step::ReserveInventory });
    }
    let state = authorizing(&fx);
    let t = fx.feed(&state, fx.at(1), fx.committed());
    assert_ignored(&t, &state, Ignored::NotAwaited { waiting_on: Step::AuthorizePayment });
}

#[test]
fn late_success_of_a_step_being_compensated_is_ignored() {
    let fx = Fixture::new();
    // The reserve timed out; its InventoryReserved arrives during the release.
    let releasing = fx.time_out(&fx.start().state).state;
    let late = fx.feed(&releasing, fx.at(31), fx.reserved());
    assert_ignored(&late, &releasing, Ignored::NotAwaited { waiting_on: Step::ReleaseInventory });

    // The authorization timed out; its PaymentAuthorized arrives during the
    // void: no CommitInventory, the void stands.
    let voiding = fx.time_out(&authorizing(&fx)).state;
    let late = fx.feed(&voiding, fx.at(40), fx.authorized());
    assert_ignored(&late, &voiding, Ignored::NotAwaited { waiting_on: Step::VoidPayment });
}

#[test]
fn every_event_after_the_end_is_ignored() {
    let fx = Fixture::new();
    let (rejected, _) = run(&fx, vec![fx.reservation_failed().into()]);
    let (approved, _) = run(
        &fx,
        vec![fx.reserved().into(), fx.authorized().into(), fx.committed().into(), fx.captured().into()],
    );
    for terminal in [rejected, approved] {
        let timers = Step::ALL.into_iter().map(|step| EventKind::StepTimedOut { step });
        for kind in fx.all_replies().into_iter().chain(timers) {
            let t = fx.feed(&terminal, fx.at(1_000_000), kind);
            assert_ignored(&t, &terminal, Ignored::Finished);
        }
    }
}

#[test]
fn events_of_another_saga_or_order_are_refused() {
    let fx = Fixture::new();
    let state = fx.start().state;
    let other_saga = Event::new(Uuid::from_u128(99), fx.at(1), fx.reserved());
    assert_eq!(
        state.handle(&other_saga, &fx.config),
        Err(TransitionError::MatchSaga { expected: fx.saga_id, got: Uuid::from_u128(99) })
    );
    let mut reply = fx.reserved();
    reply.order_id = Uuid::from_u128(98);
    let other_order = Event::new(fx.saga_id, fx.at(1), reply);
    assert!(matches!(
        state.handle(&other_order, &fx.config),
        Err(TransitionError::MatchOrder { got, .. }) if got == Uuid::from_u128(98)
    ));
    // Even a finished saga refuses, rather than ignores, a misrouted event.
    let (approved, _) = run(
        &fx,
        vec![fx.reserved().into(), fx.authorized().into(), fx.committed().into(), fx.captured().into()],
    );
    assert!(matches!(approved.handle(&other_saga, &fx.config), Err(TransitionError::MatchSaga { .. })));
}

#[test]
fn an_inconsistent_order_is_rejected_at_start_without_any_request() {
    let fx = Fixture::new();
    let mut created = fx.created();
    created.lines.push(OrderLine { sku: "SKU-C".into(), quantity: 1, unit_price_minor: 1 });
    let t = OrderSaga::start(fx.saga_id, &created, fx.t0, &fx.config);
    assert_eq!(names(&t.commands), ["OrderRejected"]);
    let OrderSaga::Rejected { reason, .. } = &t.state else { panic!("{:?}", t.state) };
    assert_eq!(reason, "invalid order: order total 399 is not the sum of its lines 400");
}

#[test]
fn an_authorization_of_another_amount_is_voided_then_released() {
    let fx = Fixture::new();
    let (state, commands) = run(
        &fx,
        vec![
            fx.reserved().into(),
            fx.authorized_other_amount().into(),
            fx.voided().into(),
            fx.released().into(),
        ],
    );
    assert_eq!(
        names(&commands),
        ["ReserveInventory", "AuthorizePayment", "VoidPayment", "ReleaseInventory", "OrderRejected"]
    );
    let OrderSaga::Rejected { reason, .. } = &state else { panic!("{state:?}") };
    assert_eq!(reason, "payment authorized 398 EUR but the order total is 399 EUR");
}

#[test]
fn a_reservation_of_other_lines_is_released() {
    let fx = Fixture::new();
    let (state, commands) = run(&fx, vec![fx.reserved_other_lines().into(), fx.released().into()]);
    assert_eq!(names(&commands), ["ReserveInventory", "ReleaseInventory", "OrderRejected"]);
    assert_eq!(state.status(), "REJECTED");
}

#[test]
fn every_state_round_trips_through_json_tagged_with_its_status() {
    let fx = Fixture::new();
    let authorizing = authorizing(&fx);
    let voiding = fx.time_out(&authorizing).state;
    let releasing = fx.feed(&voiding, fx.at(40), fx.voided()).state;
    let rejected = fx.feed(&releasing, fx.at(41), fx.released()).state;
    let committing = fx.feed(&authorizing, fx.at(2), fx.authorized()).state;
    let capturing = fx.feed(&committing, fx.at(3), fx.committed()).state;
    let approved = fx.feed(&capturing, fx.at(4), fx.captured()).state;
    let stuck = given_up(&fx, releasing.clone());
    let mut not_captured = capturing.clone();
    for _ in 0..fx.config.retry_attempts {
        not_captured = fx.time_out(&not_captured).state;
    }
    let states = [
        fx.start().state,
        authorizing,
        committing,
        capturing,
        voiding,
        releasing,
        approved,
        rejected,
        stuck,
        not_captured,
    ];

    let statuses: Vec<&str> = states.iter().map(OrderSaga::status).collect();
    assert_eq!(statuses, OrderSaga::STATUSES, "one fixture per state, in declaration order");
    for state in states {
        let json = serde_json::to_value(&state).expect("state serialises");
        assert_eq!(json["state"], state.status());
        assert_eq!(json["saga_id"], fx.saga_id.to_string());
        let back: OrderSaga = serde_json::from_value(json).expect("state deserialises");
        assert_eq!(back, state);
    }
}

#[test]
fn a_stored_state_keeps_its_deadline_and_attempt() {
    let fx = Fixture::new();
    let (committing, _) = run(&fx, vec![fx.reserved().into(), fx.authorized().into()]);
    let retried = fx.time_out(&committing).state;
    let json = serde_json::to_string(&retried).expect("serialises");
    let back: OrderSaga = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back.deadline(), retried.deadline());
    assert_eq!(back.deadline(), Some(fx.at(31) + TimeDelta::seconds(60)));
    assert_eq!(back.pending().map(|(s, p)| (s, p.attempt)), Some((Step::CommitInventory, 2)));
}

/// Times the saga's compensation out until the saga gives it up.
fn given_up(fx: &Fixture, mut state: OrderSaga) -> OrderSaga {
    for _ in 0..fx.config.compensation_attempts {
        state = fx.time_out(&state).state;
    }
    state
}

#[test]
fn an_unanswered_release_stops_the_saga_visibly_and_its_late_reply_finishes_it() {
    let fx = Fixture::new();
    let (mut state, _) = run(&fx, vec![fx.reserved_other_lines().into()]);
    assert_eq!(state.status(), "RELEASING_INVENTORY");
    // Every timeout but the last sends the release again.
    for attempt in 1..fx.config.compensation_attempts {
        let t = fx.time_out(&state);
        assert_eq!(names(&t.commands), ["ReleaseInventory"], "after attempt {attempt}");
        state = t.state;
    }
    let stopped = fx.time_out(&state);
    assert!(stopped.commands.is_empty() && !stopped.is_ignored(), "{stopped:?}");
    let stuck = stopped.state;
    assert_eq!((stuck.status(), stuck.deadline(), stuck.is_stuck()), ("COMPENSATION_FAILED", None, true));
    let OrderSaga::CompensationFailed { step, failure, reason, .. } = &stuck else { panic!("{stuck:?}") };
    assert_eq!(*step, Step::ReleaseInventory);
    assert!(failure.starts_with("no reply to RELEASE_INVENTORY after 4 attempts"), "{failure}");
    let reason = reason.clone();
    assert!(!reason.is_empty());

    // Timers and other replies change nothing; the late release finishes it.
    let timer = fx.feed(&stuck, fx.at(100_000), EventKind::StepTimedOut { step: Step::ReleaseInventory });
    assert!(timer.is_ignored() && timer.commands.is_empty());
    assert!(fx.feed(&stuck, fx.at(100_000), fx.voided()).is_ignored());
    let done = fx.feed(&stuck, fx.at(100_001), fx.released());
    assert_eq!(names(&done.commands), ["OrderRejected"]);
    assert_eq!(done.state.status(), "REJECTED");
    let Command::OrderRejected(rejected) = &done.commands[0] else { panic!("{:?}", done.commands) };
    assert_eq!(rejected.reason, reason, "the order is rejected for why it was compensated");
}

#[test]
fn an_unanswered_void_stops_the_saga_and_its_late_reply_goes_on_to_the_release() {
    let fx = Fixture::new();
    let voiding = fx.time_out(&authorizing(&fx)).state;
    let stuck = given_up(&fx, voiding);
    assert_eq!(stuck.status(), "COMPENSATION_FAILED");
    assert!(fx.feed(&stuck, fx.at(100_000), fx.released()).is_ignored(), "the release is not due yet");
    let t = fx.feed(&stuck, fx.at(100_000), fx.voided());
    assert_eq!(names(&t.commands), ["ReleaseInventory"]);
    assert_eq!(t.state.pending().map(|(s, p)| (s, p.attempt)), Some((Step::ReleaseInventory, 1)));
}

#[test]
fn an_operator_resumes_a_stopped_saga_with_a_first_attempt_of_its_compensation() {
    let fx = Fixture::new();
    let voiding = fx.time_out(&authorizing(&fx)).state;
    let OrderSaga::VoidingPayment { reason, .. } = &voiding else { panic!("{voiding:?}") };
    let reason = reason.clone();
    let stuck = given_up(&fx, voiding);
    let resumed = stuck.resume(fx.at(100_000), &fx.config).expect("a stopped saga resumes");
    assert_eq!(names(&resumed.commands), ["VoidPayment"]);
    let OrderSaga::VoidingPayment { reason: kept, pending, .. } = &resumed.state else {
        panic!("{resumed:?}")
    };
    assert_eq!((kept, pending.attempt), (&reason, 1));
    assert_eq!(resumed.state.deadline(), Some(fx.at(100_000) + TimeDelta::seconds(30)));
    // Nothing else is resumed.
    assert!(authorizing(&fx).resume(fx.at(1), &fx.config).is_none());
    assert!(resumed.state.resume(fx.at(1), &fx.config).is_none());
}

#[test]
fn a_commit_that_keeps_failing_stops_visibly_never_compensates_and_resumes() {
    let fx = Fixture::new();
    let (mut state, mut sent) = run(&fx, vec![fx.reserved().into(), fx.authorized().into()]);
    for _ in 0..fx.config.retry_attempts {
        let t = fx.time_out(&state);
        sent.extend(t.commands);
        state = t.state;
    }
    let OrderSaga::CompletionFailed { step, failure, .. } = &state else { panic!("{state:?}") };
    assert_eq!(*step, Step::CommitInventory);
    assert!(failure.contains("after 6 attempts"), "{failure}");
    assert_eq!((state.deadline(), state.is_stuck(), state.is_terminal()), (None, true, false));
    assert!(
        !sent.iter().any(Command::is_compensation),
        "a retriable step was compensated: {:?}",
        names(&sent)
    );
    assert_eq!(sent.iter().filter(|c| matches!(c, Command::CommitInventory(_))).count(), 6);
    // Timers do nothing to a stopped saga; an operator's resume sends the commit again.
    let timer = fx.feed(&state, fx.at(1_000_000), EventKind::StepTimedOut { step: Step::CommitInventory });
    assert!(timer.is_ignored());
    let resumed = state.resume(fx.at(1_000_000), &fx.config).expect("a stopped saga resumes");
    assert_eq!(
        (resumed.state.status(), names(&resumed.commands)),
        ("COMMITTING_INVENTORY", vec!["CommitInventory"])
    );
    assert_eq!(resumed.state.pending().map(|(_, p)| p.attempt), Some(1));
    // A late reply to the stopped step carries it on as well.
    let late = fx.feed(&state, fx.at(1_000_001), fx.committed());
    assert_eq!((late.state.status(), names(&late.commands)), ("CAPTURING_PAYMENT", vec!["CapturePayment"]));
}

#[test]
fn a_capture_of_another_amount_stops_the_saga_instead_of_approving() {
    let fx = Fixture::new();
    let (state, _) = run(&fx, vec![fx.reserved().into(), fx.authorized().into(), fx.committed().into()]);
    let wrong = events::messages::payment::PaymentCaptured { amount_minor: 1, ..fx.captured() };
    let t = fx.feed(&state, fx.at(5), wrong);
    assert_eq!(t.state.status(), "COMPLETION_FAILED");
    assert!(t.commands.is_empty());
}

#[test]
fn step_kinds_decide_what_a_timeout_does() {
    // Compensatable and pivot steps are undone on timeout; retriable ones
    // are re-sent; a per-step timeout sets that step's deadline only.
    let mut fx = Fixture::new();
    fx.config.step_timeouts.insert(Step::AuthorizePayment, std::time::Duration::from_secs(5));
    let reserving = fx.start().state;
    assert_eq!(reserving.deadline(), Some(fx.at(30)));
    assert_eq!(names(&fx.time_out(&reserving).commands), ["ReleaseInventory"]);
    let authorizing = fx.feed(&reserving, fx.at(1), fx.reserved()).state;
    assert_eq!(authorizing.deadline(), Some(fx.at(6)), "AUTHORIZE_PAYMENT has a timeout of its own");
    assert_eq!(names(&fx.time_out(&authorizing).commands), ["VoidPayment"]);
    let committing = fx.feed(&authorizing, fx.at(2), fx.authorized()).state;
    assert_eq!(names(&fx.time_out(&committing).commands), ["CommitInventory"]);
    let capturing = fx.feed(&committing, fx.at(3), fx.committed()).state;
    assert_eq!(names(&fx.time_out(&capturing).commands), ["CapturePayment"]);
}
