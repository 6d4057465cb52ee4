//! PostgreSQL's planning and executor time per statement during a
//! measurement, from `pg_stat_statements` (loaded by testkit's containers,
//! which also track planning; skipped with a note when the server does not
//! have it).

use std::fmt;

use sqlx::PgPool;

/// A measurement in progress.
pub(super) struct ServerTime {
    /// Whether `pg_stat_statements` could be reset (is loaded).
    available: bool,
}

/// One statement's share.
#[derive(sqlx::FromRow)]
struct Statement {
    query: String,
    calls: i64,
    /// Executor time.
    total_ms: f64,
    mean_us: f64,
    /// Planning time (0 unless `pg_stat_statements.track_planning` is on).
    plan_us: f64,
}

/// The statements that took the most time, busiest first.
pub(super) struct Report {
    statements: Vec<Statement>,
    secs: f64,
    missing: Option<String>,
}

impl ServerTime {
    /// Resets the statistics (creating the extension in this database).
    pub(super) async fn start(pool: &PgPool) -> ServerTime {
        let ready = async {
            sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(pool).await?;
            sqlx::query("SELECT pg_stat_statements_reset()").execute(pool).await?;
            Ok::<_, sqlx::Error>(())
        };
        match ready.await {
            Ok(()) => ServerTime { available: true },
            Err(e) => {
                eprintln!("pg_stat_statements unavailable ({e}); no per-statement server time");
                ServerTime { available: false }
            }
        }
    }

    /// Reads the busiest statements since [`ServerTime::start`]; `secs` is
    /// the length of the measurement.
    pub(super) async fn finish(self, pool: &PgPool, secs: f64) -> Report {
        let missing = |why: String| Report { statements: Vec::new(), secs, missing: Some(why) };
        if !self.available {
            return missing("pg_stat_statements is not loaded".into());
        }
        let rows: Result<Vec<Statement>, _> = sqlx::query_as(
            "SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls, total_exec_time AS total_ms, \
                    mean_exec_time * 1000 AS mean_us, total_plan_time / calls * 1000 AS plan_us \
             FROM pg_stat_statements WHERE calls > 0 \
             ORDER BY total_exec_time + total_plan_time DESC LIMIT 5",
        )
        .fetch_all(pool)
        .await;
        match rows {
            Ok(statements) => Report { statements, secs, missing: None },
            Err(e) => missing(e.to_string()),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.missing {
            return write!(f, "  ({why})");
        }
        for s in &self.statements {
            let query: String = s.query.trim().chars().take(70).collect();
            writeln!(
                f,
                "  {:6.1} ms/s  {:6.0} calls/s  {:5.0} µs/call  +{:4.0} µs planning  {query}",
                s.total_ms / self.secs,
                s.calls as f64 / self.secs,
                s.mean_us,
                s.plan_us
            )?;
        }
        Ok(())
    }
}
