//! What the services' databases say about a load run's orders: the reads
//! behind [`check`](super::check), plus the run's stock seeding.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use super::check::{OrderFacts, StockFacts};

/// The four service databases.
pub(crate) struct Databases {
    orders: PgPool,
    inventory: PgPool,
    payment: PgPool,
    orchestrator: PgPool,
}

/// When the run's orders were placed and settled, by the order service's clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timing {
    /// From the first order placed to the last one settled, in seconds.
    pub(crate) span_secs: f64,
    /// Placement to verdict of each settled order, in milliseconds, sorted.
    pub(crate) latencies_ms: Vec<f64>,
}

async fn connect(url: &str, name: &str) -> anyhow::Result<PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .with_context(|| format!("connecting to the {name} database"))
}

impl Databases {
    pub(crate) async fn connect(
        orders: &str,
        inventory: &str,
        payment: &str,
        orchestrator: &str,
    ) -> anyhow::Result<Self> {
        Ok(Databases {
            orders: connect(orders, "orders").await?,
            inventory: connect(inventory, "inventory").await?,
            payment: connect(payment, "payment").await?,
            orchestrator: connect(orchestrator, "orchestrator").await?,
        })
    }

    /// Creates the run's SKUs (new ones: a run never shares stock).
    pub(crate) async fn seed(&self, stock: &[(String, i64)]) -> anyhow::Result<()> {
        for (sku, units) in stock {
            let inserted =
                sqlx::query("INSERT INTO stock (sku, on_hand) VALUES ($1, $2) ON CONFLICT (sku) DO NOTHING")
                    .bind(sku)
                    .bind(units)
                    .execute(&self.inventory)
                    .await
                    .context("seeding the run's stock (is the inventory service migrated?)")?;
            anyhow::ensure!(
                inserted.rows_affected() == 1,
                "SKU {sku} exists already; run again for a fresh run id"
            );
        }
        Ok(())
    }

    /// How many of `ids` are still PENDING.
    pub(crate) async fn pending(&self, ids: &[Uuid]) -> anyhow::Result<usize> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE order_id = ANY($1) AND status = 'PENDING'")
                .bind(ids)
                .fetch_one(&self.orders)
                .await
                .context("reading the orders")?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Each order with what every service recorded about it.
    pub(crate) async fn orders(&self, ids: &[Uuid]) -> anyhow::Result<Vec<OrderFacts>> {
        let rows: Vec<(Uuid, String, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT o.order_id, o.status, o.reason, l.sku, l.quantity::bigint
             FROM orders o JOIN order_lines l ON l.order_id = o.order_id AND l.line_no = 0
             WHERE o.order_id = ANY($1) ORDER BY o.created_at",
        )
        .bind(ids)
        .fetch_all(&self.orders)
        .await
        .context("reading the orders")?;
        let sagas =
            statuses(&self.orchestrator, "SELECT saga_id, status FROM saga WHERE saga_id = ANY($1)", ids)
                .await?;
        let payments =
            statuses(&self.payment, "SELECT order_id, status FROM payments WHERE order_id = ANY($1)", ids)
                .await?;
        let reservations = statuses(
            &self.inventory,
            "SELECT order_id, status FROM reservations WHERE order_id = ANY($1)",
            ids,
        )
        .await?;
        anyhow::ensure!(
            rows.len() == ids.len(),
            "{} of {} placed orders are not in the order database",
            ids.len() - rows.len(),
            ids.len()
        );
        Ok(rows
            .into_iter()
            .map(|(order_id, status, reason, sku, quantity)| OrderFacts {
                order_id,
                sku,
                quantity,
                status,
                reason,
                saga: sagas.get(&order_id).cloned(),
                payment: payments.get(&order_id).cloned(),
                reservation: reservations.get(&order_id).cloned(),
            })
            .collect())
    }

    /// The run's SKUs as they ended.
    pub(crate) async fn stock(&self, seeded: &[(String, i64)]) -> anyhow::Result<Vec<StockFacts>> {
        let mut out = Vec::new();
        for (sku, units) in seeded {
            let (on_hand, reserved): (i64, i64) =
                sqlx::query_as("SELECT on_hand::bigint, reserved::bigint FROM stock WHERE sku = $1")
                    .bind(sku)
                    .fetch_one(&self.inventory)
                    .await
                    .with_context(|| format!("reading the stock of {sku}"))?;
            out.push(StockFacts { sku: sku.clone(), seeded: *units, on_hand, reserved });
        }
        Ok(out)
    }

    /// Placement and settling times of the settled orders among `ids`.
    pub(crate) async fn timing(&self, ids: &[Uuid]) -> anyhow::Result<Timing> {
        let rows: Vec<(f64, f64)> = sqlx::query_as(
            "SELECT extract(epoch FROM created_at)::float8, extract(epoch FROM updated_at)::float8
             FROM orders WHERE order_id = ANY($1) AND status <> 'PENDING'",
        )
        .bind(ids)
        .fetch_all(&self.orders)
        .await
        .context("reading the order times")?;
        let first = rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let last = rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
        let mut latencies_ms: Vec<f64> = rows.iter().map(|(c, u)| (u - c) * 1_000.0).collect();
        latencies_ms.sort_by(f64::total_cmp);
        Ok(Timing { span_secs: if rows.is_empty() { 0.0 } else { last - first }, latencies_ms })
    }
}

async fn statuses(pool: &PgPool, sql: &'static str, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as(sql).bind(ids).fetch_all(pool).await.with_context(|| format!("running {sql}"))?;
    Ok(rows.into_iter().collect())
}
