//! Benchmark `outbox` (to be written with its issue).

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("benchmark `outbox` is not written yet")
}
