//! [`OrderSaga`]: the states of one order's saga and the data each keeps.
//!
//! Every state carries the saga id (the correlation id of every command and
//! reply) and an [`OrderSnapshot`] taken from `OrderCreated`, so commands can
//! be built from the state alone. States serialise with serde as internally
//! tagged JSON, `{"state": "RESERVING_INVENTORY", ...}`, the tag being
//! [`OrderSaga::status`]; that is what the orchestrator stores in its
//! `saga` table.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events::messages::inventory::StockLine;
use events::messages::order::{OrderCreated, OrderLine};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::step::{Pending, Step};

/// What the saga keeps of the order it runs for: what to reserve and what to
/// charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    /// The order (and the key of every message the saga sends).
    pub order_id: Uuid,
    /// Who pays.
    pub customer_id: Uuid,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// Amount to authorize, in minor units of `currency`.
    pub total_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
}

impl OrderSnapshot {
    /// The saga's copy of a created order.
    pub fn from_created(order: &OrderCreated) -> Self {
        OrderSnapshot {
            order_id: order.order_id,
            customer_id: order.customer_id,
            lines: order.lines.clone(),
            total_minor: order.total_minor,
            currency: order.currency.clone(),
        }
    }

    /// Why the order cannot be run, if it cannot: no lines, a quantity below
    /// 1, a negative price, a currency that is not three capital letters, or
    /// a total that is not the sum of the lines.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.lines.is_empty() {
            return Some("order has no lines".to_owned());
        }
        if let Some(line) = self.lines.iter().find(|l| l.quantity < 1) {
            return Some(format!("line {} has quantity {}", line.sku, line.quantity));
        }
        if let Some(line) = self.lines.iter().find(|l| l.unit_price_minor < 0) {
            return Some(format!("line {} has a negative price", line.sku));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Some(format!("currency {:?} is not an ISO 4217 code", self.currency));
        }
        let sum = self.lines.iter().try_fold(0i64, |acc, l| {
            l.unit_price_minor.checked_mul(i64::from(l.quantity)).and_then(|x| acc.checked_add(x))
        });
        match sum {
            None => Some("order total overflows".to_owned()),
            Some(sum) if sum != self.total_minor => {
                Some(format!("order total {} is not the sum of its lines {sum}", self.total_minor))
            }
            Some(_) => None,
        }
    }

    /// The stock to reserve: one line per order line.
    pub fn stock_lines(&self) -> Vec<StockLine> {
        self.lines.iter().map(|l| StockLine { sku: l.sku.clone(), quantity: l.quantity }).collect()
    }

    /// Whether `reserved` holds the same quantity of every SKU as the order
    /// (order of lines and splitting of one SKU over lines do not matter).
    pub fn reserves_exactly(&self, reserved: &[StockLine]) -> bool {
        fn per_sku<'a>(lines: impl Iterator<Item = (&'a str, i32)>) -> BTreeMap<&'a str, i64> {
            let mut totals = BTreeMap::new();
            for (sku, quantity) in lines {
                *totals.entry(sku).or_insert(0) += i64::from(quantity);
            }
            totals
        }
        per_sku(self.lines.iter().map(|l| (l.sku.as_str(), l.quantity)))
            == per_sku(reserved.iter().map(|l| (l.sku.as_str(), l.quantity)))
    }
}

/// A successful payment authorization: what the pivot produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// Id of the authorization at the payment service.
    pub authorization_id: Uuid,
    /// Amount authorized, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When it was authorized (the payment service's clock).
    pub authorized_at: DateTime<Utc>,
}

/// The order saga: one variant per state, each with the data the next steps
/// need.
///
/// Forward: [`ReservingInventory`](Self::ReservingInventory) →
/// [`AuthorizingPayment`](Self::AuthorizingPayment) (the pivot) →
/// [`CommittingInventory`](Self::CommittingInventory) →
/// [`CapturingPayment`](Self::CapturingPayment) →
/// [`Approved`](Self::Approved). Backward (compensation, in reverse order):
/// [`VoidingPayment`](Self::VoidingPayment) →
/// [`ReleasingInventory`](Self::ReleasingInventory) →
/// [`Rejected`](Self::Rejected). See [`transition`](crate::transition()) for
/// the full table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderSaga {
    /// `ReserveInventory` sent; waiting for `InventoryReserved` or
    /// `InventoryReservationFailed`.
    ReservingInventory {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The outstanding reservation.
        pending: Pending,
    },
    /// Stock reserved, `AuthorizePayment` sent; waiting for
    /// `PaymentAuthorized` or `PaymentDeclined`.
    AuthorizingPayment {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The outstanding authorization.
        pending: Pending,
    },
    /// Past the pivot: payment authorized, `CommitInventory` sent (and
    /// re-sent on timeout); waiting for `InventoryCommitted`.
    CommittingInventory {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The payment's authorization.
        authorization: Authorization,
        /// The outstanding commit.
        pending: Pending,
    },
    /// Stock committed, `CapturePayment` sent (and re-sent on timeout):
    /// charging the authorized amount; waiting for `PaymentCaptured`.
    CapturingPayment {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The payment's authorization, being captured.
        authorization: Authorization,
        /// The outstanding capture.
        pending: Pending,
    },
    /// Compensating the payment: `VoidPayment` sent (and re-sent on
    /// timeout); waiting for `PaymentVoided`, then the stock is released.
    VoidingPayment {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// Why the saga compensates (ends up in `OrderRejected`).
        reason: String,
        /// The outstanding void.
        pending: Pending,
    },
    /// Compensating the reservation: `ReleaseInventory` sent (and re-sent on
    /// timeout); waiting for `InventoryReleased`, then the order is rejected.
    ReleasingInventory {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// Why the saga compensates (ends up in `OrderRejected`).
        reason: String,
        /// The outstanding release.
        pending: Pending,
    },
    /// Terminal: stock committed, payment captured, `OrderApproved` sent.
    Approved {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The authorization that pays for the order.
        authorization: Authorization,
        /// When the saga approved the order.
        approved_at: DateTime<Utc>,
    },
    /// Terminal: nothing is held any more, `OrderRejected` sent.
    Rejected {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// Why (from the failed step).
        reason: String,
        /// When the saga rejected the order.
        rejected_at: DateTime<Utc>,
    },
    /// Stopped: a compensation went unanswered `compensation_attempts`
    /// times (its command is likely dead-lettered). Nothing is re-sent and
    /// no outcome is published; the order stays pending and may still hold
    /// stock or a payment. A late reply to the compensation (after the
    /// participant was fixed and the dead letter re-driven, or it recovered)
    /// resumes the saga where it stopped.
    CompensationFailed {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The compensation that got no reply.
        step: Step,
        /// Why the saga was compensating (ends up in `OrderRejected`).
        reason: String,
        /// Why the compensation was given up.
        failure: String,
        /// When it was given up.
        failed_at: DateTime<Utc>,
    },
    /// Stopped: a retriable step after the pivot (the stock commit or the
    /// payment capture) went unanswered `retry_attempts` times, or its reply
    /// did not match the order. The saga cannot compensate any more (the
    /// payment is authorized); nothing is re-sent and no outcome is
    /// published until a late reply carries it on, or an operator's
    /// `saga resume` sends the step again.
    CompletionFailed {
        /// Correlation id of the saga's messages.
        saga_id: Uuid,
        /// The order.
        order: OrderSnapshot,
        /// The payment's authorization.
        authorization: Authorization,
        /// The step that did not complete.
        step: Step,
        /// Why it was given up.
        failure: String,
        /// When it was given up.
        failed_at: DateTime<Utc>,
    },
}

impl OrderSaga {
    /// Every status, in the order of [`OrderSaga`]'s variants.
    pub const STATUSES: [&'static str; 10] = [
        "RESERVING_INVENTORY",
        "AUTHORIZING_PAYMENT",
        "COMMITTING_INVENTORY",
        "CAPTURING_PAYMENT",
        "VOIDING_PAYMENT",
        "RELEASING_INVENTORY",
        "APPROVED",
        "REJECTED",
        "COMPENSATION_FAILED",
        "COMPLETION_FAILED",
    ];

    /// The state's name for the `saga` table and logs; equal to the
    /// `state` tag of the JSON form.
    pub fn status(&self) -> &'static str {
        let index = match self {
            OrderSaga::ReservingInventory { .. } => 0,
            OrderSaga::AuthorizingPayment { .. } => 1,
            OrderSaga::CommittingInventory { .. } => 2,
            OrderSaga::CapturingPayment { .. } => 3,
            OrderSaga::VoidingPayment { .. } => 4,
            OrderSaga::ReleasingInventory { .. } => 5,
            OrderSaga::Approved { .. } => 6,
            OrderSaga::Rejected { .. } => 7,
            OrderSaga::CompensationFailed { .. } => 8,
            OrderSaga::CompletionFailed { .. } => 9,
        };
        Self::STATUSES[index]
    }

    /// The saga's id (correlation id).
    pub fn saga_id(&self) -> Uuid {
        match self {
            OrderSaga::ReservingInventory { saga_id, .. }
            | OrderSaga::AuthorizingPayment { saga_id, .. }
            | OrderSaga::CommittingInventory { saga_id, .. }
            | OrderSaga::CapturingPayment { saga_id, .. }
            | OrderSaga::VoidingPayment { saga_id, .. }
            | OrderSaga::ReleasingInventory { saga_id, .. }
            | OrderSaga::Approved { saga_id, .. }
            | OrderSaga::Rejected { saga_id, .. }
            | OrderSaga::CompensationFailed { saga_id, .. }
            | OrderSaga::CompletionFailed { saga_id, .. } => *saga_id,
        }
    }

    /// The order the saga runs for.
    pub fn order(&self) -> &OrderSnapshot {
        match self {
            OrderSaga::ReservingInventory { order, .. }
            | OrderSaga::AuthorizingPayment { order, .. }
            | OrderSaga::CommittingInventory { order, .. }
            | OrderSaga::CapturingPayment { order, .. }
            | OrderSaga::VoidingPayment { order, .. }
            | OrderSaga::ReleasingInventory { order, .. }
            | OrderSaga::Approved { order, .. }
            | OrderSaga::Rejected { order, .. }
            | OrderSaga::CompensationFailed { order, .. }
            | OrderSaga::CompletionFailed { order, .. } => order,
        }
    }

    /// The step the saga waits on and its attempt; `None` when terminal or
    /// stopped (no deadline: nothing times out).
    pub fn pending(&self) -> Option<(Step, &Pending)> {
        match self {
            OrderSaga::ReservingInventory { pending, .. } => Some((Step::ReserveInventory, pending)),
            OrderSaga::AuthorizingPayment { pending, .. } => Some((Step::AuthorizePayment, pending)),
            OrderSaga::CommittingInventory { pending, .. } => Some((Step::CommitInventory, pending)),
            OrderSaga::CapturingPayment { pending, .. } => Some((Step::CapturePayment, pending)),
            OrderSaga::VoidingPayment { pending, .. } => Some((Step::VoidPayment, pending)),
            OrderSaga::ReleasingInventory { pending, .. } => Some((Step::ReleaseInventory, pending)),
            OrderSaga::Approved { .. }
            | OrderSaga::Rejected { .. }
            | OrderSaga::CompensationFailed { .. }
            | OrderSaga::CompletionFailed { .. } => None,
        }
    }

    /// The step the saga waits on; `None` when terminal or stopped.
    pub fn pending_step(&self) -> Option<Step> {
        self.pending().map(|(step, _)| step)
    }

    /// When the current step is overdue; `None` when terminal or stopped. The
    /// orchestrator indexes this to find sagas to time out.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.pending().map(|(_, pending)| pending.deadline)
    }

    /// Whether the saga has finished (approved or rejected). A saga stopped
    /// in `COMPENSATION_FAILED` or `COMPLETION_FAILED` has not: see
    /// [`is_stuck`](Self::is_stuck).
    pub fn is_terminal(&self) -> bool {
        matches!(self, OrderSaga::Approved { .. } | OrderSaga::Rejected { .. })
    }

    /// Whether the saga stopped for an operator (`COMPENSATION_FAILED`,
    /// `COMPLETION_FAILED`).
    pub fn is_stuck(&self) -> bool {
        self.stuck().is_some()
    }

    /// The step a stopped saga waits on and why it stopped; `None` unless
    /// stuck. Only that step's reply (or an operator's resume) moves it.
    pub fn stuck(&self) -> Option<(Step, &str)> {
        match self {
            OrderSaga::CompensationFailed { step, failure, .. }
            | OrderSaga::CompletionFailed { step, failure, .. } => Some((*step, failure)),
            _ => None,
        }
    }

    /// Whether the saga is undoing its steps.
    pub fn is_compensating(&self) -> bool {
        matches!(self, OrderSaga::VoidingPayment { .. } | OrderSaga::ReleasingInventory { .. })
    }

    /// The payment authorization, once the pivot succeeded.
    pub fn authorization(&self) -> Option<&Authorization> {
        match self {
            OrderSaga::CommittingInventory { authorization, .. }
            | OrderSaga::CapturingPayment { authorization, .. }
            | OrderSaga::CompletionFailed { authorization, .. }
            | OrderSaga::Approved { authorization, .. } => Some(authorization),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(lines: Vec<OrderLine>, total_minor: i64, currency: &str) -> OrderSnapshot {
        OrderSnapshot {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            lines,
            total_minor,
            currency: currency.to_owned(),
        }
    }

    fn line(sku: &str, quantity: i32, unit_price_minor: i64) -> OrderLine {
        OrderLine { sku: sku.to_owned(), quantity, unit_price_minor }
    }

    #[test]
    fn a_consistent_order_is_valid() {
        assert_eq!(snapshot(vec![line("A", 2, 150), line("B", 1, 99)], 399, "EUR").invalid_reason(), None);
    }

    #[test]
    fn inconsistent_orders_have_a_reason() {
        let cases = [
            snapshot(vec![], 0, "EUR"),
            snapshot(vec![line("A", 0, 10)], 0, "EUR"),
            snapshot(vec![line("A", 1, -10)], -10, "EUR"),
            snapshot(vec![line("A", 1, 10)], 10, "eur"),
            snapshot(vec![line("A", 1, 10)], 11, "EUR"),
            snapshot(vec![line("A", 2, i64::MAX)], 0, "EUR"),
        ];
        for case in cases {
            assert!(case.invalid_reason().is_some(), "{case:?} should be invalid");
        }
    }

    #[test]
    fn reserved_lines_compare_per_sku() {
        let order = snapshot(vec![line("A", 2, 1), line("B", 1, 1), line("A", 1, 1)], 4, "EUR");
        let stock = |sku: &str, quantity| StockLine { sku: sku.to_owned(), quantity };
        assert!(order.reserves_exactly(&order.stock_lines()));
        assert!(order.reserves_exactly(&[stock("B", 1), stock("A", 3)]));
        assert!(!order.reserves_exactly(&[stock("B", 1), stock("A", 2)]));
        assert!(!order.reserves_exactly(&[stock("B", 1), stock("A", 3), stock("C", 1)]));
    }
}
