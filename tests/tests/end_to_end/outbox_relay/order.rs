//! Per-key order under concurrent writers: writers race on a few hot keys,
//! take their transaction ids early (a business insert first), hold
//! transactions open for random times, and roll some back. Every committed
//! event must reach Kafka, in per-key commit order; no rolled-back one may.

use std::collections::HashMap;
use std::time::Duration;

use super::support::*;
use rand::Rng;

const WRITERS: usize = 8;
const TXS_PER_WRITER: usize = 120;
const KEYS: usize = 12;

#[tokio::test]
async fn concurrent_writers_keep_per_key_commit_order() -> anyhow::Result<()> {
    let s = setup(3).await?;
    sqlx::query("CREATE TABLE business (note text)").execute(&s.pool).await?;
    // The per-key counter row is the business "aggregate": its row lock
    // serialises writers of a key, so `n` numbers them in commit order.
    sqlx::query("CREATE TABLE counters (key text PRIMARY KEY, n bigint NOT NULL)").execute(&s.pool).await?;
    for k in 0..KEYS {
        sqlx::query("INSERT INTO counters VALUES ($1, 0)").bind(format!("key-{k}")).execute(&s.pool).await?;
    }
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    let r1 = InProcessRelay::start(&s.pool, &bootstrap, relay_config("r1"))?;
    let r2 = InProcessRelay::start(&s.pool, &bootstrap, relay_config("r2"))?;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = s.pool.clone();
        let topic = s.topic.clone();
        writers.push(tokio::spawn(async move {
            let mut rolled_back = 0usize;
            for _ in 0..TXS_PER_WRITER {
                let (key, pause_ms, hold_ms, rollback) = {
                    let mut rng = rand::rng();
                    let long = rng.random_bool(0.05);
                    (
                        format!("key-{}", rng.random_range(0..KEYS)),
                        rng.random_range(0..3u64),
                        if long { rng.random_range(50..200u64) } else { rng.random_range(0..3u64) },
                        rng.random_bool(0.1),
                    )
                };
                let mut tx = pool.begin().await?;
                // Take the transaction id before touching the key.
                sqlx::query("INSERT INTO business VALUES ($1)")
                    .bind(format!("writer {w}"))
                    .execute(&mut *tx)
                    .await?;
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                let n: i64 =
                    sqlx::query_scalar("UPDATE counters SET n = n + 1 WHERE key = $1 RETURNING n - 1")
                        .bind(&key)
                        .fetch_one(&mut *tx)
                        .await?;
                outbox::enqueue(&mut tx, &message(&topic, &key, u64::try_from(n)?)).await?;
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                if rollback {
                    tx.rollback().await?;
                    rolled_back += 1;
                } else {
                    tx.commit().await?;
                }
            }
            anyhow::Ok(rolled_back)
        }));
    }
    let mut rolled_back = 0;
    for w in writers {
        rolled_back += w.await??;
    }
    assert!(rolled_back > 0, "some transactions rolled back");

    let expected: HashMap<String, u64> = sqlx::query_as::<_, (String, i64)>("SELECT key, n FROM counters")
        .fetch_all(&s.pool)
        .await?
        .into_iter()
        .map(|(k, n)| (k, n as u64))
        .collect();
    let total: u64 = expected.values().sum();
    assert_eq!(total as usize, WRITERS * TXS_PER_WRITER - rolled_back);

    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(120), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    let s1 = r1.stop().await?;
    let s2 = r2.stop().await?;
    let report = check_per_key_order(&seen, &expected)?;
    assert_eq!(distinct(&seen) as u64, total, "no rolled-back event was published");
    assert!(s1.published > 0 && s2.published > 0, "both relays worked: {s1:?} {s2:?}");
    eprintln!("{} events, {} duplicates, relays {:?} / {:?}", total, report.duplicates, s1, s2);
    Ok(())
}
