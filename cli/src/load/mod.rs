//! `saga load`: the system's main job. Seeds the run's own SKUs, pushes
//! orders at the order service's HTTP API concurrently, waits until every
//! saga has ended, then checks from the services' databases that each
//! order ended as it must (see [`check`]) and prints what happened. Exits 1
//! when an invariant fails, printing the orders that break it.

mod check;
mod facts;
mod plan;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Base URL of the order service.
    #[arg(long, env = "ORDER_URL", default_value = "http://127.0.0.1:8080")]
    order_url: String,
    /// Orders to place.
    #[arg(long, short = 'n', default_value_t = 200)]
    orders: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seed of the order mix (the same seed places the same orders).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Longest wait for every saga to end after the last order, in seconds.
    #[arg(long, default_value_t = 300)]
    wait_secs: u64,
    /// PostgreSQL URL of the order service's database.
    #[arg(long, env = "ORDERS_DATABASE_URL")]
    orders_db: String,
    /// PostgreSQL URL of the inventory service's database (the run seeds its SKUs there).
    #[arg(long, env = "INVENTORY_DATABASE_URL")]
    inventory_db: String,
    /// PostgreSQL URL of the payment service's database.
    #[arg(long, env = "PAYMENT_DATABASE_URL")]
    payment_db: String,
    /// PostgreSQL URL of the orchestrator's database.
    #[arg(long, env = "ORCHESTRATOR_DATABASE_URL")]
    orchestrator_db: String,
    /// Print the summary as one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let dbs = facts::Databases::connect(
        &args.orders_db,
        &args.inventory_db,
        &args.payment_db,
        &args.orchestrator_db,
    )
    .await?;
    let run = Uuid::now_v7().simple().to_string()[20..].to_owned();
    let plan = plan::plan(&run, args.orders, args.seed);
    dbs.seed(&plan.stock).await?;

    let started = Instant::now();
    let ids = place(&args, &plan).await?;
    let placed_in = started.elapsed();
    settle(&dbs, &ids, Duration::from_secs(args.wait_secs), args.json).await?;

    let orders = dbs.orders(&ids).await?;
    let stock = dbs.stock(&plan.stock).await?;
    let summary = report::Summary::new(&run, args.seed, placed_in, &orders, &stock, dbs.timing(&ids).await?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    let failed = summary.invariants.iter().filter(|i| !i.holds).count();
    anyhow::ensure!(failed == 0, "{failed} invariant(s) failed (run {run}, seed {})", args.seed);
    Ok(())
}

/// Places every order of the plan, `concurrency` at a time; a request that
/// fails on the way is sent again with the same `Idempotency-Key`.
async fn place(args: &Args, plan: &plan::Plan) -> anyhow::Result<Vec<Uuid>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let url: Arc<str> = format!("{}/orders", args.order_url.trim_end_matches('/')).into();
    let bar = bar(plan.orders.len() as u64, "placing", args.json);
    let results: Vec<anyhow::Result<Uuid>> = futures::stream::iter(plan.orders.iter().cloned())
        .map(|o| {
            let (client, url, bar) = (client.clone(), url.clone(), bar.clone());
            async move {
                let id = place_one(&client, &url, &o).await;
                bar.inc(1);
                id
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    bar.finish();
    results.into_iter().collect()
}

async fn place_one(client: &reqwest::Client, url: &str, o: &plan::PlannedOrder) -> anyhow::Result<Uuid> {
    let body = serde_json::json!({
        "customer_id": Uuid::now_v7(),
        "currency": "EUR",
        "channel": "load",
        "lines": [{"sku": o.sku, "quantity": o.quantity, "unit_price_minor": o.unit_price_minor}],
    });
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client.post(url).header("Idempotency-Key", o.key.to_string()).json(&body).send().await;
        let error = match sent {
            Ok(resp) if resp.status().is_success() => {
                let answer: serde_json::Value =
                    resp.json().await.context("reading the order service's answer")?;
                let id = answer["order_id"].as_str().with_context(|| format!("no order_id in {answer}"))?;
                return Uuid::parse_str(id).with_context(|| format!("order_id {id:?} is not a UUID"));
            }
            Ok(resp) if resp.status().is_client_error() => {
                let status = resp.status();
                anyhow::bail!(
                    "the order service refused an order ({status}): {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            Ok(resp) => anyhow::anyhow!("HTTP {}", resp.status()),
            Err(e) => anyhow::Error::from(e),
        };
        if attempt >= 5 {
            return Err(error).context(format!("placing an order at {url} failed {attempt} times"));
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
}

/// Waits until no order of the run is PENDING, or `wait` has passed.
async fn settle(dbs: &facts::Databases, ids: &[Uuid], wait: Duration, quiet: bool) -> anyhow::Result<()> {
    let bar = bar(ids.len() as u64, "settled", quiet);
    let deadline = Instant::now() + wait;
    loop {
        let pending = dbs.pending(ids).await?;
        bar.set_position((ids.len() - pending) as u64);
        if pending == 0 || Instant::now() >= deadline {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn bar(len: u64, what: &'static str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}
