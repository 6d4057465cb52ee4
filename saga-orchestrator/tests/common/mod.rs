//! Fixtures shared by the saga's test binaries: one order, its saga, and
//! builders for every reply and timer.

// Each test binary uses a subset of the fixtures.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use events::messages::inventory::{
    InventoryCommitted, InventoryReleased, InventoryReservationFailed, InventoryReserved, StockLine,
};
use events::messages::order::{OrderCreated, OrderLine};
use events::messages::payment::{PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentVoided};
use saga_orchestrator::{Command, Event, EventKind, OrderSaga, SagaConfig, Step, Transition};
use uuid::Uuid;

/// One order and the saga that runs it.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) saga_id: Uuid,
    pub(crate) order_id: Uuid,
    pub(crate) customer_id: Uuid,
    pub(crate) authorization_id: Uuid,
    pub(crate) config: SagaConfig,
    pub(crate) t0: DateTime<Utc>,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Fixture {
            saga_id: Uuid::from_u128(0x5a6a),
            order_id: Uuid::from_u128(0x0de4),
            customer_id: Uuid::from_u128(0xc057),
            authorization_id: Uuid::from_u128(0xa117),
            config: SagaConfig {
                step_timeout: Duration::from_secs(30),
                max_step_timeout: Duration::from_secs(240),
                compensation_attempts: 4,
                retry_attempts: 6,
                ..SagaConfig::default()
            },
            t0: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        }
    }

    /// `t0` plus `secs` seconds.
    pub(crate) fn at(&self, secs: i64) -> DateTime<Utc> {
        self.t0 + TimeDelta::seconds(secs)
    }

    /// 2 × A at 1.50 + 1 × B at 0.99 EUR = 3.99 EUR.
    pub(crate) fn created(&self) -> OrderCreated {
        OrderCreated {
            order_id: self.order_id,
            customer_id: self.customer_id,
            lines: vec![
                OrderLine { sku: "SKU-A".into(), quantity: 2, unit_price_minor: 150 },
                OrderLine { sku: "SKU-B".into(), quantity: 1, unit_price_minor: 99 },
            ],
            total_minor: 399,
            currency: "EUR".into(),
            created_at: self.t0,
            channel: "web".into(),
        }
    }

    pub(crate) fn start(&self) -> Transition {
        OrderSaga::start(self.saga_id, &self.created(), self.t0, &self.config)
    }

    /// Feeds `kind` at `at`; panics on an error (tests of errors call
    /// `handle` directly).
    pub(crate) fn feed(
        &self,
        state: &OrderSaga,
        at: DateTime<Utc>,
        kind: impl Into<EventKind>,
    ) -> Transition {
        state
            .handle(&Event::new(self.saga_id, at, kind), &self.config)
            .unwrap_or_else(|e| panic!("event refused: {e}"))
    }

    /// Fires the timer of the current step exactly at its deadline.
    pub(crate) fn time_out(&self, state: &OrderSaga) -> Transition {
        let (step, pending) = state.pending().unwrap_or_else(|| panic!("{} has no timer", state.status()));
        self.feed(state, pending.deadline, EventKind::StepTimedOut { step })
    }

    pub(crate) fn stock(&self) -> Vec<StockLine> {
        vec![StockLine { sku: "SKU-A".into(), quantity: 2 }, StockLine { sku: "SKU-B".into(), quantity: 1 }]
    }

    pub(crate) fn reserved(&self) -> InventoryReserved {
        InventoryReserved { order_id: self.order_id, lines: self.stock(), reserved_at: self.t0 }
    }

    pub(crate) fn reserved_other_lines(&self) -> InventoryReserved {
        InventoryReserved {
            order_id: self.order_id,
            lines: vec![StockLine { sku: "SKU-A".into(), quantity: 1 }],
            reserved_at: self.t0,
        }
    }

    pub(crate) fn reservation_failed(&self) -> InventoryReservationFailed {
        InventoryReservationFailed {
            order_id: self.order_id,
            reason: "out of stock".into(),
            unavailable_skus: vec!["SKU-B".into()],
            failed_at: self.t0,
        }
    }

    pub(crate) fn authorized(&self) -> PaymentAuthorized {
        PaymentAuthorized {
            order_id: self.order_id,
            authorization_id: self.authorization_id,
            amount_minor: 399,
            currency: "EUR".into(),
            authorized_at: self.t0,
        }
    }

    pub(crate) fn authorized_other_amount(&self) -> PaymentAuthorized {
        PaymentAuthorized { amount_minor: 398, ..self.authorized() }
    }

    pub(crate) fn declined(&self) -> PaymentDeclined {
        PaymentDeclined { order_id: self.order_id, reason: "insufficient funds".into(), declined_at: self.t0 }
    }

    pub(crate) fn committed(&self) -> InventoryCommitted {
        InventoryCommitted { order_id: self.order_id, committed_at: self.t0 }
    }

    pub(crate) fn captured(&self) -> PaymentCaptured {
        PaymentCaptured {
            order_id: self.order_id,
            authorization_id: self.authorization_id,
            amount_minor: 399,
            currency: "EUR".into(),
            captured_at: self.t0,
        }
    }

    pub(crate) fn voided(&self) -> PaymentVoided {
        PaymentVoided { order_id: self.order_id, authorization_id: None, voided_at: self.t0 }
    }

    pub(crate) fn released(&self) -> InventoryReleased {
        InventoryReleased { order_id: self.order_id, released_at: self.t0 }
    }

    /// Every reply the saga consumes (well-formed, matching the order).
    pub(crate) fn all_replies(&self) -> Vec<EventKind> {
        vec![
            self.reserved().into(),
            self.reservation_failed().into(),
            self.authorized().into(),
            self.declined().into(),
            self.committed().into(),
            self.captured().into(),
            self.voided().into(),
            self.released().into(),
        ]
    }

    /// The reply that completes `step` successfully.
    pub(crate) fn success_for(&self, step: Step) -> EventKind {
        match step {
            Step::ReserveInventory => self.reserved().into(),
            Step::AuthorizePayment => self.authorized().into(),
            Step::CommitInventory => self.committed().into(),
            Step::CapturePayment => self.captured().into(),
            Step::VoidPayment => self.voided().into(),
            Step::ReleaseInventory => self.released().into(),
        }
    }
}

/// The short name of every command, e.g. `ReserveInventory`.
pub(crate) fn names(commands: &[Command]) -> Vec<&'static str> {
    commands.iter().map(short_name).collect()
}

pub(crate) fn short_name(command: &Command) -> &'static str {
    let full = command.message_type();
    full.rsplit('.').next().unwrap_or(full)
}
