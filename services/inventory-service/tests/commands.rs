//! The inventory handler against a real PostgreSQL (no broker): each command
//! is handed to [`InventoryHandler`] as the consumer runtime would, inside a
//! transaction; the tests check the stock and reservation rows and the reply
//! written to the outbox in the same transaction.
//!
//! One PostgreSQL container per test binary would outlive the tests (a static
//! is never dropped), so each test starts its own and uses a fresh database.

use anyhow::{Context, anyhow, bail, ensure};
use chrono::Utc;
use consumers::{Handler, HandlerError, InboundMessage};
use events::messages::inventory::{
    CommitInventory, InventoryCommitted, InventoryReleased, InventoryReservationFailed, InventoryReserved,
    ReleaseInventory, ReserveInventory, StockLine,
};
use events::{Envelope, Message};
use inventory_service::InventoryHandler;
use inventory_service::stock::{self, StockLevel};
use sqlx::{PgPool, Row};
use testkit::handler::{TRACEPARENT, handle_once, inbound};
use uuid::Uuid;

/// A fresh, migrated database on its own server, seeded with `stock`.
async fn setup(stock: &[(&str, i64)]) -> anyhow::Result<(testkit::Postgres, PgPool)> {
    let pg = testkit::Postgres::start().await?;
    let pool = PgPool::connect(&pg.fresh_database().await?).await?;
    inventory_service::migrate(&pool).await?;
    let seed: Vec<(String, i64)> = stock.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect();
    inventory_service::seed::seed_stock(&mut *pool.acquire().await?, &seed).await?;
    Ok((pg, pool))
}

/// Handles `m` in its own transaction; commits on success, rolls back on error.
async fn handle(pool: &PgPool, m: &InboundMessage) -> anyhow::Result<Result<(), HandlerError>> {
    Ok(handle_once(pool, &InventoryHandler, m).await?)
}

/// Handles `m` and fails the test on a handler error.
async fn apply(pool: &PgPool, m: &InboundMessage) -> anyhow::Result<()> {
    handle(pool, m).await?.map_err(|e| anyhow!("handler failed: {e}"))
}

/// The outbox rows, oldest first, as (envelope, topic, payload).
async fn outbox(pool: &PgPool) -> anyhow::Result<Vec<(Envelope, String, Vec<u8>)>> {
    let rows = sqlx::query("SELECT topic, header_names, header_values, payload FROM outbox ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let names: Vec<String> = r.try_get("header_names")?;
            let values: Vec<String> = r.try_get("header_values")?;
            let env = Envelope::from_headers(
                names.iter().map(String::as_str).zip(values.iter().map(|v| v.as_bytes())),
            )?;
            Ok((env, r.try_get("topic")?, r.try_get("payload")?))
        })
        .collect()
}

/// The last reply: checks it answers `command` (topic, correlation,
/// causation, trace) and is a `M`, and decodes it.
async fn last_reply<M: Message>(pool: &PgPool, command: &InboundMessage) -> anyhow::Result<M> {
    let (env, topic, payload) = outbox(pool).await?.pop().context("no outbox row")?;
    ensure!(env.message_type == M::NAME, "reply is {}, expected {}", env.message_type, M::NAME);
    ensure!(topic == events::topics::INVENTORY_REPLIES, "reply on {topic}");
    ensure!(env.correlation_id == command.envelope.correlation_id, "reply not correlated with the saga");
    ensure!(env.causation_id == Some(command.envelope.event_id), "reply not caused by the command");
    ensure!(env.traceparent.as_deref() == Some(TRACEPARENT), "reply lost the trace: {:?}", env.traceparent);
    Ok(events::decode(&payload)?)
}

async fn level(pool: &PgPool, sku: &str) -> anyhow::Result<(i64, i64)> {
    let l: StockLevel =
        stock::stock_level(&mut *pool.acquire().await?, sku).await?.context("no stock row")?;
    Ok((l.on_hand, l.reserved))
}

async fn status(pool: &PgPool, order_id: Uuid) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?)
}

fn lines(l: &[(&str, i32)]) -> Vec<StockLine> {
    l.iter().map(|(sku, quantity)| StockLine { sku: (*sku).to_owned(), quantity: *quantity }).collect()
}

fn reserve(order_id: Uuid, l: &[(&str, i32)]) -> ReserveInventory {
    ReserveInventory { order_id, lines: lines(l), requested_at: Utc::now() }
}

fn release(order_id: Uuid) -> ReleaseInventory {
    ReleaseInventory { order_id, reason: "payment declined".into(), requested_at: Utc::now() }
}

fn commit(order_id: Uuid) -> CommitInventory {
    CommitInventory { order_id, requested_at: Utc::now() }
}

#[tokio::test]
async fn reserve_holds_every_line_and_replies_reserved() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 5), ("PEN-2", 3)]).await?;
    let order = Uuid::now_v7();
    let cmd = inbound(&reserve(order, &[("BOOK-1", 2), ("PEN-2", 1), ("BOOK-1", 1)]), Uuid::now_v7())?;
    apply(&pool, &cmd).await?;

    assert_eq!(level(&pool, "BOOK-1").await?, (5, 3), "repeated SKU lines add up");
    assert_eq!(level(&pool, "PEN-2").await?, (3, 1));
    assert_eq!(status(&pool, order).await?.as_deref(), Some("RESERVED"));
    let reply: InventoryReserved = last_reply(&pool, &cmd).await?;
    assert_eq!(reply.order_id, order);
    assert_eq!(reply.lines, lines(&[("BOOK-1", 2), ("PEN-2", 1), ("BOOK-1", 1)]));
    let (env, _, _) = outbox(&pool).await?.pop().context("no outbox row")?;
    assert_eq!(env.aggregate_id, order.to_string(), "the reply is keyed by the order");
    Ok(())
}

#[tokio::test]
async fn insufficient_or_unknown_stock_reserves_nothing_and_replies_failed() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 5), ("PEN-2", 1)]).await?;
    let order = Uuid::now_v7();
    let cmd = inbound(&reserve(order, &[("BOOK-1", 2), ("PEN-2", 2), ("GHOST-9", 1)]), Uuid::now_v7())?;
    apply(&pool, &cmd).await?;

    assert_eq!(level(&pool, "BOOK-1").await?, (5, 0), "all or nothing: the available SKU is not held either");
    assert_eq!(level(&pool, "PEN-2").await?, (1, 0));
    assert_eq!(status(&pool, order).await?.as_deref(), Some("FAILED"));
    let reply: InventoryReservationFailed = last_reply(&pool, &cmd).await?;
    assert_eq!(reply.unavailable_skus, vec!["GHOST-9".to_owned(), "PEN-2".to_owned()]);
    assert!(reply.reason.contains("insufficient stock"), "{}", reply.reason);

    // A malformed command is refused the same way, so the saga compensates.
    let bad = inbound(&reserve(Uuid::now_v7(), &[("BOOK-1", 0)]), Uuid::now_v7())?;
    apply(&pool, &bad).await?;
    let reply: InventoryReservationFailed = last_reply(&pool, &bad).await?;
    assert!(reply.reason.contains("quantity 0"), "{}", reply.reason);
    assert_eq!(level(&pool, "BOOK-1").await?, (5, 0));
    Ok(())
}

#[tokio::test]
async fn a_repeated_reserve_gets_the_same_reply_and_holds_once() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 5)]).await?;
    let (order, saga) = (Uuid::now_v7(), Uuid::now_v7());
    let first = inbound(&reserve(order, &[("BOOK-1", 2)]), saga)?;
    apply(&pool, &first).await?;
    let first_reply: InventoryReserved = last_reply(&pool, &first).await?;
    // The orchestrator re-sends the command: same order, new event id.
    let again = inbound(&reserve(order, &[("BOOK-1", 2)]), saga)?;
    apply(&pool, &again).await?;
    let again_reply: InventoryReserved = last_reply(&pool, &again).await?;
    assert_eq!(again_reply, first_reply, "the same reply, timestamp included");
    assert_eq!(level(&pool, "BOOK-1").await?, (5, 2), "held once");

    // The same holds for a refusal.
    let short = Uuid::now_v7();
    let first = inbound(&reserve(short, &[("BOOK-1", 4)]), saga)?;
    apply(&pool, &first).await?;
    let first_reply: InventoryReservationFailed = last_reply(&pool, &first).await?;
    let again = inbound(&reserve(short, &[("BOOK-1", 4)]), saga)?;
    apply(&pool, &again).await?;
    assert_eq!(last_reply::<InventoryReservationFailed>(&pool, &again).await?, first_reply);
    assert_eq!(outbox(&pool).await?.len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_release_before_its_reserve_leaves_a_tombstone_that_refuses_the_reserve() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 5)]).await?;
    let (order, saga) = (Uuid::now_v7(), Uuid::now_v7());
    let rel = inbound(&release(order), saga)?;
    apply(&pool, &rel).await?;
    let reply: InventoryReleased = last_reply(&pool, &rel).await?;
    assert_eq!(reply.order_id, order);
    assert_eq!(status(&pool, order).await?.as_deref(), Some("RELEASED"));

    let late = inbound(&reserve(order, &[("BOOK-1", 2)]), saga)?;
    apply(&pool, &late).await?;
    let reply: InventoryReservationFailed = last_reply(&pool, &late).await?;
    assert_eq!(reply.reason, inventory_service::handler::RELEASED_BEFORE_RESERVE);
    assert_eq!(level(&pool, "BOOK-1").await?, (5, 0), "the late reserve holds nothing");
    assert_eq!(status(&pool, order).await?.as_deref(), Some("RELEASED"));
    Ok(())
}

#[tokio::test]
async fn two_orders_racing_for_the_last_unit_one_wins() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("LAST-1", 1)]).await?;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let (cmd_a, cmd_b) =
        (inbound(&reserve(a, &[("LAST-1", 1)]), a)?, inbound(&reserve(b, &[("LAST-1", 1)]), b)?);

    // A has reserved but not committed; B must wait for A's row lock, then
    // see A's reservation.
    let mut tx_a = pool.begin().await?;
    InventoryHandler.handle(&cmd_a, &mut tx_a).await.map_err(|e| anyhow!("{e}"))?;
    let racer = {
        let pool = pool.clone();
        tokio::spawn(async move { handle(&pool, &cmd_b).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    ensure!(!racer.is_finished(), "B did not wait for A's lock on the stock row");
    tx_a.commit().await?;
    racer.await??.map_err(|e| anyhow!("{e}"))?;

    assert_eq!(status(&pool, a).await?.as_deref(), Some("RESERVED"));
    assert_eq!(status(&pool, b).await?.as_deref(), Some("FAILED"));
    assert_eq!(level(&pool, "LAST-1").await?, (1, 1));

    // And without staging: rounds of two fully concurrent transactions.
    for round in 0..10 {
        let sku = format!("RACE-{round}");
        inventory_service::seed::seed_stock(&mut *pool.acquire().await?, &[(sku.clone(), 1)]).await?;
        let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
        let (mx, my) = (inbound(&reserve(x, &[(&sku, 1)]), x)?, inbound(&reserve(y, &[(&sku, 1)]), y)?);
        let (rx, ry) = tokio::join!(handle(&pool, &mx), handle(&pool, &my));
        rx?.map_err(|e| anyhow!("{e}"))?;
        ry?.map_err(|e| anyhow!("{e}"))?;
        let mut outcomes = vec![status(&pool, x).await?, status(&pool, y).await?];
        outcomes.sort();
        ensure!(
            outcomes == [Some("FAILED".to_owned()), Some("RESERVED".to_owned())],
            "round {round}: {outcomes:?}"
        );
        assert_eq!(level(&pool, &sku).await?, (1, 1), "round {round}");
    }
    Ok(())
}

#[tokio::test]
async fn a_release_gives_back_exactly_its_own_delta() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 10)]).await?;
    let (ours, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    apply(&pool, &inbound(&reserve(ours, &[("BOOK-1", 3)]), ours)?).await?;
    // Another saga reserves the same SKU between our reserve and our release.
    apply(&pool, &inbound(&reserve(theirs, &[("BOOK-1", 4)]), theirs)?).await?;
    assert_eq!(level(&pool, "BOOK-1").await?, (10, 7));

    let rel = inbound(&release(ours), ours)?;
    apply(&pool, &rel).await?;
    last_reply::<InventoryReleased>(&pool, &rel).await?;
    assert_eq!(level(&pool, "BOOK-1").await?, (10, 4), "the other order's 4 units stay held");
    assert_eq!(status(&pool, ours).await?.as_deref(), Some("RELEASED"));
    assert_eq!(status(&pool, theirs).await?.as_deref(), Some("RESERVED"));

    // A repeated release changes nothing and still answers.
    let again = inbound(&release(ours), ours)?;
    apply(&pool, &again).await?;
    last_reply::<InventoryReleased>(&pool, &again).await?;
    assert_eq!(level(&pool, "BOOK-1").await?, (10, 4));
    Ok(())
}

#[tokio::test]
async fn commit_takes_the_stock_for_good_once() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 10)]).await?;
    let order = Uuid::now_v7();
    apply(&pool, &inbound(&reserve(order, &[("BOOK-1", 3)]), order)?).await?;
    let cmd = inbound(&commit(order), order)?;
    apply(&pool, &cmd).await?;
    let reply: InventoryCommitted = last_reply(&pool, &cmd).await?;
    assert_eq!(reply.order_id, order);
    assert_eq!(level(&pool, "BOOK-1").await?, (7, 0));
    assert_eq!(status(&pool, order).await?.as_deref(), Some("COMMITTED"));

    // Repeated commit: no change, same answer. A late release: no change.
    let again = inbound(&commit(order), order)?;
    apply(&pool, &again).await?;
    last_reply::<InventoryCommitted>(&pool, &again).await?;
    let late = inbound(&release(order), order)?;
    apply(&pool, &late).await?;
    last_reply::<InventoryReleased>(&pool, &late).await?;
    assert_eq!(level(&pool, "BOOK-1").await?, (7, 0));
    assert_eq!(status(&pool, order).await?.as_deref(), Some("COMMITTED"));

    // Committing what was never reserved, or was released, is a saga bug.
    let rows_before = outbox(&pool).await?.len();
    for cmd in [inbound(&commit(Uuid::now_v7()), order)?, {
        let released = Uuid::now_v7();
        apply(&pool, &inbound(&release(released), released)?).await?;
        inbound(&commit(released), released)?
    }] {
        let rows = outbox(&pool).await?.len();
        match handle(&pool, &cmd).await? {
            Err(HandlerError::Permanent(reason)) => ensure!(reason.contains("cannot commit"), "{reason}"),
            other => bail!("expected a permanent error, got {other:?}"),
        }
        assert_eq!(outbox(&pool).await?.len(), rows, "no reply for a failed commit");
    }
    assert_eq!(outbox(&pool).await?.len(), rows_before + 1, "only the release's reply was added");
    Ok(())
}

#[tokio::test]
async fn unknown_message_types_are_permanent_errors() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[]).await?;
    let order = Uuid::now_v7();
    let foreign = events::messages::payment::VoidPayment {
        order_id: order,
        reason: "x".into(),
        requested_at: Utc::now(),
    };
    match handle(&pool, &inbound(&foreign, order)?).await? {
        Err(HandlerError::Permanent(reason)) => ensure!(reason.contains("unknown message type"), "{reason}"),
        other => bail!("expected a permanent error, got {other:?}"),
    }
    ensure!(outbox(&pool).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn seeding_creates_missing_skus_and_keeps_existing_levels() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 5)]).await?;
    let order = Uuid::now_v7();
    apply(&pool, &inbound(&reserve(order, &[("BOOK-1", 2)]), order)?).await?;
    apply(&pool, &inbound(&commit(order), order)?).await?;
    let seed: inventory_service::seed::SeedStock = "BOOK-1=5, PEN-2=7, PEN-2=9".parse()?;
    let inserted = inventory_service::seed::seed_stock(&mut *pool.acquire().await?, &seed.0).await?;
    assert_eq!(inserted, 1);
    assert_eq!(level(&pool, "BOOK-1").await?, (3, 0), "a restart with the same seed keeps the sale");
    assert_eq!(level(&pool, "PEN-2").await?, (7, 0), "a repeated SKU takes its first quantity");
    Ok(())
}

#[tokio::test]
async fn a_release_racing_its_reserve_leaves_nothing_held_either_way() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 100)]).await?;
    for round in 0..10 {
        let order = Uuid::now_v7();
        let (res, rel) =
            (inbound(&reserve(order, &[("BOOK-1", 2)]), order)?, inbound(&release(order), order)?);
        let (r1, r2) = tokio::join!(handle(&pool, &res), handle(&pool, &rel));
        r1?.map_err(|e| anyhow!("round {round}: reserve failed: {e}"))?;
        r2?.map_err(|e| anyhow!("round {round}: release failed: {e}"))?;
        assert_eq!(status(&pool, order).await?.as_deref(), Some("RELEASED"), "round {round}");
        assert_eq!(level(&pool, "BOOK-1").await?, (100, 0), "round {round}: nothing stays held");
    }
    Ok(())
}

/// Handles `messages` as one batch, in one transaction, and commits.
async fn apply_batch(pool: &PgPool, messages: &[InboundMessage]) -> anyhow::Result<()> {
    let refs: Vec<&InboundMessage> = messages.iter().collect();
    let mut tx = pool.begin().await?;
    InventoryHandler.handle_batch(&refs, &mut tx).await.map_err(|e| anyhow!("batch failed: {e}"))?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_batch_of_commands_ends_as_the_same_commands_one_by_one() -> anyhow::Result<()> {
    let (_pg, pool) = setup(&[("BOOK-1", 10), ("PEN-2", 10), ("INK-3", 1)]).await?;
    let (a, b, c, d) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    apply(&pool, &inbound(&reserve(a, &[("BOOK-1", 2)]), a)?).await?;
    apply(&pool, &inbound(&reserve(b, &[("PEN-2", 3), ("BOOK-1", 1)]), b)?).await?;
    // One batch: commit a, release b, reserve c (gets the last INK-3),
    // reserve d (none left), and a repeated reserve of c.
    apply_batch(
        &pool,
        &[
            inbound(&commit(a), a)?,
            inbound(&release(b), b)?,
            inbound(&reserve(c, &[("INK-3", 1), ("PEN-2", 1)]), c)?,
            inbound(&reserve(d, &[("INK-3", 1)]), d)?,
            inbound(&reserve(c, &[("INK-3", 1), ("PEN-2", 1)]), c)?,
        ],
    )
    .await?;
    assert_eq!(level(&pool, "BOOK-1").await?, (8, 0), "a's two units left, b's one came back");
    assert_eq!(level(&pool, "PEN-2").await?, (10, 1), "b's three back, c holds one");
    assert_eq!(level(&pool, "INK-3").await?, (1, 1), "c holds the last unit, once");
    let statuses =
        [status(&pool, a).await?, status(&pool, b).await?, status(&pool, c).await?, status(&pool, d).await?];
    assert_eq!(statuses.map(|s| s.unwrap_or_default()), ["COMMITTED", "RELEASED", "RESERVED", "FAILED"]);
    let replies: Vec<String> = outbox(&pool).await?.into_iter().map(|(e, _, _)| e.message_type).collect();
    assert_eq!(replies.len(), 2 + 5, "one reply per command, the repeated reserve included");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_sharing_skus_never_deadlock() -> anyhow::Result<()> {
    let skus: Vec<String> = (0..6).map(|i| format!("SKU-{i}")).collect();
    let seed: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 100)).collect();
    let (_pg, pool) = setup(&seed).await?;
    // Two partitions' batches at once, round after round: each reserves the
    // six SKUs, one new order per SKU, one batch in SKU order and the other
    // in reverse. Locking in
    // message order, each would hold half and wait for the other half.
    let batch = |order: Vec<&String>| -> anyhow::Result<Vec<InboundMessage>> {
        order
            .into_iter()
            .map(|s| {
                let o = Uuid::now_v7();
                inbound(&reserve(o, &[(s.as_str(), 1)]), o).map_err(Into::into)
            })
            .collect()
    };
    let rounds = 20;
    for _ in 0..rounds {
        let (p1, p2) = (pool.clone(), pool.clone());
        let (f, b) = (batch(skus.iter().collect())?, batch(skus.iter().rev().collect())?);
        let one = tokio::spawn(async move { apply_batch(&p1, &f).await });
        let two = tokio::spawn(async move { apply_batch(&p2, &b).await });
        one.await??;
        two.await??;
    }
    for s in &skus {
        assert_eq!(level(&pool, s).await?, (100, 2 * rounds), "every order of every batch reserved its unit");
    }
    Ok(())
}
