//! The payment handler against a real PostgreSQL (no broker): each command is
//! handed to [`PaymentHandler`] as the consumer runtime would, inside a
//! transaction; the tests check the payment rows and the reply written to the
//! outbox in the same transaction. Each test starts its own server.

use anyhow::{Context, anyhow, bail, ensure};
use chrono::Utc;
use consumers::{Handler, HandlerError, InboundMessage};
use events::messages::payment::{
    AuthorizePayment, PaymentAuthorized, PaymentDeclined, PaymentVoided, VoidPayment,
};
use events::{Envelope, Message};
use payment_service::PaymentHandler;
use sqlx::{PgPool, Row};
use testkit::handler::{TRACEPARENT, handle_once, inbound};
use uuid::Uuid;

const LIMIT: i64 = payment_service::handler::DEFAULT_MAX_AMOUNT_MINOR;

async fn setup() -> anyhow::Result<(testkit::Postgres, PgPool)> {
    let pg = testkit::Postgres::start().await?;
    let pool = PgPool::connect(&pg.fresh_database().await?).await?;
    payment_service::migrate(&pool).await?;
    Ok((pg, pool))
}

/// Handles `m` with the default limit in its own transaction; commits on
/// success, rolls back on error.
async fn handle(pool: &PgPool, m: &InboundMessage) -> anyhow::Result<Result<(), HandlerError>> {
    Ok(handle_once(pool, &PaymentHandler::default(), m).await?)
}

async fn apply(pool: &PgPool, m: &InboundMessage) -> anyhow::Result<()> {
    handle(pool, m).await?.map_err(|e| anyhow!("handler failed: {e}"))
}

async fn outbox_len(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await?)
}

/// The last reply: checks it answers `command` (topic, correlation,
/// causation, trace) and is a `M`, and decodes it.
async fn last_reply<M: Message>(pool: &PgPool, command: &InboundMessage) -> anyhow::Result<M> {
    let row = sqlx::query(
        "SELECT topic, header_names, header_values, payload FROM outbox ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .context("no outbox row")?;
    let names: Vec<String> = row.try_get("header_names")?;
    let values: Vec<String> = row.try_get("header_values")?;
    let env =
        Envelope::from_headers(names.iter().map(String::as_str).zip(values.iter().map(|v| v.as_bytes())))?;
    let topic: String = row.try_get("topic")?;
    ensure!(env.message_type == M::NAME, "reply is {}, expected {}", env.message_type, M::NAME);
    ensure!(topic == events::topics::PAYMENT_REPLIES, "reply on {topic}");
    ensure!(env.correlation_id == command.envelope.correlation_id, "reply not correlated with the saga");
    ensure!(env.causation_id == Some(command.envelope.event_id), "reply not caused by the command");
    ensure!(env.traceparent.as_deref() == Some(TRACEPARENT), "reply lost the trace: {:?}", env.traceparent);
    ensure!(env.aggregate_id == command.envelope.aggregate_id, "reply not keyed by the order");
    let payload: Vec<u8> = row.try_get("payload")?;
    Ok(events::decode(&payload)?)
}

/// (status, authorization_id) of the order's payment row.
async fn payment(pool: &PgPool, order_id: Uuid) -> anyhow::Result<Option<(String, Option<Uuid>)>> {
    let row = sqlx::query("SELECT status, authorization_id FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    row.map(|r| Ok((r.try_get("status")?, r.try_get("authorization_id")?))).transpose()
}

fn authorize(order_id: Uuid, amount_minor: i64) -> AuthorizePayment {
    AuthorizePayment {
        order_id,
        customer_id: Uuid::now_v7(),
        amount_minor,
        currency: "EUR".into(),
        requested_at: Utc::now(),
    }
}

fn void(order_id: Uuid) -> VoidPayment {
    VoidPayment { order_id, reason: "inventory commit failed".into(), requested_at: Utc::now() }
}

#[tokio::test]
async fn authorize_within_the_limit_replies_authorized() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    let order = Uuid::now_v7();
    let cmd = inbound(&authorize(order, LIMIT), Uuid::now_v7())?;
    apply(&pool, &cmd).await?;
    let reply: PaymentAuthorized = last_reply(&pool, &cmd).await?;
    assert_eq!((reply.order_id, reply.amount_minor, reply.currency.as_str()), (order, LIMIT, "EUR"));
    assert_eq!(payment(&pool, order).await?, Some(("AUTHORIZED".into(), Some(reply.authorization_id))));
    Ok(())
}

#[tokio::test]
async fn authorize_over_the_limit_is_declined() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    let order = Uuid::now_v7();
    let cmd = inbound(&authorize(order, LIMIT + 1), Uuid::now_v7())?;
    apply(&pool, &cmd).await?;
    let reply: PaymentDeclined = last_reply(&pool, &cmd).await?;
    assert!(reply.reason.contains("limit"), "{}", reply.reason);
    assert_eq!(payment(&pool, order).await?, Some(("DECLINED".into(), None)));

    // The limit is configuration.
    let strict = PaymentHandler { max_amount_minor: 10 };
    let small = Uuid::now_v7();
    let cmd = inbound(&authorize(small, 11), small)?;
    let mut tx = pool.begin().await?;
    strict.handle(&cmd, &mut tx).await.map_err(|e| anyhow!("{e}"))?;
    tx.commit().await?;
    last_reply::<PaymentDeclined>(&pool, &cmd).await?;
    Ok(())
}

#[tokio::test]
async fn a_repeated_authorize_gets_the_same_reply() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    let (order, saga) = (Uuid::now_v7(), Uuid::now_v7());
    let first = inbound(&authorize(order, 2500), saga)?;
    apply(&pool, &first).await?;
    let first_reply: PaymentAuthorized = last_reply(&pool, &first).await?;
    // Re-sent under a new event id.
    let again = inbound(&authorize(order, 2500), saga)?;
    apply(&pool, &again).await?;
    assert_eq!(
        last_reply::<PaymentAuthorized>(&pool, &again).await?,
        first_reply,
        "same authorization, same time"
    );

    let declined = Uuid::now_v7();
    let first = inbound(&authorize(declined, LIMIT * 2), saga)?;
    apply(&pool, &first).await?;
    let first_reply: PaymentDeclined = last_reply(&pool, &first).await?;
    let again = inbound(&authorize(declined, LIMIT * 2), saga)?;
    apply(&pool, &again).await?;
    assert_eq!(last_reply::<PaymentDeclined>(&pool, &again).await?, first_reply);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payments").fetch_one(&pool).await?;
    assert_eq!((rows, outbox_len(&pool).await?), (2, 4));
    Ok(())
}

#[tokio::test]
async fn a_void_before_its_authorize_leaves_a_tombstone_that_refuses_the_authorize() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    let (order, saga) = (Uuid::now_v7(), Uuid::now_v7());
    let early = inbound(&void(order), saga)?;
    apply(&pool, &early).await?;
    let reply: PaymentVoided = last_reply(&pool, &early).await?;
    assert_eq!((reply.order_id, reply.authorization_id), (order, None));
    assert_eq!(payment(&pool, order).await?, Some(("VOIDED".into(), None)));

    let late = inbound(&authorize(order, 2500), saga)?;
    apply(&pool, &late).await?;
    let reply: PaymentDeclined = last_reply(&pool, &late).await?;
    assert_eq!(reply.reason, payment_service::handler::VOIDED_BEFORE_AUTHORIZE);
    assert_eq!(payment(&pool, order).await?, Some(("VOIDED".into(), None)), "nothing was authorized");
    Ok(())
}

#[tokio::test]
async fn a_void_after_authorize_cancels_that_authorization_once() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    let (order, saga) = (Uuid::now_v7(), Uuid::now_v7());
    let auth = inbound(&authorize(order, 2500), saga)?;
    apply(&pool, &auth).await?;
    let authorization = last_reply::<PaymentAuthorized>(&pool, &auth).await?.authorization_id;

    let cmd = inbound(&void(order), saga)?;
    apply(&pool, &cmd).await?;
    let reply: PaymentVoided = last_reply(&pool, &cmd).await?;
    assert_eq!(reply.authorization_id, Some(authorization));
    assert_eq!(payment(&pool, order).await?, Some(("VOIDED".into(), Some(authorization))));

    let again = inbound(&void(order), saga)?;
    apply(&pool, &again).await?;
    assert_eq!(last_reply::<PaymentVoided>(&pool, &again).await?.authorization_id, Some(authorization));
    // A late duplicate authorize does not revive it.
    let late = inbound(&authorize(order, 2500), saga)?;
    apply(&pool, &late).await?;
    assert_eq!(
        last_reply::<PaymentDeclined>(&pool, &late).await?.reason,
        payment_service::handler::ALREADY_VOIDED
    );
    assert_eq!(payment(&pool, order).await?, Some(("VOIDED".into(), Some(authorization))));

    // Voiding a declined payment is a no-op that still answers.
    let declined = Uuid::now_v7();
    apply(&pool, &inbound(&authorize(declined, LIMIT + 1), saga)?).await?;
    let cmd = inbound(&void(declined), saga)?;
    apply(&pool, &cmd).await?;
    assert_eq!(last_reply::<PaymentVoided>(&pool, &cmd).await?.authorization_id, None);
    assert_eq!(payment(&pool, declined).await?, Some(("DECLINED".into(), None)));
    Ok(())
}

#[tokio::test]
async fn unknown_message_types_are_permanent_errors() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    let order = Uuid::now_v7();
    let foreign = events::messages::inventory::CommitInventory { order_id: order, requested_at: Utc::now() };
    match handle(&pool, &inbound(&foreign, order)?).await? {
        Err(HandlerError::Permanent(reason)) => ensure!(reason.contains("unknown message type"), "{reason}"),
        other => bail!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(outbox_len(&pool).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_void_racing_its_authorize_ends_voided_either_way() -> anyhow::Result<()> {
    let (_pg, pool) = setup().await?;
    for round in 0..10 {
        let order = Uuid::now_v7();
        let (auth, cancel) = (inbound(&authorize(order, 2500), order)?, inbound(&void(order), order)?);
        let (ra, rv) = tokio::join!(handle(&pool, &auth), handle(&pool, &cancel));
        ra?.map_err(|e| anyhow!("round {round}: authorize failed: {e}"))?;
        rv?.map_err(|e| anyhow!("round {round}: void failed: {e}"))?;
        let (status, authorization) = payment(&pool, order).await?.context("no payment row")?;
        assert_eq!(status, "VOIDED", "round {round}: the compensation wins whichever runs first");
        // Authorize first: it was authorized, then voided (the void names it).
        // Void first: a tombstone without authorization; the authorize was declined.
        let replies: Vec<String> = sqlx::query_scalar(
            "SELECT header_values[array_position(header_names, 'message-type')] FROM outbox WHERE msg_key = $1 ORDER BY id",
        )
        .bind(order.to_string())
        .fetch_all(&pool)
        .await?;
        let expected = match authorization {
            Some(_) => [PaymentAuthorized::NAME, PaymentVoided::NAME],
            None => [PaymentVoided::NAME, PaymentDeclined::NAME],
        };
        assert_eq!(replies, expected, "round {round}");
    }
    Ok(())
}
