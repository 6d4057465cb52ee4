//! `saga` — the operator CLI. One binary, one subcommand per job.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "saga",
    about = "Operate the saga system: topics, relay, tail, dead-letter re-drive, resume stopped sagas, outbox, schemas, load runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the system's topics (and their dead-letter topics) if missing.
    Topics(topics::Args),
    /// Run the outbox relay (migrates the outbox schema first) until SIGTERM/SIGINT.
    Relay(relay::Args),
    /// Print a topic's records with decoded envelopes and bodies (reads only).
    Tail(tail::Args),
    /// Send dead letters back to their original topic (event ids kept).
    Redrive(redrive::Args),
    /// Send the step of sagas stopped in COMPENSATION_FAILED or COMPLETION_FAILED again.
    Resume(resume::Args),
    /// Operate a service's outbox: parked rows, rebase after a restore.
    Outbox(outbox::Args),
    /// The main job: push orders through the running system, wait for every saga, check the invariants.
    Load(load::Args),
    /// List schemas with fingerprints and canonical forms; check a directory against the pinned set.
    Schemas(schemas::Args),
}

mod load;
mod outbox;
mod redrive;
mod relay;
mod resume;
mod schemas;
mod tail;
mod topics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("saga")?;
    match Cli::parse().command {
        Command::Topics(a) => topics::run(a).await,
        Command::Relay(a) => relay::run(a).await,
        Command::Tail(a) => tail::run(a).await,
        Command::Redrive(a) => redrive::run(a).await,
        Command::Resume(a) => resume::run(a).await,
        Command::Outbox(a) => outbox::run(a).await,
        Command::Load(a) => load::run(a).await,
        Command::Schemas(a) => schemas::run(a),
    }
}
