//! A order-service killed (SIGKILL) and started again 1 s later has its
//! partitions back within seconds: it rejoins its group under the same
//! `group.instance.id` instead of waiting out its old session (20 s).

use std::time::Duration;

#[tokio::test]
async fn a_killed_order_service_gets_its_partitions_back_at_once() -> anyhow::Result<()> {
    let took = testkit::process::service_restart_time(
        env!("CARGO_BIN_EXE_order-service"),
        &[("LISTEN_ADDR", "127.0.0.1:0")],
    )
    .await?;
    eprintln!("order-service had its partitions {took:?} after the restart");
    assert!(took < Duration::from_secs(6), "restarted order-service waited {took:?} for its partitions");
    Ok(())
}
