//! Several relays at once: three relay processes share the lanes; when one is
//! killed (-9) the others take its lanes over after the lease expires; a relay
//! frozen past its lease (SIGSTOP, a zombie) is fenced when it wakes up; and
//! through all of it every committed event reaches Kafka in per-key order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::support::*;
use outbox::store::{self, Cursor, LeaseToken};

const LEASE_TTL_MS: u64 = 2000;
const KEYS: u64 = 40;

/// Lanes held with a live lease, per owner.
async fn holdings(pool: &sqlx::PgPool) -> anyhow::Result<HashMap<String, Vec<i32>>> {
    let mut by_owner: HashMap<String, Vec<i32>> = HashMap::new();
    for (lane, owner, _, live) in lane_owners(pool).await? {
        if let (Some(o), true) = (owner, live) {
            by_owner.entry(o).or_default().push(lane);
        }
    }
    Ok(by_owner)
}

#[tokio::test]
async fn three_relays_share_lanes_and_take_over_from_a_killed_one() -> anyhow::Result<()> {
    let s = setup(4).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    let mut relays: Vec<RelayProcess> = ["a", "b", "c"]
        .iter()
        .map(|id| RelayProcess::spawn(id, &s.db_url, &bootstrap, LEASE_TTL_MS))
        .collect::<anyhow::Result<_>>()?;

    // Fair share: 8 lanes over 3 relays = 3 + 3 + 2.
    let shared = eventually(Duration::from_secs(30), || async {
        let h = holdings(&s.pool).await?;
        Ok(h.len() == 3 && h.values().map(Vec::len).sum::<usize>() == 8 && h.values().all(|l| l.len() <= 3))
    })
    .await?;
    assert!(shared, "lanes not shared fairly: {:?}", holdings(&s.pool).await?);

    // A writer commits events for 40 keys for the rest of the test.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, topic, stop) = (s.pool.clone(), s.topic.clone(), stop.clone());
        tokio::spawn(async move {
            let mut next = vec![0u64; KEYS as usize];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = i % KEYS;
                enqueue_committed(&pool, &message(&topic, &format!("key-{k}"), next[k as usize])).await?;
                next[k as usize] += 1;
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok(next)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Kill relay "a": its lanes move to b and c once its lease expires.
    let before = holdings(&s.pool).await?;
    let a_lanes = before.get("a").cloned().unwrap_or_default();
    assert!(!a_lanes.is_empty(), "a held lanes: {before:?}");
    relays[0].kill9()?;
    let taken_over = eventually(Duration::from_secs(20), || async {
        let h = holdings(&s.pool).await?;
        Ok(!h.contains_key("a") && h.values().map(Vec::len).sum::<usize>() == 8)
    })
    .await?;
    let after = holdings(&s.pool).await?;
    assert!(taken_over, "a's lanes {a_lanes:?} were not taken over: {after:?}");
    assert_eq!(after.len(), 2);

    // Freeze "b" past its lease: "c" takes everything; when b wakes up it
    // must notice it lost its lanes instead of writing with a stale epoch.
    relays[1].signal("STOP")?;
    let c_alone = eventually(Duration::from_secs(20), || async {
        let h = holdings(&s.pool).await?;
        Ok(h.len() == 1 && h.get("c").map(Vec::len) == Some(8))
    })
    .await?;
    assert!(c_alone, "c did not take over from the frozen b: {:?}", holdings(&s.pool).await?);
    relays[1].signal("CONT")?;
    // b rejoins with a fresh grant (new epoch): the lanes end up shared again.
    let reshared = eventually(Duration::from_secs(30), || async {
        let h = holdings(&s.pool).await?;
        Ok(h.len() == 2 && h.values().map(Vec::len).sum::<usize>() == 8 && h.values().all(|l| l.len() == 4))
    })
    .await?;
    assert!(reshared, "b did not rejoin: {:?}", holdings(&s.pool).await?);
    assert!(relays[1].running(), "the thawed relay keeps running");

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let counts = writer.await??;
    let expected: HashMap<String, u64> =
        counts.iter().enumerate().map(|(k, n)| (format!("key-{k}"), *n)).collect();
    let total: u64 = expected.values().sum();
    let seen = consume_until(&bootstrap, &s.topic, s.partitions, Duration::from_secs(120), |v| {
        distinct(v) as u64 >= total
    })
    .await?;
    for r in relays.iter_mut().skip(1) {
        r.terminate()?;
    }
    let report = check_per_key_order(&seen, &expected)?;
    eprintln!("{total} events, {} duplicates", report.duplicates);
    Ok(())
}

/// A relay whose lane was re-granted to another relay cannot move the
/// cursor or park rows any more (the write checks owner and epoch).
#[tokio::test]
async fn a_stale_epoch_cannot_write() -> anyhow::Result<()> {
    let s = setup(1).await?;
    for i in 0..3 {
        enqueue_committed(&s.pool, &message(&s.topic, "k", i)).await?;
    }
    let ttl = Duration::from_millis(500);
    let old = outbox::lease::acquire(&s.pool, "old", 8, ttl).await?;
    assert_eq!(old.len(), 8);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let new = outbox::lease::acquire(&s.pool, "new", 8, Duration::from_secs(60)).await?;
    assert_eq!(new.len(), 8, "expired lanes are granted again");
    let lane = new[0].lane;
    let old_epoch = old.iter().find(|l| l.lane == lane).map(|l| l.epoch).unwrap_or_default();
    assert!(new[0].epoch > old_epoch);

    let to = Cursor { pos: i64::MAX / 2, id: 1 };
    let parked = [store::Park { id: 1, pos: 0, reason: "x".into(), blocked_by: None }];
    let stale = LeaseToken { lane, owner: "old", epoch: old_epoch };
    let err = store::commit(&s.pool, stale, to, &parked, 1000).await;
    assert!(matches!(err, Err(outbox::OutboxError::LeaseLost { .. })), "{err:?}");
    // Same owner name, stale epoch: also refused.
    let stale_epoch = LeaseToken { lane, owner: "new", epoch: old_epoch };
    assert!(matches!(
        store::commit(&s.pool, stale_epoch, to, &[], 1000).await,
        Err(outbox::OutboxError::LeaseLost { .. })
    ));
    assert!(outbox::list_parked(&s.pool, 10).await?.is_empty(), "the refused batch parked nothing");
    let kept = outbox::lease::renew(&s.pool, "old", &[(lane, old_epoch)], ttl).await?;
    assert!(kept.is_empty(), "the stale holder cannot renew");
    let cursors: HashSet<i64> = sqlx::query_scalar("SELECT cursor_id FROM outbox_lanes")
        .fetch_all(&s.pool)
        .await?
        .into_iter()
        .collect();
    assert_eq!(cursors, HashSet::from([0]), "no cursor moved");

    let current = LeaseToken { lane, owner: "new", epoch: new[0].epoch };
    store::commit(&s.pool, current, to, &[], 1000).await?;

    // Moves of several lanes in one statement are fenced one by one: the
    // stale one is refused, the current one goes through.
    let epoch_of = |leases: &[outbox::lease::LaneLease], lane: i32| {
        leases.iter().find(|l| l.lane == lane).map(|l| l.epoch).unwrap_or_default()
    };
    let (refused, moved) = (new[1].lane, new[2].lane);
    let moves = [
        store::CursorMove { lane: refused, epoch: epoch_of(&old, refused), to },
        store::CursorMove { lane: moved, epoch: epoch_of(&new, moved), to },
    ];
    let results = store::advance_lanes(&s.pool, "new", &moves, 1000).await;
    assert!(matches!(results[0], Err(outbox::OutboxError::LeaseLost { .. })), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    let cursor_of = |lane: i32| {
        sqlx::query_scalar::<_, i64>("SELECT cursor_id FROM outbox_lanes WHERE lane = $1").bind(lane)
    };
    assert_eq!(cursor_of(refused).fetch_one(&s.pool).await?, 0, "the stale move was refused");
    assert_eq!(cursor_of(moved).fetch_one(&s.pool).await?, to.id, "the current move went through");

    // A stale and a current worker of one lane (a lane lost and taken back)
    // in one statement: only the current one is told its move was made.
    let stale_and_current = [
        store::CursorMove { lane: refused, epoch: epoch_of(&old, refused), to },
        store::CursorMove { lane: refused, epoch: epoch_of(&new, refused), to },
    ];
    let results = store::advance_lanes(&s.pool, "new", &stale_and_current, 1000).await;
    assert!(matches!(results[0], Err(outbox::OutboxError::LeaseLost { .. })), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    assert_eq!(cursor_of(refused).fetch_one(&s.pool).await?, to.id);
    Ok(())
}

/// A lane does not wait for its cursor writes, so two moves of one lane can
/// meet in one statement: the furthest is written, whatever the order, and
/// both are answered as made. A move behind the cursor is made by then.
#[tokio::test]
async fn moves_of_one_lane_in_one_statement_write_the_furthest() -> anyhow::Result<()> {
    let s = setup(1).await?;
    let leases = outbox::lease::acquire(&s.pool, "relay", 8, Duration::from_secs(60)).await?;
    let (lane, epoch) = (leases[0].lane, leases[0].epoch);
    let at = |id: i64| Cursor { pos: 1_000, id };
    let (other, other_epoch) = (leases[1].lane, leases[1].epoch);
    let moves = [
        store::CursorMove { lane, epoch, to: at(7) },
        store::CursorMove { lane, epoch, to: at(3) },
        store::CursorMove { lane: other, epoch: other_epoch, to: at(3) },
        store::CursorMove { lane: other, epoch: other_epoch, to: at(5) },
    ];
    let results = store::advance_lanes(&s.pool, "relay", &moves, 1000).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let cursors: HashMap<i32, i64> = sqlx::query_as("SELECT lane, cursor_id FROM outbox_lanes")
        .fetch_all(&s.pool)
        .await?
        .into_iter()
        .collect();
    assert_eq!(cursors[&lane], 7, "the furthest move of the lane was written (it came first)");
    assert_eq!(cursors[&other], 5, "the furthest move of the lane was written (it came last)");

    // A move behind the stored cursor (written again after an answer was
    // lost) leaves the cursor where it is and is still answered as made.
    let behind = [store::CursorMove { lane, epoch, to: at(4) }];
    let results = store::advance_lanes(&s.pool, "relay", &behind, 1000).await;
    assert!(results[0].is_ok(), "{results:?}");
    let kept: i64 = sqlx::query_scalar("SELECT cursor_id FROM outbox_lanes WHERE lane = $1")
        .bind(lane)
        .fetch_one(&s.pool)
        .await?;
    assert_eq!(kept, 7, "a cursor never moves backwards");
    Ok(())
}
