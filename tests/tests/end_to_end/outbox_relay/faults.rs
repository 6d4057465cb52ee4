//! Failed cursor writes: a trigger makes about a third of the relay's cursor
//! writes fail while writers commit. A lane does not wait for its cursor
//! writes, so when one fails it first lets the writes after it land, then
//! sends everything after the database's cursor again: every event arrives,
//! in per-key order, repeats carry their first occurrence's event id, and the
//! cursors end past the last row.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::support::*;

/// Fails a cursor move with probability 0.3 and counts the failures in a
/// sequence (sequences ignore the rollback the failure causes).
const FAULTS: &str = r#"
CREATE SEQUENCE cursor_faults;
CREATE FUNCTION fail_some_cursor_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF random() < 0.3 THEN
        PERFORM nextval('cursor_faults');
        RAISE EXCEPTION 'injected cursor-write failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_some_cursor_moves BEFORE UPDATE OF cursor_pos, cursor_id ON outbox_lanes
FOR EACH ROW WHEN ((OLD.cursor_pos, OLD.cursor_id) IS DISTINCT FROM (NEW.cursor_pos, NEW.cursor_id))
EXECUTE FUNCTION fail_some_cursor_moves();
"#;

const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 10;

#[tokio::test]
async fn failed_cursor_writes_are_resent_without_loss_or_reordering() -> anyhow::Result<()> {
    let s = setup(4).await?;
    sqlx::raw_sql(FAULTS).execute(&s.pool).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    let relay = InProcessRelay::start(&s.pool, &bootstrap, relay_config("faulty-database"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (pool, topic, stop) = (s.pool.clone(), s.topic.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut next = vec![0u64; KEYS_PER_WRITER as usize];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut tx = pool.begin().await?;
                for _ in 0..3 {
                    let k = (i % KEYS_PER_WRITER) as usize;
                    outbox::enqueue(&mut tx, &message(&topic, &format!("w{w}-k{k}"), next[k])).await?;
                    next[k] += 1;
                    i += 1;
                }
                tx.commit().await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok((w, next))
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut expected = HashMap::new();
    for w in writers {
        let (w, next) = w.await??;
        for (k, n) in next.iter().enumerate() {
            expected.insert(format!("w{w}-k{k}"), *n);
        }
    }
    let total: u64 = expected.values().sum();

    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(120), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    let caught_up = eventually(Duration::from_secs(30), || async {
        Ok(outbox::store::backlog(&s.pool).await?.rows == 0)
    })
    .await?;
    let faults: i64 =
        sqlx::query_scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM cursor_faults")
            .fetch_one(&s.pool)
            .await?;
    let stats = relay.stop().await?;

    let report = check_per_key_order(&seen, &expected)?;
    eprintln!(
        "{total} events, {} records ({} repeats), {faults} failed cursor writes, {} resends",
        report.records, report.duplicates, stats.retries
    );
    assert!(faults > 0, "no cursor write failed: the test exercised nothing");
    assert!(stats.retries > 0, "failed cursor writes must lead to resends");
    assert!(caught_up, "the cursors end past the last row despite the failures");
    Ok(())
}
