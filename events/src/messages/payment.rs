//! Commands to and replies of the payment service (namespace `saga.payment`;
//! commands on [`topics::PAYMENT_COMMANDS`](crate::topics::PAYMENT_COMMANDS), replies
//! on [`topics::PAYMENT_REPLIES`](crate::topics::PAYMENT_REPLIES)).
//!
//! Authorization is the saga's pivot. A [`VoidPayment`] may overtake its
//! [`AuthorizePayment`]; the service then answers [`PaymentVoided`] without an
//! authorization and refuses the late authorize.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{order_message, uuid_string};
use crate::topics::{PAYMENT_COMMANDS, PAYMENT_REPLIES};

/// Command: authorize (hold) the order's amount on the customer's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizePayment {
    /// The order being paid for.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Who pays.
    #[serde(with = "uuid_string")]
    pub customer_id: Uuid,
    /// Amount in minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When the orchestrator issued the command.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub requested_at: DateTime<Utc>,
}
order_message!(AuthorizePayment, "saga.payment.AuthorizePayment", 1, PAYMENT_COMMANDS);

/// Reply: the amount is authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAuthorized {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Id of the authorization (what a void refers to).
    #[serde(with = "uuid_string")]
    pub authorization_id: Uuid,
    /// Amount authorized, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When it was authorized.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub authorized_at: DateTime<Utc>,
}
order_message!(PaymentAuthorized, "saga.payment.PaymentAuthorized", 1, PAYMENT_REPLIES);

/// Reply: the authorization was refused (a business outcome, not an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDeclined {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Human-readable reason, e.g. `insufficient funds`.
    pub reason: String,
    /// When it was declined.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub declined_at: DateTime<Utc>,
}
order_message!(PaymentDeclined, "saga.payment.PaymentDeclined", 1, PAYMENT_REPLIES);

/// Command (compensation): cancel the order's authorization. Idempotent, and
/// commutes with [`AuthorizePayment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidPayment {
    /// The order whose authorization is voided.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// Why the saga compensates.
    pub reason: String,
    /// When the orchestrator issued the command.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub requested_at: DateTime<Utc>,
}
order_message!(VoidPayment, "saga.payment.VoidPayment", 1, PAYMENT_COMMANDS);

/// Reply: no authorization for the order is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentVoided {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// The authorization that was voided; `None` when the void arrived before
    /// any authorization (a tombstone now refuses the late authorize).
    #[serde(with = "uuid_string::option", default)]
    pub authorization_id: Option<Uuid>,
    /// When it was voided.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub voided_at: DateTime<Utc>,
}
order_message!(PaymentVoided, "saga.payment.PaymentVoided", 1, PAYMENT_REPLIES);

/// Command, after the pivot: capture (charge) the authorized amount. A
/// retriable step: idempotent, and never declined on a business rule (the
/// service captures an authorization it holds; a repeated command is
/// answered with the first capture).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturePayment {
    /// The order being charged.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// The authorization to capture (from [`PaymentAuthorized`]).
    #[serde(with = "uuid_string")]
    pub authorization_id: Uuid,
    /// Amount to capture, in minor units: the authorized amount.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When the orchestrator issued the command.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub requested_at: DateTime<Utc>,
}
order_message!(CapturePayment, "saga.payment.CapturePayment", 1, PAYMENT_COMMANDS);

/// Reply: the authorized amount is captured; the customer is charged once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    /// The order.
    #[serde(with = "uuid_string")]
    pub order_id: Uuid,
    /// The authorization that was captured.
    #[serde(with = "uuid_string")]
    pub authorization_id: Uuid,
    /// Amount captured, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When it was first captured (a repeated command answers the same).
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub captured_at: DateTime<Utc>,
}
order_message!(PaymentCaptured, "saga.payment.PaymentCaptured", 1, PAYMENT_REPLIES);
