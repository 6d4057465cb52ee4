//! `saga outbox`: operator verbs on a service's outbox — parked rows (list,
//! re-send a key's parked rows in order, discard one by row id) and the
//! recovery after a dump/restore or a move (`rebase`). Each verb is one
//! function of the `outbox` crate; see its docs for the guarantees.

use anyhow::Context;
use clap::Subcommand;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// PostgreSQL URL of the database that holds the outbox.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// List parked rows (oldest first) with their reason.
    Parked {
        /// Most rows to list.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Re-send every parked row of KEY, in its original order, behind nothing
    /// of the key that is still unpublished (one transaction; safe while
    /// relays run). Fix the cause first (e.g. the topic's max.message.bytes).
    RequeueParked {
        /// The message key (aggregate id).
        key: String,
    },
    /// Discard one parked row by its row id (the id `parked` prints). The key
    /// stays blocked while other parked rows of it remain.
    Discard {
        /// Row id.
        id: i64,
    },
    /// After a dump/restore or a move to a new cluster (transaction ids
    /// started again lower): bring the stored positions back below them.
    /// Stop every relay first; rows that may have been published go out
    /// again (same event ids).
    Rebase,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let url = args.database_url.context("--database-url (or DATABASE_URL) is required")?;
    let pool = sqlx::PgPool::connect(&url).await.context("connecting to the database")?;
    match args.verb {
        Verb::Parked { limit } => {
            for p in outbox::list_parked(&pool, limit).await? {
                let behind = p.blocked_by.map(|b| format!(" blocked_by={b}")).unwrap_or_default();
                println!(
                    "id={} key={} topic={} event_id={} bytes={} parked_at={}{behind} reason={}",
                    p.id, p.key, p.topic, p.event_id, p.payload_len, p.parked_at, p.reason
                );
            }
        }
        Verb::RequeueParked { key } => {
            let n = outbox::requeue_parked(&pool, &key).await?;
            println!("{key}: {n} row(s) enqueued again");
        }
        Verb::Discard { id } => {
            anyhow::ensure!(outbox::discard_parked(&pool, id).await?, "no parked row with id {id}");
            println!("parked row {id} discarded");
        }
        Verb::Rebase => {
            let r = outbox::rebase(&pool).await.context("rebasing the outbox")?;
            println!("rebased: {} row(s) to publish (again), {} retired", r.republished, r.retired);
        }
    }
    Ok(())
}
