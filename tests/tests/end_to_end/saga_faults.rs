//! The order saga on its bad days, end to end on the real broker and
//! PostgreSQL: the orchestrator down for longer than a step's timeout, a
//! stock commit that keeps failing, a payment that answers after its
//! timeout, and the orchestrator killed (SIGKILL) in the middle of a load.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use saga_orchestrator::{SagaConfig, Step};
use uuid::Uuid;

use super::system::{Setup, System, order};

/// A saga configuration whose first attempts wait `step_timeout`.
fn timing(step_timeout: Duration) -> SagaConfig {
    SagaConfig { step_timeout, max_step_timeout: step_timeout * 2, ..SagaConfig::default() }
}

async fn place(
    system: &System,
    orders: impl IntoIterator<Item = (&str, i32, i64)>,
) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    for (sku, quantity, price) in orders {
        ids.push(
            order_service::store::place_order(&system.orders, order(sku, quantity, price)).await?.order_id,
        );
    }
    Ok(ids)
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Replies that reached Kafka while the orchestrator was down win over the
/// deadlines that passed meanwhile: every saga whose participants said yes
/// is approved, none timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_that_reached_kafka_while_the_orchestrator_was_down_beat_the_passed_deadlines()
-> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let saga = timing(Duration::from_secs(3));
    let mut system =
        System::start_with(&env, &[("SKU-UP", 100)], Setup { saga: saga.clone(), orchestrator: true })
            .await?;
    let ids = place(&system, (0..8).map(|_| ("SKU-UP", 1, 1_000))).await?;
    // Down as soon as every saga has sent its first command.
    system.wait_for_sagas("all sagas started", Duration::from_secs(60), |s| s.len() == ids.len()).await?;
    system.stop_orchestrator().await?;
    let stopped_at = tokio::time::Instant::now();

    // The participants answer meanwhile; the replies wait in Kafka.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(&system.inventory, "SELECT count(*) FROM reservations WHERE status = 'RESERVED'").await?
        < ids.len() as i64
    {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "inventory did not reserve");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every deadline passes while it is down.
    tokio::time::sleep_until(stopped_at + saga.max_step_timeout + Duration::from_secs(2)).await;
    let waiting = count(&system.orchestrator, "SELECT count(*) FROM saga WHERE deadline > now()").await?;
    assert_eq!(waiting, 0, "every saga is overdue when the orchestrator comes back");

    system.start_orchestrator(saga)?;
    let verdicts = system.verdicts(&ids, Duration::from_secs(120)).await?;
    assert!(verdicts.iter().all(|(s, _)| s == "APPROVED"), "every yes-saga is approved: {verdicts:?}");
    let captured = count(&system.payment, "SELECT count(*) FROM payments WHERE status = 'CAPTURED'").await?;
    assert_eq!(captured, ids.len() as i64, "and charged once");
    let released =
        count(&system.inventory, "SELECT count(*) FROM reservations WHERE status = 'RELEASED'").await?;
    assert_eq!(released, 0, "nothing was compensated");
    system.stop().await
}

/// A stock commit that keeps failing stops the saga in COMPLETION_FAILED
/// after its attempts (never compensated: the payment stays authorized),
/// and `resume` carries it to approval once the fault is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_keeps_failing_stops_visibly_and_resumes_after_the_fix() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let saga = SagaConfig { retry_attempts: 2, ..timing(Duration::from_secs(2)) };
    let system =
        System::start_with(&env, &[("SKU-C", 5)], Setup { saga: saga.clone(), orchestrator: true }).await?;
    // The fault: inventory refuses every commit (a permanent error, so each
    // CommitInventory goes to the dead-letter topic and no reply comes).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$;
         CREATE TRIGGER refuse_commit BEFORE UPDATE ON reservations FOR EACH ROW
           WHEN (NEW.status = 'COMMITTED') EXECUTE FUNCTION refuse_commit();",
    )
    .execute(&system.inventory)
    .await?;
    let ids = place(&system, [("SKU-C", 2, 1_000)]).await?;
    let id = ids[0];
    system
        .wait_for_sagas("the saga stops", Duration::from_secs(90), |s| {
            s.iter().any(|(_, status)| status == "COMPLETION_FAILED")
        })
        .await?;
    let state: serde_json::Value = sqlx::query_scalar("SELECT state FROM saga WHERE saga_id = $1")
        .bind(id)
        .fetch_one(&system.orchestrator)
        .await?;
    assert_eq!(state["step"], "COMMIT_INVENTORY", "{state}");
    assert!(state["failure"].as_str().unwrap_or("").contains("after 2 attempts"), "{state}");
    let payment = system.payment_status(id).await?;
    assert_eq!(
        payment.as_deref(),
        Some("AUTHORIZED"),
        "past the pivot nothing is voided, nothing captured yet"
    );
    let view = order_service::store::get_order(&system.orders, id).await?.context("the order vanished")?;
    assert_eq!(view.status, "PENDING", "a stopped saga has no verdict yet");

    // The fix, then the operator's resume.
    sqlx::raw_sql("DROP TRIGGER refuse_commit ON reservations").execute(&system.inventory).await?;
    let resumed = saga_orchestrator::resume(&system.orchestrator, id, &saga).await?;
    assert_eq!(resumed.status, "COMMITTING_INVENTORY");
    let verdicts = system.verdicts(&ids, Duration::from_secs(60)).await?;
    assert_eq!(verdicts[0].0, "APPROVED", "{verdicts:?}");
    let payment = system.payment_status(id).await?;
    assert_eq!(payment.as_deref(), Some("CAPTURED"));
    let stock = system.stock("SKU-C").await?;
    assert_eq!(stock, (3, 0), "two units left once");
    system.stop().await
}

/// A payment that answers after its step's timeout: the saga has already
/// compensated (the late authorization is voided, the stock released) and
/// the late yes never brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_after_the_timeout_is_compensated_and_never_resurrects_the_saga() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let saga = SagaConfig {
        step_timeouts: BTreeMap::from([(Step::AuthorizePayment, Duration::from_secs(2))]),
        ..timing(Duration::from_secs(30))
    };
    let system =
        System::start_with(&env, &[("SKU-L", 5)], Setup { saga: saga.clone(), orchestrator: true }).await?;
    // The fault: the payment provider takes 6 s to authorize.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_payment() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(6); RETURN NEW; END $$;
         CREATE TRIGGER slow_payment BEFORE INSERT ON payments FOR EACH ROW EXECUTE FUNCTION slow_payment();",
    )
    .execute(&system.payment)
    .await?;
    let ids = place(&system, [("SKU-L", 1, 1_000)]).await?;
    let verdicts = system.verdicts(&ids, Duration::from_secs(90)).await?;
    assert_eq!(verdicts[0].0, "REJECTED", "{verdicts:?}");
    assert!(verdicts[0].1.as_deref().unwrap_or("").contains("no reply to"), "{verdicts:?}");

    // The late authorization arrives, and is voided by the compensation
    // that followed it on the same key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = system.payment_status(ids[0]).await?;
        if status.as_deref() == Some("VOIDED") {
            break;
        }
        assert_ne!(status.as_deref(), Some("CAPTURED"), "a rejected order was charged");
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "payment {status:?}, never voided");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let every late reply reach the orchestrator, then look again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(system.sagas().await?, vec![(ids[0], "REJECTED".to_owned())]);
    assert_eq!(system.verdicts(&ids, Duration::ZERO).await?[0].0, "REJECTED");
    let stock = system.stock("SKU-L").await?;
    assert_eq!(stock, (5, 0), "the reservation was released");
    system.stop().await
}

/// The orchestrator binary killed (SIGKILL) while orders flow, then started
/// again: every saga ends, approved ones charged and their stock committed,
/// rejected ones holding and charging nothing, stock conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrator_killed_mid_saga_under_load_ends_every_saga() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let stock = [("SKU-K1", 30), ("SKU-K2", 4)];
    let system = System::start_with(&env, &stock, Setup { orchestrator: false, ..Setup::default() }).await?;
    let mut orchestrator = system.orchestrator_process(&[("STEP_TIMEOUT_MS", "10000")])?;

    // 40 orders: some short of stock (SKU-K2), some declined (over 5,000).
    let orders: Vec<(&str, i32, i64)> = (0..40)
        .map(|i| match i % 4 {
            0 => ("SKU-K2", 1, 700),
            1 => ("SKU-K1", 1, 6_000),
            _ => ("SKU-K1", 1 + i % 2, 900),
        })
        .collect();
    let placing = {
        let pool = system.orders.clone();
        let orders = orders.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for (sku, quantity, price) in orders {
                ids.push(
                    order_service::store::place_order(&pool, order(sku, quantity, price)).await?.order_id,
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            anyhow::Ok(ids)
        })
    };
    // Kill it once a third of the sagas have started, while they run.
    system.wait_for_sagas("sagas under way", Duration::from_secs(90), |s| s.len() >= 12).await?;
    orchestrator.kill9()?;
    let ids = placing.await.context("placing panicked")??;
    tokio::time::sleep(Duration::from_secs(1)).await;
    orchestrator.restart()?;

    let verdicts = system.verdicts(&ids, Duration::from_secs(180)).await?;
    let sagas = system
        .wait_for_sagas("every saga terminal", Duration::from_secs(30), |s| {
            s.len() == ids.len() && s.iter().all(|(_, st)| st == "APPROVED" || st == "REJECTED")
        })
        .await?;
    let payments: BTreeMap<Uuid, String> = sqlx::query_as("SELECT order_id, status FROM payments")
        .fetch_all(&system.payment)
        .await?
        .into_iter()
        .collect();
    let reservations: BTreeMap<Uuid, String> = sqlx::query_as("SELECT order_id, status FROM reservations")
        .fetch_all(&system.inventory)
        .await?
        .into_iter()
        .collect();
    let mut committed: BTreeMap<&str, i64> = BTreeMap::new();
    for ((id, (status, reason)), (sku, quantity, _)) in ids.iter().zip(&verdicts).zip(&orders) {
        let saga = sagas.iter().find(|(s, _)| s == id).map(|(_, st)| st.as_str());
        assert_eq!(saga, Some(status.as_str()), "order {id} and its saga agree");
        let paid = payments.get(id).map(String::as_str);
        let held = reservations.get(id).map(String::as_str);
        match status.as_str() {
            "APPROVED" => {
                assert_eq!(paid, Some("CAPTURED"), "approved order {id} is charged");
                assert_eq!(held, Some("COMMITTED"), "approved order {id} took its stock");
                *committed.entry(sku).or_default() += i64::from(*quantity);
            }
            _ => {
                assert_ne!(paid, Some("CAPTURED"), "rejected order {id} ({reason:?}) was charged");
                assert_ne!(paid, Some("AUTHORIZED"), "rejected order {id} ({reason:?}) holds a payment");
                assert!(
                    matches!(held, None | Some("FAILED") | Some("RELEASED")),
                    "rejected order {id} ({reason:?}) holds stock: {held:?}"
                );
            }
        }
    }
    for (sku, initial) in stock {
        let (on_hand, reserved) = system.stock(sku).await?;
        assert_eq!(reserved, 0, "{sku}: nothing held");
        assert_eq!(on_hand, initial - committed.get(sku).copied().unwrap_or(0), "{sku}: stock conserved");
    }
    let approved = verdicts.iter().filter(|(s, _)| s == "APPROVED").count();
    assert!(approved > 0 && approved < ids.len(), "both roads taken: {verdicts:?}");
    drop(orchestrator);
    system.stop().await
}
