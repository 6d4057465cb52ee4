//! Benchmark `inbox`: events applied per second by the consumer runtime with
//! the inbox (exactly-once effects) and without it (at-least-once effects),
//! in one run, on one broker and one PostgreSQL (testkit containers).
//!
//! ```text
//! cargo run --release -p bench -- inbox [--events 5000] [--rounds 3]
//! ```
//!
//! Setup: `--events` records are produced once to a one-partition topic;
//! every measured run is a new consumer group reading them all from the
//! beginning, with the same handler (one `INSERT` per event in the runtime's
//! transaction). Modes:
//!
//! * `fetch only` — a bare rdkafka consumer, no database: the broker's
//!   delivery ceiling, so that a ratio close to 1 can be read correctly;
//! * `no inbox` — the runtime with [`consumers::InboxMode::Disabled`];
//! * `inbox` — the runtime as services run it.
//!
//! The rate is measured from the first finished record to the last, so the
//! broker's slow first fetch is not counted. Modes alternate inside each
//! round to spread warm-up and background noise evenly.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use consumers::{
    CancellationToken, Consumer, ConsumerConfig, Handler, HandlerError, InboundMessage, InboxMode,
};
use producers::{KafkaPublisher, Publisher as _, Record};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::table::Table;

const TOPIC: &str = "bench.inbox";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Records produced and consumed per run.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// Rounds; each round runs every mode once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
}

/// One `INSERT` per event: the smallest realistic effect.
struct InsertHandler;

impl Handler for InsertHandler {
    async fn handle(
        &self,
        m: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO bench_effects (event_id, bytes) VALUES ($1, $2)")
            .bind(m.envelope.event_id)
            .bind(m.payload.len() as i32)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    FetchOnly,
    NoInbox,
    Inbox,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::FetchOnly => "fetch only (no database)",
            Mode::NoInbox => "handler, no inbox",
            Mode::Inbox => "handler + inbox",
        }
    }
}

/// What one run measured.
struct Run {
    mode: Mode,
    round: usize,
    /// From consumer creation to the first finished record.
    first_record: Duration,
    /// From the first finished record to the last.
    steady: Duration,
}

/// Above this, the fetch-only rate only says "the broker is not the limit"
/// (the records came in one fetch and the clock barely moved).
const FETCH_ONLY_CAP: f64 = 100_000.0;

impl Run {
    fn rate(&self, events: usize) -> f64 {
        (events.saturating_sub(1)) as f64 / self.steady.as_secs_f64().max(1e-9)
    }

    fn display_rate(&self, events: usize) -> String {
        let r = self.rate(events);
        if matches!(self.mode, Mode::FetchOnly) && r > FETCH_ONLY_CAP {
            format!("> {FETCH_ONLY_CAP:.0}")
        } else {
            format!("{r:.0}")
        }
    }
}

fn rates(runs: &[Run], mode: Mode, events: usize) -> Vec<f64> {
    let mut v: Vec<f64> = runs.iter().filter(|r| r.mode == mode).map(|r| r.rate(events)).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn best(runs: &[Run], mode: Mode, events: usize) -> f64 {
    rates(runs, mode, events).last().copied().unwrap_or(0.0)
}

fn median(runs: &[Run], mode: Mode, events: usize) -> f64 {
    let v = rates(runs, mode, events);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.events >= 2 && args.rounds >= 1, "need at least 2 events and 1 round");
    eprintln!("starting broker and postgres containers...");
    let env = testkit::Environment::start().await.context("start containers")?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();
    env.broker.create_topics(&[TOPIC, &events::topics::dead_letter_topic(TOPIC)], 1).await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&env.postgres.fresh_database().await?)
        .await
        .context("connect to postgres")?;
    consumers::migrate(&pool).await?;
    sqlx::query("CREATE TABLE bench_effects (event_id uuid NOT NULL, bytes integer NOT NULL)")
        .execute(&pool)
        .await?;

    eprintln!("producing {} records of {} bytes...", args.events, args.payload_bytes);
    produce(&bootstrap, args.events, args.payload_bytes).await?;

    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for mode in [Mode::FetchOnly, Mode::NoInbox, Mode::Inbox] {
            eprintln!("round {round}: {}...", mode.label());
            let group = format!("bench-{}", Uuid::new_v4().simple());
            let (first_record, steady) = match mode {
                Mode::FetchOnly => fetch_only(&bootstrap, &group, args.events).await?,
                Mode::NoInbox => consume(&bootstrap, &group, &pool, InboxMode::Disabled, args.events).await?,
                Mode::Inbox => consume(&bootstrap, &group, &pool, InboxMode::Enabled, args.events).await?,
            };
            runs.push(Run { mode, round, first_record, steady });
            sqlx::query("TRUNCATE bench_effects, consumer_inbox").execute(&pool).await?;
        }
    }

    println!();
    println!(
        "inbox: {} events per run, 1 partition, one INSERT per event, broker {}",
        args.events,
        env.broker.image().full()
    );
    let mut table = Table::new(["mode", "round", "first record after", "applied in", "events/s"]);
    for r in &runs {
        table.row(vec![
            r.mode.label().to_owned(),
            r.round.to_string(),
            format!("{:.2} s", r.first_record.as_secs_f64()),
            format!("{:.3} s", r.steady.as_secs_f64()),
            r.display_rate(args.events),
        ]);
    }
    table.print();

    println!();
    let mut summary = Table::new(["mode", "best events/s", "median events/s", "best vs no inbox"]);
    let plain = best(&runs, Mode::NoInbox, args.events);
    for mode in [Mode::FetchOnly, Mode::NoInbox, Mode::Inbox] {
        let b = best(&runs, mode, args.events);
        let ratio = match mode {
            Mode::FetchOnly => "-".to_owned(),
            _ => format!("{:.2}x", b / plain),
        };
        let shown = |v: f64| {
            if matches!(mode, Mode::FetchOnly) && v > FETCH_ONLY_CAP {
                format!("> {FETCH_ONLY_CAP:.0}")
            } else {
                format!("{v:.0}")
            }
        };
        summary.row(vec![mode.label().to_owned(), shown(b), shown(median(&runs, mode, args.events)), ratio]);
    }
    summary.print();
    println!();
    println!(
        "fetch only: the broker delivered the whole topic in one or a few fetches, so its rate is a lower"
    );
    println!(
        "bound on the broker, not a cost of the runtime. Both handler modes process records already fetched."
    );
    Ok(())
}

/// Produces `n` records with a valid envelope (headers) and a random-ish body.
async fn produce(bootstrap: &str, n: usize, payload_bytes: usize) -> anyhow::Result<()> {
    let publisher =
        KafkaPublisher::new(&testkit::external::producer_config(bootstrap)).context("create producer")?;
    let payload: Vec<u8> = (0..payload_bytes).map(|i| (i % 251) as u8).collect();
    let records: Vec<[(&'static str, String); 6]> = (0..n)
        .map(|i| {
            [
                (events::envelope::header::EVENT_ID, Uuid::now_v7().to_string()),
                (events::envelope::header::MESSAGE_TYPE, "bench.Event".to_owned()),
                (events::envelope::header::SCHEMA_VERSION, "1".to_owned()),
                (events::envelope::header::AGGREGATE_TYPE, "bench".to_owned()),
                (events::envelope::header::AGGREGATE_ID, format!("agg-{}", i % 100)),
                (events::envelope::header::OCCURRED_AT, "2026-01-01T00:00:00Z".to_owned()),
            ]
        })
        .collect();
    for chunk in records.chunks(1_000) {
        let sends = chunk.iter().map(|headers| {
            publisher.publish(Record {
                topic: TOPIC,
                key: Some(headers[4].1.as_bytes()),
                payload: Some(&payload),
                headers: headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect(),
            })
        });
        for result in futures::future::join_all(sends).await {
            result.context("publish")?;
        }
    }
    Ok(())
}

/// Time to the first record, and from the first to the `n`-th.
struct Clock {
    started: Instant,
    first: Option<Instant>,
}

impl Clock {
    fn new() -> Self {
        Clock { started: Instant::now(), first: None }
    }

    fn saw(&mut self, finished: u64) {
        if finished >= 1 && self.first.is_none() {
            self.first = Some(Instant::now());
        }
    }

    fn result(&self) -> (Duration, Duration) {
        let first = self.first.unwrap_or(self.started);
        (first - self.started, first.elapsed())
    }
}

async fn consume(
    bootstrap: &str,
    group: &str,
    pool: &PgPool,
    inbox: InboxMode,
    n: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let config = ConsumerConfig {
        inbox,
        commit_interval: Duration::from_secs(1),
        connection: testkit::external::client_properties(),
        ..ConsumerConfig::new(bootstrap, group, &[TOPIC])
    };
    let consumer = Consumer::new(config, pool.clone(), InsertHandler)?;
    let stats = consumer.stats();
    let cancel = CancellationToken::new();
    let mut clock = Clock::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = stats.snapshot();
        clock.saw(s.finished());
        if s.finished() >= n as u64 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "run did not finish: {s:?}");
        anyhow::ensure!(!running.is_finished(), "consumer stopped early: {s:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let result = clock.result();
    cancel.cancel();
    running.await??;
    let s = stats.snapshot();
    anyhow::ensure!(s.applied == n as u64 && s.dead_lettered == 0, "unexpected outcome: {s:?}");
    Ok(result)
}

async fn fetch_only(bootstrap: &str, group: &str, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let consumer: StreamConsumer = testkit::external::client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create consumer")?;
    consumer.subscribe(&[TOPIC])?;
    let mut clock = Clock::new();
    let mut seen = 0u64;
    while seen < n as u64 {
        let m = tokio::time::timeout(Duration::from_secs(120), consumer.recv())
            .await
            .context("no record for 120 s")?;
        m.context("receive")?;
        seen += 1;
        clock.saw(seen);
    }
    Ok(clock.result())
}
