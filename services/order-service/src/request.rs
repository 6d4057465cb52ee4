//! The `POST /orders` body and its validation.

use serde::Deserialize;
use uuid::Uuid;

use events::messages::order::OrderLine;

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;

/// What a client sends to place an order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Who orders.
    pub customer_id: Uuid,
    /// ISO 4217 code, three upper-case letters.
    pub currency: String,
    /// At least one line.
    pub lines: Vec<LineRequest>,
    /// Sales channel; `web` when absent.
    #[serde(default)]
    pub channel: Option<String>,
}

/// One requested line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// Stock-keeping unit.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: i32,
    /// Price of one unit in minor units, not negative.
    pub unit_price_minor: i64,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOrder {
    /// Who orders.
    pub customer_id: Uuid,
    /// Currency code.
    pub currency: String,
    /// Lines as they go into the event.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines.
    pub total_minor: i64,
    /// Sales channel.
    pub channel: String,
}

/// Why a request was refused; the message is for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl PlaceOrder {
    /// Checks the request and computes the total.
    pub fn validate(self) -> Result<ValidOrder, Invalid> {
        let bad = |m: String| Err(Invalid(m));
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return bad(format!(
                "currency must be three upper-case letters (ISO 4217), got {:?}",
                self.currency
            ));
        }
        if self.lines.is_empty() {
            return bad("an order needs at least one line".into());
        }
        if self.lines.len() > MAX_LINES {
            return bad(format!("an order may have at most {MAX_LINES} lines"));
        }
        let mut total: i64 = 0;
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, l) in self.lines.into_iter().enumerate() {
            if l.sku.trim().is_empty() || l.sku.len() > 64 {
                return bad(format!("line {i}: sku must be 1 to 64 characters"));
            }
            if l.quantity < 1 {
                return bad(format!("line {i}: quantity must be at least 1, got {}", l.quantity));
            }
            if l.unit_price_minor < 0 {
                return bad(format!("line {i}: unit_price_minor must not be negative"));
            }
            total = match l
                .unit_price_minor
                .checked_mul(i64::from(l.quantity))
                .and_then(|x| total.checked_add(x))
            {
                Some(t) => t,
                None => return bad("order total overflows".into()),
            };
            lines.push(OrderLine { sku: l.sku, quantity: l.quantity, unit_price_minor: l.unit_price_minor });
        }
        let channel = self.channel.unwrap_or_else(|| "web".into());
        if channel.is_empty() || channel.len() > 32 {
            return bad("channel must be 1 to 32 characters".into());
        }
        Ok(ValidOrder {
            customer_id: self.customer_id,
            currency: self.currency,
            lines,
            total_minor: total,
            channel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(currency: &str, lines: Vec<LineRequest>) -> PlaceOrder {
        PlaceOrder { customer_id: Uuid::new_v4(), currency: currency.into(), lines, channel: None }
    }
    fn line(q: i32, p: i64) -> LineRequest {
        LineRequest { sku: "SKU-1".into(), quantity: q, unit_price_minor: p }
    }

    #[test]
    fn computes_total_and_defaults_channel() {
        let v = req("EUR", vec![line(2, 150), line(1, 99)]).validate().expect("valid");
        assert_eq!(v.total_minor, 399);
        assert_eq!(v.channel, "web");
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        assert!(req("eur", vec![line(1, 1)]).validate().expect_err("must be refused").0.contains("currency"));
        assert!(req("EUR", vec![]).validate().expect_err("must be refused").0.contains("at least one line"));
        assert!(req("EUR", vec![line(0, 1)]).validate().expect_err("must be refused").0.contains("quantity"));
        assert!(
            req("EUR", vec![line(1, -5)]).validate().expect_err("must be refused").0.contains("negative")
        );
        assert!(
            req("EUR", vec![line(2, i64::MAX)])
                .validate()
                .expect_err("must be refused")
                .0
                .contains("overflow")
        );
    }
}
