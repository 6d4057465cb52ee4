//! The relay's producer settings: which librdkafka overrides it refuses, and
//! the one it adds.
//!
//! Per-key order needs that no record of a key is delivered after an earlier
//! one of the key failed. librdkafka's idempotent producer keeps order
//! across its own retries, but it *fails* a record when its delivery timeout
//! runs out or its retries are used up, and the records queued behind it may
//! still be delivered: a gap, then an overtaking record when the relay sends
//! the failed one again. So the relay never times a record out
//! (`message.timeout.ms=0`, added unless set to `0` already) and refuses
//! every override that reintroduces a way to fail a record and go on:
//!
//! * `message.timeout.ms` / `delivery.timeout.ms` other than `0`;
//! * `retries` / `message.send.max.retries` below the default (2147483647);
//! * `max.in.flight.requests.per.connection` / `max.in.flight` above 5 (the
//!   idempotent producer keeps order only up to 5);
//! * `enable.gapless.guarantee=false` spelled out is refused too, because it
//!   says the caller expects gaps to be acceptable (it is the default, and
//!   `true` is allowed: librdkafka then raises a fatal error instead, and the
//!   relay replaces the producer and resends from the last acked row).
//!
//! `enable.idempotence` and `acks` are enforced by `producers` itself.

use producers::ProducerConfig;

use crate::error::OutboxError;

/// librdkafka's default for `retries`: retry until the timeout.
const MAX_RETRIES: i64 = 2_147_483_647;

/// Why `value` for the (normalised) setting `key` would let a gap open, or
/// `None` when it is harmless.
fn gap(key: &str, value: &str) -> Option<&'static str> {
    let number = value.trim().parse::<i64>().ok();
    match key {
        "message.timeout.ms" | "delivery.timeout.ms" if number != Some(0) => Some(
            "a record that times out is failed while later records of its key may still be delivered; \
             the relay never times records out (leave it unset or 0)",
        ),
        "retries" | "message.send.max.retries" if number != Some(MAX_RETRIES) => Some(
            "a record that runs out of retries is failed while later records of its key may still be \
             delivered (leave it unset)",
        ),
        "max.in.flight.requests.per.connection" | "max.in.flight"
            if number.is_none_or(|n| !(1..=5).contains(&n)) =>
        {
            Some("more than 5 requests in flight can reorder records of a key (at most 5)")
        }
        "enable.gapless.guarantee" if value.trim() != "true" => Some(
            "the relay relies on no gaps; leave it unset or set it to true (a gap then fails the \
             producer, which the relay replaces)",
        ),
        _ => None,
    }
}

/// Checks `producer`'s overrides and adds `message.timeout.ms=0` unless a
/// timeout of 0 is set already.
pub(crate) fn for_relay(mut producer: ProducerConfig) -> Result<ProducerConfig, OutboxError> {
    let mut timeout_set = false;
    for (key, value) in &producer.overrides {
        let key = key.trim().to_ascii_lowercase();
        if let Some(why) = gap(&key, value) {
            return Err(OutboxError::InvalidConfig(format!(
                "producer setting `{key}={value}` is refused by the outbox relay: {why}"
            )));
        }
        timeout_set |= key == "message.timeout.ms" || key == "delivery.timeout.ms";
    }
    if !timeout_set {
        producer.overrides.push(("message.timeout.ms".into(), "0".into()));
    }
    Ok(producer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_adds_an_infinite_timeout_once() {
        let p = for_relay(ProducerConfig::new("h:1")).expect("fine");
        assert_eq!(p.overrides, vec![("message.timeout.ms".to_owned(), "0".to_owned())]);
        let p =
            for_relay(ProducerConfig::new("h:1").with_override("delivery.timeout.ms", "0")).expect("fine");
        assert_eq!(p.overrides, vec![("delivery.timeout.ms".to_owned(), "0".to_owned())]);
    }

    #[test]
    fn harmless_settings_pass() {
        for (k, v) in [("linger.ms", "50"), ("batch.num.messages", "10000"), ("security.protocol", "SSL")] {
            assert_eq!(gap(k, v), None, "{k}");
        }
        assert!(gap("max.in.flight", "abc").is_some(), "an unreadable number is refused");
    }
}
