//! Topic names and keying rules, in one place.
//!
//! * Every record is keyed by its aggregate id (the order id for everything in
//!   the order saga), so all messages about one order share a partition and
//!   stay in order.
//! * Commands go to `<area>.commands`, replies to `<area>.replies`, domain
//!   events to `<area>.events`.
//! * A consumer parks records it cannot process on `<topic>.dlq`
//!   (see [`dead_letter_topic`]).

/// Domain events of the order service (created / approved / rejected).
pub const ORDER_EVENTS: &str = "orders.events";
/// Commands to the inventory service (reserve / release / commit).
pub const INVENTORY_COMMANDS: &str = "inventory.commands";
/// Replies of the inventory service.
pub const INVENTORY_REPLIES: &str = "inventory.replies";
/// Commands to the payment service (authorize / void).
pub const PAYMENT_COMMANDS: &str = "payment.commands";
/// Replies of the payment service.
pub const PAYMENT_REPLIES: &str = "payment.replies";

/// Every topic the system publishes to (dead-letter topics excluded).
pub const ALL: &[&str] =
    &[ORDER_EVENTS, INVENTORY_COMMANDS, INVENTORY_REPLIES, PAYMENT_COMMANDS, PAYMENT_REPLIES];

/// Suffix of dead-letter topics.
pub const DLQ_SUFFIX: &str = ".dlq";

/// The dead-letter topic for `topic`: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Every topic plus its dead-letter topic: what an environment must create.
pub fn all_with_dead_letters() -> Vec<String> {
    ALL.iter().flat_map(|t| [t.to_string(), dead_letter_topic(t)]).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dead_letter_topics_are_suffixed() {
        assert_eq!(super::dead_letter_topic("orders.events"), "orders.events.dlq");
        assert_eq!(super::all_with_dead_letters().len(), 2 * super::ALL.len());
    }
}
