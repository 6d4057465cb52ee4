//! Benchmark `codec`: Avro encode and decode throughput per message type, in
//! process, no I/O.
//!
//! ```text
//! cargo run --release -p bench -- codec [--count 200000]
//! ```
//!
//! For each message type one representative value is encoded `count` times
//! (`events::codec::encode`: single-object header + Avro datum into a fresh
//! `Vec`) and its payload decoded `count` times (`events::codec::decode`:
//! fingerprint lookup, datum read, validation, resolution when versions
//! differ, serde into the Rust type). Extra rows show the cost of schema
//! resolution (v1 data read by the v2 type and back) and of the generic JSON
//! view used by ops tools. MB/s counts payload bytes (header included).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use events::Message;
use events::codec::{self, SchemaRegistry};
use events::messages::{inventory::*, order::*, payment::*};
use uuid::Uuid;

use crate::table::Table;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Encodes and decodes per message type.
    #[arg(long, default_value_t = 200_000)]
    count: u32,
}

/// One measured operation.
struct Measured {
    label: String,
    op: &'static str,
    bytes: usize,
    elapsed: Duration,
    count: u32,
}

impl Measured {
    fn row(&self) -> Vec<String> {
        let secs = self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let n = f64::from(self.count);
        vec![
            self.label.clone(),
            self.op.to_owned(),
            self.bytes.to_string(),
            format!("{:.0}", n / secs),
            format!("{:.1}", n * self.bytes as f64 / secs / 1e6),
            format!("{:.0}", self.elapsed.as_nanos() as f64 / n),
        ]
    }
}

fn time(count: u32, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    // Warm up caches and the embedded registry.
    for _ in 0..count.min(1_000) {
        f()?;
    }
    let start = Instant::now();
    for _ in 0..count {
        f()?;
    }
    Ok(start.elapsed())
}

/// Encode and decode rows for one message.
fn measure<M: Message>(m: &M, count: u32) -> anyhow::Result<[Measured; 2]> {
    let label = format!("{} v{}", M::NAME.rsplit('.').next().unwrap_or(M::NAME), M::VERSION);
    let payload = codec::encode(m).with_context(|| format!("encode {label}"))?;
    let encode = time(count, || {
        black_box(codec::encode(black_box(m))?);
        Ok(())
    })?;
    let decode = time(count, || {
        black_box(codec::decode::<M>(black_box(&payload))?);
        Ok(())
    })?;
    let bytes = payload.len();
    Ok([
        Measured { label: label.clone(), op: "encode", bytes, elapsed: encode, count },
        Measured { label, op: "decode", bytes, elapsed: decode, count },
    ])
}

/// Decode rows that are not a plain round trip: resolution and JSON.
fn measure_decode_only<M: Message>(
    label: &str,
    op: &'static str,
    payload: &[u8],
    count: u32,
    json: bool,
) -> anyhow::Result<Measured> {
    let elapsed = if json {
        time(count, || {
            black_box(SchemaRegistry::embedded().decode_json(black_box(payload))?);
            Ok(())
        })?
    } else {
        time(count, || {
            black_box(codec::decode::<M>(black_box(payload))?);
            Ok(())
        })?
    };
    Ok(Measured { label: label.to_owned(), op, bytes: payload.len(), elapsed, count })
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let count = args.count.max(1);
    let now = SystemTime::now().into();
    let id = Uuid::now_v7;
    let lines: Vec<OrderLine> = (1..=3)
        .map(|i| OrderLine {
            sku: format!("SKU-{i:05}"),
            quantity: i,
            unit_price_minor: 1_999 * i64::from(i),
        })
        .collect();
    let stock: Vec<StockLine> =
        lines.iter().map(|l| StockLine { sku: l.sku.clone(), quantity: l.quantity }).collect();
    let created = OrderCreated {
        order_id: id(),
        customer_id: id(),
        total_minor: lines.iter().map(|l| l.unit_price_minor * i64::from(l.quantity)).sum(),
        lines: lines.clone(),
        currency: "EUR".into(),
        created_at: now,
        channel: "web".into(),
    };
    let created_v1 = v1::OrderCreated {
        order_id: created.order_id,
        customer_id: created.customer_id,
        lines,
        total_minor: created.total_minor,
        currency: "EUR".into(),
        created_at: now,
    };
    let order_id = created.order_id;
    let reason = "payment declined: insufficient funds".to_owned();

    let mut rows: Vec<Measured> = Vec::new();
    macro_rules! bench {
        ($($m:expr),* $(,)?) => { $( rows.extend(measure(&$m, count)?); )* };
    }
    bench!(
        created.clone(),
        created_v1.clone(),
        OrderApproved { order_id, authorization_id: id(), approved_at: now },
        OrderRejected { order_id, reason: reason.clone(), rejected_at: now },
        ReserveInventory { order_id, lines: stock.clone(), requested_at: now },
        InventoryReserved { order_id, lines: stock, reserved_at: now },
        InventoryReservationFailed {
            order_id,
            reason: "insufficient stock".into(),
            unavailable_skus: vec!["SKU-00002".into()],
            failed_at: now,
        },
        ReleaseInventory { order_id, reason: reason.clone(), requested_at: now },
        InventoryReleased { order_id, released_at: now },
        CommitInventory { order_id, requested_at: now },
        InventoryCommitted { order_id, committed_at: now },
        AuthorizePayment {
            order_id,
            customer_id: created.customer_id,
            amount_minor: created.total_minor,
            currency: "EUR".into(),
            requested_at: now,
        },
        PaymentAuthorized {
            order_id,
            authorization_id: id(),
            amount_minor: created.total_minor,
            currency: "EUR".into(),
            authorized_at: now,
        },
        PaymentDeclined { order_id, reason: reason.clone(), declined_at: now },
        VoidPayment { order_id, reason, requested_at: now },
        PaymentVoided { order_id, authorization_id: Some(id()), voided_at: now },
    );

    let v1_bytes = codec::encode(&created_v1)?;
    let v2_bytes = codec::encode(&created)?;
    rows.push(measure_decode_only::<OrderCreated>(
        "OrderCreated v1 data",
        "decode as v2",
        &v1_bytes,
        count,
        false,
    )?);
    rows.push(measure_decode_only::<v1::OrderCreated>(
        "OrderCreated v2 data",
        "decode as v1",
        &v2_bytes,
        count,
        false,
    )?);
    rows.push(measure_decode_only::<OrderCreated>(
        "OrderCreated v2 data",
        "decode_json",
        &v2_bytes,
        count,
        true,
    )?);

    println!("codec: {count} operations per row, release build expected\n");
    let mut table = Table::new(["message", "operation", "bytes", "msgs/s", "MB/s", "ns/msg"]);
    for r in &rows {
        table.row(r.row());
    }
    table.print();
    Ok(())
}
