//! The invariants a finished load run must satisfy, judged from what the
//! services' databases say about each order: pure, so each rule is tested
//! without a system.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

/// What every service recorded about one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderFacts {
    pub(crate) order_id: Uuid,
    pub(crate) sku: String,
    pub(crate) quantity: i64,
    /// The order service's status (PENDING, APPROVED, REJECTED).
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    /// The orchestrator's status of the order's saga.
    pub(crate) saga: Option<String>,
    /// The payment service's status.
    pub(crate) payment: Option<String>,
    /// The inventory service's reservation status.
    pub(crate) reservation: Option<String>,
}

/// A SKU the run seeded, as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StockFacts {
    pub(crate) sku: String,
    pub(crate) seeded: i64,
    pub(crate) on_hand: i64,
    pub(crate) reserved: i64,
}

/// One checked rule: its name, whether it holds, and its figure (or the
/// orders that break it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Invariant {
    pub(crate) name: &'static str,
    pub(crate) holds: bool,
    pub(crate) detail: String,
}

/// Saga states that wait for an operator.
const STUCK: [&str; 2] = ["COMPENSATION_FAILED", "COMPLETION_FAILED"];

/// The outcome of an order for the summary: its status, rejections by
/// their cause, and stuck sagas apart.
pub(crate) fn outcome(o: &OrderFacts) -> String {
    if o.saga.as_deref().is_some_and(|s| STUCK.contains(&s)) {
        return format!("STUCK ({})", o.saga.as_deref().unwrap_or_default());
    }
    match o.status.as_str() {
        "REJECTED" => {
            let reason = o.reason.as_deref().unwrap_or("");
            let cause = if reason.starts_with("inventory reservation failed") {
                "out of stock"
            } else if reason.starts_with("payment declined") {
                "payment declined"
            } else if reason.starts_with("no reply to") {
                "timed out"
            } else {
                "other"
            };
            format!("REJECTED: {cause}")
        }
        other => other.to_owned(),
    }
}

/// Counts of [`outcome`]s, sorted.
pub(crate) fn outcomes(orders: &[OrderFacts]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for o in orders {
        *counts.entry(outcome(o)).or_default() += 1;
    }
    counts
}

fn rule(name: &'static str, total: usize, offenders: Vec<Uuid>) -> Invariant {
    let holds = offenders.is_empty();
    let detail = if holds {
        format!("{total} of {total}")
    } else {
        let shown: Vec<String> = offenders.iter().take(5).map(Uuid::to_string).collect();
        format!("{} of {total} break it, e.g. {}", offenders.len(), shown.join(", "))
    };
    Invariant { name, holds, detail }
}

fn breaking(
    orders: &[OrderFacts],
    applies: impl Fn(&OrderFacts) -> bool,
    ok: impl Fn(&OrderFacts) -> bool,
) -> (usize, Vec<Uuid>) {
    let applicable: Vec<&OrderFacts> = orders.iter().filter(|o| applies(o)).collect();
    (applicable.len(), applicable.iter().filter(|o| !ok(o)).map(|o| o.order_id).collect())
}

/// Every invariant of the run.
pub(crate) fn invariants(orders: &[OrderFacts], stock: &[StockFacts]) -> Vec<Invariant> {
    let all = |_: &OrderFacts| true;
    let approved = |o: &OrderFacts| o.status == "APPROVED";
    let rejected = |o: &OrderFacts| o.status == "REJECTED";
    let mut checks = Vec::new();
    let (n, bad) = breaking(orders, all, |o| o.status != "PENDING");
    checks.push(rule("every order terminal", n, bad));
    let (n, bad) = breaking(orders, all, |o| o.saga.as_deref() == Some(o.status.as_str()));
    checks.push(rule("saga status = order status", n, bad));
    let (n, bad) = breaking(orders, approved, |o| o.payment.as_deref() == Some("CAPTURED"));
    checks.push(rule("approved => payment captured", n, bad));
    let (n, bad) = breaking(orders, approved, |o| o.reservation.as_deref() == Some("COMMITTED"));
    checks.push(rule("approved => stock committed", n, bad));
    let (n, bad) =
        breaking(orders, rejected, |o| !matches!(o.payment.as_deref(), Some("CAPTURED" | "AUTHORIZED")));
    checks.push(rule("rejected => nothing charged or held", n, bad));
    let (n, bad) =
        breaking(orders, rejected, |o| !matches!(o.reservation.as_deref(), Some("RESERVED" | "COMMITTED")));
    checks.push(rule("rejected => no stock held", n, bad));

    let mut committed: BTreeMap<&str, i64> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.reservation.as_deref() == Some("COMMITTED")) {
        *committed.entry(o.sku.as_str()).or_default() += o.quantity;
    }
    let unbalanced: Vec<String> = stock
        .iter()
        .filter(|s| {
            s.reserved != 0 || s.on_hand != s.seeded - committed.get(s.sku.as_str()).copied().unwrap_or(0)
        })
        .map(|s| format!("{} on hand {} reserved {} of {} seeded", s.sku, s.on_hand, s.reserved, s.seeded))
        .collect();
    checks.push(Invariant {
        name: "stock conserved per SKU",
        holds: unbalanced.is_empty(),
        detail: if unbalanced.is_empty() {
            let units: i64 = committed.values().sum();
            format!("{} SKUs, {units} units sold", stock.len())
        } else {
            unbalanced.join("; ")
        },
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: &str, payment: Option<&str>, reservation: Option<&str>) -> OrderFacts {
        OrderFacts {
            order_id: Uuid::new_v4(),
            sku: "S".into(),
            quantity: 2,
            status: status.into(),
            reason: None,
            saga: Some(status.into()),
            payment: payment.map(Into::into),
            reservation: reservation.map(Into::into),
        }
    }
    fn stock(on_hand: i64, reserved: i64) -> StockFacts {
        StockFacts { sku: "S".into(), seeded: 10, on_hand, reserved }
    }
    fn broken(orders: &[OrderFacts], stock: &[StockFacts]) -> Vec<&'static str> {
        invariants(orders, stock).into_iter().filter(|i| !i.holds).map(|i| i.name).collect()
    }

    #[test]
    fn a_clean_run_holds_every_invariant() {
        let orders = [
            facts("APPROVED", Some("CAPTURED"), Some("COMMITTED")),
            facts("REJECTED", Some("VOIDED"), Some("RELEASED")),
            facts("REJECTED", Some("DECLINED"), Some("RELEASED")),
            facts("REJECTED", None, Some("FAILED")),
        ];
        assert!(broken(&orders, &[stock(8, 0)]).is_empty(), "{:?}", invariants(&orders, &[stock(8, 0)]));
    }

    #[test]
    fn each_broken_rule_is_named() {
        let uncaptured = [facts("APPROVED", Some("AUTHORIZED"), Some("COMMITTED"))];
        assert_eq!(broken(&uncaptured, &[stock(8, 0)]), ["approved => payment captured"]);
        let charged = [facts("REJECTED", Some("CAPTURED"), Some("RELEASED"))];
        assert_eq!(broken(&charged, &[stock(10, 0)]), ["rejected => nothing charged or held"]);
        let held = [facts("REJECTED", None, Some("RESERVED"))];
        assert_eq!(broken(&held, &[stock(10, 2)]), ["rejected => no stock held", "stock conserved per SKU"]);
        let pending =
            [OrderFacts { saga: Some("AUTHORIZING_PAYMENT".into()), ..facts("PENDING", None, None) }];
        assert_eq!(broken(&pending, &[stock(10, 0)]), ["every order terminal", "saga status = order status"]);
        let lost_stock = [facts("APPROVED", Some("CAPTURED"), Some("COMMITTED"))];
        assert_eq!(broken(&lost_stock, &[stock(7, 0)]), ["stock conserved per SKU"]);
    }

    #[test]
    fn outcomes_split_rejections_by_cause_and_show_stuck_sagas() {
        let mut declined = facts("REJECTED", Some("DECLINED"), Some("RELEASED"));
        declined.reason = Some("payment declined: over the limit".into());
        let mut short = facts("REJECTED", None, Some("FAILED"));
        short.reason = Some("inventory reservation failed: SKU-1".into());
        let stuck = OrderFacts { saga: Some("COMPLETION_FAILED".into()), ..facts("PENDING", None, None) };
        let counts = outcomes(&[declined, short, stuck, facts("APPROVED", None, None)]);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![
                ("APPROVED".to_owned(), 1),
                ("REJECTED: out of stock".to_owned(), 1),
                ("REJECTED: payment declined".to_owned(), 1),
                ("STUCK (COMPLETION_FAILED)".to_owned(), 1),
            ]
        );
    }
}
