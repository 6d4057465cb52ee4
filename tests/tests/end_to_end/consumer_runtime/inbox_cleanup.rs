//! Inbox cleanup against a real PostgreSQL: rows older than the retention
//! go, in batches of the configured size; younger rows stay (they still
//! guard against redelivery). Also: the migrations can run again, and they
//! keep their history in their own table, apart from other crates'.

use std::time::Duration;

use consumers::InboxRetention;
use consumers::cleanup;
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn expired_inbox_rows_are_deleted_in_batches_and_recent_ones_kept() -> anyhow::Result<()> {
    let pg = testkit::Postgres::start().await?;
    let pool = PgPoolOptions::new().max_connections(2).connect(&pg.fresh_database().await?).await?;
    consumers::migrate(&pool).await?;
    consumers::migrate(&pool).await?; // idempotent
    let history: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _consumers_migrations").fetch_one(&pool).await?;
    assert_eq!(history, 2, "both migrations recorded in the crate's own table");

    // 7 rows 20 days old, 3 rows 1 hour old.
    sqlx::query(
        "INSERT INTO consumer_inbox (consumer_name, event_id, message_type, topic, kafka_partition, kafka_offset, processed_at) \
         SELECT 'svc', gen_random_uuid(), 't', 'topic', 0, g, now() - CASE WHEN g < 7 THEN interval '20 days' ELSE interval '1 hour' END \
         FROM generate_series(0, 9) AS g",
    )
    .execute(&pool)
    .await?;

    let retention = InboxRetention {
        retention: Duration::from_secs(14 * 24 * 3600),
        batch_size: 3,
        interval: Duration::from_secs(60),
    };
    let mut conn = pool.acquire().await?;
    assert_eq!(
        cleanup::delete_expired_batch(&mut conn, retention.retention, retention.batch_size).await?,
        3,
        "one batch is bounded"
    );
    drop(conn);
    assert_eq!(cleanup::delete_expired(&pool, &retention).await?, 4, "the rest of the expired rows");
    assert_eq!(cleanup::delete_expired(&pool, &retention).await?, 0);

    let left: Vec<i64> = sqlx::query_scalar("SELECT kafka_offset FROM consumer_inbox ORDER BY kafka_offset")
        .fetch_all(&pool)
        .await?;
    assert_eq!(left, vec![7, 8, 9], "rows inside the retention window are kept");
    Ok(())
}

/// A running consumer cleans its inbox by itself (every service and the
/// orchestrator run one): rows past the retention disappear while it runs,
/// recent ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_consumer_deletes_expired_inbox_rows_by_itself() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    let topic = "cleanup.commands";
    env.broker.create_topics(&[topic, "cleanup.commands.dlq"], 1).await?;
    let pool = super::support::prepare_database(&env.postgres.fresh_database().await?).await?;
    sqlx::query(
        "INSERT INTO consumer_inbox (consumer_name, event_id, message_type, topic, kafka_partition, kafka_offset, processed_at) \
         SELECT 'cleanup', gen_random_uuid(), 't', 'topic', 0, g, now() - CASE WHEN g < 5 THEN interval '3 days' ELSE interval '1 minute' END \
         FROM generate_series(0, 7) AS g",
    )
    .execute(&pool)
    .await?;
    let mut config = super::support::consumer_config(env.broker.bootstrap_servers(), "cleanup", topic);
    config.inbox_retention = Some(InboxRetention {
        retention: Duration::from_secs(24 * 3600),
        batch_size: 2,
        interval: Duration::from_millis(200),
    });
    let running = super::support::spawn_quick_consumer(config, &pool)?;
    super::support::eventually("the expired rows to go", Duration::from_secs(30), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM consumer_inbox").fetch_one(&pool).await?;
        Ok((left == 3).then_some(()))
    })
    .await?;
    running.cancel.cancel();
    running.task.await??;
    Ok(())
}
