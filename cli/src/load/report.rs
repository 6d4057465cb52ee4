//! The summary a load run prints: outcomes, rates and latency, and every
//! invariant with its figure.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::check::{self, Invariant, OrderFacts, StockFacts};
use super::facts::Timing;

/// What a run did, as printed (table or JSON).
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) run: String,
    pub(crate) seed: u64,
    pub(crate) orders: usize,
    /// Orders by outcome (status, rejection cause, stuck).
    pub(crate) outcomes: BTreeMap<String, usize>,
    /// Orders accepted per second by the API.
    pub(crate) placed_per_sec: f64,
    /// Sagas settled per second, first placement to last verdict.
    pub(crate) completed_per_sec: f64,
    pub(crate) latency_p50_ms: Option<f64>,
    pub(crate) latency_p99_ms: Option<f64>,
    pub(crate) invariants: Vec<Invariant>,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

impl Summary {
    pub(crate) fn new(
        run: &str,
        seed: u64,
        placed_in: Duration,
        orders: &[OrderFacts],
        stock: &[StockFacts],
        timing: Timing,
    ) -> Summary {
        let per_sec = |n: usize, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        Summary {
            run: run.to_owned(),
            seed,
            orders: orders.len(),
            outcomes: check::outcomes(orders),
            placed_per_sec: per_sec(orders.len(), placed_in.as_secs_f64()),
            completed_per_sec: per_sec(timing.latencies_ms.len(), timing.span_secs),
            latency_p50_ms: quantile(&timing.latencies_ms, 0.50),
            latency_p99_ms: quantile(&timing.latencies_ms, 0.99),
            invariants: check::invariants(orders, stock),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
        writeln!(f, "\nload run {} (seed {}): {} orders", self.run, self.seed, self.orders)?;
        writeln!(f, "\n{:<36} {:>7}", "OUTCOME", "ORDERS")?;
        for (outcome, n) in &self.outcomes {
            writeln!(f, "{outcome:<36} {n:>7}")?;
        }
        writeln!(
            f,
            "\nplaced {:.1}/s, completed {:.1}/s, latency p50 {} p99 {}",
            self.placed_per_sec,
            self.completed_per_sec,
            ms(self.latency_p50_ms),
            ms(self.latency_p99_ms)
        )?;
        writeln!(f, "\n{:<40} {:<5} DETAIL", "INVARIANT", "OK")?;
        for i in &self.invariants {
            writeln!(f, "{:<40} {:<5} {}", i.name, if i.holds { "yes" } else { "NO" }, i.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
