//! Benchmark `saga`: the whole order saga at increasing offered load, on the
//! real broker and PostgreSQL (testkit containers).
//!
//! ```text
//! cargo run --release -p bench -- saga [--loads 20,50,100,0] [--orders 600] [--partitions 6]
//! ```
//!
//! Everything runs in this process, wired as the binaries wire it: the four
//! outbox relays, the inventory and payment consumers, the order service's
//! verdict consumer and the orchestrator (consumer and sweeper), each on
//! its own database of one PostgreSQL server. Orders are placed with
//! `order_service::store::place_order` (the `POST /orders` transaction,
//! without HTTP), each one unit of a well-stocked SKU (`--skus` of them,
//! round robin) below the payment limit, so every saga takes the longest path: reserve, authorize, commit,
//! approve. `--loads` are offered rates in orders/s; `0` places them as fast
//! as `--clients` concurrent clients can.
//!
//! Per load: completed sagas/s (from the first order's creation to the last
//! verdict), p50/p99 saga latency (the order row's `updated_at -
//! created_at`), SQL statements per saga (`pg_stat_statements` over every
//! database, the benchmark's own probes excluded), and CPU ms per saga of
//! the whole machine (`/proc/stat`: this process, PostgreSQL and Kafka
//! together, as they share the two cores).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use consumers::{Consumer, ConsumerConfig};
use events::messages::order::OrderLine;
use order_service::request::ValidOrder;
use outbox::{OutboxRelay, RelayConfig};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::table::Table;

// The benchmark's own statements start with `/* bench-probe */`, so that
// they are not counted.

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Offered loads in orders/s, comma-separated; 0 = as fast as the clients go.
    #[arg(long, value_delimiter = ',', default_value = "20,50,100,0")]
    loads: Vec<u32>,
    /// Orders per load.
    #[arg(long, default_value_t = 600)]
    orders: usize,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Distinct SKUs the orders spread over (round robin). 1 puts every
    /// order on one stock row: a flash sale, where the row lock serialises
    /// the inventory service.
    #[arg(long, default_value_t = 64)]
    skus: usize,
    /// Concurrent clients of the `0` load.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Statements listed at the end (the most frequent at the last load).
    #[arg(long, default_value_t = 25)]
    top: i64,
    /// Longest wait for one load's sagas to end.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// The system's four databases.
struct Databases {
    orders: PgPool,
    inventory: PgPool,
    payment: PgPool,
    orchestrator: PgPool,
}

impl Databases {
    fn all(&self) -> [(&'static str, &PgPool); 4] {
        [
            ("orders", &self.orders),
            ("inventory", &self.inventory),
            ("payment", &self.payment),
            ("orchestrator", &self.orchestrator),
        ]
    }
}

/// What one load measured.
struct Measured {
    offered: u32,
    completed: usize,
    approved: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    statements_per_saga: f64,
    cpu_ms_per_saga: f64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.orders >= 10 && !args.loads.is_empty(), "nothing to measure");
    eprintln!("starting broker and postgres containers...");
    let env = testkit::Environment::start().await.context("start containers")?;
    env.broker.create_system_topics(args.partitions).await?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();
    let db = Databases {
        orders: database(&env).await?,
        inventory: database(&env).await?,
        payment: database(&env).await?,
        orchestrator: database(&env).await?,
    };
    order_service::migrate(&db.orders).await?;
    inventory_service::migrate(&db.inventory).await?;
    payment_service::migrate(&db.payment).await?;
    saga_orchestrator::migrate(&db.orchestrator).await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&db.orders).await?;
    let mut conn = db.inventory.acquire().await?;
    let skus: Vec<String> = (0..args.skus.max(1)).map(|i| format!("SKU-BENCH-{i}")).collect();
    let stock: Vec<(String, i64)> = skus.iter().map(|s| (s.clone(), 1_000_000_000)).collect();
    inventory_service::seed::seed_stock(&mut conn, &stock).await?;
    drop(conn);

    let stop = CancellationToken::new();
    let tasks = start_system(&bootstrap, &db, &stop)?;

    eprintln!("warming up...");
    let warm = place(&db.orders, &skus, 20, 0, 4).await?;
    wait_terminal(&db.orders, &warm, Duration::from_secs(180)).await?;

    let mut results = Vec::new();
    let mut top = Vec::new();
    for &offered in &args.loads {
        eprintln!(
            "offered load {}: {} orders...",
            if offered == 0 { "max".into() } else { format!("{offered}/s") },
            args.orders
        );
        sqlx::query("/* bench-probe */ SELECT pg_stat_statements_reset()").execute(&db.orders).await?;
        let cpu_before = busy_cpu_seconds()?;
        let ids = place(&db.orders, &skus, args.orders, offered, args.clients).await?;
        wait_terminal(&db.orders, &ids, Duration::from_secs(args.timeout_secs)).await?;
        let cpu = busy_cpu_seconds()? - cpu_before;
        results.push(measure(&db, offered, &ids, cpu).await?);
        top = top_statements(&db.orders, ids.len(), args.top).await?;
    }
    stop.cancel();
    for t in tasks {
        t.await.context("a system task panicked")??;
    }

    println!();
    println!(
        "saga: {} orders per load over {} SKUs, the longest path (reserve, authorize, commit, approve), {} partitions, broker {}",
        args.orders,
        args.skus,
        args.partitions,
        env.broker.image().full()
    );
    let mut table = Table::new([
        "offered",
        "completed",
        "approved",
        "sagas/s",
        "p50",
        "p99",
        "SQL statements/saga",
        "CPU ms/saga (machine)",
    ]);
    for m in &results {
        table.row(vec![
            if m.offered == 0 { "max".into() } else { format!("{}/s", m.offered) },
            m.completed.to_string(),
            m.approved.to_string(),
            format!("{:.1}", m.per_second),
            format!("{:.0} ms", m.p50_ms),
            format!("{:.0} ms", m.p99_ms),
            format!("{:.1}", m.statements_per_saga),
            format!("{:.1}", m.cpu_ms_per_saga),
        ]);
    }
    table.print();
    println!();
    println!("the most frequent statements at the last load, per saga (pg_stat_statements):");
    let mut statements = Table::new(["database", "calls/saga", "ms/saga", "statement"]);
    let mut names = std::collections::HashMap::new();
    for (label, pool) in db.all() {
        let name: String =
            sqlx::query_scalar("/* bench-probe */ SELECT current_database()::text").fetch_one(pool).await?;
        names.insert(name, label);
    }
    for (database, per_saga, ms, query) in top {
        let label = names.get(&database).map_or(database.as_str(), |l| l).to_owned();
        statements.row(vec![label, format!("{per_saga:.2}"), format!("{ms:.3}"), query]);
    }
    statements.print();
    Ok(())
}

/// The `limit` statements called most, per saga: database, calls, total
/// execution ms, the statement (shortened to one line).
async fn top_statements(
    pool: &PgPool,
    sagas: usize,
    limit: i64,
) -> anyhow::Result<Vec<(String, f64, f64, String)>> {
    let rows: Vec<(String, f64, f64, String)> = sqlx::query_as(
        "/* bench-probe */ SELECT d.datname::text, s.calls::float8, s.total_exec_time::float8, s.query \
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE s.query NOT LIKE '%bench-probe%' ORDER BY s.calls DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let n = sagas.max(1) as f64;
    Ok(rows
        .into_iter()
        .map(|(db, calls, ms, q)| {
            let one_line: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = one_line.chars().take(90).collect();
            (db, calls / n, ms / n, short)
        })
        .collect())
}

async fn database(env: &testkit::Environment) -> anyhow::Result<PgPool> {
    let url = env.postgres.fresh_database().await?;
    Ok(PgPoolOptions::new().max_connections(12).connect(&url).await?)
}

fn consumer_config(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        connection: testkit::external::client_properties(),
        ..ConsumerConfig::new(bootstrap, group, &[topic])
    }
}

/// Starts the relays, the consumers and the orchestrator on their own tasks.
fn start_system(
    bootstrap: &str,
    db: &Databases,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
    for (name, pool) in db.all() {
        let config = RelayConfig { relay_id: format!("{name}-relay"), ..Default::default() };
        let relay = OutboxRelay::new(pool.clone(), testkit::external::producer_config(bootstrap), config)?;
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { Ok(relay.run(s).await?) }));
    }
    let inventory = Consumer::new(
        consumer_config(bootstrap, "inventory-service", events::topics::INVENTORY_COMMANDS),
        db.inventory.clone(),
        inventory_service::InventoryHandler,
    )?;
    let payment = Consumer::new(
        consumer_config(bootstrap, "payment-service", events::topics::PAYMENT_COMMANDS),
        db.payment.clone(),
        payment_service::PaymentHandler { max_amount_minor: 1_000_000_000 },
    )?;
    let verdicts = Consumer::new(
        consumer_config(bootstrap, "order-service", events::topics::ORDER_EVENTS),
        db.orders.clone(),
        order_service::outcome::OutcomeHandler,
    )?;
    let mut config = saga_orchestrator::OrchestratorConfig::new(bootstrap, "saga-orchestrator");
    config.consumer.connection = testkit::external::client_properties();
    let orchestrator = saga_orchestrator::Orchestrator::new(db.orchestrator.clone(), config)?;
    let s = stop.clone();
    tasks.push(tokio::spawn(async move { Ok(inventory.run(s).await?) }));
    let s = stop.clone();
    tasks.push(tokio::spawn(async move { Ok(payment.run(s).await?) }));
    let s = stop.clone();
    tasks.push(tokio::spawn(async move { Ok(verdicts.run(s).await?) }));
    let s = stop.clone();
    tasks.push(tokio::spawn(async move { Ok(orchestrator.run(s).await?) }));
    Ok(tasks)
}

fn order(sku: &str) -> ValidOrder {
    ValidOrder {
        customer_id: Uuid::new_v4(),
        currency: "EUR".into(),
        lines: vec![OrderLine { sku: sku.into(), quantity: 1, unit_price_minor: 1_000 }],
        total_minor: 1_000,
        channel: "bench".into(),
    }
}

/// Places `n` orders at `rate` per second (0: `clients` at a time, as fast
/// as they go); returns their ids.
async fn place(
    orders: &PgPool,
    skus: &[String],
    n: usize,
    rate: u32,
    clients: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(n);
    if rate == 0 {
        let per_client = n.div_ceil(clients.max(1));
        let placing = (0..clients.max(1)).map(|c| {
            let pool = orders.clone();
            let count = per_client.min(n.saturating_sub(c * per_client));
            let skus = skus.to_vec();
            tokio::spawn(async move {
                let mut mine = Vec::with_capacity(count);
                for i in 0..count {
                    let sku = &skus[(c * per_client + i) % skus.len()];
                    mine.push(order_service::store::place_order(&pool, order(sku)).await?.order_id);
                }
                anyhow::Ok(mine)
            })
        });
        for placed in futures::future::join_all(placing).await {
            ids.extend(placed.context("a client panicked")??);
        }
        return Ok(ids);
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut placing = Vec::with_capacity(n);
    for i in 0..n {
        tick.tick().await;
        let pool = orders.clone();
        let sku = skus[i % skus.len()].clone();
        placing
            .push(tokio::spawn(async move { order_service::store::place_order(&pool, order(&sku)).await }));
    }
    for p in placing {
        ids.push(p.await.context("a client panicked")??.order_id);
    }
    Ok(ids)
}

/// Waits until no order of `ids` is pending.
async fn wait_terminal(orders: &PgPool, ids: &[Uuid], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending: i64 = sqlx::query_scalar(
            "/* bench-probe */ SELECT count(*) FROM orders WHERE order_id = ANY($1) AND status = 'PENDING'",
        )
        .bind(ids)
        .fetch_one(orders)
        .await?;
        if pending == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{pending} sagas still pending after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(db: &Databases, offered: u32, ids: &[Uuid], cpu_seconds: f64) -> anyhow::Result<Measured> {
    let (span, p50, p99, approved): (f64, f64, f64, i64) = sqlx::query_as(
        "/* bench-probe */ SELECT extract(epoch FROM max(updated_at) - min(created_at))::float8, \
             (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)))::float8, \
             (percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)))::float8, \
             count(*) FILTER (WHERE status = 'APPROVED') \
         FROM orders WHERE order_id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(&db.orders)
    .await?;
    let statements: f64 = sqlx::query_scalar(
        "/* bench-probe */ SELECT coalesce(sum(calls), 0)::float8 FROM pg_stat_statements \
         WHERE query NOT LIKE '%bench-probe%' AND dbid IN \
             (SELECT oid FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1'))",
    )
    .fetch_one(&db.orders)
    .await?;
    let n = ids.len() as f64;
    Ok(Measured {
        offered,
        completed: ids.len(),
        approved: approved as usize,
        per_second: n / span.max(1e-9),
        p50_ms: p50 * 1e3,
        p99_ms: p99 * 1e3,
        statements_per_saga: statements / n,
        cpu_ms_per_saga: cpu_seconds * 1e3 / n,
    })
}

/// Busy CPU time of the whole machine so far (all cores), from `/proc/stat`.
fn busy_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    anyhow::ensure!(fields.len() >= 5, "unexpected /proc/stat line: {line}");
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields[4]; // idle + iowait
    // USER_HZ is 100 on Linux.
    Ok((total - idle) as f64 / 100.0)
}
