//! The HTTP API against a real PostgreSQL: a placed order is stored together
//! with its `OrderCreated` outbox row; bad requests get a 4xx with a message
//! and store nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn call(
    pool: &PgPool,
    method: &str,
    uri: &str,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Value)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("traceparent", TRACEPARENT)
        .body(body.map(Body::from).unwrap_or_else(Body::empty))?;
    let resp = order_service::api::router(pool.clone()).oneshot(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, value))
}

async fn count(pool: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

#[tokio::test]
async fn placing_orders_stores_rows_and_outbox_events_and_refuses_bad_input() -> anyhow::Result<()> {
    // What telemetry::init installs in the binary, scoped to this test.
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let _tracing = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    );

    let pg = testkit::Postgres::start().await?;
    let pool = PgPool::connect(&pg.fresh_database().await?).await?;
    order_service::migrate(&pool).await?;

    let order = json!({
        "customer_id": uuid::Uuid::new_v4(),
        "currency": "EUR",
        "lines": [{"sku": "BOOK-1", "quantity": 2, "unit_price_minor": 1250}]
    });
    let (status, body) = call(&pool, "POST", "/orders", Some(order.to_string())).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["total_minor"], 2500);
    let id = body["order_id"].as_str().ok_or_else(|| anyhow::anyhow!("no order_id in {body}"))?.to_owned();

    let (status, view) = call(&pool, "GET", &format!("/orders/{id}"), None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "PENDING");
    let key: String = sqlx::query_scalar("SELECT msg_key FROM outbox").fetch_one(&pool).await?;
    assert_eq!(key, id, "the outbox row is keyed by the order id");
    let traceparent: Option<String> =
        sqlx::query_scalar("SELECT traceparent FROM outbox").fetch_one(&pool).await?;
    let traceparent = traceparent.ok_or_else(|| anyhow::anyhow!("the outbox row has no trace context"))?;
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the event continues the caller's trace: {traceparent}"
    );
    let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM outbox").fetch_one(&pool).await?;
    let event: events::messages::order::OrderCreated = events::decode(&payload)?;
    assert_eq!(event.order_id.to_string(), id);
    assert_eq!(event.total_minor, 2500);

    // Bad requests: a 4xx with a message, and nothing stored.
    let cases = [
        (json!({"customer_id": uuid::Uuid::new_v4(), "currency": "EUR", "lines": []}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "at least one line"),
        (json!({"customer_id": uuid::Uuid::new_v4(), "currency": "euro", "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "currency"),
        (json!({"customer_id": "nope", "currency": "EUR", "lines": []}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "customer_id"),
        ("{not json".to_owned(), StatusCode::BAD_REQUEST, ""),
    ];
    for (body, want, needle) in cases {
        let (status, resp) = call(&pool, "POST", "/orders", Some(body.clone())).await?;
        assert_eq!(status, want, "{body} -> {resp}");
        assert!(resp.to_string().contains(needle), "{resp} should mention {needle}");
    }
    let (status, _) = call(&pool, "GET", "/orders/not-a-uuid", None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&pool, "GET", &format!("/orders/{}", uuid::Uuid::new_v4()), None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(count(&pool, "SELECT count(*) FROM orders").await?, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM outbox").await?, 1);
    Ok(())
}

/// The saga's verdicts move an order out of PENDING exactly once; a verdict
/// for an unknown order is a permanent error (dead letter).
#[tokio::test]
async fn verdicts_settle_pending_orders_once() -> anyhow::Result<()> {
    use consumers::{Handler, InboundMessage};
    use events::messages::order::{OrderApproved, OrderRejected};

    let pg = testkit::Postgres::start().await?;
    let pool = PgPool::connect(&pg.fresh_database().await?).await?;
    order_service::migrate(&pool).await?;
    let place = |sku: &str| {
        json!({"customer_id": uuid::Uuid::new_v4(), "currency": "EUR",
               "lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 100}]})
        .to_string()
    };
    let mut ids = Vec::new();
    for sku in ["A", "B"] {
        let (status, body) = call(&pool, "POST", "/orders", Some(place(sku))).await?;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(uuid::Uuid::parse_str(body["order_id"].as_str().unwrap_or_default())?);
    }
    let inbound = |m: events::OutgoingMessage| InboundMessage::from_outgoing(m, 0, 0);
    let now = chrono::Utc::now();
    let approved = inbound(events::OutgoingMessage::new(&OrderApproved {
        order_id: ids[0],
        authorization_id: uuid::Uuid::new_v4(),
        approved_at: now,
    })?);
    let rejected = inbound(events::OutgoingMessage::new(&OrderRejected {
        order_id: ids[1],
        reason: "payment declined".into(),
        rejected_at: now,
    })?);
    let handler = order_service::outcome::OutcomeHandler;
    for m in [&approved, &rejected, &approved] {
        let mut tx = pool.begin().await?;
        handler.handle(m, &mut tx).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        tx.commit().await?;
    }
    let (_, a) = call(&pool, "GET", &format!("/orders/{}", ids[0]), None).await?;
    let (_, r) = call(&pool, "GET", &format!("/orders/{}", ids[1]), None).await?;
    assert_eq!(a["status"], "APPROVED");
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("REJECTED"), Some("payment declined")));

    // A late contradicting verdict does not flip a settled order.
    let late = inbound(events::OutgoingMessage::new(&OrderRejected {
        order_id: ids[0],
        reason: "late".into(),
        rejected_at: now,
    })?);
    let mut tx = pool.begin().await?;
    handler.handle(&late, &mut tx).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    let (_, a) = call(&pool, "GET", &format!("/orders/{}", ids[0]), None).await?;
    assert_eq!(a["status"], "APPROVED");

    let unknown = inbound(events::OutgoingMessage::new(&OrderApproved {
        order_id: uuid::Uuid::new_v4(),
        authorization_id: uuid::Uuid::new_v4(),
        approved_at: now,
    })?);
    let mut tx = pool.begin().await?;
    let err = handler.handle(&unknown, &mut tx).await.expect_err("unknown order must be refused");
    assert_eq!(err.class(), consumers::ErrorClass::Permanent);
    Ok(())
}
