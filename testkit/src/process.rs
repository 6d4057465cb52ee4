//! A service binary run as a child process that a test can kill (SIGKILL)
//! and start again with the same settings, watching what it logs.
//!
//! ```no_run
//! # async fn demo(bin: &str, db: &str, bootstrap: &str) -> Result<(), testkit::HarnessError> {
//! use std::time::Duration;
//! let env = [("DATABASE_URL", db), ("KAFKA_BOOTSTRAP_SERVERS", bootstrap)];
//! let took = testkit::process::restart_time(bin, &env, Duration::from_secs(60)).await?;
//! assert!(took < Duration::from_secs(5));
//! # Ok(()) }
//! ```

use std::io::{BufRead as _, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::HarnessError;

/// What the consumer runtime logs when the group hands it partitions.
pub const ASSIGNED: &str = "partitions assigned";

/// A running service process; killed on drop.
pub struct ServiceProcess {
    bin: PathBuf,
    env: Vec<(String, String)>,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl std::fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProcess").field("bin", &self.bin).field("pid", &self.child.id()).finish()
    }
}

impl ServiceProcess {
    /// Starts `bin` with `env` added to this process's environment (and
    /// `RUST_LOG=info` unless given), reading its stdout and stderr.
    pub fn spawn(bin: impl Into<PathBuf>, env: &[(&str, &str)]) -> Result<ServiceProcess, HarnessError> {
        let bin = bin.into();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, lines) = start(&bin, &env)?;
        Ok(ServiceProcess { bin, env, child, lines, seen: Vec::new() })
    }

    /// Waits until a line containing `needle` is printed; returns how long
    /// that took from this call.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Duration, HarnessError> {
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return Ok(start.elapsed());
                    }
                }
                Err(_) => {
                    let tail = self.seen.iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n");
                    return Err(HarnessError::NotReady {
                        what: "service log line",
                        timeout,
                        last_error: format!("{:?} never printed {needle:?}; last lines:\n{tail}", self.bin),
                    });
                }
            }
        }
    }

    /// SIGKILL: no shutdown, nothing committed or left behind on purpose.
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts the same binary with the same settings again.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, lines) = start(&self.bin, &self.env)?;
        self.child = child;
        self.lines = lines;
        self.seen.clear();
        Ok(())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin`, waits for its partitions, kills it (SIGKILL), starts it
/// again 1 s later and returns how long the new process took from start to
/// having its partitions again.
pub async fn restart_time(
    bin: impl Into<PathBuf>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Duration, HarnessError> {
    let bin = bin.into();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut service = ServiceProcess::spawn(bin, &env)?;
        service.wait_for(ASSIGNED, timeout)?;
        // Let it commit and heartbeat a little, as a running service would.
        std::thread::sleep(Duration::from_secs(2));
        service.kill9()?;
        std::thread::sleep(Duration::from_secs(1));
        service.restart()?;
        service.wait_for(ASSIGNED, timeout)
    })
    .await
    .map_err(|e| HarnessError::Docker(format!("restart task: {e}")))?
}

fn start(bin: &PathBuf, env: &[(String, String)]) -> Result<(Child, mpsc::Receiver<String>), HarnessError> {
    let mut cmd = Command::new(bin);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    if !env.iter().any(|(k, _)| k == "RUST_LOG") {
        cmd.env("RUST_LOG", "info");
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn()?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        forward(out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(err, tx);
    }
    Ok((child, rx))
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// [`restart_time`] for a service binary of this project in a fresh
/// [`Environment`](crate::Environment): the system's topics, a fresh
/// database (`DATABASE_URL`), the broker (`KAFKA_BOOTSTRAP_SERVERS`), and
/// `extra` settings.
pub async fn service_restart_time(bin: &str, extra: &[(&str, &str)]) -> Result<Duration, HarnessError> {
    let env = crate::Environment::start().await?;
    env.broker.create_system_topics(3).await?;
    let db = env.postgres.fresh_database().await?;
    let child = crate::external::child_env();
    let mut vars =
        vec![("DATABASE_URL", db.as_str()), ("KAFKA_BOOTSTRAP_SERVERS", env.broker.bootstrap_servers())];
    vars.extend(child.iter().map(|(k, v)| (*k, v.as_str())));
    vars.extend_from_slice(extra);
    restart_time(bin, &vars, Duration::from_secs(90)).await
}
