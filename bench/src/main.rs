//! Every benchmark of the project, one subcommand each. Always run in release:
//!
//! ```text
//! cargo run --release -p bench -- codec
//! cargo run --release -p bench -- outbox
//! cargo run --release -p bench -- inbox
//! cargo run --release -p bench -- saga
//! ```
//!
//! Benchmarks that need a broker and PostgreSQL start them through `testkit`
//! (containers), so every ratio in one table is measured in one run, on the
//! same broker, with the same payloads.

mod codec;
mod inbox;
mod outbox;
mod saga;
mod table;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of the saga system (release build, prints a table)")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Avro encode/decode throughput per message type (no I/O).
    Codec(codec::Args),
    /// Raw producer vs outbox relay throughput, commit->ack latency, and the
    /// cost of the outbox insert in a business transaction.
    Outbox(outbox::Args),
    /// Events applied per second by the consumer runtime (serial, concurrent, batched) vs the PostgreSQL ceiling.
    Inbox(inbox::Args),
    /// The whole saga at increasing offered load: sagas/s, latency, SQL
    /// statements and CPU per saga.
    Saga(saga::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Codec(a) => codec::run(a),
        Bench::Outbox(a) => outbox::run(a).await,
        Bench::Inbox(a) => inbox::run(a).await,
        Bench::Saga(a) => saga::run(a).await,
    }
}
