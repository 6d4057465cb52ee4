//! SQL of the order service. Writes take the caller's transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use events::OutgoingMessage;
use events::messages::order::OrderCreated;

use crate::request::ValidOrder;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The event could not be encoded.
    #[error("encoding OrderCreated: {0}")]
    Encode(#[from] events::CodecError),
    /// The outbox refused the event.
    #[error("outbox: {0}")]
    Outbox(#[from] outbox::error::OutboxError),
}

/// An order as `GET /orders/{id}` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderView {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub customer_id: Uuid,
    /// Total in minor units.
    pub total_minor: i64,
    /// Currency.
    pub currency: String,
    /// PENDING, APPROVED or REJECTED.
    pub status: String,
    /// Why it was rejected, if it was.
    pub reason: Option<String>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

/// Stores the order and enqueues `OrderCreated` in one transaction, then
/// commits. Returns the event as published.
pub async fn place_order(pool: &PgPool, order: ValidOrder) -> Result<OrderCreated, StoreError> {
    let event = OrderCreated {
        order_id: Uuid::now_v7(),
        customer_id: order.customer_id,
        lines: order.lines,
        total_minor: order.total_minor,
        currency: order.currency,
        created_at: Utc::now(),
        channel: order.channel,
    };
    let message = OutgoingMessage::new(&event)?.correlated_with(event.order_id);
    let mut tx = pool.begin().await?;
    insert_order(&mut tx, &event).await?;
    outbox::enqueue(&mut tx, &message).await?;
    tx.commit().await?;
    Ok(event)
}

/// Inserts the order and its lines.
pub async fn insert_order(tx: &mut Transaction<'_, Postgres>, e: &OrderCreated) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, total_minor, currency, channel, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.order_id)
    .bind(e.customer_id)
    .bind(e.total_minor)
    .bind(&e.currency)
    .bind(&e.channel)
    .bind(e.created_at)
    .execute(&mut **tx)
    .await?;
    for (i, l) in e.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.order_id)
        .bind(i as i32)
        .bind(&l.sku)
        .bind(l.quantity)
        .bind(l.unit_price_minor)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Reads one order.
pub async fn get_order(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderView>, StoreError> {
    let row = sqlx::query(
        "SELECT order_id, customer_id, total_minor, currency, status, reason, created_at
         FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(OrderView {
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        total_minor: r.try_get("total_minor")?,
        currency: r.try_get("currency")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        created_at: r.try_get("created_at")?,
    }))
}
