//! Leases and slow reads: a lane's read that waits past the lease margin
//! sends nothing — another relay may hold the lane by the time it returns.
//! Relay A's reads are held up by a lock, its renewals refused, until relay
//! B has taken the expired lanes; then both reads come back with the same
//! rows. Only B may publish them: every event arrives exactly once.

use std::time::Duration;

use super::support::*;

/// Refuses lease renewals, cursor moves and heartbeats of the owners listed
/// in `refuse_renewals` (an update that keeps the owner); a new owner taking
/// a lane passes.
const REFUSE_RENEWALS: &str = r#"
CREATE TABLE refuse_renewals (owner text PRIMARY KEY);
CREATE FUNCTION refuse_renewals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.owner = NEW.owner AND EXISTS (SELECT 1 FROM refuse_renewals WHERE owner = NEW.owner) THEN
        RAISE EXCEPTION 'injected: lease renewal refused';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_renewals BEFORE UPDATE ON outbox_lanes
FOR EACH ROW EXECUTE FUNCTION refuse_renewals();
-- Its heartbeats too, so that the other relay's fair share is every lane.
CREATE FUNCTION refuse_heartbeats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM refuse_renewals WHERE owner = NEW.relay_id) THEN
        RAISE EXCEPTION 'injected: heartbeat refused';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_heartbeats BEFORE UPDATE ON outbox_relays
FOR EACH ROW EXECUTE FUNCTION refuse_heartbeats();
"#;

const KEYS: u64 = 24;

async fn held_by(pool: &sqlx::PgPool, owner: &str) -> anyhow::Result<bool> {
    Ok(lane_owners(pool).await?.iter().all(|(_, o, _, live)| *live && o.as_deref() == Some(owner)))
}

#[tokio::test]
async fn a_read_that_outlived_the_lease_sends_nothing() -> anyhow::Result<()> {
    let s = setup(2).await?;
    sqlx::raw_sql(REFUSE_RENEWALS).execute(&s.pool).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    let a = InProcessRelay::start(&s.pool, &bootstrap, relay_config("slow-reader"))?;
    let took = eventually(Duration::from_secs(20), || held_by(&s.pool, "slow-reader")).await?;
    anyhow::ensure!(took, "relay A did not take the lanes");

    // Every lane read waits for this lock (the read looks at parked rows).
    let mut lock = s.pool.begin().await?;
    sqlx::query("LOCK TABLE outbox_parked IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await?;
    sqlx::query("INSERT INTO refuse_renewals VALUES ('slow-reader')").execute(&s.pool).await?;
    for k in 0..KEYS {
        enqueue_committed(&s.pool, &message(&s.topic, &format!("key-{k}"), 0)).await?;
    }
    // A's reads are stuck; its lease runs out; B takes the lanes (and its
    // reads wait for the lock too).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let b = InProcessRelay::start(&s.pool, &bootstrap, relay_config("taker"))?;
    let taken = eventually(Duration::from_secs(20), || held_by(&s.pool, "taker")).await?;
    anyhow::ensure!(taken, "relay B did not take the expired lanes: {:?}", lane_owners(&s.pool).await?);
    lock.commit().await?;

    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(60), |v| {
        distinct(v) as u64 >= KEYS
    })
    .await?;
    // Whatever A wrongly sent arrives with B's records; read a little longer.
    let seen_more =
        consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(3), |v| v.len() > seen.len())
            .await?;
    sqlx::query("DELETE FROM refuse_renewals").execute(&s.pool).await?;
    let (a_stats, b_stats) = (a.stop().await?, b.stop().await?);
    eprintln!("A {a_stats:?}\nB {b_stats:?}");
    assert_eq!(distinct(&seen_more) as u64, KEYS);
    assert_eq!(
        seen_more.len() as u64,
        KEYS,
        "the relay whose read outlived its lease sent it too ({} records)",
        seen_more.len()
    );
    assert!(a_stats.late_reads > 0, "A's reads came back late: nothing was tested ({a_stats:?})");
    Ok(())
}
