//! The orchestrator's runtime against a real PostgreSQL (no broker): the
//! handler is called directly with hand-built messages inside a transaction,
//! as the consumer runtime would, and the sweeper is run one sweep at a time.
//! What is checked is what a crash or a second instance would see: the `saga`
//! row and the commands in the `outbox` table.

mod common;

use std::time::Duration;

use common::Fixture;
use consumers::{Handler, HandlerError, InboundMessage};
use events::messages::order::OrderApproved;
use events::{Message, OutgoingMessage, SchemaRegistry};
use saga_orchestrator::{
    OrderSaga, ResumeError, SagaConfig, SagaHandler, Step, StoredSaga, Sweeper, SweeperConfig, store,
};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

type TestResult = anyhow::Result<()>;

/// A PostgreSQL container with one migrated database; removed on drop.
struct Db {
    _server: testkit::Postgres,
    pool: PgPool,
}

async fn database() -> anyhow::Result<Db> {
    let server = testkit::Postgres::start().await?;
    let pool = PgPool::connect(&server.fresh_database().await?).await?;
    saga_orchestrator::migrate(&pool).await?;
    Ok(Db { _server: server, pool })
}

/// An order whose saga id is its order id, as the orchestrator makes it.
fn order() -> Fixture {
    let order_id = Uuid::now_v7();
    Fixture { saga_id: order_id, order_id, ..Fixture::new() }
}

/// `message` as the consumer runtime hands it over: a fresh envelope (new
/// event id) correlated with `saga_id` when given.
fn inbound<M: Message>(message: &M, saga_id: Option<Uuid>) -> anyhow::Result<InboundMessage> {
    let mut out = OutgoingMessage::new(message)?;
    if let Some(id) = saga_id {
        out = out.correlated_with(id);
    }
    Ok(InboundMessage::from_outgoing(out, 0, 0))
}

/// Runs the handler in its own transaction and commits it on success, as
/// the consumer runtime does (minus the inbox row).
async fn deliver(
    pool: &PgPool,
    handler: &SagaHandler,
    message: &InboundMessage,
) -> anyhow::Result<Result<(), HandlerError>> {
    let mut tx = pool.begin().await?;
    let result = handler.handle(message, &mut tx).await;
    if result.is_ok() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(result)
}

/// Delivers and insists on success.
async fn apply<M: Message>(pool: &PgPool, handler: &SagaHandler, message: &M, saga_id: Uuid) -> TestResult {
    let inbound = inbound(message, Some(saga_id))?;
    deliver(pool, handler, &inbound).await?.map_err(|e| anyhow::anyhow!("{} refused: {e}", M::NAME))
}

/// The saga row: state, version, and the status and deadline columns.
async fn saga(
    pool: &PgPool,
    saga_id: Uuid,
) -> anyhow::Result<(StoredSaga, String, Option<chrono::DateTime<chrono::Utc>>)> {
    let mut conn = pool.acquire().await?;
    let stored =
        store::load(&mut conn, saga_id).await?.ok_or_else(|| anyhow::anyhow!("no saga {saga_id}"))?;
    let row = sqlx::query("SELECT status, deadline FROM saga WHERE saga_id = $1")
        .bind(saga_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok((stored, row.try_get("status")?, row.try_get("deadline")?))
}

/// One outbox row, decoded.
#[derive(Debug)]
struct Sent {
    /// Short name, e.g. `ReserveInventory`.
    name: String,
    topic: String,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    body: Value,
}

/// The commands enqueued for `order_id`, in order.
async fn outbox(pool: &PgPool, order_id: Uuid) -> anyhow::Result<Vec<Sent>> {
    let rows = sqlx::query(
        "SELECT topic, header_names, header_values, payload FROM outbox WHERE msg_key = $1 ORDER BY id",
    )
    .bind(order_id.to_string())
    .fetch_all(pool)
    .await?;
    let mut sent = Vec::new();
    for row in rows {
        let names: Vec<String> = row.try_get("header_names")?;
        let values: Vec<String> = row.try_get("header_values")?;
        let header = |name: &str| names.iter().position(|n| n == name).map(|i| values[i].clone());
        let payload: Vec<u8> = row.try_get("payload")?;
        let (schema, body) = SchemaRegistry::embedded().decode_json(&payload)?;
        assert_eq!(header("message-type").as_deref(), Some(schema.name.as_str()), "header and body agree");
        sent.push(Sent {
            name: schema.name.rsplit('.').next().unwrap_or_default().to_owned(),
            topic: row.try_get("topic")?,
            correlation_id: header("correlation-id"),
            causation_id: header("causation-id"),
            body,
        });
    }
    Ok(sent)
}

fn names(sent: &[Sent]) -> Vec<&str> {
    sent.iter().map(|s| s.name.as_str()).collect()
}

async fn count(pool: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

fn short(step_timeout_ms: u64) -> SagaConfig {
    SagaConfig {
        step_timeout: Duration::from_millis(step_timeout_ms),
        max_step_timeout: Duration::from_secs(60),
        ..SagaConfig::default()
    }
}

#[tokio::test]
async fn order_created_starts_a_saga_once_and_enqueues_the_reservation() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let o = order();

    let created = inbound(&o.created(), None)?;
    deliver(&db.pool, &handler, &created).await??;
    let (stored, status, deadline) = saga(&db.pool, o.saga_id).await?;
    assert_eq!((status.as_str(), stored.version), ("RESERVING_INVENTORY", 1));
    assert_eq!(deadline, stored.state.deadline(), "the deadline column mirrors the state");
    assert!(deadline.is_some());

    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(names(&sent), ["ReserveInventory"]);
    let reserve = &sent[0];
    assert_eq!(reserve.topic, "inventory.commands");
    assert_eq!(reserve.correlation_id, Some(o.saga_id.to_string()), "commands carry the saga id");
    assert_eq!(
        reserve.causation_id,
        Some(created.envelope.event_id.to_string()),
        "and the event that caused them"
    );
    assert_eq!(reserve.body["lines"][0]["sku"], "SKU-A");
    assert_eq!(reserve.body["lines"][0]["quantity"], 2);

    // The same order announced again (a re-sent OrderCreated, new event id):
    // the saga exists, nothing is written.
    deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    assert_eq!(saga(&db.pool, o.saga_id).await?.0.version, 1);
    assert_eq!(outbox(&db.pool, o.order_id).await?.len(), 1);

    // Our own outcome events come back on orders.events: ignored, no error.
    let approved =
        OrderApproved { order_id: o.order_id, authorization_id: o.authorization_id, approved_at: o.t0 };
    deliver(&db.pool, &handler, &inbound(&approved, Some(o.saga_id))?).await??;
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await?, 1);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM saga").await?, 1);
    Ok(())
}

#[tokio::test]
async fn the_happy_path_ends_approved_with_order_approved() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let o = order();
    deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;

    apply(&db.pool, &handler, &o.reserved(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "AUTHORIZING_PAYMENT");
    apply(&db.pool, &handler, &o.authorized(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "COMMITTING_INVENTORY");
    apply(&db.pool, &handler, &o.committed(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "CAPTURING_PAYMENT");
    apply(&db.pool, &handler, &o.captured(), o.saga_id).await?;

    let (stored, status, deadline) = saga(&db.pool, o.saga_id).await?;
    assert_eq!((status.as_str(), stored.version, deadline), ("APPROVED", 5, None));
    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(
        names(&sent),
        ["ReserveInventory", "AuthorizePayment", "CommitInventory", "CapturePayment", "OrderApproved"]
    );
    assert_eq!(sent[1].topic, "payment.commands");
    assert_eq!(sent[1].body["amount_minor"], 399);
    assert_eq!(sent[3].topic, "payment.commands");
    assert_eq!(sent[4].topic, "orders.events");
    assert_eq!(sent[3].body["authorization_id"], o.authorization_id.to_string());
    Ok(())
}

#[tokio::test]
async fn a_declined_payment_releases_the_stock_then_rejects() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let o = order();
    deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    apply(&db.pool, &handler, &o.reserved(), o.saga_id).await?;

    apply(&db.pool, &handler, &o.declined(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "RELEASING_INVENTORY");
    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(names(&sent), ["ReserveInventory", "AuthorizePayment", "ReleaseInventory"]);
    assert_eq!(sent[2].body["reason"], "payment declined: insufficient funds");

    apply(&db.pool, &handler, &o.released(), o.saga_id).await?;
    let (stored, status, deadline) = saga(&db.pool, o.saga_id).await?;
    assert_eq!((status.as_str(), stored.version, deadline), ("REJECTED", 4, None));
    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(names(&sent), ["ReserveInventory", "AuthorizePayment", "ReleaseInventory", "OrderRejected"]);
    assert_eq!(sent[3].body["reason"], "payment declined: insufficient funds");
    Ok(())
}

#[tokio::test]
async fn a_duplicate_or_late_reply_changes_nothing() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let o = order();
    deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    apply(&db.pool, &handler, &o.reserved(), o.saga_id).await?;
    let before = saga(&db.pool, o.saga_id).await?;
    let updated_at = || sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT updated_at FROM saga");
    let touched = updated_at().fetch_one(&db.pool).await?;

    // The same reply re-sent by the service (new event id, so the inbox
    // does not catch it): the saga no longer waits on the reservation.
    apply(&db.pool, &handler, &o.reserved(), o.saga_id).await?;
    // A reply to a step the saga is not on.
    apply(&db.pool, &handler, &o.released(), o.saga_id).await?;

    assert_eq!(saga(&db.pool, o.saga_id).await?, before, "state, version, status and deadline unchanged");
    assert_eq!(updated_at().fetch_one(&db.pool).await?, touched, "the row was not even rewritten");
    assert_eq!(names(&outbox(&db.pool, o.order_id).await?), ["ReserveInventory", "AuthorizePayment"]);

    // After the end, too.
    apply(&db.pool, &handler, &o.declined(), o.saga_id).await?;
    apply(&db.pool, &handler, &o.released(), o.saga_id).await?;
    let done = saga(&db.pool, o.saga_id).await?;
    assert_eq!(done.1, "REJECTED");
    apply(&db.pool, &handler, &o.released(), o.saga_id).await?;
    apply(&db.pool, &handler, &o.authorized(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?, done);
    assert_eq!(outbox(&db.pool, o.order_id).await?.len(), 4);
    Ok(())
}

#[tokio::test]
async fn misrouted_and_unknown_messages_are_permanent_errors() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let o = order();
    deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    let before = saga(&db.pool, o.saga_id).await?;

    // A reply for a saga that does not exist.
    let stranger = order();
    let err = deliver(&db.pool, &handler, &inbound(&stranger.reserved(), Some(stranger.saga_id))?).await?;
    match err {
        Err(HandlerError::Permanent(reason)) => {
            assert!(
                reason.contains("unknown saga") && reason.contains(&stranger.saga_id.to_string()),
                "{reason}"
            )
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }

    // A reply correlated with our saga but about another order.
    let err = deliver(&db.pool, &handler, &inbound(&stranger.reserved(), Some(o.saga_id))?).await?;
    assert!(matches!(&err, Err(HandlerError::Permanent(r)) if r.contains("matching order")), "{err:?}");

    // A command is not something the orchestrator consumes.
    let command = events::messages::inventory::ReleaseInventory {
        order_id: o.order_id,
        reason: "x".into(),
        requested_at: o.t0,
    };
    let err = deliver(&db.pool, &handler, &inbound(&command, Some(o.saga_id))?).await?;
    assert!(matches!(&err, Err(HandlerError::Permanent(r)) if r.contains("unknown message type")), "{err:?}");

    // A body that does not decode as its envelope says.
    let mut garbled = inbound(&o.reserved(), Some(o.saga_id))?;
    garbled.payload.truncate(12);
    let err = deliver(&db.pool, &handler, &garbled).await?;
    assert!(matches!(&err, Err(HandlerError::Permanent(r)) if r.contains("decoding reply")), "{err:?}");

    assert_eq!(saga(&db.pool, o.saga_id).await?, before);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM saga").await?, 1);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await?, 1);
    Ok(())
}

#[tokio::test]
async fn the_sweeper_times_out_overdue_sagas_once_and_skips_locked_ones() -> TestResult {
    let db = database().await?;
    let quick = short(150);
    let sweeper = Sweeper::new(db.pool.clone(), quick.clone(), SweeperConfig::default());
    let (hasty, patient) = (order(), order());
    deliver(&db.pool, &SagaHandler::new(quick.clone()), &inbound(&hasty.created(), None)?).await??;
    deliver(&db.pool, &SagaHandler::new(SagaConfig::default()), &inbound(&patient.created(), None)?)
        .await??;

    let report = sweeper.sweep_once().await?;
    assert_eq!(report.overdue, 0, "nothing is due yet: {report:?}");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = sweeper.sweep_once().await?;
    assert_eq!((report.overdue, report.timed_out), (1, 1), "{report:?}");
    let (stored, status, deadline) = saga(&db.pool, hasty.saga_id).await?;
    assert_eq!((status.as_str(), stored.version), ("RELEASING_INVENTORY", 2));
    assert!(deadline.is_some());
    let sent = outbox(&db.pool, hasty.order_id).await?;
    assert_eq!(names(&sent), ["ReserveInventory", "ReleaseInventory"]);
    let reason = sent[1].body["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("no reply to RESERVE_INVENTORY"), "{reason}");
    assert_eq!(sent[1].correlation_id, Some(hasty.saga_id.to_string()));
    assert_eq!(sent[1].causation_id, None, "a timer is caused by no message");
    assert_eq!(saga(&db.pool, patient.saga_id).await?.1, "RESERVING_INVENTORY", "not due, untouched");

    // The timeout moved the deadline: sweeping again at once does nothing.
    let report = sweeper.sweep_once().await?;
    assert_eq!(report.overdue, 0, "{report:?}");
    assert_eq!(outbox(&db.pool, hasty.order_id).await?.len(), 2);

    // A saga that another transaction holds (a reply being applied, another
    // sweeper) is skipped, not waited for.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut holder = db.pool.begin().await?;
    sqlx::query("SELECT 1 FROM saga WHERE saga_id = $1 FOR UPDATE")
        .bind(hasty.saga_id)
        .execute(&mut *holder)
        .await?;
    let report = tokio::time::timeout(Duration::from_secs(5), sweeper.sweep_once()).await??;
    assert_eq!(report.overdue, 0, "the locked saga is skipped: {report:?}");
    holder.rollback().await?;

    // Released, it is retried: a compensation is re-sent, never abandoned.
    let report = sweeper.sweep_once().await?;
    assert_eq!(report.timed_out, 1, "{report:?}");
    let (stored, status, _) = saga(&db.pool, hasty.saga_id).await?;
    assert_eq!(status, "RELEASING_INVENTORY");
    assert_eq!(stored.state.pending().map(|(step, p)| (step, p.attempt)), Some((Step::ReleaseInventory, 2)));
    assert_eq!(
        names(&outbox(&db.pool, hasty.order_id).await?),
        ["ReserveInventory", "ReleaseInventory", "ReleaseInventory"]
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_replies_to_one_saga_serialize_on_its_row_lock() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());

    // The reference: the two replies applied one after the other.
    let sequential = order();
    deliver(&db.pool, &handler, &inbound(&sequential.created(), None)?).await??;
    apply(&db.pool, &handler, &sequential.reserved(), sequential.saga_id).await?;
    apply(&db.pool, &handler, &sequential.authorized(), sequential.saga_id).await?;

    // The same two replies in overlapping transactions (two orchestrator
    // instances, one reading inventory replies, one payment replies).
    let o = order();
    deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    let mut first = db.pool.begin().await?;
    handler.handle(&inbound(&o.reserved(), Some(o.saga_id))?, &mut first).await?;

    let second = {
        let (pool, handler, message) =
            (db.pool.clone(), handler.clone(), inbound(&o.authorized(), Some(o.saga_id))?);
        tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            handler.handle(&message, &mut tx).await?;
            tx.commit().await?;
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "the second transaction must wait for the first");
    let waiting =
        count(&db.pool, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").await?;
    assert_eq!(waiting, 1, "it waits on a lock");
    first.commit().await?;
    second.await??;

    // Without the lock the second would have read RESERVING_INVENTORY and
    // ignored the authorization; with it, the result is the sequential one.
    let (seq, seq_status, _) = saga(&db.pool, sequential.saga_id).await?;
    let (got, status, _) = saga(&db.pool, o.saga_id).await?;
    assert_eq!((status.as_str(), got.version), (seq_status.as_str(), seq.version));
    assert_eq!(status, "COMMITTING_INVENTORY");
    let (seq_sent, sent) =
        (outbox(&db.pool, sequential.order_id).await?, outbox(&db.pool, o.order_id).await?);
    assert_eq!(names(&sent), names(&seq_sent));
    assert_eq!(names(&sent), ["ReserveInventory", "AuthorizePayment", "CommitInventory"]);
    Ok(())
}

#[tokio::test]
async fn an_unanswered_compensation_is_stored_as_failed_and_a_late_reply_finishes_it() -> TestResult {
    let db = database().await?;
    let (o, handler, sweeper) = stopped_on_the_release(&db.pool).await?;
    let (stored, status, deadline) = saga(&db.pool, o.saga_id).await?;
    assert_eq!((status.as_str(), deadline), ("COMPENSATION_FAILED", None));
    let OrderSaga::CompensationFailed { step, failure, .. } = &stored.state else {
        panic!("{:?}", stored.state)
    };
    assert_eq!(*step, Step::ReleaseInventory);
    assert!(failure.starts_with("no reply to RELEASE_INVENTORY after 2 attempts"), "{failure}");
    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(names(&sent), ["ReserveInventory", "ReleaseInventory", "ReleaseInventory"], "no outcome");

    // Stopped: the sweeper leaves it alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sweeper.sweep_once().await?.overdue, 0);

    // The participant answers at last (its dead letter re-driven).
    apply(&db.pool, &handler, &o.released(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "REJECTED");
    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(names(&sent), ["ReserveInventory", "ReleaseInventory", "ReleaseInventory", "OrderRejected"]);
    Ok(())
}

/// Starts a saga whose compensation is given up after 2 sends and lets the
/// sweeper time it out until it stops: the reservation times out and is
/// released, and the release goes unanswered twice. Returns the order and
/// the handler and sweeper that ran it.
async fn stopped_on_the_release(pool: &PgPool) -> anyhow::Result<(Fixture, SagaHandler, Sweeper)> {
    let quick = SagaConfig { compensation_attempts: 2, ..short(100) };
    let sweeper = Sweeper::new(pool.clone(), quick.clone(), SweeperConfig::default());
    let handler = SagaHandler::new(quick);
    let o = order();
    deliver(pool, &handler, &inbound(&o.created(), None)?).await??;
    for _ in 0..20 {
        if saga(pool, o.saga_id).await?.1 == "COMPENSATION_FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        sweeper.sweep_once().await?;
    }
    Ok((o, handler, sweeper))
}

#[tokio::test]
async fn an_operator_resumes_a_stopped_saga_by_sending_its_compensation_again() -> TestResult {
    let db = database().await?;
    let (o, handler, _) = stopped_on_the_release(&db.pool).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "COMPENSATION_FAILED");

    let patient = SagaConfig::default();
    let resumed = saga_orchestrator::resume(&db.pool, o.saga_id, &patient).await?;
    assert_eq!((resumed.status, resumed.command), ("RELEASING_INVENTORY", "saga.inventory.ReleaseInventory"));
    let (stored, status, deadline) = saga(&db.pool, o.saga_id).await?;
    assert_eq!(status, "RELEASING_INVENTORY");
    assert!(deadline.is_some(), "the re-sent release is timed again");
    assert_eq!(stored.state.pending().map(|(step, p)| (step, p.attempt)), Some((Step::ReleaseInventory, 1)));
    let sent = outbox(&db.pool, o.order_id).await?;
    assert_eq!(
        names(&sent),
        ["ReserveInventory", "ReleaseInventory", "ReleaseInventory", "ReleaseInventory"]
    );

    // Only a stopped saga is resumed.
    let again = saga_orchestrator::resume(&db.pool, o.saga_id, &patient).await;
    assert!(matches!(again, Err(ResumeError::NotStopped { status: "RELEASING_INVENTORY", .. })), "{again:?}");
    let unknown = saga_orchestrator::resume(&db.pool, Uuid::now_v7(), &patient).await;
    assert!(matches!(unknown, Err(ResumeError::NotFound(_))), "{unknown:?}");

    apply(&db.pool, &handler, &o.released(), o.saga_id).await?;
    assert_eq!(saga(&db.pool, o.saga_id).await?.1, "REJECTED");
    Ok(())
}

/// Runs `handle_batch` over `messages` in its own transaction and commits.
async fn deliver_batch(pool: &PgPool, handler: &SagaHandler, messages: &[InboundMessage]) -> TestResult {
    let refs: Vec<&InboundMessage> = messages.iter().collect();
    let mut tx = pool.begin().await?;
    handler.handle_batch(&refs, &mut tx).await.map_err(|e| anyhow::anyhow!("batch refused: {e}"))?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_batch_of_replies_ends_as_the_same_replies_one_by_one() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let (one, batched) = ([order(), order(), order()], [order(), order(), order()]);
    for o in one.iter().chain(&batched) {
        deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    }
    for o in &one {
        apply(&db.pool, &handler, &o.reserved(), o.saga_id).await?;
        apply(&db.pool, &handler, &o.authorized(), o.saga_id).await?;
    }
    // One batch: every reserved, then every authorized; a saga appears twice.
    let mut messages = Vec::new();
    for o in &batched {
        messages.push(inbound(&o.reserved(), Some(o.saga_id))?);
    }
    for o in batched.iter().rev() {
        messages.push(inbound(&o.authorized(), Some(o.saga_id))?);
    }
    deliver_batch(&db.pool, &handler, &messages).await?;
    for (a, b) in one.iter().zip(&batched) {
        let ((sa, status_a, _), (sb, status_b, _)) =
            (saga(&db.pool, a.saga_id).await?, saga(&db.pool, b.saga_id).await?);
        assert_eq!((status_b.as_str(), sb.version), (status_a.as_str(), sa.version));
        assert_eq!(status_b, "COMMITTING_INVENTORY");
        assert_eq!(names(&outbox(&db.pool, b.order_id).await?), names(&outbox(&db.pool, a.order_id).await?));
    }
    // A reply for a saga that does not exist fails the whole batch (the
    // runtime then applies its messages one by one).
    let stray = order();
    let bad = [inbound(&stray.reserved(), Some(stray.saga_id))?];
    assert!(deliver_batch(&db.pool, &handler, &bad).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_that_share_sagas_never_deadlock_or_lose_an_update() -> TestResult {
    let db = database().await?;
    let handler = SagaHandler::new(SagaConfig::default());
    let sagas: Vec<Fixture> = (0..8).map(|_| order()).collect();
    for o in &sagas {
        deliver(&db.pool, &handler, &inbound(&o.created(), None)?).await??;
    }
    // Two members at once. The first applies the inventory replies in two
    // batches of one transaction (sagas 0-3, then 4-7); between them the
    // second applies the payment replies of all eight, newest saga first.
    // Locking in message order, the second would hold 7-4 and wait for 3
    // while the first waits for 4: a deadlock. Locked in saga id order, the
    // second waits for saga 0 holding nothing.
    let inbound_all = |msgs: Vec<_>| -> anyhow::Result<Vec<InboundMessage>> {
        msgs.into_iter().map(|(m, id)| inbound(&m, Some(id))).collect()
    };
    let early = inbound_all(sagas[..4].iter().map(|o| (o.reserved(), o.saga_id)).collect())?;
    let late = inbound_all(sagas[4..].iter().map(|o| (o.reserved(), o.saga_id)).collect())?;
    let authorized: Vec<InboundMessage> =
        sagas.iter().rev().map(|o| inbound(&o.authorized(), Some(o.saga_id))).collect::<Result<_, _>>()?;
    let mut first = db.pool.begin().await?;
    handler.handle_batch(&early.iter().collect::<Vec<_>>(), &mut first).await?;
    let second = {
        let (pool, handler) = (db.pool.clone(), handler.clone());
        tokio::spawn(async move { deliver_batch(&pool, &handler, &authorized).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second batch waits for the sagas the first holds");
    handler.handle_batch(&late.iter().collect::<Vec<_>>(), &mut first).await?;
    first.commit().await?;
    second.await??;
    for o in &sagas {
        let (stored, status, _) = saga(&db.pool, o.saga_id).await?;
        assert_eq!((status.as_str(), stored.version), ("COMMITTING_INVENTORY", 3), "both replies applied");
    }
    Ok(())
}
