//! The cluster tests' set-up: a cluster and PostgreSQL, a fresh topic and a
//! migrated outbox; waiting for a partition's replicas to be back in sync.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::PgPool;
use uuid::Uuid;

use crate::outbox_relay::support::{
    InProcessRelay, OrderReport, Writers, check_per_key_order, connect, consume_until, distinct, eventually,
    init_tracing, relay_config,
};

/// Partitions of every cluster test topic.
pub(crate) const PARTITIONS: i32 = 3;

pub(crate) struct ClusterSetup {
    pub(crate) cluster: testkit::Cluster,
    pub(crate) _postgres: testkit::Postgres,
    pub(crate) db_url: String,
    pub(crate) pool: PgPool,
    pub(crate) topic: String,
}

pub(crate) async fn setup(name: &str) -> anyhow::Result<ClusterSetup> {
    init_tracing();
    let (cluster, postgres) = tokio::join!(testkit::Cluster::start(), testkit::Postgres::start());
    let (cluster, postgres) = (cluster.context("start cluster")?, postgres.context("start postgres")?);
    eprintln!("cluster of 3 on {}: {}", cluster.bootstrap_servers(), cluster.version());
    let topic = format!("cluster.{name}.{}", Uuid::new_v4().simple());
    cluster.create_topics(&[&topic], PARTITIONS).await.context("create topic")?;
    let db_url = postgres.fresh_database().await?;
    let pool = connect(&db_url, 30).await?;
    outbox::migrate(&pool).await.context("outbox migrations")?;
    Ok(ClusterSetup { cluster, _postgres: postgres, db_url, pool, topic })
}

/// In-sync replicas of each partition of `topic`, as the metadata says.
pub(crate) async fn isr_sizes(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<usize>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
        let md = client.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        let t = md.topics().first().context("topic in metadata")?;
        anyhow::Ok(t.partitions().iter().map(|p| p.isr().len()).collect())
    })
    .await?
}

/// Waits until every partition of `topic` has all three replicas in sync.
pub(crate) async fn wait_fully_replicated(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let synced = eventually(timeout, || async {
        Ok(isr_sizes(bootstrap, topic).await.map(|s| s.iter().all(|n| *n == 3)).unwrap_or(false))
    })
    .await?;
    anyhow::ensure!(
        synced,
        "replicas of {topic} not back in sync within {timeout:?}: {:?}",
        isr_sizes(bootstrap, topic).await?
    );
    Ok(())
}

/// The relay publishing the steady stream of two writers (20 keys each).
pub(crate) struct RelayUnderLoad {
    relay: InProcessRelay,
    writers: Writers,
}

/// What [`RelayUnderLoad::finish`] found.
pub(crate) struct Delivered {
    pub(crate) total: u64,
    pub(crate) report: OrderReport,
    pub(crate) relay: outbox::RelayStats,
}

impl RelayUnderLoad {
    /// Starts relay and writers; returns once 500 events are published.
    pub(crate) async fn start(s: &ClusterSetup, relay_id: &str) -> anyhow::Result<Self> {
        let relay = InProcessRelay::start(&s.pool, s.cluster.bootstrap_servers(), relay_config(relay_id))?;
        let writers = Writers::start(&s.pool, &s.topic, 2, 20, 5, Duration::from_millis(10));
        let stats = relay.stats.clone();
        let flowing =
            eventually(Duration::from_secs(60), || async { Ok(stats.get().published >= 500) }).await?;
        anyhow::ensure!(flowing, "relay published only {} at the start", stats.get().published);
        Ok(RelayUnderLoad { relay, writers })
    }

    /// Events published so far.
    pub(crate) fn published(&self) -> u64 {
        self.relay.stats.get().published
    }

    /// Stops the writers, reads the topic back, checks that every committed
    /// event is there in per-key order, and stops the relay.
    pub(crate) async fn finish(self, s: &ClusterSetup) -> anyhow::Result<Delivered> {
        let expected = self.writers.stop().await?;
        let total: u64 = expected.values().sum();
        let bootstrap = s.cluster.bootstrap_servers();
        let seen = consume_until(bootstrap, &s.topic, PARTITIONS, Duration::from_secs(120), |v| {
            distinct(v) as u64 >= total
        })
        .await?;
        let report = check_per_key_order(&seen, &expected)
            .map_err(|e| e.context(format!("{} of {total} events read back", distinct(&seen))))?;
        let relay = self.relay.stop().await?;
        Ok(Delivered { total, report, relay })
    }
}
