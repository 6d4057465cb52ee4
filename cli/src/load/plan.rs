//! What a load run orders: its own SKUs (so runs never exhaust each other's
//! stock) and a seeded mix of orders that takes every road of the saga.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// One order to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedOrder {
    /// Sent as the `Idempotency-Key`, so a retried request places it once.
    pub(crate) key: Uuid,
    pub(crate) sku: String,
    pub(crate) quantity: i32,
    pub(crate) unit_price_minor: i64,
}

/// The stock a run seeds and the orders it places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// (SKU, units) seeded before the run.
    pub(crate) stock: Vec<(String, i64)>,
    pub(crate) orders: Vec<PlannedOrder>,
}

/// Share of orders on the scarce SKU, which has stock for about half of them.
const SCARCE_SHARE: f64 = 0.2;

/// A plan for `orders` orders of run `run`, the same for the same seed: most
/// orders on a plentiful SKU with totals from 300 to 4,500 minor units (so a
/// payment limit in between declines some), a fifth on a scarce SKU.
pub(crate) fn plan(run: &str, orders: usize, seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let plenty = format!("LOAD-{run}-PLENTY");
    let scarce = format!("LOAD-{run}-SCARCE");
    let scarce_units = ((orders as f64 * SCARCE_SHARE / 2.0).ceil() as i64).max(1);
    let orders = (0..orders)
        .map(|_| {
            let on_scarce = rng.random_bool(SCARCE_SHARE);
            PlannedOrder {
                key: Uuid::from_u128(rng.random()),
                sku: if on_scarce { scarce.clone() } else { plenty.clone() },
                quantity: if on_scarce { 1 } else { rng.random_range(1..=3) },
                unit_price_minor: rng.random_range(3..=15) * 100,
            }
        })
        .collect::<Vec<_>>();
    let plenty_units = orders.iter().map(|o| i64::from(o.quantity)).sum::<i64>() + 1;
    Plan { stock: vec![(plenty, plenty_units), (scarce, scarce_units)], orders }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_runs_do_not_share_skus() {
        assert_eq!(plan("a", 50, 7), plan("a", 50, 7));
        assert_ne!(plan("a", 50, 7).orders, plan("a", 50, 8).orders);
        let (a, b) = (plan("a", 10, 1), plan("b", 10, 1));
        assert!(a.stock.iter().all(|(s, _)| b.stock.iter().all(|(t, _)| s != t)));
    }

    #[test]
    fn the_mix_takes_every_road() {
        let p = plan("x", 1_000, 42);
        let scarce = &p.stock[1];
        let on_scarce = p.orders.iter().filter(|o| o.sku == scarce.0).count() as i64;
        assert!(on_scarce > scarce.1, "more scarce orders ({on_scarce}) than units ({})", scarce.1);
        assert!(p.orders.iter().any(|o| i64::from(o.quantity) * o.unit_price_minor > 2_500));
        assert!(p.orders.iter().any(|o| i64::from(o.quantity) * o.unit_price_minor <= 2_500));
        let plenty =
            p.orders.iter().filter(|o| o.sku == p.stock[0].0).map(|o| i64::from(o.quantity)).sum::<i64>();
        assert!(plenty < p.stock[0].1, "the plentiful SKU never runs out");
    }
}
