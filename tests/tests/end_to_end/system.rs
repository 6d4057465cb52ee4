//! The whole system in one test process, wired as the binaries wire it:
//! shared by the saga tests and the independent-reader test.

use std::time::{Duration, Instant};

use anyhow::Context;
use consumers::{Consumer, ConsumerConfig};
use events::messages::order::OrderLine;
use order_service::request::ValidOrder;
use outbox::{OutboxRelay, RelayConfig};
use saga_orchestrator::SagaConfig;
use sqlx::PgPool;
use testkit::process::ServiceProcess;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Partitions of every system topic.
pub(crate) const PARTITIONS: i32 = 3;

fn relay_config(name: &str) -> RelayConfig {
    RelayConfig {
        relay_id: format!("{name}-relay"),
        poll_interval: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(5),
        cleanup_interval: Duration::ZERO,
        ..Default::default()
    }
}

fn consumer_config(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        connection: testkit::external::client_properties(),
        ..ConsumerConfig::new(bootstrap, group, &[topic])
    }
}

async fn database(env: &testkit::Environment) -> anyhow::Result<PgPool> {
    Ok(PgPool::connect(&env.postgres.fresh_database().await?).await?)
}

pub(crate) fn order(sku: &str, quantity: i32, unit_price_minor: i64) -> ValidOrder {
    ValidOrder {
        customer_id: Uuid::new_v4(),
        currency: "EUR".into(),
        lines: vec![OrderLine { sku: sku.into(), quantity, unit_price_minor }],
        total_minor: i64::from(quantity) * unit_price_minor,
        channel: "test".into(),
    }
}

/// How [`System::start_with`] sets the system up.
pub(crate) struct Setup {
    /// The orchestrator's timing.
    pub(crate) saga: SagaConfig,
    /// Run the orchestrator on a task of the test; `false` leaves it to the
    /// test (e.g. as a process it kills, [`System::orchestrator_process`]).
    pub(crate) orchestrator: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { saga: SagaConfig::default(), orchestrator: true }
    }
}

/// The whole system on one broker and one PostgreSQL server: four
/// databases (migrated, inventory seeded with `stock`), the four relays,
/// the inventory, payment and verdict consumers and the orchestrator, each
/// on its own task until `stop`.
pub(crate) struct System {
    pub(crate) orders: PgPool,
    pub(crate) inventory: PgPool,
    pub(crate) payment: PgPool,
    pub(crate) orchestrator: PgPool,
    orchestrator_url: String,
    bootstrap: String,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    saga: Option<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

impl System {
    pub(crate) async fn start(env: &testkit::Environment, stock: &[(&str, i64)]) -> anyhow::Result<System> {
        System::start_with(env, stock, Setup::default()).await
    }

    pub(crate) async fn start_with(
        env: &testkit::Environment,
        stock: &[(&str, i64)],
        setup: Setup,
    ) -> anyhow::Result<System> {
        env.broker.create_system_topics(PARTITIONS).await?;
        let bootstrap = env.broker.bootstrap_servers().to_owned();
        let orders = database(env).await?;
        let inventory = database(env).await?;
        let payment = database(env).await?;
        let orchestrator_url = env.postgres.fresh_database().await?;
        let orchestrator = PgPool::connect(&orchestrator_url).await?;
        order_service::migrate(&orders).await?;
        inventory_service::migrate(&inventory).await?;
        payment_service::migrate(&payment).await?;
        saga_orchestrator::migrate(&orchestrator).await?;
        let mut conn = inventory.acquire().await?;
        let seed: Vec<(String, i64)> = stock.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect();
        inventory_service::seed::seed_stock(&mut conn, &seed).await?;
        drop(conn);

        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for (name, pool) in [
            ("orders", &orders),
            ("inventory", &inventory),
            ("payment", &payment),
            ("orchestrator", &orchestrator),
        ] {
            let relay = OutboxRelay::new(
                pool.clone(),
                testkit::external::producer_config(&bootstrap),
                relay_config(name),
            )?;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { relay.run(stop).await.map_err(anyhow::Error::from) }));
        }
        let inventory_consumer = Consumer::new(
            consumer_config(&bootstrap, "inventory-service", events::topics::INVENTORY_COMMANDS),
            inventory.clone(),
            inventory_service::InventoryHandler,
        )?;
        let payment_consumer = Consumer::new(
            consumer_config(&bootstrap, "payment-service", events::topics::PAYMENT_COMMANDS),
            payment.clone(),
            payment_service::PaymentHandler { max_amount_minor: 5_000 },
        )?;
        let verdicts = Consumer::new(
            consumer_config(&bootstrap, "order-service", events::topics::ORDER_EVENTS),
            orders.clone(),
            order_service::outcome::OutcomeHandler,
        )?;
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { inventory_consumer.run(s).await.map_err(anyhow::Error::from) }));
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { payment_consumer.run(s).await.map_err(anyhow::Error::from) }));
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { verdicts.run(s).await.map_err(anyhow::Error::from) }));
        let mut system = System {
            orders,
            inventory,
            payment,
            orchestrator,
            orchestrator_url,
            bootstrap,
            stop,
            tasks,
            saga: None,
        };
        if setup.orchestrator {
            system.start_orchestrator(setup.saga)?;
        }
        Ok(system)
    }

    /// Starts the orchestrator on a task of the test (after
    /// [`stop_orchestrator`](Self::stop_orchestrator), a restart).
    pub(crate) fn start_orchestrator(&mut self, saga: SagaConfig) -> anyhow::Result<()> {
        anyhow::ensure!(self.saga.is_none(), "the orchestrator already runs");
        let mut config =
            saga_orchestrator::OrchestratorConfig::new(self.bootstrap.clone(), "saga-orchestrator");
        config.consumer.connection = testkit::external::client_properties();
        config.sweeper.interval = Duration::from_millis(250);
        config.saga = saga;
        let orchestrator = saga_orchestrator::Orchestrator::new(self.orchestrator.clone(), config)?;
        let stop = self.stop.child_token();
        let s = stop.clone();
        let task = tokio::spawn(async move { orchestrator.run(s).await.map_err(anyhow::Error::from) });
        self.saga = Some((stop, task));
        Ok(())
    }

    /// Stops the orchestrator (gracefully) and waits until it has.
    pub(crate) async fn stop_orchestrator(&mut self) -> anyhow::Result<()> {
        let (stop, task) = self.saga.take().context("the orchestrator does not run")?;
        stop.cancel();
        task.await.context("orchestrator panicked")?
    }

    /// The real `saga-orchestrator` binary on this system's database and
    /// broker, with `extra` settings (`STEP_TIMEOUT_MS`, ...), as a process
    /// the test can SIGKILL and restart.
    pub(crate) fn orchestrator_process(&self, extra: &[(&str, &str)]) -> anyhow::Result<ServiceProcess> {
        let bin = workspace_binary("saga-orchestrator", "saga-orchestrator")?;
        let child = testkit::external::child_env();
        let mut vars = vec![
            ("DATABASE_URL", self.orchestrator_url.as_str()),
            ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.as_str()),
            ("SWEEP_INTERVAL_MS", "250"),
        ];
        vars.extend(child.iter().map(|(k, v)| (*k, v.as_str())));
        vars.extend_from_slice(extra);
        Ok(ServiceProcess::spawn(bin, &vars)?)
    }

    /// Every saga's (id, status), by id.
    pub(crate) async fn sagas(&self) -> anyhow::Result<Vec<(Uuid, String)>> {
        Ok(sqlx::query_as("SELECT saga_id, status FROM saga ORDER BY saga_id")
            .fetch_all(&self.orchestrator)
            .await?)
    }

    /// `sku`'s (on hand, reserved) units.
    pub(crate) async fn stock(&self, sku: &str) -> anyhow::Result<(i64, i64)> {
        Ok(sqlx::query_as("SELECT on_hand::bigint, reserved::bigint FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_one(&self.inventory)
            .await?)
    }

    /// The payment service's status of `order_id`'s payment, if it has one.
    pub(crate) async fn payment_status(&self, order_id: Uuid) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.payment)
            .await?)
    }

    /// Waits until `done` holds for the sagas' statuses.
    pub(crate) async fn wait_for_sagas(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[(Uuid, String)]) -> bool,
    ) -> anyhow::Result<Vec<(Uuid, String)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let sagas = self.sagas().await?;
            if done(&sagas) {
                return Ok(sagas);
            }
            anyhow::ensure!(Instant::now() < deadline, "{what}: not after {timeout:?}: {sagas:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until none of `ids` is PENDING; their (status, reason).
    pub(crate) async fn verdicts(
        &self,
        ids: &[Uuid],
        timeout: Duration,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut statuses = Vec::new();
            for id in ids {
                let view =
                    order_service::store::get_order(&self.orders, *id).await?.context("order vanished")?;
                statuses.push((view.status, view.reason));
            }
            if statuses.iter().all(|(s, _)| s != "PENDING") {
                return Ok(statuses);
            }
            anyhow::ensure!(Instant::now() < deadline, "sagas still pending after {timeout:?}: {statuses:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        for t in self.tasks.into_iter().chain(self.saga.map(|(_, task)| task)) {
            t.await.context("task panicked")??;
        }
        Ok(())
    }
}

/// A binary of another package of this workspace (`package`), built for the
/// profile this test runs in: `target/<profile>/<name>`, built first with
/// cargo when missing (a `cargo nextest run --workspace` has built it).
fn workspace_binary(package: &str, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/e2e-<hash>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .with_context(|| format!("no target directory above {}", exe.display()))?;
    let bin = dir.join(name);
    if !bin.exists() {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo.args(["build", "-p", package, "--bin", name]);
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().with_context(|| format!("building {name}"))?;
        anyhow::ensure!(status.success(), "cargo build -p {package} --bin {name} failed");
    }
    Ok(bin)
}
