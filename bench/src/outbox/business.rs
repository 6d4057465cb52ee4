//! (d) What the outbox insert costs a business transaction: the same
//! transaction with and without `outbox::enqueue`, on one connection, the
//! modes alternating in rounds (relay stopped).
//!
//! Two transactions are measured:
//! * `minimal` — one single-row `INSERT` and `COMMIT`: the cheapest possible
//!   business transaction, so the outbox's share is as large as it can be.
//!   A third mode adds only a `SELECT 1`, the cost of one more round trip,
//!   the floor for any extra statement.
//! * `place order` — what the order service does for `POST /orders`
//!   (`order_service::store`): the order row and its three lines, and
//!   `OrderCreated` Avro-encoded into the outbox.

use std::time::{Duration, Instant};

use chrono::Utc;
use events::OutgoingMessage;
use events::messages::order::{OrderCreated, OrderLine};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::table::Table;

/// Mean transaction time of each mode.
pub(super) struct Costs {
    /// Where PostgreSQL was reached ("bridge address", "published port").
    pub(super) path: &'static str,
    /// Minimal transaction: without outbox, with `SELECT 1`, with outbox.
    pub(super) minimal: [Duration; 3],
    /// The order service's place-order transaction: without, with outbox.
    pub(super) place_order: [Duration; 2],
}

/// Measures both transactions over `pool`, `per_round` of each mode per round.
pub(super) async fn measure(
    pool: &PgPool,
    path: &'static str,
    msgs: &[OutgoingMessage],
    per_round: usize,
    rounds: usize,
) -> anyhow::Result<Costs> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_orders (id uuid PRIMARY KEY, customer text NOT NULL, \
         amount_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await?;
    order_service::migrate(pool).await?;
    let mut conn = pool.acquire().await?;
    let n = u32::try_from(per_round * rounds)?;
    let mut minimal = [Duration::ZERO; 3];
    let mut place_order = [Duration::ZERO; 2];
    for round in 0..rounds {
        for (mode, total) in minimal.iter_mut().enumerate() {
            let started = Instant::now();
            for i in 0..per_round {
                minimal_tx(&mut conn, mode, &msgs[(round * per_round + i) % msgs.len()]).await?;
            }
            *total += started.elapsed();
        }
        for (mode, total) in place_order.iter_mut().enumerate() {
            let started = Instant::now();
            for _ in 0..per_round {
                place_order_tx(&mut conn, mode == 1).await?;
            }
            *total += started.elapsed();
        }
    }
    Ok(Costs { path, minimal: minimal.map(|t| t / n), place_order: place_order.map(|t| t / n) })
}

/// Mode 0: insert and commit; 1: plus `SELECT 1`; 2: plus the outbox insert.
async fn minimal_tx(conn: &mut PgConnection, mode: usize, msg: &OutgoingMessage) -> anyhow::Result<()> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("INSERT INTO bench_orders (id, customer, amount_cents) VALUES ($1, $2, $3)")
        .bind(Uuid::now_v7())
        .bind("customer-42")
        .bind(1999_i64)
        .execute(&mut *tx)
        .await?;
    match mode {
        1 => {
            sqlx::query("SELECT 1").execute(&mut *tx).await?;
        }
        2 => {
            outbox::enqueue(&mut tx, msg).await?;
        }
        _ => {}
    }
    tx.commit().await?;
    Ok(())
}

/// The order service's `place_order`, optionally without its outbox insert.
async fn place_order_tx(conn: &mut PgConnection, with_outbox: bool) -> anyhow::Result<()> {
    let line =
        |sku: &str, quantity, unit_price_minor| OrderLine { sku: sku.into(), quantity, unit_price_minor };
    let event = OrderCreated {
        order_id: Uuid::now_v7(),
        customer_id: Uuid::now_v7(),
        lines: vec![line("SKU-1", 2, 1250), line("SKU-2", 1, 4999), line("SKU-3", 3, 300)],
        total_minor: 8399,
        currency: "EUR".into(),
        created_at: Utc::now(),
        channel: "web".into(),
    };
    let mut tx = sqlx::Connection::begin(conn).await?;
    order_service::store::insert_order(&mut tx, &event).await?;
    if with_outbox {
        let message = OutgoingMessage::new(&event)?.correlated_with(event.order_id);
        outbox::enqueue(&mut tx, &message).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Adds the (d) rows for one path to `t`.
pub(super) fn rows(t: &mut Table, c: &Costs) {
    let us = |d: &Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let ratio = |d: &Duration, base: &Duration| format!("{:.2}x", d.as_secs_f64() / base.as_secs_f64());
    let [without, round_trip, with] = &c.minimal;
    let path = c.path;
    t.row(vec![format!("(d) minimal tx without outbox ({path})"), us(without), "1.00".into(), String::new()]);
    t.row(vec![
        format!("(d) minimal tx + one extra round trip, SELECT 1 ({path})"),
        us(round_trip),
        ratio(round_trip, without),
        String::new(),
    ]);
    t.row(vec![
        format!("(d) minimal tx with outbox insert ({path})"),
        us(with),
        ratio(with, without),
        "<= 1.30x".into(),
    ]);
    let [without, with] = &c.place_order;
    t.row(vec![
        format!("(d) place order without outbox ({path})"),
        us(without),
        "1.00".into(),
        String::new(),
    ]);
    t.row(vec![
        format!("(d) place order with OrderCreated in the outbox ({path})"),
        us(with),
        ratio(with, without),
        "<= 1.30x".into(),
    ]);
}
