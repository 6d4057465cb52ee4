//! Benchmark `outbox`: how close the outbox relay gets to the broker's speed,
//! its commit→ack latency, and what the outbox insert costs a business
//! transaction — one run, one broker, one PostgreSQL, the same payloads.
//!
//! ```text
//! cargo run --release -p bench -- outbox [--events 20000] [--rate 1000] [--latency-secs 30]
//!     [--bootstrap HOST:PORT --database-url postgres://...]   # instead of testkit containers
//! ```
//!
//! * (a) `raw producer` — the idempotent, `acks=all` producer the relay uses,
//!   fed `--events` records as fast as it takes them; msg/s from the first
//!   send to the last ack.
//! * (b) `relay` — the same records committed to the outbox in one
//!   transaction while the relay idles with its lanes held; msg/s from that
//!   commit until the relay has recorded the last row as published. (a) and
//!   (b) alternate for `--rounds` rounds; medians are compared. Goal:
//!   (b)/(a) >= 0.8.
//! * (c) `commit→ack` — one transaction per event at a steady `--rate`;
//!   latency per row from the moment the writer's `COMMIT` returned to the
//!   relay's delivery report, matched by event id, p50/p99/max
//!   (hdrhistogram). Goal: p99 < 50 ms. It includes the watermark wait (a
//!   row is read once every older transaction ended), so the writers' own
//!   transaction times are shown too, as is the age at ack (from the writing
//!   transaction's start), and the raw producer's send→ack at the same rate,
//!   the floor.
//! * (d) `business tx` — a business transaction with and without
//!   `outbox::enqueue` in it (relay stopped): the cheapest possible one and
//!   the order service's place-order transaction; see [`business`]. Goal:
//!   ratio <= 1.3.
//!
//! The relay's phase totals (fetch / send+ack / record) show where its time
//! goes.
//!
//! `--notify false` turns enqueue's wake-up NOTIFY off (the relay then
//! polls); see `outbox::set_notify` for why a write-heavy database wants that.
//!
//! PostgreSQL runs as in the tests (`fsync=off`, `synchronous_commit=off`);
//! `--durability durable` gives it the server defaults, every commit flushed,
//! which makes the numbers the disk's. It is reached at the container's
//! bridge address when this host can, so that Docker's userland port proxy
//! is not part of every round trip; (d) is measured over the published port
//! too. For the same reason the broker container runs on the host's network
//! (`--broker-network host`, Linux); `--broker-network published` maps a
//! port instead, as the tests do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use events::{Envelope, OutgoingMessage};
use hdrhistogram::Histogram;
use outbox::{CancellationToken, OutboxRelay, RelayConfig};
use producers::{KafkaPublisher, ProducerConfig, Publisher as _, Record};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

mod business;
mod statements;

use crate::table::Table;

const TOPIC: &str = "bench.outbox";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Records for the throughput runs (a) and (b).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Distinct keys (aggregates).
    #[arg(long, default_value_t = 1_000)]
    keys: usize,
    /// Topic partitions.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Relay lanes.
    #[arg(long, default_value_t = 8)]
    lanes: i32,
    /// Relay batch size.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Relay `trickle_interval` in milliseconds: the grid on which lanes
    /// without a backlog read.
    #[arg(long, default_value_t = 5)]
    trickle_ms: u64,
    /// Events per second for the latency run (c).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Duration of the latency run (c), in seconds.
    #[arg(long, default_value_t = 30)]
    latency_secs: u64,
    /// Transactions per mode and round for (d).
    #[arg(long, default_value_t = 2_000)]
    transactions: usize,
    /// Rounds: (a)/(b) alternate this many times (medians reported), and
    /// (d) alternates its two modes this many times.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Use this broker instead of a testkit container.
    #[arg(long, requires = "database_url")]
    bootstrap: Option<String>,
    /// Use this PostgreSQL database instead of a testkit container.
    #[arg(long, requires = "bootstrap")]
    database_url: Option<String>,
    /// Whether `enqueue` sends the NOTIFY wake-up hint (`outbox::set_notify`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    notify: bool,
    /// Durability of the testkit PostgreSQL container.
    #[arg(long, value_enum, default_value_t = Durability::Relaxed)]
    durability: Durability,
    /// How the testkit broker container is reached: on the host's network
    /// (Linux; no Docker port proxy in the path, as PostgreSQL's bridge
    /// address) or through a published port.
    #[arg(long, value_enum, default_value_t = BrokerNetwork::Host)]
    broker_network: BrokerNetwork,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BrokerNetwork {
    /// `--network host`: clients talk to the broker directly.
    Host,
    /// A published port, through Docker's userland proxy.
    Published,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Durability {
    /// Server defaults: every commit flushed to disk.
    Durable,
    /// `fsync=off`, `synchronous_commit=off`, as in the tests.
    Relaxed,
}

/// The messages every run publishes: same keys, envelopes and payload sizes.
fn messages(n: usize, keys: usize, payload_bytes: usize) -> anyhow::Result<Vec<OutgoingMessage>> {
    (0..n)
        .map(|i| {
            let key = format!("order-{:06}", i % keys.max(1));
            let event_id = Uuid::now_v7().to_string();
            let headers = [
                ("event-id", event_id.as_str()),
                ("message-type", "saga.bench.Payload"),
                ("schema-version", "1"),
                ("aggregate-type", "order"),
                ("aggregate-id", key.as_str()),
                ("occurred-at", "2026-11-25T10:00:00.000000Z"),
            ];
            let envelope = Envelope::from_headers(headers.iter().map(|(k, v)| (*k, v.as_bytes())))?;
            let payload = (0..payload_bytes).map(|j| (i + j) as u8).collect();
            Ok(OutgoingMessage { topic: TOPIC.to_owned(), key, envelope, payload })
        })
        .collect()
}

fn producer_config(bootstrap: &str) -> ProducerConfig {
    // An external cluster's security settings (SAGA_TEST_KAFKA_PROPERTIES_FILE), if any.
    ProducerConfig { client_id: "bench-outbox".into(), ..testkit::external::producer_config(bootstrap) }
}

/// (a) Publishes every message and waits for all acks; msg/s.
async fn raw_producer(bootstrap: &str, msgs: &[OutgoingMessage]) -> anyhow::Result<f64> {
    let publisher = KafkaPublisher::new(&producer_config(bootstrap)).context("create producer")?;
    let headers: Vec<_> = msgs.iter().map(|m| m.envelope.to_headers()).collect();
    // Warm-up: connection, metadata, producer id.
    publisher.publish(Record::from_outgoing(&msgs[0], &headers[0])).await.context("warm-up record")?;
    let started = Instant::now();
    let pending: Vec<_> =
        msgs.iter().zip(&headers).map(|(m, h)| publisher.publish(Record::from_outgoing(m, h))).collect();
    for r in futures::future::join_all(pending).await {
        r.context("raw publish")?;
    }
    Ok(msgs.len() as f64 / started.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// (c, floor) The raw producer's send→ack latency at the same steady rate.
async fn raw_latency(bootstrap: &str, msgs: &[OutgoingMessage], rate: u64) -> anyhow::Result<Histogram<u64>> {
    use futures::StreamExt as _;
    let publisher = KafkaPublisher::new(&producer_config(bootstrap)).context("create producer")?;
    let headers: Vec<_> = msgs.iter().map(|m| m.envelope.to_headers()).collect();
    publisher.publish(Record::from_outgoing(&msgs[0], &headers[0])).await.context("warm-up record")?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut inflight = futures::stream::FuturesUnordered::new();
    for (m, hd) in msgs.iter().zip(&headers) {
        tick.tick().await;
        let sent = Instant::now();
        let delivery = publisher.publish(Record::from_outgoing(m, hd));
        inflight.push(async move { delivery.await.map(|_| sent.elapsed()) });
        while let Some(r) = futures::FutureExt::now_or_never(inflight.next()).flatten() {
            h.record(r.context("raw publish")?.as_micros().max(1) as u64)?;
        }
    }
    while let Some(r) = inflight.next().await {
        h.record(r.context("raw publish")?.as_micros().max(1) as u64)?;
    }
    Ok(h)
}

/// (b) Commits every message in one transaction; msg/s until the relay
/// recorded the last one.
async fn relay_throughput(
    pool: &PgPool,
    stats: &outbox::StatsHandle,
    msgs: &[OutgoingMessage],
) -> anyhow::Result<f64> {
    let before = stats.get().published;
    let mut tx = pool.begin().await?;
    for m in msgs {
        outbox::enqueue(&mut tx, m).await?;
    }
    tx.commit().await?;
    let started = Instant::now();
    let target = before + msgs.len() as u64;
    wait_for("the relay to publish the batch", Duration::from_secs(600), || stats.get().published >= target)
        .await?;
    Ok(msgs.len() as f64 / started.elapsed().as_secs_f64())
}

/// A writer's transaction: the event id, when its commit returned, and how
/// long it took from `BEGIN`.
type Committed = (Uuid, DateTime<Utc>, Duration);

/// Commits one outbox transaction per message at `rate`/s, each its own
/// task so that one slow commit never delays the schedule or the others;
/// returns the tasks.
async fn commit_at_rate(
    pool: &PgPool,
    msgs: &[OutgoingMessage],
    rate: u64,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Committed>>> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writers = Vec::with_capacity(msgs.len());
    for m in msgs {
        tick.tick().await;
        let (pool, m) = (pool.clone(), m.clone());
        writers.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut tx = pool.begin().await?;
            outbox::enqueue(&mut tx, &m).await?;
            tx.commit().await?;
            anyhow::Ok((m.envelope.event_id, Utc::now(), t.elapsed()))
        }));
    }
    writers
}

/// (c, floor under load) The raw producer's send→ack latency at `rate`/s
/// while writers commit the same outbox transactions at the same rate and no
/// relay runs: what this broker and machine give any producer under (c)'s
/// database load. The rows are removed afterwards (no relay has started).
async fn raw_latency_under_load(
    pool: &PgPool,
    bootstrap: &str,
    msgs: &[OutgoingMessage],
    rate: u64,
) -> anyhow::Result<Histogram<u64>> {
    let load = async {
        for w in commit_at_rate(pool, msgs, rate).await {
            w.await??;
        }
        anyhow::Ok(())
    };
    let (latency, load) = tokio::join!(raw_latency(bootstrap, msgs, rate), load);
    load?;
    sqlx::query("TRUNCATE outbox, outbox_keys").execute(pool).await?;
    latency
}

/// What (c) measured.
struct Steady {
    /// Commit returned → delivery report, per row (µs).
    commit_to_ack: Histogram<u64>,
    /// Writing transaction's start → delivery report, per row (µs).
    age_at_ack: Histogram<u64>,
    /// Commit returned → read by the relay and handed to the producer (µs).
    commit_to_send: Histogram<u64>,
    /// Handed to the producer → delivery report (µs).
    send_to_ack: Histogram<u64>,
    /// The writers' transactions, begin to commit returned (µs).
    writer_tx: Histogram<u64>,
    /// Events per second the writers reached.
    achieved: f64,
    /// The relay's counters over the run.
    relay: outbox::RelayStats,
    /// Seconds from the first commit until the relay caught up.
    secs: f64,
}

/// (c) One transaction per event at `rate`/s for `secs`; commit→ack latencies.
async fn steady_latency(
    pool: &PgPool,
    stats: &outbox::StatsHandle,
    msgs: &[OutgoingMessage],
    rate: u64,
    secs: u64,
) -> anyhow::Result<Steady> {
    let n = usize::try_from(rate * secs)?.min(msgs.len());
    stats.drain_deliveries();
    let before = stats.get();
    let started = Instant::now();
    let writers = commit_at_rate(pool, &msgs[..n], rate).await;
    let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let mut writer_tx = histogram()?;
    let mut committed_at = HashMap::with_capacity(n);
    for w in writers {
        let (event_id, at, took) = w.await??;
        writer_tx.record(took.as_micros().max(1) as u64)?;
        committed_at.insert(event_id, at);
    }
    let achieved = n as f64 / started.elapsed().as_secs_f64();
    let target = before.published + n as u64;
    wait_for("the relay to catch up", Duration::from_secs(120), || stats.get().published >= target).await?;
    let secs = started.elapsed().as_secs_f64();
    let relay = stats.get().since(&before);
    let (mut commit_to_ack, mut age_at_ack) = (histogram()?, histogram()?);
    let (mut commit_to_send, mut send_to_ack) = (histogram()?, histogram()?);
    let us = |from: DateTime<Utc>, to: DateTime<Utc>| {
        u64::try_from((to - from).num_microseconds().unwrap_or(0)).unwrap_or(0).max(1)
    };
    for d in stats.drain_deliveries() {
        age_at_ack.record(us(d.created_at, d.acked_at))?;
        send_to_ack.record(us(d.sent_at, d.acked_at))?;
        if let Some(at) = committed_at.get(&d.event_id) {
            commit_to_ack.record(us(*at, d.acked_at))?;
            commit_to_send.record(us(*at, d.sent_at))?;
        }
    }
    anyhow::ensure!(commit_to_ack.len() == n as u64, "{} of {n} rows matched a commit", commit_to_ack.len());
    Ok(Steady { commit_to_ack, age_at_ack, commit_to_send, send_to_ack, writer_tx, achieved, relay, secs })
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let _containers;
    let (bootstrap, db_url, port_url) = match (&args.bootstrap, &args.database_url) {
        (Some(b), Some(d)) => (b.clone(), d.clone(), None),
        _ => {
            let durability = match args.durability {
                Durability::Durable => testkit::Durability::Durable,
                Durability::Relaxed => testkit::Durability::Relaxed,
            };
            let network = match args.broker_network {
                BrokerNetwork::Host => testkit::BrokerNetwork::Host,
                BrokerNetwork::Published => testkit::BrokerNetwork::Published,
            };
            let (broker, postgres) =
                tokio::join!(testkit::Broker::start_with(network), testkit::Postgres::start_with(durability));
            let (broker, postgres) = (broker.context("start broker")?, postgres.context("start postgres")?);
            broker.create_topics(&[TOPIC], args.partitions).await.context("create topic")?;
            let port_url = postgres.fresh_database().await?;
            let db = port_url.rsplit('/').next().unwrap_or("postgres").to_owned();
            let direct = postgres.bridge_url_for(&db).await;
            let bootstrap = broker.bootstrap_servers().to_owned();
            _containers = (broker, postgres);
            match direct {
                Some(direct) => (bootstrap, direct, Some(port_url)),
                None => (bootstrap, port_url, None),
            }
        }
    };
    println!(
        "postgres: {} ({:?}), enqueue NOTIFY {}; broker: {bootstrap} ({:?}); {} lanes",
        if port_url.is_some() { "bridge address" } else { "as given / published port" },
        args.durability,
        if args.notify { "on" } else { "off" },
        args.broker_network,
        args.lanes,
    );
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(args.lanes)? + 24)
        .connect(&db_url)
        .await
        .context("connect to PostgreSQL")?;
    outbox::migrate(&pool).await?;
    outbox::lease::configure_lanes(&pool, args.lanes).await?;
    outbox::set_notify(&pool, args.notify).await?;
    let msgs = messages(args.events, args.keys, args.payload_bytes)?;
    let steady_msgs =
        messages(usize::try_from(args.rate * args.latency_secs)?, args.keys, args.payload_bytes)?;

    eprintln!("(c) floor: raw producer send->ack at {}/s ...", args.rate);
    let raw_lat = raw_latency(
        &bootstrap,
        &steady_msgs[..steady_msgs.len().min(usize::try_from(args.rate * 5)?)],
        args.rate,
    )
    .await?;
    eprintln!("(c) floor under load: the same, while writers commit at {}/s ...", args.rate);
    let floor_msgs = &steady_msgs[..steady_msgs.len().min(usize::try_from(args.rate * 10)?)];
    let loaded_lat = raw_latency_under_load(&pool, &bootstrap, floor_msgs, args.rate).await?;

    let config = RelayConfig {
        batch_size: args.batch_size,
        metrics_interval: Duration::ZERO,
        cleanup_interval: Duration::ZERO,
        lanes: Some(args.lanes),
        trickle_interval: Duration::from_millis(args.trickle_ms),
        ..Default::default()
    };
    let relay = OutboxRelay::new(pool.clone(), producer_config(&bootstrap), config)?;
    let stats = relay.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone()));
    let lanes = i64::from(args.lanes);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox_lanes WHERE lease_until > now()")
        .fetch_one(&pool)
        .await?
        < lanes
    {
        anyhow::ensure!(Instant::now() < deadline, "the relay did not take its lanes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm-up: producer connection and the relay's statements.
    relay_throughput(&pool, &stats, &msgs[..100.min(msgs.len())]).await?;

    // (a) and (b) alternate, so background load hits both alike; medians.
    let (mut raws, mut relays) = (Vec::new(), Vec::new());
    let before_ab = stats.get();
    for round in 0..args.rounds {
        eprintln!("(a) raw producer: {} records, round {} ...", msgs.len(), round + 1);
        raws.push(raw_producer(&bootstrap, &msgs).await?);
        eprintln!("(b) relay: {} committed rows, round {} ...", msgs.len(), round + 1);
        relays.push(relay_throughput(&pool, &stats, &msgs).await?);
    }
    let phases = stats.get().since(&before_ab);
    let (raw, relayed) = (median(&mut raws), median(&mut relays));

    eprintln!("(c) commit->ack at {}/s for {} s ...", args.rate, args.latency_secs);
    let server_time = statements::ServerTime::start(&pool).await;
    let steady = steady_latency(&pool, &stats, &steady_msgs, args.rate, args.latency_secs).await?;
    let server_time = server_time.finish(&pool, steady.secs).await;
    cancel.cancel();
    task.await.context("relay task")??;

    eprintln!("(d) business transactions ...");
    let path = if port_url.is_some() { "bridge address" } else { "given URL" };
    let mut business = vec![business::measure(&pool, path, &msgs, args.transactions, args.rounds).await?];
    if let Some(url) = &port_url {
        eprintln!("(d) business transactions through the published port ...");
        let via_port = PgPoolOptions::new().max_connections(2).connect(url).await?;
        business.push(
            business::measure(&via_port, "published port", &msgs, args.transactions, args.rounds).await?,
        );
    }

    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
    let mut t = Table::new(["measurement", "result", "ratio", "goal"]);
    let runs = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    t.row(vec![
        format!("(a) raw producer, idempotent acks=all (runs: {})", runs(&raws)),
        format!("{raw:.0} msg/s"),
        "1.00".into(),
        String::new(),
    ]);
    t.row(vec![
        format!("(b) relay: committed rows -> acked (runs: {})", runs(&relays)),
        format!("{relayed:.0} msg/s"),
        format!("{:.2} of (a)", relayed / raw),
        ">= 0.80".into(),
    ]);
    let (lat, age, writer) = (&steady.commit_to_ack, &steady.age_at_ack, &steady.writer_tx);
    let p50_p99 =
        |h: &Histogram<u64>| format!("{} / {}", ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)));
    t.row(vec![
        format!("(c) commit->ack p50 at {:.0} events/s", steady.achieved),
        ms(lat.value_at_quantile(0.5)),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "(c) commit->ack p99".into(),
        ms(lat.value_at_quantile(0.99)),
        String::new(),
        "< 50 ms".into(),
    ]);
    t.row(vec!["(c) commit->ack max".into(), ms(lat.max()), String::new(), String::new()]);
    t.row(vec![
        "(c) age at ack (from tx start) p50 / p99".into(),
        p50_p99(age),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "(c) of which commit -> read by the relay p50 / p99".into(),
        p50_p99(&steady.commit_to_send),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "(c) of which relay send -> ack p50 / p99".into(),
        p50_p99(&steady.send_to_ack),
        String::new(),
        String::new(),
    ]);
    t.row(vec!["(c) writer transaction p50 / p99".into(), p50_p99(writer), String::new(), String::new()]);
    let per_sec = |n: u64| n as f64 / steady.secs;
    t.row(vec![
        "(c) relay reads/s (of which empty) / batches/s".into(),
        format!(
            "{:.0} ({:.0}) / {:.0}",
            per_sec(steady.relay.reads),
            per_sec(steady.relay.empty_reads),
            per_sec(steady.relay.batches)
        ),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "(c) relay read / cursor statements/s".into(),
        format!(
            "{:.0} / {:.0}",
            per_sec(steady.relay.read_statements),
            per_sec(steady.relay.cursor_statements)
        ),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "(c) floor: raw producer send->ack p50 / p99".into(),
        p50_p99(&raw_lat),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "(c) floor while writers commit, no relay: send->ack p50 / p99".into(),
        p50_p99(&loaded_lat),
        String::new(),
        String::new(),
    ]);
    for costs in &business {
        business::rows(&mut t, costs);
    }
    t.print();

    println!(
        "\n(c) where PostgreSQL's time went (pg_stat_statements: executor time per second and per call, planning per call):"
    );
    print!("{server_time}");

    println!(
        "\n(b) where the relay's time went ({} lanes in parallel, {} batches, {:.0} rows/batch): \
         fetch {:?}, send+ack {:?}, record {:?} (summed over lanes; lanes do not wait for the record)",
        args.lanes,
        phases.batches,
        phases.published as f64 / phases.batches.max(1) as f64,
        phases.fetch_time,
        phases.send_time,
        phases.record_time,
    );
    Ok(())
}
