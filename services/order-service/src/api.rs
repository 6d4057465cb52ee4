//! The HTTP API. Client mistakes get a 4xx with a message; internal failures
//! a 500 that says no more than that (details go to the log).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::request::PlaceOrder;
use crate::store;

/// The service's router.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/health", get(|| async { "ok" }))
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

/// Places an order. A W3C `traceparent` on the request makes the order's
/// trace a child of the caller's; the trace context then travels with the
/// `OrderCreated` event through the outbox into the Kafka headers.
async fn place_order(
    State(pool): State<PgPool>,
    headers: HeaderMap,
    body: Result<Json<PlaceOrder>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let span = tracing::info_span!("place_order");
    telemetry::continue_trace(
        &span,
        headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    );
    let Json(req) = body.map_err(|e| ApiError(e.status(), e.body_text()))?;
    let valid = req.validate().map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.0))?;
    let event = store::place_order(&pool, valid).instrument(span).await.map_err(internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "order_id": event.order_id, "status": "PENDING", "total_minor": event.total_minor })),
    ))
}

async fn get_order(
    State(pool): State<PgPool>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("order id must be a UUID: {e}")))?;
    match store::get_order(&pool, id).await.map_err(internal)? {
        Some(o) => Ok(Json(o)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no order {id}"))),
    }
}
