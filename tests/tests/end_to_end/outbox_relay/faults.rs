//! Failing cursor writes. A trigger fails the relay's cursor writes while
//! writers commit: first some of them, then all of them for two seconds,
//! then none; meanwhile an oversized record is parked. A failed write loses
//! nothing (the rows are acked already): it is covered by a later write or
//! written again after a backoff (parking is tried again), and rows are not
//! sent again for it. Every event arrives exactly once, in per-key
//! order, no lease is lost, and the cursors end past the last row.

use std::time::Duration;

use super::support::*;

/// Fails the update of a lane row whose cursor changes with probability
/// `cursor_faults_rate.p` (aborting the whole statement, so every lane in
/// it), counting failures in a sequence (which ignores the rollback).
const FAULTS: &str = r#"
CREATE TABLE cursor_faults_rate (p float8 NOT NULL);
INSERT INTO cursor_faults_rate VALUES (0);
CREATE SEQUENCE cursor_faults;
CREATE FUNCTION fail_cursor_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF random() < (SELECT p FROM cursor_faults_rate) THEN
        PERFORM nextval('cursor_faults');
        RAISE EXCEPTION 'injected cursor-write failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_cursor_moves BEFORE UPDATE OF cursor_pos, cursor_id ON outbox_lanes
FOR EACH ROW WHEN ((OLD.cursor_pos, OLD.cursor_id) IS DISTINCT FROM (NEW.cursor_pos, NEW.cursor_id))
EXECUTE FUNCTION fail_cursor_moves();
"#;

const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 10;

async fn set_fault_rate(pool: &sqlx::PgPool, p: f64) -> anyhow::Result<()> {
    sqlx::query("UPDATE cursor_faults_rate SET p = $1").bind(p).execute(pool).await?;
    Ok(())
}

async fn faults(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    let sql = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM cursor_faults";
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

#[tokio::test]
async fn failed_cursor_writes_lose_nothing_and_send_nothing_twice() -> anyhow::Result<()> {
    let s = setup(4).await?;
    sqlx::raw_sql(FAULTS).execute(&s.pool).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    // No idle advance: only the lanes' own cursor moves can bring the
    // cursors to the end.
    // Leases are renewed apart from cursor writes; a long one keeps a slow
    // machine's renewal hiccup out of this test.
    let config = outbox::RelayConfig {
        idle_advance_interval: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(6),
        ..relay_config("faulty-database")
    };
    let relay = InProcessRelay::start(&s.pool, &bootstrap, config)?;
    let all_held = eventually(Duration::from_secs(20), || async {
        Ok(lane_owners(&s.pool).await?.iter().all(|(_, owner, _, live)| *live && owner.is_some()))
    })
    .await?;
    anyhow::ensure!(all_held, "the relay did not take every lane");
    let epochs_before = lane_owners(&s.pool).await?;

    let writers = Writers::start(&s.pool, &s.topic, WRITERS, KEYS_PER_WRITER, 3, Duration::from_millis(5));
    set_fault_rate(&s.pool, 0.3).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A record the broker refuses is parked by a transaction of its own,
    // which the faults hit too.
    let mut oversized = message(&s.topic, "oversized", 0);
    oversized.payload = vec![b'x'; 2_000_000];
    enqueue_committed(&s.pool, &oversized).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every write fails: lanes back off instead of retrying hot.
    let before_outage = faults(&s.pool).await?;
    set_fault_rate(&s.pool, 1.0).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_outage = faults(&s.pool).await? - before_outage;
    set_fault_rate(&s.pool, 0.0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let expected = writers.stop().await?;
    let total: u64 = expected.values().sum();

    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(120), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    let caught_up = eventually(Duration::from_secs(30), || async {
        Ok(outbox::store::backlog(&s.pool).await?.rows == 0)
    })
    .await?;
    let epochs_after = lane_owners(&s.pool).await?;
    let parked = outbox::list_parked(&s.pool, 10).await?;
    let faults = faults(&s.pool).await?;
    let stats = relay.stop().await?;

    let report = check_per_key_order(&seen, &expected)?;
    eprintln!(
        "{total} events, {} records, {faults} failed cursor writes ({in_outage} in the outage), stats {stats:?}",
        report.records
    );
    assert!(faults > 0 && stats.failed_cursor_writes > 0, "no cursor write failed: nothing was tested");
    assert_eq!(report.duplicates, 0, "rows were sent again for failed cursor writes");
    assert_eq!(stats.retries, 0, "no batch should have been sent again");
    assert_eq!(stats.published, total, "every delivered row is booked once, covered or rewritten");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!((parked[0].key.as_str(), stats.parked), ("oversized", 1));
    assert!(caught_up, "the cursors end past the last row");
    let epochs =
        |o: &[(i32, Option<String>, i64, bool)]| o.iter().map(|(l, _, e, _)| (*l, *e)).collect::<Vec<_>>();
    assert_eq!(epochs(&epochs_before), epochs(&epochs_after), "a lease was lost on the way");
    // Two seconds of failing writes: backoff from 50 ms (relay_config)
    // allows a handful of attempts per lane, a hot loop thousands.
    assert!(in_outage < 300, "{in_outage} failed cursor writes in 2 s: the lanes did not back off");
    Ok(())
}

/// Parking is the one record a lane waits for: while its transaction fails,
/// the lane tries it again after a backoff instead of sending the batch
/// again. The only row is one the broker refuses, so the only cursor writes
/// are the parking ones.
#[tokio::test]
async fn a_failed_parking_transaction_is_tried_again_not_resent() -> anyhow::Result<()> {
    let s = setup(1).await?;
    sqlx::raw_sql(FAULTS).execute(&s.pool).await?;
    set_fault_rate(&s.pool, 1.0).await?;
    let mut oversized = message(&s.topic, "oversized", 0);
    oversized.payload = vec![b'x'; 2_000_000];
    enqueue_committed(&s.pool, &oversized).await?;
    let config = outbox::RelayConfig {
        idle_advance_interval: Duration::from_secs(3600),
        ..relay_config("faulty-parking")
    };
    let relay = InProcessRelay::start(&s.pool, s.env.broker.bootstrap_servers(), config)?;
    let failing = eventually(Duration::from_secs(20), || async { Ok(faults(&s.pool).await? >= 2) }).await?;
    set_fault_rate(&s.pool, 0.0).await?;
    let parked = eventually(Duration::from_secs(20), || async { Ok(relay.stats.get().parked == 1) }).await?;
    let stats = relay.stop().await?;
    assert!(failing, "the parking transaction never failed: nothing was tested");
    assert!(parked, "the row was not parked once the database recovered: {stats:?}");
    assert!(stats.failed_cursor_writes >= 2, "{stats:?}");
    assert_eq!(stats.retries, 0, "the batch was sent again: {stats:?}");
    assert_eq!(outbox::list_parked(&s.pool, 10).await?.len(), 1);
    Ok(())
}
