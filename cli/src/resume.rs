//! `saga resume`: sends the compensation of sagas stopped in
//! COMPENSATION_FAILED again, once the participant works. Use it when no late
//! reply will come (re-driving the participant's dead letter is the other
//! way, and needs no resume). Each saga is resumed under its row lock, in one
//! transaction with its command's outbox row, so it is safe while the
//! orchestrator runs.

use std::time::Duration;

use anyhow::Context;
use saga_orchestrator::{ResumeError, SagaConfig};
use uuid::Uuid;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// PostgreSQL URL of the orchestrator's database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// How long the re-sent compensation waits for its reply, in
    /// milliseconds (then it is retried as usual).
    #[arg(long, env = "STEP_TIMEOUT_MS", default_value_t = 30_000)]
    step_timeout_ms: u64,
    /// The sagas (order ids) to resume.
    #[arg(required = true)]
    saga_ids: Vec<Uuid>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let step_timeout = Duration::from_millis(args.step_timeout_ms);
    let config = SagaConfig {
        step_timeout,
        max_step_timeout: SagaConfig::default().max_step_timeout.max(step_timeout),
        ..SagaConfig::default()
    };
    config.validate()?;
    let pool = sqlx::PgPool::connect(&args.database_url).await.context("connecting to the database")?;
    let mut failed = 0;
    for saga_id in args.saga_ids {
        match saga_orchestrator::resume(&pool, saga_id, &config).await {
            Ok(r) => println!("{saga_id}: resumed, {} sent, now {}", r.command, r.status),
            Err(e @ (ResumeError::NotFound(_) | ResumeError::NotStopped { .. })) => {
                println!("{saga_id}: {e}");
                failed += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("resuming saga {saga_id}")),
        }
    }
    anyhow::ensure!(failed == 0, "{failed} saga(s) not resumed");
    Ok(())
}
