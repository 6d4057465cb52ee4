//! Benchmark `inbox`: how fast the consumer runtime applies events with the
//! inbox (exactly-once effects), against what the broker delivers and what
//! PostgreSQL commits on the same machine — one run, one broker, one
//! PostgreSQL (testkit containers).
//!
//! ```text
//! cargo run --release -p bench -- inbox [--events 20000] [--partitions 4] [--batch 64] [--rounds 2]
//! ```
//!
//! `--events` records are produced once to a topic of `--partitions`
//! partitions; every runtime run is a new consumer group reading them all.
//! The handler does one `INSERT` per event in the runtime's transaction.
//! Modes, alternating inside each round:
//!
//! * `fetch only` — a bare rdkafka consumer, no database: the broker's side;
//! * `pg loop, 1/tx` — the ceiling: `BEGIN`, the inbox insert, the
//!   handler's insert, `COMMIT` per event, on `--partitions` connections,
//!   no Kafka (the same statements as the runtime, see [`ceiling`]);
//! * `pg loop, batch/tx` — the same with `--batch` events per transaction
//!   and one inbox statement per batch;
//! * `serial` — the runtime applying one record at a time over all
//!   partitions (`max_in_flight = 1`, `max_batch = 1`: the old runtime);
//! * `concurrent` — a worker per partition, one record per transaction;
//! * `batched` — a worker per partition, up to `--batch` records per
//!   transaction (the default configuration).
//!
//! Rates run from the first finished record to the last (the group's join
//! is not counted). Then, for each runtime mode, records are produced at a
//! steady `--rate` for `--latency-secs` and the apply latency — from the
//! record's production (`occurred_at`) to its handler running — is
//! reported as p50/p99.

mod ceiling;
mod workload;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use consumers::{CancellationToken, Consumer, ConsumerConfig};
use producers::KafkaPublisher;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;
use workload::{InsertHandler, Latencies};

use crate::table::Table;

const TOPIC: &str = "bench.inbox";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Records produced and consumed per run.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Partitions of the topic (and connections of the ceiling loop).
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    /// Records per transaction in the batched modes.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Rounds; each round runs every mode once.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Steady production rate of the latency runs (events/s).
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Length of each latency run.
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    FetchOnly,
    Ceiling,
    CeilingBatched,
    Serial,
    Concurrent,
    Batched,
}

const MODES: [Mode; 6] =
    [Mode::FetchOnly, Mode::Ceiling, Mode::CeilingBatched, Mode::Serial, Mode::Concurrent, Mode::Batched];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::FetchOnly => "fetch only (no database)",
            Mode::Ceiling => "pg loop, 1/tx (ceiling)",
            Mode::CeilingBatched => "pg loop, batch/tx (ceiling)",
            Mode::Serial => "runtime: serial (old)",
            Mode::Concurrent => "runtime: concurrent, 1/tx",
            Mode::Batched => "runtime: concurrent, batched",
        }
    }

    /// `(max_in_flight, max_batch)` of a runtime mode.
    fn runtime(self, args: &Args) -> Option<(usize, usize)> {
        match self {
            Mode::Serial => Some((1, 1)),
            Mode::Concurrent => Some((args.partitions, 1)),
            Mode::Batched => Some((args.partitions, args.batch)),
            _ => None,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.events >= 2 && args.rounds >= 1 && args.partitions >= 1, "nothing to measure");
    eprintln!("starting broker and postgres containers...");
    let env = testkit::Environment::start().await.context("start containers")?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();
    let partitions = i32::try_from(args.partitions)?;
    env.broker.create_topics(&[TOPIC, &events::topics::dead_letter_topic(TOPIC)], partitions).await?;
    let pool = PgPoolOptions::new()
        .max_connections(args.partitions as u32 + 2)
        .connect(&env.postgres.fresh_database().await?)
        .await
        .context("connect to postgres")?;
    consumers::migrate(&pool).await?;
    sqlx::query(workload::EFFECT_TABLE).execute(&pool).await?;
    let publisher =
        KafkaPublisher::new(&testkit::external::producer_config(&bootstrap)).context("create producer")?;

    eprintln!("producing {} records of {} bytes...", args.events, args.payload_bytes);
    workload::produce(&publisher, TOPIC, args.events, args.payload_bytes, None).await?;
    let messages = workload::messages(args.events, args.payload_bytes);

    // (mode, round, events/s, records per transaction)
    let mut rates: Vec<(Mode, usize, f64, f64)> = Vec::new();
    for round in 1..=args.rounds {
        for mode in MODES {
            eprintln!("round {round}: {}...", mode.label());
            let group = format!("bench-{}", Uuid::new_v4().simple());
            let (took, per_tx) = match mode {
                Mode::FetchOnly => (fetch_only(&bootstrap, &group, args.events).await?, 0.0),
                Mode::Ceiling => (ceiling::run(&pool, &messages, args.partitions, 1).await?, 1.0),
                Mode::CeilingBatched => {
                    (ceiling::run(&pool, &messages, args.partitions, args.batch).await?, args.batch as f64)
                }
                _ => {
                    let (in_flight, batch) = mode.runtime(&args).context("a runtime mode")?;
                    drain(&bootstrap, &group, &pool, in_flight, batch, args.events).await?
                }
            };
            rates.push((mode, round, (args.events - 1) as f64 / took.as_secs_f64().max(1e-9), per_tx));
            sqlx::query("TRUNCATE bench_effects, consumer_inbox").execute(&pool).await?;
        }
    }

    let mut latencies = Vec::new();
    for mode in [Mode::Serial, Mode::Concurrent, Mode::Batched] {
        eprintln!("latency at {}/s: {}...", args.rate, mode.label());
        let (in_flight, batch) = mode.runtime(&args).context("a runtime mode")?;
        let topic = format!("bench.inbox.latency-{}", Uuid::new_v4().simple());
        env.broker.create_topics(&[&topic, &events::topics::dead_letter_topic(&topic)], partitions).await?;
        let p = steady(&bootstrap, &publisher, &topic, &pool, (in_flight, batch), &args).await?;
        latencies.push((mode, p));
        sqlx::query("TRUNCATE bench_effects, consumer_inbox").execute(&pool).await?;
    }

    println!();
    println!(
        "inbox: {} events per run, {} partitions, one INSERT per event, batch {}, broker {}",
        args.events,
        args.partitions,
        args.batch,
        env.broker.image().full()
    );
    let mut table = Table::new(["mode", "round", "events/s", "events per transaction"]);
    for (mode, round, rate, per_tx) in &rates {
        let per_tx = if *mode == Mode::FetchOnly { "-".to_owned() } else { format!("{per_tx:.1}") };
        table.row(vec![mode.label().to_owned(), round.to_string(), format!("{rate:.0}"), per_tx]);
    }
    table.print();

    let med = |m: Mode| median(rates.iter().filter(|r| r.0 == m).map(|r| r.2).collect());
    let (ceiling1, ceiling_b) = (med(Mode::Ceiling), med(Mode::CeilingBatched));
    println!();
    let mut summary = Table::new([
        "mode",
        "median events/s",
        "vs pg 1/tx",
        "vs pg batch/tx",
        &format!("p50 at {}/s", args.rate),
        &format!("p99 at {}/s", args.rate),
    ]);
    for mode in MODES {
        let r = med(mode);
        let lat = latencies.iter().find(|(m, _)| *m == mode).and_then(|(_, p)| *p);
        let ms = |v: f64| format!("{v:.1} ms");
        summary.row(vec![
            mode.label().to_owned(),
            format!("{r:.0}"),
            if mode == Mode::FetchOnly { "-".into() } else { format!("{:.2}x", r / ceiling1) },
            if mode == Mode::FetchOnly { "-".into() } else { format!("{:.2}x", r / ceiling_b) },
            lat.map(|(p50, _)| ms(p50)).unwrap_or_else(|| "-".into()),
            lat.map(|(_, p99)| ms(p99)).unwrap_or_else(|| "-".into()),
        ]);
    }
    summary.print();
    Ok(())
}

fn runtime_config(
    bootstrap: &str,
    group: &str,
    topic: &str,
    (in_flight, batch): (usize, usize),
) -> ConsumerConfig {
    ConsumerConfig {
        commit_interval: Duration::from_secs(1),
        max_in_flight: in_flight,
        max_batch: batch,
        inbox_retention: None,
        connection: testkit::external::client_properties(),
        ..ConsumerConfig::new(bootstrap, group, &[topic])
    }
}

/// Runs the runtime over the whole backlog; the time from its first
/// finished record to its `n`-th, and the records per transaction.
async fn drain(
    bootstrap: &str,
    group: &str,
    pool: &PgPool,
    in_flight: usize,
    batch: usize,
    n: usize,
) -> anyhow::Result<(Duration, f64)> {
    let config = runtime_config(bootstrap, group, TOPIC, (in_flight, batch));
    let consumer = Consumer::new(config, pool.clone(), InsertHandler { latencies: None })?;
    let stats = consumer.stats();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut first = None;
    loop {
        let s = stats.snapshot();
        if s.finished() >= 1 && first.is_none() {
            first = Some(Instant::now());
        }
        if s.finished() >= n as u64 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "run did not finish: {s:?}");
        anyhow::ensure!(!running.is_finished(), "consumer stopped early: {s:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = first.map(|f| f.elapsed()).unwrap_or_default();
    cancel.cancel();
    running.await??;
    let s = stats.snapshot();
    anyhow::ensure!(s.applied == n as u64 && s.dead_lettered == 0, "unexpected outcome: {s:?}");
    // Batches count their records; the rest went one per transaction.
    let transactions = s.batches + s.applied.saturating_sub(s.batched_records);
    Ok((took, s.applied as f64 / transactions.max(1) as f64))
}

/// Produces at `args.rate` into `topic` while the runtime consumes it;
/// p50/p99 of the apply latency (ms), after a warm-up record.
async fn steady(
    bootstrap: &str,
    publisher: &KafkaPublisher,
    topic: &str,
    pool: &PgPool,
    shape: (usize, usize),
    args: &Args,
) -> anyhow::Result<Option<(f64, f64)>> {
    let group = format!("bench-{}", Uuid::new_v4().simple());
    let latencies = Latencies::new()?;
    let handler = InsertHandler { latencies: Some(latencies.clone()) };
    let consumer = Consumer::new(runtime_config(bootstrap, &group, topic, shape), pool.clone(), handler)?;
    let stats = consumer.stats();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    workload::produce(publisher, topic, args.partitions * 4, args.payload_bytes, None).await?;
    let warm = (args.partitions * 4) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.snapshot().finished() < warm {
        anyhow::ensure!(Instant::now() < deadline, "the warm-up records were not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.reset();
    let n = args.rate as usize * args.latency_secs as usize;
    workload::produce(publisher, topic, n, args.payload_bytes, Some(args.rate)).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while stats.snapshot().finished() < warm + n as u64 {
        anyhow::ensure!(Instant::now() < deadline, "the steady records were not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    running.await??;
    Ok(latencies.percentiles())
}

async fn fetch_only(bootstrap: &str, group: &str, n: usize) -> anyhow::Result<Duration> {
    let consumer: StreamConsumer = testkit::external::client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create consumer")?;
    consumer.subscribe(&[TOPIC])?;
    let mut first = None;
    let mut seen = 0u64;
    while seen < n as u64 {
        let m = tokio::time::timeout(Duration::from_secs(120), consumer.recv())
            .await
            .context("no record for 120 s")?;
        m.context("receive")?;
        seen += 1;
        first.get_or_insert_with(Instant::now);
    }
    Ok(first.map(|f| f.elapsed()).unwrap_or_default())
}
