//! The cluster tests' set-up: a cluster and PostgreSQL, a fresh topic and a
//! migrated outbox; waiting for a partition's replicas to be back in sync.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::PgPool;
use uuid::Uuid;

use crate::outbox_relay::support::{connect, eventually, init_tracing};

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
pub(crate) async fn wait_fully_replicated(bootstrap: &str, topic: &str, timeout: Duration) -> anyhow::Result<()> {
    let synced = eventually(timeout, || async {
        Ok(isr_sizes(bootstrap, topic).await.map(|s| s.iter().all(|n| *n == 3)).unwrap_or(false))
    })
    .await?;
    anyhow::ensure!(synced, "replicas of {topic} not back in sync within {timeout:?}: {:?}", isr_sizes(bootstrap, topic).await?);
    Ok(())
}
