//! The physical ceiling: a plain PostgreSQL loop doing what the runtime
//! does per event — `BEGIN`, the inbox insert, the handler's insert,
//! `COMMIT` — with the very same statements (`consumers::inbox`), on as
//! many connections as the runtime may use, with no Kafka at all. And the
//! same loop with `batch` events per transaction (one inbox statement for
//! the batch), the ceiling of the batched runtime.

use std::time::{Duration, Instant};

use consumers::InboundMessage;
use sqlx::PgPool;

use super::workload::EFFECT_INSERT;

/// Applies every message on `connections` concurrent loops, `batch` per
/// transaction; returns the wall time.
pub(crate) async fn run(
    pool: &PgPool,
    messages: &[InboundMessage],
    connections: usize,
    batch: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let per_loop = messages.len().div_ceil(connections.max(1));
    let loops = messages.chunks(per_loop.max(1)).map(|share| async move {
        for group in share.chunks(batch.max(1)) {
            let mut tx = pool.begin().await?;
            if group.len() == 1 {
                consumers::inbox::record(&mut tx, "ceiling", &group[0]).await?;
            } else {
                consumers::inbox::record_batch(&mut tx, "ceiling", group).await?;
            }
            for m in group {
                sqlx::query(EFFECT_INSERT)
                    .bind(m.envelope.event_id)
                    .bind(m.payload.len() as i32)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok::<_, sqlx::Error>(())
    });
    for result in futures::future::join_all(loops).await {
        result?;
    }
    Ok(started.elapsed())
}
