//! `saga outbox` against a real outbox database: the verbs reach the
//! database and report what they did; a missing parked row fails the
//! command. (The functions behind them are tested in the outbox_relay
//! end-to-end tests.)

use std::process::Command;

fn saga(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_saga")).args(args).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

#[tokio::test]
async fn outbox_verbs_report_what_they_did() -> anyhow::Result<()> {
    let postgres = testkit::Postgres::start().await?;
    let url = postgres.fresh_database().await?;
    let pool = sqlx::PgPool::connect(&url).await?;
    outbox::migrate(&pool).await?;

    let (ok, text) = saga(&["outbox", "--database-url", &url, "requeue-parked", "order-1"])?;
    assert!(ok && text.contains("order-1: 0 row(s) enqueued again"), "{text}");
    let (ok, text) = saga(&["outbox", "--database-url", &url, "discard", "42"])?;
    assert!(!ok && text.contains("no parked row with id 42"), "{text}");
    let (ok, text) = saga(&["outbox", "--database-url", &url, "rebase"])?;
    assert!(ok && text.contains("rebased: 0 row(s) to publish (again), 0 retired"), "{text}");
    let (ok, text) = saga(&["outbox", "--database-url", &url, "parked"])?;
    assert!(ok && text.trim().is_empty(), "{text}");
    Ok(())
}
