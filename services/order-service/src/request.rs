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
        if self.customer_id.is_nil() {
            return bad("customer_id must not be the nil UUID".into());
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return bad(format!(
                "currency must be three upper-case letters (ISO 4217), got {:?}",
                self.currency
            ));
        }
        if !crate::currency::is_known(&self.currency) {
            return bad(format!("currency {:?} is not an ISO 4217 currency code in use", self.currency));
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
            let sku = l.sku.trim();
            if !valid_sku(sku) {
                return bad(format!(
                    "line {i}: sku must be 1 to 64 letters, digits, '.', '_' or '-', got {:?}",
                    l.sku
                ));
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
            lines.push(OrderLine {
                sku: sku.to_owned(),
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
            });
        }
        if total == 0 {
            return bad("the order total must be greater than zero".into());
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

/// A SKU as stored: 1 to [`MAX_SKU_LEN`] ASCII letters, digits, `.`, `_`, `-`.
pub fn valid_sku(sku: &str) -> bool {
    (1..=MAX_SKU_LEN).contains(&sku.len())
        && sku.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Longest SKU.
pub const MAX_SKU_LEN: usize = 64;

impl ValidOrder {
    /// A digest of everything the order says (customer, currency, channel,
    /// lines as validated), the same for two requests that differ only in
    /// JSON layout, field order or blanks around a SKU: what an
    /// `Idempotency-Key` is checked against.
    pub fn fingerprint(&self) -> Vec<u8> {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(self.customer_id.as_bytes());
        field(self.currency.as_bytes());
        field(self.channel.as_bytes());
        for l in &self.lines {
            field(l.sku.as_bytes());
            field(&l.quantity.to_be_bytes());
            field(&l.unit_price_minor.to_be_bytes());
        }
        h.finalize().to_vec()
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
        assert!(req("XYZ", vec![line(1, 1)]).validate().expect_err("must be refused").0.contains("ISO 4217"));
        assert!(
            req("EUR", vec![line(3, 0)])
                .validate()
                .expect_err("must be refused")
                .0
                .contains("greater than zero")
        );
        let nil = PlaceOrder { customer_id: Uuid::nil(), ..req("EUR", vec![line(1, 1)]) };
        assert!(nil.validate().expect_err("must be refused").0.contains("nil"));
        for sku in ["", "   ", "SKU 1", "SKU/1", "ü", &"A".repeat(65)] {
            let r = req("EUR", vec![LineRequest { sku: sku.into(), ..line(1, 1) }]);
            assert!(r.validate().expect_err("must be refused").0.contains("sku"), "{sku:?}");
        }
        assert!(
            req("EUR", vec![line(2, i64::MAX)])
                .validate()
                .expect_err("must be refused")
                .0
                .contains("overflow")
        );
    }

    #[test]
    fn skus_are_stored_trimmed_and_fingerprints_follow_content_not_layout() {
        let padded = req("EUR", vec![LineRequest { sku: "  BOOK-1.a_b ".into(), ..line(1, 5) }]);
        let v = padded.clone().validate().expect("valid");
        assert_eq!(v.lines[0].sku, "BOOK-1.a_b");
        let tight = PlaceOrder {
            lines: vec![LineRequest { sku: "BOOK-1.a_b".into(), ..line(1, 5) }],
            ..padded.clone()
        };
        assert_eq!(tight.validate().expect("valid").fingerprint(), v.fingerprint());
        let more =
            PlaceOrder { lines: vec![LineRequest { sku: "BOOK-1.a_b".into(), ..line(2, 5) }], ..padded };
        assert_ne!(more.validate().expect("valid").fingerprint(), v.fingerprint());
    }
}
