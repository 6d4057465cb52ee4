//! What a customer reads about a rejected order. The saga records a reason
//! for operators ("inventory reservation failed: SKU-B: 5 requested, 1
//! available", "no reply to AUTHORIZE_PAYMENT by ... (attempt 1)"); the API
//! shows a sentence a shop would show instead, naming no timer, topic or
//! internal step.

/// The customer text for a stored rejection reason.
pub fn for_customer(internal: &str) -> &'static str {
    const TEXTS: [(&str, &str); 4] = [
        ("inventory reservation failed", "Some items of the order are out of stock; nothing was charged."),
        ("payment declined", "The payment was declined; nothing was charged."),
        ("no reply to", "The order could not be completed in time; nothing was charged."),
        ("invalid order", "The order could not be accepted as placed; nothing was charged."),
    ];
    TEXTS
        .iter()
        .find(|(prefix, _)| internal.starts_with(prefix))
        .map_or("The order could not be completed; nothing was charged.", |(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_reasons_become_customer_texts() {
        let stock = for_customer("inventory reservation failed: SKU-B: 5 requested, 1 available");
        assert!(stock.contains("out of stock"), "{stock}");
        assert!(for_customer("payment declined: amount over the limit").contains("declined"));
        let late = for_customer("no reply to AUTHORIZE_PAYMENT by 2026-12-02T10:00:00Z (attempt 1)");
        assert!(!late.contains("AUTHORIZE_PAYMENT") && late.contains("in time"), "{late}");
        assert!(for_customer("something new").contains("could not be completed"));
    }
}
