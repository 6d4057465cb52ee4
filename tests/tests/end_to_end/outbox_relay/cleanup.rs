//! Cleanup of key positions: with many keys whose rows are not yet all
//! published, the statement that drops the stale ones reads an index range,
//! not every key row.

use super::support::*;

#[tokio::test]
async fn key_cleanup_reads_an_index_range() -> anyhow::Result<()> {
    let s = setup(1).await?;
    // 100,000 keys above every cursor (still to be published), 10 below.
    sqlx::raw_sql(
        "INSERT INTO outbox_keys (msg_key, pos) \
           SELECT 'live-' || g, (1000000 + g)::text::xid8 FROM generate_series(1, 100000) g; \
         INSERT INTO outbox_keys (msg_key, pos) SELECT 'stale-' || g, g::text::xid8 FROM generate_series(1, 10) g; \
         UPDATE outbox_lanes SET cursor_pos = '100'; \
         ANALYZE outbox_keys;",
    )
    .execute(&s.pool)
    .await?;
    let plan: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", outbox::cleanup::DELETE_KEYS)))
            .bind(1000i64)
            .fetch_all(&s.pool)
            .await?;
    let plan = plan.join("\n");
    assert!(plan.contains("outbox_keys_pos"), "the key cleanup does not use the index:\n{plan}");
    assert!(!plan.contains("Seq Scan on outbox_keys"), "the key cleanup scans every key:\n{plan}");

    // And it deletes exactly the stale keys.
    outbox::cleanup::cleanup_once(&s.pool, std::time::Duration::ZERO, 1000, 10).await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_keys").fetch_one(&s.pool).await?;
    assert_eq!(left, 100_000);
    Ok(())
}
