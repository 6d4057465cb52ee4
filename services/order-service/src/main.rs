//! `order-service`: connect, migrate, serve.

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Takes orders over HTTP and publishes OrderCreated through the outbox")]
struct Config {
    /// PostgreSQL URL of the order database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Address to serve HTTP on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("order-service")?;
    let config = Config::parse();
    let pool = sqlx::PgPool::connect(&config.database_url).await.context("connecting to the order database")?;
    order_service::migrate(&pool).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(addr = %config.listen, "order-service listening");
    axum::serve(listener, order_service::api::router(pool))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")
}

/// Resolves on SIGINT or SIGTERM (what `docker stop` sends).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
