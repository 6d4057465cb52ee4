//! Lane leases: which relay publishes which lane.
//!
//! Every relay heartbeats a row in `outbox_relays`; from the live relays it
//! computes its fair share `ceil(lanes / live relays)`, takes free or expired
//! lanes up to that share and hands back lanes above it. Each grant bumps the
//! lane's `epoch`; every write a relay makes for a lane (cursor move, parking,
//! renewal) requires its owner id *and* epoch, so a relay that was paused past
//! its lease (a zombie) can no longer change anything once another relay holds
//! the lane. The relay also stops *sending* for a lane when its local view of
//! the lease runs out (see `relay.rs`), before the database lets another relay
//! take over.

use std::time::Duration;

use sqlx::{PgPool, Row};

use crate::error::OutboxError;
use crate::store::Cursor;

/// A lease on one lane, as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLease {
    /// Lane.
    pub lane: i32,
    /// Epoch of this grant.
    pub epoch: i64,
    /// The lane's cursor at the grant.
    pub cursor: Cursor,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Announces (or refreshes) `relay_id` and forgets relays silent for 10 TTLs.
pub async fn heartbeat(pool: &PgPool, relay_id: &str, ttl: Duration) -> Result<(), OutboxError> {
    sqlx::query(
        "INSERT INTO outbox_relays (relay_id) VALUES ($1) \
         ON CONFLICT (relay_id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(relay_id)
    .execute(pool)
    .await
    .map_err(OutboxError::Lease)?;
    sqlx::query("DELETE FROM outbox_relays WHERE heartbeat_at < now() - $1 * interval '1 millisecond'")
        .bind(millis(ttl) * 10)
        .execute(pool)
        .await
        .map_err(OutboxError::Lease)?;
    Ok(())
}

/// What the relays agree on, read at every lease round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Configured lanes.
    pub lanes: i64,
    /// Relays that heartbeat within the lease ttl (at least 1).
    pub relays: i64,
    /// Whether writers send the NOTIFY wake-up hint (`crate::set_notify`).
    pub notify: bool,
}

/// Number of lanes, of relays that heartbeat within `ttl` (at least 1), and
/// whether writers notify.
pub async fn census(pool: &PgPool, ttl: Duration) -> Result<Census, OutboxError> {
    let r = sqlx::query(
        "SELECT s.lanes::bigint AS lanes, s.notify, \
                (SELECT count(*) FROM outbox_relays \
                  WHERE heartbeat_at > now() - $1 * interval '1 millisecond') AS relays \
         FROM outbox_settings s",
    )
    .bind(millis(ttl))
    .fetch_one(pool)
    .await
    .map_err(OutboxError::Lease)?;
    let get = |name: &str| r.try_get::<i64, _>(name).map_err(OutboxError::Lease);
    Ok(Census {
        lanes: get("lanes")?,
        relays: get("relays")?.max(1),
        notify: r.try_get("notify").map_err(OutboxError::Lease)?,
    })
}

/// How many lanes one of `relays` live relays should hold, capped by `max`.
pub fn fair_share(lanes: i64, relays: i64, max: Option<usize>) -> usize {
    let relays = relays.max(1);
    let share = usize::try_from((lanes + relays - 1) / relays).unwrap_or(0);
    max.map_or(share, |m| share.min(m))
}

/// Lanes that `relays` live relays capped at `max` lanes each cannot hold
/// (0 when they can hold every lane, or when there is no cap). Those lanes
/// are published by nobody.
pub fn uncovered_lanes(lanes: i64, relays: i64, max: Option<usize>) -> i64 {
    match max {
        Some(m) => (lanes - relays.max(1).saturating_mul(i64::try_from(m).unwrap_or(i64::MAX))).max(0),
        None => 0,
    }
}

/// Takes up to `n` lanes that are free or whose lease expired.
pub async fn acquire(
    pool: &PgPool,
    owner: &str,
    n: usize,
    ttl: Duration,
) -> Result<Vec<LaneLease>, OutboxError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        r#"
        UPDATE outbox_lanes l
        SET owner = $1, epoch = l.epoch + 1, lease_until = now() + $2 * interval '1 millisecond'
        WHERE l.lane IN (
            SELECT lane FROM outbox_lanes
            WHERE (owner IS NULL OR lease_until IS NULL OR lease_until < now())
              AND lane < (SELECT lanes FROM outbox_settings)
            ORDER BY lane LIMIT $3
            FOR UPDATE SKIP LOCKED)
        RETURNING l.lane, l.epoch, l.cursor_pos::text::bigint AS pos, l.cursor_id
        "#,
    )
    .bind(owner)
    .bind(millis(ttl))
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(OutboxError::Lease)?;
    rows.iter()
        .map(|r| {
            Ok(LaneLease {
                lane: r.try_get("lane")?,
                epoch: r.try_get("epoch")?,
                cursor: Cursor { pos: r.try_get("pos")?, id: r.try_get("cursor_id")? },
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(OutboxError::Lease)
}

/// Extends the leases in `held` (lane, epoch); returns the lanes still held.
/// A lane missing from the answer was lost: stop working on it. Rows are
/// locked in lane order, as the relay's cursor moves lock them, so the two
/// never deadlock.
pub async fn renew(
    pool: &PgPool,
    owner: &str,
    held: &[(i32, i64)],
    ttl: Duration,
) -> Result<Vec<i32>, OutboxError> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let (lanes, epochs): (Vec<i32>, Vec<i64>) = held.iter().copied().unzip();
    let rows = sqlx::query(
        r#"
        WITH held AS (
            SELECT l.lane FROM outbox_lanes l
            JOIN unnest($3::int[], $4::bigint[]) AS h(lane, epoch) ON h.lane = l.lane
            WHERE l.epoch = h.epoch AND l.owner = $1
            ORDER BY l.lane
            FOR UPDATE OF l
        )
        UPDATE outbox_lanes l SET lease_until = GREATEST(l.lease_until, now() + $2 * interval '1 millisecond')
        FROM held h WHERE l.lane = h.lane
        RETURNING l.lane
        "#,
    )
    .bind(owner)
    .bind(millis(ttl))
    .bind(&lanes)
    .bind(&epochs)
    .fetch_all(pool)
    .await
    .map_err(OutboxError::Lease)?;
    rows.iter().map(|r| r.try_get("lane")).collect::<Result<_, _>>().map_err(OutboxError::Lease)
}

/// Gives a lane back (after its worker stopped) so another relay can take it
/// at once instead of waiting for the lease to expire.
pub async fn release(pool: &PgPool, owner: &str, lane: i32, epoch: i64) -> Result<(), OutboxError> {
    sqlx::query("UPDATE outbox_lanes SET owner = NULL, lease_until = NULL WHERE lane = $1 AND owner = $2 AND epoch = $3")
        .bind(lane)
        .bind(owner)
        .bind(epoch)
        .execute(pool)
        .await
        .map_err(OutboxError::Lease)?;
    Ok(())
}

/// Removes the relay's heartbeat row (clean shutdown).
pub async fn deregister(pool: &PgPool, relay_id: &str) -> Result<(), OutboxError> {
    sqlx::query("DELETE FROM outbox_relays WHERE relay_id = $1")
        .bind(relay_id)
        .execute(pool)
        .await
        .map_err(OutboxError::Lease)?;
    Ok(())
}

/// Sets the number of lanes. Changing it remaps keys to lanes, which is only
/// safe when nothing is in flight: it requires that no relay holds a lease and
/// that every committed row was published; writers are held off by a table
/// lock meanwhile. Setting the current value is a no-op.
pub async fn configure_lanes(pool: &PgPool, lanes: i32) -> Result<(), OutboxError> {
    if !(1..=1024).contains(&lanes) {
        return Err(OutboxError::ConfigureLanes(format!("lanes must be 1..=1024, got {lanes}")));
    }
    let current: i32 = sqlx::query_scalar("SELECT lanes FROM outbox_settings")
        .fetch_one(pool)
        .await
        .map_err(OutboxError::Lease)?;
    if current == lanes {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(OutboxError::Lease)?;
    // Waits for every transaction that already inserted into the outbox.
    sqlx::query("LOCK TABLE outbox IN EXCLUSIVE MODE").execute(&mut *tx).await.map_err(OutboxError::Lease)?;
    let (leased, pending): (bool, bool) = sqlx::query_as(
        r#"
        SELECT EXISTS (SELECT 1 FROM outbox_lanes WHERE owner IS NOT NULL AND lease_until > now()),
               EXISTS (SELECT 1 FROM outbox o JOIN outbox_lanes l ON l.lane = o.lane
                        WHERE (o.pos, o.id) > (l.cursor_pos, l.cursor_id))
        "#,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(OutboxError::Lease)?;
    if leased || pending {
        return Err(OutboxError::ConfigureLanes(format!(
            "cannot change lanes from {current} to {lanes}: {}",
            if leased { "a relay holds a lease (stop all relays first)" } else { "unpublished rows remain" }
        )));
    }
    for sql in [
        "DELETE FROM outbox WHERE lane >= $1",
        "DELETE FROM outbox_lanes WHERE lane >= $1",
        "INSERT INTO outbox_lanes (lane) SELECT generate_series(0, $1 - 1) ON CONFLICT (lane) DO NOTHING",
        "UPDATE outbox_settings SET lanes = $1",
    ] {
        sqlx::query(sql).bind(lanes).execute(&mut *tx).await.map_err(OutboxError::Lease)?;
    }
    tx.commit().await.map_err(OutboxError::Lease)?;
    tracing::info!(from = current, to = lanes, "outbox lanes reconfigured");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fair_share;

    #[test]
    fn too_few_relays_for_the_lanes_are_counted() {
        assert_eq!(super::uncovered_lanes(8, 2, Some(2)), 4);
        assert_eq!(super::uncovered_lanes(8, 4, Some(2)), 0);
        assert_eq!(super::uncovered_lanes(8, 5, Some(2)), 0);
        assert_eq!(super::uncovered_lanes(8, 1, None), 0);
        assert_eq!(super::uncovered_lanes(8, 0, Some(3)), 5, "at least this relay runs");
    }

    #[test]
    fn fair_share_covers_every_lane() {
        assert_eq!(fair_share(8, 1, None), 8);
        assert_eq!(fair_share(8, 3, None), 3); // 3 + 3 + 2
        assert_eq!(fair_share(8, 2, None), 4);
        assert_eq!(fair_share(8, 0, None), 8);
        assert_eq!(fair_share(8, 1, Some(2)), 2);
        for relays in 1..=10 {
            assert!(fair_share(8, relays, None) as i64 * relays >= 8);
        }
    }
}
