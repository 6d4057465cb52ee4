//! A consumer process for the crash and shutdown tests
//! (`tests/tests/end_to_end/consumer_runtime/crash.rs`): runs the consumer runtime with the test
//! handler until SIGTERM/SIGINT, then prints its counters and exits 0.
//!
//! Configured by environment variables: `WORKER_BOOTSTRAP`, `WORKER_DATABASE_URL`,
//! `WORKER_TOPIC`, `WORKER_GROUP`, `WORKER_HANDLER_SLEEP_MS` (time the handler
//! waits inside its open transaction, default 0) and `WORKER_COMMIT_INTERVAL_MS`
//! (default 200), `WORKER_MAX_BATCH` (records per transaction, default 1).
//!
//! Stdout protocol, one line each: `ready`, `handling <event id>` (before the
//! handler's sleep), and at exit
//! `stats applied=N duplicates=N dead_lettered=N deferred=N`.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;

#[path = "../../tests/end_to_end/consumer_runtime/support.rs"]
mod support;

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("missing environment variable {name}"))
}

fn env_millis(name: &str, default: u64) -> anyhow::Result<Duration> {
    match std::env::var(name) {
        Ok(v) => Ok(Duration::from_millis(v.parse().with_context(|| format!("{name} is not a number"))?)),
        Err(_) => Ok(Duration::from_millis(default)),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let bootstrap = env("WORKER_BOOTSTRAP")?;
    let pool = support::prepare_database(&env("WORKER_DATABASE_URL")?).await?;
    let mut config = support::consumer_config(&bootstrap, &env("WORKER_GROUP")?, &env("WORKER_TOPIC")?);
    config.commit_interval = env_millis("WORKER_COMMIT_INTERVAL_MS", 200)?;
    // The crash test restarts a worker after kill -9: the dead member's
    // partition moves once its session expires.
    config.session_timeout = Duration::from_secs(6);
    // One record per transaction unless told otherwise: the tests kill the
    // process between records that are committed and one that is not.
    config.max_batch = env("WORKER_MAX_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let handler = support::EffectHandler { sleep: env_millis("WORKER_HANDLER_SLEEP_MS", 0)?, announce: true };

    let shutdown = consumers::shutdown::on_signal().context("install signal handlers")?;
    let consumer = consumers::Consumer::new(config, pool, handler).context("create consumer")?;
    let stats = consumer.stats();
    say("ready");
    consumer.run(shutdown).await.context("consumer")?;
    let s = stats.snapshot();
    say(&format!(
        "stats applied={} duplicates={} dead_lettered={} deferred={}",
        s.applied, s.duplicates, s.dead_lettered, s.deferred
    ));
    Ok(())
}
