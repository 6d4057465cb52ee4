//! Process-level tests with the `consumer_worker` binary:
//!
//! * `kill -9` in the middle of a handler's transaction, then a restart:
//!   every event's effect is applied exactly once. The records finished
//!   before the kill are redelivered (their offsets were not committed yet)
//!   and skipped by the inbox; the one being handled was rolled back by the
//!   crash and is applied after the restart.
//! * SIGTERM while a handler runs: the worker finishes that record, commits
//!   its offset, leaves the group and exits 0 within the shutdown bound; a
//!   restart does not see the record again.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::support;

/// A running `consumer_worker` and the lines it printed.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Worker {
    fn start(
        bootstrap: &str,
        db: &str,
        topic: &str,
        group: &str,
        sleep_ms: u64,
        commit_ms: u64,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_consumer_worker"))
            .env("WORKER_BOOTSTRAP", bootstrap)
            .env("WORKER_DATABASE_URL", db)
            .env("WORKER_TOPIC", topic)
            .env("WORKER_GROUP", group)
            .env("WORKER_HANDLER_SLEEP_MS", sleep_ms.to_string())
            .env("WORKER_COMMIT_INTERVAL_MS", commit_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Worker { child, lines, seen: Vec::new() })
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    anyhow::bail!("no line starting with {prefix:?} within {timeout:?}; saw {:?}", self.seen)
                }
            }
        }
    }

    fn sigterm(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        Ok(())
    }

    /// Waits for the process to exit; returns whether it exited 0.
    fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            anyhow::ensure!(Instant::now() < deadline, "worker did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `stats applied=N duplicates=N dead_lettered=N`.
fn parse_stats(line: &str) -> anyhow::Result<(u64, u64, u64)> {
    let value = |name: &str| -> anyhow::Result<u64> {
        let field = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .ok_or_else(|| anyhow::anyhow!("no {name} in {line:?}"))?;
        Ok(field.parse()?)
    };
    Ok((value("applied")?, value("duplicates")?, value("dead_lettered")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_handler_then_restart_applies_every_effect_once() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "crash.commands";
    env.broker.create_topics(&[topic, "crash.commands.dlq"], 1).await?;
    let db = env.postgres.fresh_database().await?;
    let pool = support::prepare_database(&db).await?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();

    let producer = support::publisher(&bootstrap)?;
    let commands: Vec<_> = (0..4).map(|i| support::command(topic, i + 1)).collect::<Result<_, _>>()?;
    for m in &commands {
        support::send(&producer, m).await?;
    }
    let ids: Vec<_> = commands.iter().map(|m| m.envelope.event_id).collect();

    // Slow handler, offsets committed only every minute: by the time the
    // third record is being handled, the first two are committed in
    // PostgreSQL but not in Kafka.
    let mut worker = Worker::start(&bootstrap, &db, topic, "crash", 1_500, 60_000)?;
    let third = format!("handling {}", ids[2]);
    tokio::task::block_in_place(|| worker.wait_line(&third, Duration::from_secs(90)))?;
    worker.child.kill()?; // SIGKILL, mid-transaction
    worker.child.wait()?;
    drop(worker);

    let counts = support::effect_counts(&pool).await?;
    assert_eq!(counts.get(&ids[0]), Some(&1));
    assert_eq!(counts.get(&ids[1]), Some(&1));
    assert_eq!(counts.get(&ids[2]), None, "the killed transaction was rolled back");
    assert_eq!(counts.get(&ids[3]), None);

    let mut worker = Worker::start(&bootstrap, &db, topic, "crash", 0, 200)?;
    let counts = support::wait_for_effects(&pool, &ids, Duration::from_secs(90)).await?;
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "event {id} applied exactly once");
    }
    worker.sigterm()?;
    let line = tokio::task::block_in_place(|| worker.wait_line("stats ", Duration::from_secs(30)))?;
    assert!(tokio::task::block_in_place(|| worker.wait_exit(Duration::from_secs(30)))?, "clean exit");
    let (applied, duplicates, dead_lettered) = parse_stats(&line)?;
    assert_eq!(applied, 2, "only the rolled-back and the unprocessed record were applied: {line}");
    assert_eq!(duplicates, 2, "the two records finished before the crash came back and were skipped: {line}");
    assert_eq!(dead_lettered, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_record_in_flight_commits_and_exits_zero() -> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "shutdown.commands";
    env.broker.create_topics(&[topic, "shutdown.commands.dlq"], 1).await?;
    let db = env.postgres.fresh_database().await?;
    let pool = support::prepare_database(&db).await?;
    let bootstrap = env.broker.bootstrap_servers().to_owned();

    let producer = support::publisher(&bootstrap)?;
    let commands: Vec<_> = (0..2).map(|i| support::command(topic, i + 1)).collect::<Result<_, _>>()?;
    for m in &commands {
        support::send(&producer, m).await?;
    }
    let ids: Vec<_> = commands.iter().map(|m| m.envelope.event_id).collect();

    // A handler that takes 3 s, offsets committed only every minute: only
    // the shutdown path can commit the first record's offset.
    let mut worker = Worker::start(&bootstrap, &db, topic, "shutdown", 3_000, 60_000)?;
    let first = format!("handling {}", ids[0]);
    tokio::task::block_in_place(|| worker.wait_line(&first, Duration::from_secs(90)))?;
    let signalled = Instant::now();
    worker.sigterm()?;
    let line = tokio::task::block_in_place(|| worker.wait_line("stats ", Duration::from_secs(30)))?;
    assert!(tokio::task::block_in_place(|| worker.wait_exit(Duration::from_secs(25)))?, "exit code 0");
    // Bound: in_flight_grace (10 s) + close_timeout (10 s).
    assert!(signalled.elapsed() < Duration::from_secs(20), "shut down in {:?}", signalled.elapsed());
    assert_eq!(parse_stats(&line)?, (1, 0, 0), "the in-flight record was finished, no other was started");
    assert!(!worker.seen.iter().any(|l| l.contains(&ids[1].to_string())), "no record fetched after SIGTERM");
    drop(worker);

    let counts = support::effect_counts(&pool).await?;
    assert_eq!(counts.get(&ids[0]), Some(&1), "the in-flight record committed");
    assert_eq!(counts.get(&ids[1]), None);

    // The first record's offset was committed at shutdown: the restarted
    // worker continues with the second and sees no duplicate.
    let mut worker = Worker::start(&bootstrap, &db, topic, "shutdown", 0, 200)?;
    let counts = support::wait_for_effects(&pool, &ids, Duration::from_secs(90)).await?;
    assert_eq!(counts.get(&ids[0]), Some(&1));
    assert_eq!(counts.get(&ids[1]), Some(&1));
    worker.sigterm()?;
    let line = tokio::task::block_in_place(|| worker.wait_line("stats ", Duration::from_secs(30)))?;
    assert!(tokio::task::block_in_place(|| worker.wait_exit(Duration::from_secs(30)))?);
    assert_eq!(parse_stats(&line)?, (1, 0, 0), "only the second record was delivered again");
    Ok(())
}
