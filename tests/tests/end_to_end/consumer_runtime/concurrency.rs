//! Partitions in parallel, keys in order: against a real broker and
//! PostgreSQL.
//!
//! * many keys over several partitions, handlers with random delays: every
//!   key's events are applied in offset order, none twice, and handlers of
//!   different partitions really ran at the same time;
//! * a second member joining while records are in flight, then the first
//!   leaving: nothing lost, nothing applied twice;
//! * a key failing transiently for 20 s holds back its own partition only:
//!   the other partitions' records are applied at once (measured), the
//!   member is not evicted (its `max.poll.interval` is shorter than the
//!   retry), and the key applies once it recovers — not dead-lettered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::support;
use consumers::{
    CancellationToken, Consumer, ConsumerConfig, Handler, HandlerError, InboundMessage, RetryPolicy,
};
use events::messages::inventory::{ReserveInventory, StockLine};
use producers::{KafkaPublisher, Publisher as _, Record};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS ordered_effects ( \
     id bigserial PRIMARY KEY, \
     event_id uuid NOT NULL, \
     key uuid NOT NULL, \
     seq integer NOT NULL, \
     applied_at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// Inserts `(key, seq)` for each `ReserveInventory` (key = order id,
/// seq = quantity), after a random delay; counts handlers running at once.
/// Fails transiently for `failing` until `until`.
#[derive(Clone, Default)]
struct OrderedHandler {
    max_delay_ms: u64,
    running: Arc<AtomicUsize>,
    most_running: Arc<AtomicUsize>,
    failing: Option<(Uuid, Instant)>,
}

impl Handler for OrderedHandler {
    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        let command: ReserveInventory = message.decode()?;
        if let Some((key, until)) = self.failing
            && key == command.order_id
            && Instant::now() < until
        {
            return Err(HandlerError::transient("the key's dependency is down"));
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(now, Ordering::SeqCst);
        if self.max_delay_ms > 0 {
            let ms = u64::from(message.envelope.event_id.as_bytes()[15]) % (self.max_delay_ms + 1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let result = sqlx::query("INSERT INTO ordered_effects (event_id, key, seq) VALUES ($1, $2, $3)")
            .bind(message.envelope.event_id)
            .bind(command.order_id)
            .bind(command.lines.first().map(|l| l.quantity).unwrap_or_default())
            .execute(&mut **tx)
            .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result?;
        Ok(())
    }
}

/// A `ReserveInventory` of `key` numbered `seq`, published and acked;
/// returns the partition it landed on.
async fn send(p: &KafkaPublisher, topic: &str, key: Uuid, seq: i32) -> anyhow::Result<i32> {
    let command = ReserveInventory {
        order_id: key,
        lines: vec![StockLine { sku: "SKU-1".into(), quantity: seq }],
        requested_at: chrono::Utc::now(),
    };
    let mut m = events::OutgoingMessage::new(&command)?;
    m.topic = topic.to_owned();
    let headers = m.envelope.to_headers();
    Ok(p.publish(Record::from_outgoing(&m, &headers)).await?.partition)
}

/// Every key's applied sequence numbers, in the order they were applied.
async fn applied(pool: &PgPool) -> anyhow::Result<HashMap<Uuid, Vec<i32>>> {
    let rows: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT key, seq FROM ordered_effects ORDER BY id").fetch_all(pool).await?;
    let mut by_key: HashMap<Uuid, Vec<i32>> = HashMap::new();
    for (key, seq) in rows {
        by_key.entry(key).or_default().push(seq);
    }
    Ok(by_key)
}

async fn applied_count(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM ordered_effects").fetch_one(pool).await?)
}

fn config(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig { max_in_flight: 8, max_batch: 16, ..support::consumer_config(bootstrap, group, topic) }
}

async fn database(env: &testkit::Environment) -> anyhow::Result<PgPool> {
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    sqlx::query(TABLE).execute(&pool).await?;
    Ok(pool)
}

/// A pool large enough for `max_in_flight` transactions.
async fn wide_pool(env: &testkit::Environment) -> anyhow::Result<PgPool> {
    let url = env.postgres.fresh_database().await?;
    support::prepare_database(&url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(10).connect(&url).await?;
    sqlx::query(TABLE).execute(&pool).await?;
    Ok(pool)
}

fn assert_in_order_once(by_key: &HashMap<Uuid, Vec<i32>>, keys: &[Uuid], per_key: i32) {
    for key in keys {
        let seqs = by_key.get(key).map(Vec::as_slice).unwrap_or_default();
        let expected: Vec<i32> = (1..=per_key).collect();
        assert_eq!(seqs, expected.as_slice(), "key {key}: applied out of order, twice, or not at all");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_applied_in_order_while_partitions_run_concurrently() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "ordered.commands";
    env.broker.create_topics(&[topic, "ordered.commands.dlq"], 4).await?;
    let pool = wide_pool(&env).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;

    let keys: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let per_key = 12;
    let mut sends = Vec::new();
    for seq in 1..=per_key {
        for key in &keys {
            sends.push(send(&producer, topic, *key, seq));
        }
        // One round of every key at a time: a key's records are acked in
        // order, so their offsets are in sequence order.
        for s in sends.drain(..) {
            s.await?;
        }
    }

    let handler = OrderedHandler { max_delay_ms: 8, ..Default::default() };
    let most_running = handler.most_running.clone();
    let consumer = Consumer::new(config(bootstrap, "ordered", topic), pool.clone(), handler)?;
    let stats = consumer.stats();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(consumer.run(cancel.clone()));
    let total = i64::from(per_key) * keys.len() as i64;
    support::eventually("every event applied", Duration::from_secs(120), || async {
        Ok((applied_count(&pool).await? >= total).then_some(()))
    })
    .await?;
    cancel.cancel();
    run.await??;

    assert_in_order_once(&applied(&pool).await?, &keys, per_key);
    assert_eq!(applied_count(&pool).await?, total, "nothing applied twice");
    let most = most_running.load(Ordering::SeqCst);
    assert!(most >= 2, "handlers of different partitions never overlapped (at most {most} at once)");
    let s = stats.snapshot();
    assert_eq!((s.applied, s.dead_lettered), (total as u64, 0));
    assert!(s.batches > 0, "records waiting on a partition are applied together: {s:?}");
    eprintln!("at most {most} handlers at once; {} batches; {s:?}", s.batches);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_with_records_in_flight_loses_nothing_and_applies_nothing_twice() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "rebalance.commands";
    env.broker.create_topics(&[topic, "rebalance.commands.dlq"], 4).await?;
    let pool = wide_pool(&env).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;
    let keys: Vec<Uuid> = (0..16).map(|_| Uuid::new_v4()).collect();
    let per_key = 40;
    let member = |name: &str| -> anyhow::Result<(Consumer<OrderedHandler>, consumers::Stats)> {
        let mut c = config(bootstrap, "rebalance", topic);
        c.client_id = name.to_owned();
        c.max_batch = 4;
        c.rebalance_grace = Duration::from_secs(2);
        // Slow handlers: a rebalance always finds transactions in flight.
        let consumer =
            Consumer::new(c, pool.clone(), OrderedHandler { max_delay_ms: 60, ..Default::default() })?;
        let stats = consumer.stats();
        Ok((consumer, stats))
    };

    let (a, a_stats) = member("member-a")?;
    let a_cancel = CancellationToken::new();
    let a_run = tokio::spawn(a.run(a_cancel.clone()));
    let mut b_run = None;
    let b_cancel = CancellationToken::new();
    let mut b_stats: Option<consumers::Stats> = None;
    let mut a_revoked_while_working = 0;
    let mut a_left = false;
    for seq in 1..=per_key {
        for key in &keys {
            send(&producer, topic, *key, seq).await?;
        }
        if seq == 5 {
            support::eventually("A to apply records", Duration::from_secs(60), || async {
                Ok((a_stats.snapshot().applied > 0).then_some(()))
            })
            .await?;
            let (b, stats) = member("member-b")?;
            b_stats = Some(stats);
            b_run = Some(tokio::spawn(b.run(b_cancel.clone())));
        }
        // A leaves once B works (and records keep coming meanwhile: B can
        // only show it works on records that arrive after it joined).
        if !a_left && seq >= 15 && b_stats.as_ref().is_some_and(|b| b.snapshot().applied > 0) {
            a_revoked_while_working = a_stats.snapshot().revoked_partitions;
            a_cancel.cancel();
            a_left = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(a_left, "B never applied a record while records were coming");
    let total = i64::from(per_key) * keys.len() as i64;
    support::eventually("every event applied", Duration::from_secs(180), || async {
        Ok((applied_count(&pool).await? >= total).then_some(()))
    })
    .await?;
    a_run.await??;
    b_cancel.cancel();
    if let Some(b) = b_run {
        b.await??;
    }
    assert_in_order_once(&applied(&pool).await?, &keys, per_key);
    assert_eq!(applied_count(&pool).await?, total);
    let (a, b) = (a_stats.snapshot(), b_stats.map(|s| s.snapshot()).unwrap_or_default());
    assert!(a_revoked_while_working > 0, "B's join made A give partitions up: {a:?}");
    assert!(a.applied > 0 && b.applied > 0, "both members applied records: {a:?} {b:?}");
    eprintln!("A {a:?}\nB {b:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_failing_for_20_s_holds_back_only_its_own_partition() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "stuck.commands";
    env.broker.create_topics(&[topic, "stuck.commands.dlq"], 3).await?;
    let pool = database(&env).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let producer = support::publisher(bootstrap)?;

    let stuck = Uuid::new_v4();
    let failing_for = Duration::from_secs(20);
    let handler =
        OrderedHandler { failing: Some((stuck, Instant::now() + failing_for)), ..Default::default() };
    let mut c = config(bootstrap, "stuck", topic);
    // Retries that outlast the poll interval: a member that stopped
    // polling while one record retries would be evicted.
    c.max_poll_interval = Duration::from_secs(10);
    c.attempt_timeout = Duration::from_secs(5);
    c.retry = RetryPolicy {
        max_attempts: 200,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        factor: 2.0,
        jitter: false,
    };
    let consumer = Consumer::new(c, pool.clone(), handler)?;
    let stats = consumer.stats();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(consumer.run(cancel.clone()));

    let started = Instant::now();
    let stuck_partition = send(&producer, topic, stuck, 1).await?;
    support::eventually("the stuck key to be retried", Duration::from_secs(30), || async {
        Ok((stats.snapshot().retries >= 2).then_some(()))
    })
    .await?;

    // Other keys, on every partition, while the stuck key retries.
    let mut others: HashMap<Uuid, (i32, Instant)> = HashMap::new();
    while others.values().filter(|(p, _)| *p != stuck_partition).count() < 6
        || others.values().all(|(p, _)| *p != stuck_partition)
    {
        let key = Uuid::new_v4();
        let partition = send(&producer, topic, key, 1).await?;
        others.insert(key, (partition, Instant::now()));
    }
    let free: Vec<Uuid> =
        others.iter().filter(|(_, (p, _))| *p != stuck_partition).map(|(k, _)| *k).collect();
    let behind: Vec<Uuid> =
        others.iter().filter(|(_, (p, _))| *p == stuck_partition).map(|(k, _)| *k).collect();
    let mut free_latency = Duration::ZERO;
    support::eventually("the other partitions' records", Duration::from_secs(15), || async {
        let done = applied(&pool).await?;
        Ok(free.iter().all(|k| done.contains_key(k)).then_some(()))
    })
    .await?;
    for k in &free {
        free_latency = free_latency.max(others[k].1.elapsed());
    }
    let still_failing = started.elapsed() < failing_for;
    assert!(still_failing, "the check must happen while the key still fails");
    let done = applied(&pool).await?;
    assert!(!done.contains_key(&stuck), "the stuck key cannot have applied yet");
    for k in &behind {
        assert!(!done.contains_key(k), "a record behind the stuck one on its partition overtook it");
    }

    support::eventually("the stuck key and its partition", Duration::from_secs(60), || async {
        let done = applied(&pool).await?;
        Ok((done.contains_key(&stuck) && behind.iter().all(|k| done.contains_key(k))).then_some(()))
    })
    .await?;
    let held = started.elapsed();
    cancel.cancel();
    run.await??;
    let s = stats.snapshot();
    assert_eq!(s.dead_lettered, 0, "recovered, not dead-lettered: {s:?}");
    assert_eq!(s.revoked_partitions, 0, "the member was never evicted while it retried: {s:?}");
    assert!(held >= failing_for, "{held:?}");
    eprintln!(
        "other partitions applied within {free_latency:?} (the stuck key took {held:?}); {} records were behind it",
        behind.len()
    );
    assert!(free_latency < Duration::from_secs(10), "{free_latency:?}");
    Ok(())
}
