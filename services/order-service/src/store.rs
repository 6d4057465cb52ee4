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

/// An order as stored: what `GET /orders/{id}` shows (the API replaces
/// `reason` by its customer text, see [`crate::reason`]).
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
    /// Sales channel.
    pub channel: String,
    /// PENDING, APPROVED or REJECTED.
    pub status: String,
    /// Why it was rejected, if it was, as the saga recorded it.
    pub reason: Option<String>,
    /// The lines in order; empty in listings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineView>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When its status last changed (placement, then the verdict).
    pub updated_at: DateTime<Utc>,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineView {
    /// Stock-keeping unit.
    pub sku: String,
    /// Units.
    pub quantity: i32,
    /// Price of one unit in minor units.
    pub unit_price_minor: i64,
}

/// What placing with an `Idempotency-Key` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// A new order.
    New(OrderCreated),
    /// The key placed this order before, with the same content.
    Again {
        /// The first request's order.
        order_id: Uuid,
        /// Its total.
        total_minor: i64,
        /// Its status now.
        status: String,
    },
    /// The key placed this order before, with other content.
    KeyReused {
        /// The first request's order.
        order_id: Uuid,
    },
}

/// Keyset position in a listing: the last order of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Its placement time.
    pub created_at: DateTime<Utc>,
    /// Its id (ties on the time).
    pub order_id: Uuid,
}

/// The columns [`view`] reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "order_id, customer_id, total_minor, currency, channel, status, reason, created_at, updated_at"
    };
}

fn view(r: &sqlx::postgres::PgRow) -> Result<OrderView, sqlx::Error> {
    Ok(OrderView {
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        total_minor: r.try_get("total_minor")?,
        currency: r.try_get("currency")?,
        channel: r.try_get("channel")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        lines: Vec::new(),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn created(order: ValidOrder) -> OrderCreated {
    OrderCreated {
        order_id: Uuid::now_v7(),
        customer_id: order.customer_id,
        lines: order.lines,
        total_minor: order.total_minor,
        currency: order.currency,
        created_at: Utc::now(),
        channel: order.channel,
    }
}

/// Stores the order and enqueues `OrderCreated` in one transaction, then
/// commits. Returns the event as published.
pub async fn place_order(pool: &PgPool, order: ValidOrder) -> Result<OrderCreated, StoreError> {
    let event = created(order);
    let mut tx = pool.begin().await?;
    insert_with_event(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(event)
}

/// [`place_order`] once per `key`: the first request with a key places the
/// order; a later one with the same key gets that order back if it says
/// the same ([`ValidOrder::fingerprint`]), or [`Placed::KeyReused`]. Two
/// concurrent requests with one key place one order: the key row is
/// written first, so the second waits for the first's commit.
pub async fn place_order_once(pool: &PgPool, order: ValidOrder, key: &str) -> Result<Placed, StoreError> {
    let hash = order.fingerprint();
    let event = created(order);
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (key, request_hash, order_id) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(&hash)
    .bind(event.order_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        insert_with_event(&mut tx, &event).await?;
        tx.commit().await?;
        return Ok(Placed::New(event));
    }
    let (first_hash, order_id, total_minor, status): (Vec<u8>, Uuid, i64, String) = sqlx::query_as(
        "SELECT k.request_hash, o.order_id, o.total_minor, o.status
         FROM idempotency_keys k JOIN orders o USING (order_id) WHERE k.key = $1",
    )
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(if first_hash == hash {
        Placed::Again { order_id, total_minor, status }
    } else {
        Placed::KeyReused { order_id }
    })
}

/// The order's rows and its `OrderCreated` outbox row, in `tx`.
async fn insert_with_event(
    tx: &mut Transaction<'_, Postgres>,
    event: &OrderCreated,
) -> Result<(), StoreError> {
    let message = OutgoingMessage::new(event)?.correlated_with(event.order_id);
    insert_order(tx, event).await?;
    outbox::enqueue(tx, &message).await?;
    Ok(())
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

/// Reads one order with its lines.
pub async fn get_order(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderView>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM orders WHERE order_id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let mut order = view(&r)?;
    let lines: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT sku, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    order.lines = lines
        .into_iter()
        .map(|(sku, quantity, unit_price_minor)| LineView { sku, quantity, unit_price_minor })
        .collect();
    Ok(Some(order))
}

/// Up to `limit` orders, newest first, optionally of one `status`, after
/// `after` (the last order of the previous page); lines are left out.
pub async fn list_orders(
    pool: &PgPool,
    status: Option<&str>,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<OrderView>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM orders
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::timestamptz IS NULL OR (created_at, order_id) < ($2, $3))
         ORDER BY created_at DESC, order_id DESC LIMIT $4"
    ))
    .bind(status)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.order_id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(view).collect::<Result<_, _>>()?)
}
