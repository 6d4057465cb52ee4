//! The whole system, end to end, against the real broker and real
//! PostgreSQL: four service databases, four outbox relays, the orchestrator,
//! the inventory and payment services and the order service's verdict
//! consumer, all talking only through Kafka. Three orders take the three
//! roads of the saga:
//!
//! 1. stock and payment available → APPROVED, stock committed, payment captured;
//! 2. not enough stock → REJECTED, nothing to compensate;
//! 3. payment declined → stock reserved, then released in compensation →
//!    REJECTED, stock back where it was.
//!
//! With OpenTelemetry installed as in the binaries, every message of the three
//! sagas — in every service's outbox — belongs to the trace of the request
//! that placed the orders.

use std::time::Duration;

use anyhow::Context;
use tracing::Instrument;
use uuid::Uuid;

use super::system::{System, order};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn orders_end_approved_or_rejected_with_compensation() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("saga-end-to-end")?;
    let env = testkit::Environment::start().await?;
    let system = System::start(&env, &[("SKU-A", 10), ("SKU-B", 1)]).await?;
    let (orders, inventory, payment, orchestrator) = (
        system.orders.clone(),
        system.inventory.clone(),
        system.payment.clone(),
        system.orchestrator.clone(),
    );

    // The caller's trace, as an HTTP request would bring it.
    let request = tracing::info_span!("request");
    telemetry::continue_trace(&request, [("traceparent", TRACEPARENT)]);
    let (approved, no_stock, declined) = async {
        anyhow::Ok((
            order_service::store::place_order(&orders, order("SKU-A", 2, 1_000)).await?,
            order_service::store::place_order(&orders, order("SKU-B", 5, 100)).await?,
            order_service::store::place_order(&orders, order("SKU-A", 1, 9_000)).await?,
        ))
    }
    .instrument(request)
    .await?;
    let ids = [approved.order_id, no_stock.order_id, declined.order_id];

    let statuses = system.verdicts(&ids, Duration::from_secs(180)).await?;
    assert_eq!(statuses[0].0, "APPROVED", "{statuses:?}");
    assert_eq!(statuses[1].0, "REJECTED", "{statuses:?}");
    assert!(statuses[1].1.as_deref().unwrap_or("").contains("SKU-B"), "{statuses:?}");
    assert_eq!(statuses[2].0, "REJECTED", "{statuses:?}");
    assert!(statuses[2].1.as_deref().unwrap_or("").contains("declined"), "{statuses:?}");

    // Inventory: order 1's two units are gone for good; order 3's unit was
    // reserved and released again; SKU-B never moved.
    let stock: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT sku, on_hand::bigint, reserved::bigint FROM stock ORDER BY sku")
            .fetch_all(&inventory)
            .await?;
    assert_eq!(stock, vec![("SKU-A".into(), 8, 0), ("SKU-B".into(), 1, 0)]);
    let reservations: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT order_id, status FROM reservations").fetch_all(&inventory).await?;
    let status_of = |id: Uuid| reservations.iter().find(|(o, _)| *o == id).map(|(_, s)| s.as_str());
    assert_eq!(status_of(ids[0]), Some("COMMITTED"));
    assert_eq!(status_of(ids[1]), Some("FAILED"));
    assert_eq!(status_of(ids[2]), Some("RELEASED"));
    // Payment: the approved order captured (charged once), one decline,
    // nothing for the order without stock.
    let payments: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT order_id, status FROM payments").fetch_all(&payment).await?;
    assert_eq!(payments.len(), 2, "{payments:?}");
    assert!(payments.contains(&(ids[0], "CAPTURED".into())), "{payments:?}");
    assert!(payments.contains(&(ids[2], "DECLINED".into())), "{payments:?}");
    // The orchestrator's record agrees.
    let sagas: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT saga_id, status FROM saga").fetch_all(&orchestrator).await?;
    assert_eq!(sagas.len(), 3);
    assert!(sagas.contains(&(ids[0], "APPROVED".into())), "{sagas:?}");

    // One trace across every service: each outbox row carries the request's
    // trace id (with its own span id).
    for (name, pool) in [
        ("orders", &orders),
        ("inventory", &inventory),
        ("payment", &payment),
        ("orchestrator", &orchestrator),
    ] {
        let traces: Vec<Option<String>> =
            sqlx::query_scalar("SELECT traceparent FROM outbox").fetch_all(pool).await?;
        assert!(!traces.is_empty(), "{name} published nothing");
        for t in traces {
            let t = t.unwrap_or_default();
            assert!(
                t.starts_with(&TRACEPARENT[..35]),
                "{name} outbox row outside the request's trace: {t:?}"
            );
        }
    }

    system.stop().await
}

/// Twenty orders at once for the last unit of a SKU, through the whole
/// system with the consumers batching: exactly one is approved, the stock
/// ends at zero with nothing held, and no saga is left pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_orders_for_the_last_unit_approve_exactly_one() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let system = System::start(&env, &[("SKU-LAST", 1)]).await?;
    let placing = (0..20).map(|_| {
        let pool = system.orders.clone();
        tokio::spawn(
            async move { order_service::store::place_order(&pool, order("SKU-LAST", 1, 1_000)).await },
        )
    });
    let mut ids = Vec::new();
    for placed in futures::future::join_all(placing).await {
        ids.push(placed.context("placing panicked")??.order_id);
    }
    let statuses = system.verdicts(&ids, Duration::from_secs(180)).await?;
    let approved = statuses.iter().filter(|(s, _)| s == "APPROVED").count();
    assert_eq!(approved, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .filter(|(s, _)| s != "APPROVED")
            .all(|(s, r)| s == "REJECTED" && r.as_deref().unwrap_or("").contains("SKU-LAST")),
        "the others are rejected for the stock: {statuses:?}"
    );
    let stock: (i64, i64) =
        sqlx::query_as("SELECT on_hand::bigint, reserved::bigint FROM stock WHERE sku = 'SKU-LAST'")
            .fetch_one(&system.inventory)
            .await?;
    assert_eq!(stock, (0, 0), "the unit left, nothing is held");
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'CAPTURED'")
        .fetch_one(&system.payment)
        .await?;
    assert_eq!(payments, 1, "only the approved order was charged");
    system.stop().await
}
