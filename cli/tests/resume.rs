//! `saga resume` against a real orchestrator database: the command reaches
//! the database and reports a saga it cannot resume, with a failing exit
//! code. (Resuming itself is tested on `saga_orchestrator::resume`.)

use std::process::Command;

#[tokio::test]
async fn resume_reports_an_unknown_saga_and_fails() -> anyhow::Result<()> {
    let postgres = testkit::Postgres::start().await?;
    let url = postgres.fresh_database().await?;
    let pool = sqlx::PgPool::connect(&url).await?;
    saga_orchestrator::migrate(&pool).await?;
    let saga_id = uuid::Uuid::now_v7();
    let out = Command::new(env!("CARGO_BIN_EXE_saga"))
        .args(["resume", "--database-url", &url, &saga_id.to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "an unknown saga must fail the command: {stdout}");
    assert!(stdout.contains(&format!("{saga_id}: no saga {saga_id}")), "{stdout}");
    Ok(())
}
