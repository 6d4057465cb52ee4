//! The PostgreSQL container.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::admin::probe_until_ready;
use crate::error::HarnessError;
use crate::images::{ImageRef, postgres_image};
use crate::ports::free_port;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const USER: &str = "postgres";
const PASSWORD: &str = "postgres";

/// A running PostgreSQL container (removed on drop), or an external server
/// (see [`crate::external`]).
pub struct Postgres {
    container: Option<ContainerAsync<GenericImage>>,
    image: ImageRef,
    port: u16,
    /// The administrative URL of an external server.
    external: Option<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("image", &self.image.full()).field("port", &self.port).finish()
    }
}

/// What a [`Postgres`] container trades for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`: for tests, which kill
    /// processes, never the machine.
    #[default]
    Relaxed,
    /// The server's defaults (every commit flushed to disk), as a production
    /// database runs: for benchmarks of what a transaction costs.
    Durable,
}

impl Postgres {
    /// Starts the image from [`postgres_image`] with [`Durability::Relaxed`]
    /// and waits until it accepts a SQL connection.
    pub async fn start() -> Result<Postgres, HarnessError> {
        Self::start_with(Durability::Relaxed).await
    }

    /// Starts the image from [`postgres_image`] with the given durability and
    /// waits until it accepts a SQL connection.
    pub async fn start_with(durability: Durability) -> Result<Postgres, HarnessError> {
        Self::launch(durability, false).await
    }

    /// Starts the image with TLS on (`ssl=on`, the Debian "snakeoil"
    /// certificate both the upstream and the local image carry), so clients
    /// can connect with `sslmode=require`; plaintext stays allowed.
    pub async fn start_with_tls() -> Result<Postgres, HarnessError> {
        Self::launch(Durability::Relaxed, true).await
    }

    async fn launch(durability: Durability, tls: bool) -> Result<Postgres, HarnessError> {
        if let Some(url) = crate::external::database() {
            if tls {
                return Err(crate::external::unsupported("a TLS test database"));
            }
            let pg = Postgres {
                container: None,
                image: ImageRef::parse("external"),
                port: 0,
                external: Some(url),
            };
            pg.wait_ready().await?;
            tracing::info!("external postgres");
            return Ok(pg);
        }
        let image = postgres_image();
        let port = free_port()?;
        // pg_stat_statements is loaded, planning time included, so that a
        // benchmark or a puzzled test author can see where the server's time
        // went (`CREATE EXTENSION pg_stat_statements` in the database to read
        // it).
        let mut cmd = vec![
            "postgres",
            "-c",
            "max_connections=400",
            "-c",
            "shared_preload_libraries=pg_stat_statements",
            "-c",
            "pg_stat_statements.track_planning=on",
        ];
        if durability == Durability::Relaxed {
            cmd.extend(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
        }
        if tls {
            cmd.extend([
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
                "-c",
                "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key",
            ]);
        }
        let container = GenericImage::new(image.name.clone(), image.tag.clone())
            .with_exposed_port(5432.tcp())
            .with_mapped_port(port, 5432.tcp())
            .with_env_var("POSTGRES_USER", USER)
            .with_env_var("POSTGRES_PASSWORD", PASSWORD)
            .with_env_var("POSTGRES_DB", "postgres")
            // Named rather than Docker's "default", so that the container's
            // bridge address can be looked up (see `bridge_url_for`).
            .with_network("bridge")
            .with_cmd(cmd)
            .with_startup_timeout(READY_TIMEOUT)
            .start()
            .await
            .map_err(|source| HarnessError::Container { image: image.full(), source })?;
        let pg = Postgres { container: Some(container), image, port, external: None };
        pg.wait_ready().await?;
        tracing::info!(url = %pg.url(), image = %pg.image.full(), ?durability, "postgres ready");
        Ok(pg)
    }

    /// URL of the `postgres` database (for administration).
    pub fn url(&self) -> String {
        match &self.external {
            Some(url) => url.clone(),
            None => self.url_for("postgres"),
        }
    }

    /// URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        if let Some(url) = &self.external {
            return crate::external::with_database(url, db);
        }
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// URL of database `db` at the container's own address on the Docker
    /// bridge, bypassing the published port (and Docker's userland proxy, a
    /// copy through one more process per packet). `None` when Docker does not
    /// report an address or it does not accept connections from here (e.g.
    /// Docker Desktop, where the bridge lives in a VM).
    pub async fn bridge_url_for(&self, db: &str) -> Option<String> {
        let ip = self.container.as_ref()?.get_bridge_ip_address().await.ok()?;
        let url = format!("postgres://{USER}:{PASSWORD}@{ip}:5432/{db}");
        let connect = PgConnection::connect(&url);
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Some(url)
            }
            _ => None,
        }
    }

    /// Host port the server listens on (0 for an external server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, empty database with a unique name and returns its URL.
    /// Tests that share one server stay isolated this way.
    pub async fn fresh_database(&self) -> Result<String, HarnessError> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&self.url()).await?;
        // `name` is made here from a UUID: no injection possible.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut conn).await?;
        conn.close().await?;
        Ok(self.url_for(&name))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s), keeping its data:
    /// a database outage. [`Postgres::start_again`] brings it back on the same port.
    pub async fn stop(&self) -> Result<(), HarnessError> {
        self.own()?
            .stop_with_timeout(Some(5))
            .await
            .map_err(|source| HarnessError::Container { image: self.image.full(), source })
    }

    /// Starts a stopped server again and waits until it accepts connections.
    pub async fn start_again(&self) -> Result<(), HarnessError> {
        self.own()?
            .start()
            .await
            .map_err(|source| HarnessError::Container { image: self.image.full(), source })?;
        self.wait_ready().await
    }

    fn own(&self) -> Result<&ContainerAsync<GenericImage>, HarnessError> {
        self.container.as_ref().ok_or_else(|| crate::external::unsupported("stopping the database"))
    }

    async fn wait_ready(&self) -> Result<(), HarnessError> {
        let url = self.url();
        probe_until_ready("postgres", READY_TIMEOUT, move || {
            let url = url.clone();
            async move {
                let mut conn = PgConnection::connect(&url).await.map_err(|e| e.to_string())?;
                sqlx::query("SELECT 1").execute(&mut conn).await.map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            }
        })
        .await
    }
}
