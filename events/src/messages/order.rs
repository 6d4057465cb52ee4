//! Domain events of the order service (namespace `saga.order`, topic
//! [`topics::ORDER_EVENTS`](crate::topics::ORDER_EVENTS)).
//!
//! [`OrderCreated`] is at version 2 (adds `channel`); the version 1 type is
//! kept in [`v1`] so tools and tests can still produce and read v1 payloads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{order_message, uuid_string};
use crate::topics::ORDER_EVENTS;

/// One line of an order: a quantity of one SKU at a unit price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Stock-keeping unit.
    pub sku: String,
    /// Number of units, at least 1.
    pub quantity: i32,
    /// Price of one unit in minor units of the order's currency.
    pub unit_price_minor: i64,
}

/// A customer placed an order; starts the order saga. Schema
/// `schemas/order/OrderCreated.v2.avsc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    /// The order (aggregate id and Kafka key).
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Customer who placed it.
    #[serde(with = "uuid_string")]
    pub customer_id: Uuid,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// Order total in minor units (sum of quantity × unit price).
    pub total_minor: i64,
    /// ISO 4217 currency code of all amounts, e.g. `EUR`.
    pub currency: String,
    /// When the order was placed.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub created_at: DateTime<Utc>,
    /// Sales channel (v2; readers of v1 data see the default `web`).
    pub channel: String,
}
order_message!(OrderCreated, "saga.order.OrderCreated", 2, ORDER_EVENTS);

impl OrderCreated {
    /// Default of `channel` for data written with v1 (as in the schema).
    pub const DEFAULT_CHANNEL: &'static str = "web";

    /// Sum of quantity × unit price over the lines, or `None` on overflow.
    pub fn lines_total_minor(&self) -> Option<i64> {
        lines_total(&self.lines)
    }
}

fn lines_total(lines: &[OrderLine]) -> Option<i64> {
    lines.iter().try_fold(0i64, |acc, l| {
        l.unit_price_minor.checked_mul(i64::from(l.quantity)).and_then(|x| acc.checked_add(x))
    })
}

/// Earlier versions of the order events.
pub mod v1 {
    use super::*;

    /// [`OrderCreated`](super::OrderCreated) as first published (no
    /// `channel`). Schema `schemas/order/OrderCreated.v1.avsc`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderCreated {
        /// The order (aggregate id and Kafka key).
        #[serde(with = "uuid_string")]
        pub order_id: Uuid,
        /// Customer who placed it.
        #[serde(with = "uuid_string")]
        pub customer_id: Uuid,
        /// What was ordered.
        pub lines: Vec<OrderLine>,
        /// Order total in minor units.
        pub total_minor: i64,
        /// ISO 4217 currency code.
        pub currency: String,
        /// When the order was placed.
        #[serde(with = "chrono::serde::ts_microseconds")]
        pub created_at: DateTime<Utc>,
    }
    order_message!(OrderCreated, "saga.order.OrderCreated", 1, ORDER_EVENTS);
}

/// The saga finished: stock committed and payment authorized. Schema
/// `schemas/order/OrderApproved.v1.avsc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderApproved {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// The payment authorization that pays for it.
    #[serde(with = "uuid_string")]
    pub authorization_id: Uuid,
    /// When the order was approved.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub approved_at: DateTime<Utc>,
}
order_message!(OrderApproved, "saga.order.OrderApproved", 1, ORDER_EVENTS);

/// The saga failed and was compensated: the order will not be fulfilled.
/// Schema `schemas/order/OrderRejected.v1.avsc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Human-readable reason (from the failed step).
    pub reason: String,
    /// When the order was rejected.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub rejected_at: DateTime<Utc>,
}
order_message!(OrderRejected, "saga.order.OrderRejected", 1, ORDER_EVENTS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_total_multiplies_and_detects_overflow() {
        let line = |q, p| OrderLine { sku: "A".into(), quantity: q, unit_price_minor: p };
        assert_eq!(lines_total(&[line(2, 150), line(1, 99)]), Some(399));
        assert_eq!(lines_total(&[line(2, i64::MAX)]), None);
    }
}
