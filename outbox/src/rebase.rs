//! Positions ahead of the transaction ids, and [`rebase`], the recovery.
//!
//! Transaction ids do not survive a dump/restore or a logical move to a new
//! cluster (Watermill #576): they start again lower, and new rows sort behind
//! the stored lane cursors and key positions. Nothing would read them, and
//! cleanup would delete them as published. So:
//!
//! * the relay checks at start ([`positions_ahead`]) and refuses to run,
//!   saying what it found and how to recover;
//! * a lane that reads a watermark below its cursor stops sending and raises
//!   an alarm ([`crate::AlarmKind::PositionsAhead`]);
//! * cleanup leaves a lane whose cursor is ahead alone;
//! * [`rebase`] (`saga outbox rebase`, SQL `outbox_rebase()`, in
//!   `migrations/0006_outbox_rebase.sql`) brings every position back below
//!   the transaction ids: with every relay stopped, it publishes again what
//!   was not published before the move — and what may have been written
//!   after it — in per-key order, and retires the rest.
//!
//! Recovery: stop every relay (a graceful stop hands the leases back; after
//! a kill wait for the lease ttl), run `saga outbox rebase --database-url
//! URL`, start the relays. Some rows may go out twice (same event id).

use sqlx::{PgPool, Row};

use crate::error::OutboxError;

/// Something stored ahead of the database's next transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionAhead {
    /// `lane cursor`, `key position` or `row position`.
    pub what: String,
    /// The lane, for a cursor or a row.
    pub lane: Option<i32>,
    /// The stored position.
    pub pos: i64,
}

impl std::fmt::Display for PositionAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lane {
            Some(lane) => write!(f, "{} {} of lane {lane}", self.what, self.pos),
            None => write!(f, "{} {}", self.what, self.pos),
        }
    }
}

/// What to tell an operator who meets positions ahead.
pub const RECOVERY: &str = "the outbox's stored positions are ahead of this database's transaction ids \
     (it was restored from a dump or moved to a new cluster, and transaction ids started again lower): \
     rows written now would never be published; nothing is sent until it is repaired. Recover: stop \
     every relay, run `saga outbox rebase --database-url URL` (SQL: SELECT * FROM outbox_rebase()), \
     start the relays; rows that may have been published before go out again with their event ids";

/// Lane cursors, key positions and rows ahead of the next transaction id
/// (empty on a healthy database).
pub async fn positions_ahead(pool: &PgPool) -> Result<Vec<PositionAhead>, OutboxError> {
    let rows = sqlx::query("SELECT what, lane, pos::text::bigint AS pos FROM outbox_positions_ahead()")
        .fetch_all(pool)
        .await
        .map_err(OutboxError::Rebase)?;
    rows.iter()
        .map(|r| {
            Ok(PositionAhead { what: r.try_get("what")?, lane: r.try_get("lane")?, pos: r.try_get("pos")? })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(OutboxError::Rebase)
}

/// What [`rebase`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebased {
    /// Rows to be published (again): not published before, or maybe
    /// written after the move.
    pub republished: i64,
    /// Rows published before the move, moved below the new cursors (cleanup
    /// removes them after the retention).
    pub retired: i64,
}

/// Brings every stored position back below the transaction ids (see the
/// module docs). Refused while a relay holds a lane lease.
pub async fn rebase(pool: &PgPool) -> Result<Rebased, OutboxError> {
    let r = sqlx::query("SELECT republished, retired FROM outbox_rebase()")
        .fetch_one(pool)
        .await
        .map_err(OutboxError::Rebase)?;
    let got = |name: &str| r.try_get::<i64, _>(name).map_err(OutboxError::Rebase);
    Ok(Rebased { republished: got("republished")?, retired: got("retired")? })
}
