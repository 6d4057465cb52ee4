//! The inbox benchmark's workload: records with a valid envelope, produced
//! to a topic with several partitions, and the handler (one `INSERT` per
//! event) that records how old each event was when it was applied.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use consumers::{Handler, HandlerError, InboundMessage};
use hdrhistogram::Histogram;
use producers::{KafkaPublisher, Publisher as _, Record};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// The effect: one row per event.
pub(crate) const EFFECT_TABLE: &str =
    "CREATE TABLE bench_effects (event_id uuid NOT NULL, bytes integer NOT NULL)";

/// The handler's statement, shared with the PostgreSQL ceiling loop.
pub(crate) const EFFECT_INSERT: &str = "INSERT INTO bench_effects (event_id, bytes) VALUES ($1, $2)";

/// Apply latency in microseconds: from the envelope's `occurred_at` (set
/// when the record was produced) to the handler running in its transaction.
#[derive(Clone)]
pub(crate) struct Latencies(Arc<Mutex<Histogram<u64>>>);

impl Latencies {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Latencies(Arc::new(Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?))))
    }

    fn record(&self, micros: u64) {
        if let Ok(mut h) = self.0.lock() {
            let _ = h.record(micros.max(1));
        }
    }

    /// Forgets what was recorded (after a warm-up).
    pub(crate) fn reset(&self) {
        if let Ok(mut h) = self.0.lock() {
            h.reset();
        }
    }

    /// p50, p99 (ms); `None` when nothing was recorded.
    pub(crate) fn percentiles(&self) -> Option<(f64, f64)> {
        let h = self.0.lock().ok()?;
        (!h.is_empty())
            .then(|| (h.value_at_quantile(0.5) as f64 / 1e3, h.value_at_quantile(0.99) as f64 / 1e3))
    }
}

/// One `INSERT` per event: the smallest realistic effect.
pub(crate) struct InsertHandler {
    pub(crate) latencies: Option<Latencies>,
}

impl Handler for InsertHandler {
    async fn handle(
        &self,
        m: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        sqlx::query(EFFECT_INSERT)
            .bind(m.envelope.event_id)
            .bind(m.payload.len() as i32)
            .execute(&mut **tx)
            .await?;
        if let Some(l) = &self.latencies {
            let age = Utc::now() - m.envelope.occurred_at;
            l.record(age.num_microseconds().unwrap_or(0).max(0) as u64);
        }
        Ok(())
    }
}

/// A record's envelope, as headers.
fn envelope(i: usize) -> events::Envelope {
    events::Envelope {
        event_id: Uuid::now_v7(),
        message_type: "bench.Event".into(),
        schema_version: 1,
        aggregate_type: "bench".into(),
        aggregate_id: format!("agg-{}", i % 1_000),
        correlation_id: None,
        causation_id: None,
        occurred_at: Utc::now(),
        traceparent: None,
        tracestate: None,
    }
}

/// The messages the ceiling loop applies: what the runtime would hand over.
pub(crate) fn messages(n: usize, payload_bytes: usize) -> Vec<InboundMessage> {
    let payload: Vec<u8> = (0..payload_bytes).map(|i| (i % 251) as u8).collect();
    (0..n)
        .map(|i| InboundMessage {
            envelope: envelope(i),
            payload: payload.clone(),
            topic: "bench.inbox".to_owned(),
            partition: (i % 4) as i32,
            offset: i as i64,
        })
        .collect()
}

/// Produces `n` records, as fast as the producer takes them, or at `rate`
/// per second (`occurred_at` = when each was sent).
pub(crate) async fn produce(
    publisher: &KafkaPublisher,
    topic: &str,
    n: usize,
    payload_bytes: usize,
    rate: Option<u32>,
) -> anyhow::Result<()> {
    let payload: Vec<u8> = (0..payload_bytes).map(|i| (i % 251) as u8).collect();
    let chunk = match rate {
        Some(r) => (r as usize / 100).max(1), // one chunk every 10 ms
        None => 1_000,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0;
    while sent < n {
        if rate.is_some() {
            tick.tick().await;
        }
        let take = chunk.min(n - sent);
        let envelopes: Vec<events::Envelope> = (sent..sent + take).map(envelope).collect();
        let headers: Vec<Vec<(&'static str, String)>> =
            envelopes.iter().map(events::Envelope::to_headers).collect();
        let sends = envelopes.iter().zip(&headers).map(|(e, h)| {
            publisher.publish(Record {
                topic,
                key: Some(e.aggregate_id.as_bytes()),
                payload: Some(&payload),
                headers: h.iter().map(|(k, v)| (*k, v.as_bytes())).collect(),
            })
        });
        for result in futures::future::join_all(sends).await {
            result.context("publish")?;
        }
        sent += take;
    }
    Ok(())
}
