//! The HTTP API against a real PostgreSQL: a placed order is stored together
//! with its `OrderCreated` outbox row; bad requests get a 4xx with a message
//! and store nothing.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One request with `headers` (a JSON content type unless given); the
/// status, the answer's headers and its body (JSON, or the text as a string).
async fn send(
    pool: &PgPool,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
    let mut req = Request::builder().method(method).uri(uri).header("traceparent", TRACEPARENT);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty))?;
    let resp = order_service::api::router(pool.clone()).oneshot(req).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, headers, value))
}

async fn call(
    pool: &PgPool,
    method: &str,
    uri: &str,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Value)> {
    let (status, _, value) = send(pool, method, uri, &[], body).await?;
    Ok((status, value))
}

async fn migrated() -> anyhow::Result<(testkit::Postgres, PgPool)> {
    let pg = testkit::Postgres::start().await?;
    let pool = PgPool::connect(&pg.fresh_database().await?).await?;
    order_service::migrate(&pool).await?;
    Ok((pg, pool))
}

fn an_order(sku: &str, quantity: i64, unit_price_minor: i64) -> Value {
    json!({"customer_id": uuid::Uuid::new_v4(), "currency": "EUR",
           "lines": [{"sku": sku, "quantity": quantity, "unit_price_minor": unit_price_minor}]})
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
    assert_eq!(r["status"], "REJECTED");
    assert_eq!(r["reason"], "The payment was declined; nothing was charged.", "the customer's text");
    let stored = order_service::store::get_order(&pool, ids[1]).await?.map(|o| o.reason);
    assert_eq!(stored, Some(Some("payment declined".to_owned())), "the saga's reason is kept");

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

/// `Idempotency-Key`: the same key and order answer with the first order
/// (200, same id, even when sent at once), another order under the key is
/// refused, and each key places one order and one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_places_one_order_and_answers_repeats_with_it() -> anyhow::Result<()> {
    let (_pg, pool) = migrated().await?;
    let order = an_order("BOOK-1", 2, 500);
    let (status, headers, first) =
        send(&pool, "POST", "/orders", &[("idempotency-key", "key-1")], Some(order.to_string())).await?;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["order_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(headers.get("location").and_then(|v| v.to_str().ok()), Some(format!("/orders/{id}").as_str()));

    // The same order again, laid out differently (pretty JSON, padded SKU).
    let mut again = order.clone();
    again["lines"][0]["sku"] = json!("  BOOK-1 ");
    let pretty = serde_json::to_string_pretty(&again)?;
    let (status, headers, second) =
        send(&pool, "POST", "/orders", &[("idempotency-key", "key-1")], Some(pretty)).await?;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["order_id"], first["order_id"]);
    assert_eq!(headers.get("location").and_then(|v| v.to_str().ok()), Some(format!("/orders/{id}").as_str()));

    // Another order under the same key.
    let other = an_order("BOOK-1", 3, 500);
    let (status, _, refused) =
        send(&pool, "POST", "/orders", &[("idempotency-key", "key-1")], Some(other.to_string())).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["error"].as_str().unwrap_or("").contains(&id), "{refused}");

    // Eight at once with a new key: one order.
    let order = an_order("BOOK-2", 1, 900).to_string();
    let racing =
        (0..8).map(|_| send(&pool, "POST", "/orders", &[("idempotency-key", "key-2")], Some(order.clone())));
    let answers = futures::future::join_all(racing).await.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let created = answers.iter().filter(|(s, _, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _, b)| s.is_success() && b["order_id"] == answers[0].2["order_id"]),
        "{answers:?}"
    );

    // Keys that are not keys.
    for bad in ["with space", &"k".repeat(256), ""] {
        let (status, _, body) = send(
            &pool,
            "POST",
            "/orders",
            &[("idempotency-key", bad)],
            Some(an_order("X", 1, 1).to_string()),
        )
        .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert!(body["error"].as_str().unwrap_or("").contains("Idempotency-Key"), "{body}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM orders").await?, 2, "one order per key");
    assert_eq!(count(&pool, "SELECT count(*) FROM outbox").await?, 2, "one event per order");
    Ok(())
}

/// What a shop checks, each answered at the HTTP level with a JSON 4xx,
/// storing nothing.
#[tokio::test]
async fn shop_input_checks_answer_with_json_client_errors() -> anyhow::Result<()> {
    let (_pg, pool) = migrated().await?;
    let customer = uuid::Uuid::new_v4();
    let with = |currency: &str, sku: &str, quantity: i64, price: i64| {
        json!({"customer_id": customer, "currency": currency,
               "lines": [{"sku": sku, "quantity": quantity, "unit_price_minor": price}]})
        .to_string()
    };
    let cases = [
        (with("XYZ", "A", 1, 1), StatusCode::UNPROCESSABLE_ENTITY, "ISO 4217"),
        (with("HRK", "A", 1, 1), StatusCode::UNPROCESSABLE_ENTITY, "ISO 4217"),
        (with("EUR", "A", 2, 0), StatusCode::UNPROCESSABLE_ENTITY, "greater than zero"),
        (with("EUR", "SKU 1", 1, 1), StatusCode::UNPROCESSABLE_ENTITY, "sku"),
        (with("EUR", "SKU/1", 1, 1), StatusCode::UNPROCESSABLE_ENTITY, "sku"),
        (
            json!({"customer_id": uuid::Uuid::nil(), "currency": "EUR",
                   "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}]})
            .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "nil",
        ),
        (
            json!({"customer_id": customer, "currency": "EUR"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lines",
        ),
        (
            json!({"customer_id": customer, "currency": "EUR", "lines": [], "coupon": "X"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "coupon",
        ),
    ];
    for (body, want, needle) in cases {
        let (status, resp) = call(&pool, "POST", "/orders", Some(body.clone())).await?;
        assert_eq!(status, want, "{body} -> {resp}");
        assert!(resp["error"].as_str().unwrap_or("").contains(needle), "{resp} should mention {needle}");
    }
    // Over the body limit: 413, in JSON.
    let huge = json!({"customer_id": customer, "currency": "EUR", "channel": "x".repeat(70 * 1024),
                      "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}]});
    let (status, resp) = call(&pool, "POST", "/orders", Some(huge.to_string())).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert!(resp["error"].is_string(), "{resp}");
    // Not JSON: 415, in JSON.
    let (status, _, resp) =
        send(&pool, "POST", "/orders", &[("content-type", "text/plain")], Some(with("EUR", "A", 1, 1)))
            .await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{resp}");
    assert!(resp["error"].as_str().unwrap_or("").contains("application/json"), "{resp}");
    // A SKU is stored as validated (trimmed).
    let (status, body) = call(&pool, "POST", "/orders", Some(with("EUR", "  SKU-9 ", 1, 5))).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stored: String = sqlx::query_scalar("SELECT sku FROM order_lines").fetch_one(&pool).await?;
    assert_eq!(stored, "SKU-9");
    assert_eq!(count(&pool, "SELECT count(*) FROM orders").await?, 1, "only the valid order was stored");
    Ok(())
}

/// `GET /orders/{id}` shows the lines and times; `GET /orders` pages newest
/// first through every order exactly once, filters by status, and refuses
/// bad parameters.
#[tokio::test]
async fn orders_are_shown_with_their_lines_and_listed_in_pages() -> anyhow::Result<()> {
    let (_pg, pool) = migrated().await?;
    let mut placed = Vec::new();
    for i in 0..5 {
        let (status, body) =
            call(&pool, "POST", "/orders", Some(an_order(&format!("SKU-{i}"), 1, 100 + i).to_string()))
                .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        placed.push(body["order_id"].as_str().unwrap_or_default().to_owned());
    }
    let (status, one) = call(&pool, "GET", &format!("/orders/{}", placed[2]), None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["lines"], json!([{"sku": "SKU-2", "quantity": 1, "unit_price_minor": 102}]), "{one}");
    assert_eq!(one["channel"], "web");
    assert!(one["updated_at"].is_string(), "{one}");

    let mut seen = Vec::new();
    let mut uri = "/orders?limit=2".to_owned();
    loop {
        let (status, page) = call(&pool, "GET", &uri, None).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        let orders = page["orders"].as_array().cloned().unwrap_or_default();
        assert!(orders.len() <= 2, "{page}");
        seen.extend(orders.iter().map(|o| o["order_id"].as_str().unwrap_or_default().to_owned()));
        match page["next"].as_str() {
            Some(next) => uri = format!("/orders?limit=2&after={next}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every order once, newest first");

    sqlx::query("UPDATE orders SET status = 'REJECTED', reason = 'payment declined: over the limit' WHERE order_id = ANY($1)")
        .bind(vec![uuid::Uuid::parse_str(&placed[0])?, uuid::Uuid::parse_str(&placed[3])?])
        .execute(&pool)
        .await?;
    let (_, rejected) = call(&pool, "GET", "/orders?status=REJECTED", None).await?;
    let ids: Vec<&str> = rejected["orders"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["order_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [placed[3].as_str(), placed[0].as_str()], "{rejected}");
    assert_eq!(rejected["orders"][0]["reason"], "The payment was declined; nothing was charged.");
    let (_, pending) = call(&pool, "GET", "/orders?status=PENDING&limit=100", None).await?;
    assert_eq!(pending["orders"].as_array().map(Vec::len), Some(3), "{pending}");

    for bad in [
        "/orders?status=LOST",
        "/orders?limit=0",
        "/orders?limit=101",
        "/orders?limit=x",
        "/orders?after=nope",
        "/orders?sort=asc",
    ] {
        let (status, body) = call(&pool, "GET", bad, None).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    Ok(())
}

/// Routes and methods the API does not have answer 404 and 405 in JSON.
#[tokio::test]
async fn unknown_routes_and_methods_answer_json() -> anyhow::Result<()> {
    let (_pg, pool) = migrated().await?;
    let (status, body) = call(&pool, "GET", "/nowhere", None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no route GET /nowhere");
    let (status, body) = call(&pool, "DELETE", "/orders", None).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "DELETE is not allowed on /orders");
    let (status, body) =
        call(&pool, "PUT", &format!("/orders/{}", uuid::Uuid::new_v4()), Some("{}".into())).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(body["error"].is_string());
    Ok(())
}
