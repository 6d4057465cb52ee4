//! The HTTP API. Every answer is JSON: client mistakes get a 4xx with
//! `{"error": "..."}`, internal failures a 500 that says no more than that
//! (details go to the log).
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /orders` (JSON, at most [`BODY_LIMIT`] bytes, optional `Idempotency-Key`) | 201 + `Location` (a repeat of the key with the same order: 200, the first order); 400 malformed JSON or key, 413 too large, 415 not JSON, 422 invalid order or key reused with another order |
//! | `GET /orders/{id}` | 200 the order with its lines, status and a customer-facing reason; 400 not a UUID; 404 |
//! | `GET /orders?status=&limit=&after=` | 200 `{"orders": [...], "next": cursor or null}`, newest first, `limit` 1..=100 (20); 400 on a bad parameter |
//! | `GET /health` | 200 `ok` |
//! | any other route / method | 404 / 405 |

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::request::PlaceOrder;
use crate::store::{self, Cursor, OrderView, Placed};

/// Largest `POST /orders` body: 64 KiB (an order of [`MAX_LINES`](crate::request::MAX_LINES)
/// lines needs well under 16 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Longest `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;

/// Most orders on one page of `GET /orders`.
pub const MAX_PAGE: i64 = 100;

/// The service's router.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/orders", get(list_orders).post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/health", get(|| async { "ok" }))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(pool)
}

/// An error answer: a status and a message for the caller.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the service log".into())
}

fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no route {method} {}", uri.path()))
}

async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

/// The `Idempotency-Key` header, if sent: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=MAX_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(k) => Ok(Some(k.to_owned())),
        None => Err(bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters without spaces"
        ))),
    }
}

fn placed(status: StatusCode, order_id: Uuid, order_status: &str, total_minor: i64) -> Response {
    let body = Json(json!({ "order_id": order_id, "status": order_status, "total_minor": total_minor }));
    let mut resp = (status, body).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{order_id}")) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    resp
}

/// Places an order. A W3C `traceparent` on the request makes the order's
/// trace a child of the caller's; the trace context then travels with the
/// `OrderCreated` event through the outbox into the Kafka headers.
async fn place_order(
    State(pool): State<PgPool>,
    headers: HeaderMap,
    body: Result<Json<PlaceOrder>, JsonRejection>,
) -> Result<Response, ApiError> {
    let span = tracing::info_span!("place_order");
    telemetry::continue_trace(
        &span,
        headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    );
    let key = idempotency_key(&headers)?;
    let Json(req) = body.map_err(|e| ApiError(e.status(), e.body_text()))?;
    let valid = req.validate().map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.0))?;
    let Some(key) = key else {
        let event = store::place_order(&pool, valid).instrument(span).await.map_err(internal)?;
        return Ok(placed(StatusCode::CREATED, event.order_id, "PENDING", event.total_minor));
    };
    match store::place_order_once(&pool, valid, &key).instrument(span).await.map_err(internal)? {
        Placed::New(event) => Ok(placed(StatusCode::CREATED, event.order_id, "PENDING", event.total_minor)),
        Placed::Again { order_id, total_minor, status } => {
            Ok(placed(StatusCode::OK, order_id, &status, total_minor))
        }
        Placed::KeyReused { order_id } => Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "Idempotency-Key {key:?} placed order {order_id} with other content; use a new key for a new order"
            ),
        )),
    }
}

/// The order as a customer sees it: the stored reason replaced by its
/// customer text. (The saga's current step of a PENDING order is the
/// orchestrator's: `saga sagas show ID`.)
fn for_customer(mut order: OrderView) -> OrderView {
    order.reason = order.reason.as_deref().map(|r| crate::reason::for_customer(r).to_owned());
    order
}

async fn get_order(State(pool): State<PgPool>, Path(id): Path<String>) -> Result<Json<OrderView>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|e| bad_request(format!("order id must be a UUID: {e}")))?;
    match store::get_order(&pool, id).await.map_err(internal)? {
        Some(o) => Ok(Json(for_customer(o))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no order {id}"))),
    }
}

/// `GET /orders` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

/// A cursor as the API hands it out: `<created_at in µs since the epoch>.<order id>`.
fn encode_cursor(order: &OrderView) -> String {
    format!("{}.{}", order.created_at.timestamp_micros(), order.order_id)
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    let (micros, id) = s.split_once('.')?;
    let created_at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some(Cursor { created_at, order_id: Uuid::parse_str(id).ok()? })
}

async fn list_orders(
    State(pool): State<PgPool>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    if let Some(s) = q.status.as_deref().filter(|s| !["PENDING", "APPROVED", "REJECTED"].contains(s)) {
        return Err(bad_request(format!("status must be PENDING, APPROVED or REJECTED, got {s:?}")));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_request(format!("limit must be 1 to {MAX_PAGE}, got {limit}")));
    }
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| bad_request(format!("after {c:?} is not a cursor of this API")))?,
        ),
    };
    let mut page =
        store::list_orders(&pool, q.status.as_deref(), after, limit + 1).await.map_err(internal)?;
    let more = page.len() as i64 > limit;
    page.truncate(limit as usize);
    let next = if more { page.last().map(encode_cursor) } else { None };
    let orders: Vec<OrderView> = page.into_iter().map(for_customer).collect();
    Ok(Json(json!({ "orders": orders, "next": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let order = OrderView {
            order_id: Uuid::now_v7(),
            customer_id: Uuid::new_v4(),
            total_minor: 1,
            currency: "EUR".into(),
            channel: "web".into(),
            status: "PENDING".into(),
            reason: None,
            lines: Vec::new(),
            created_at: chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap_or_default(),
            updated_at: chrono::Utc::now(),
        };
        let c = decode_cursor(&encode_cursor(&order)).expect("a cursor of ours decodes");
        assert_eq!((c.created_at, c.order_id), (order.created_at, order.order_id));
        for bad in ["", "x", "12.", ".abc", "12.not-a-uuid", "abc.00000000-0000-0000-0000-000000000000"] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }
}
