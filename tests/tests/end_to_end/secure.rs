//! Secured connections: a broker whose only client listener is SASL_SSL
//! (SCRAM-SHA-512, certificates made by the test, ACLs on) and PostgreSQL
//! reached with `sslmode=require`. The relay publishes and the consumer
//! runtime applies through them with nothing but settings passed in; a wrong
//! password or a user without ACLs is refused with a clear error.

use std::time::Duration;

use anyhow::Context as _;
use outbox::OutboxRelay;
use producers::{ConnectionError, KafkaConnection, ProducerConfig};
use sqlx::Connection as _;
use testkit::secure::{ADMIN_PASSWORD, READER_PASSWORD};

use crate::consumer_runtime::support as consumer;
use crate::outbox_relay::support::{connect, enqueue_committed, relay_config};

/// `KafkaConnection` for `user` on `broker`, as a binary would build it from
/// `-X` flags.
fn connection(broker: &testkit::SecureBroker, user: &str, password: &str) -> KafkaConnection {
    broker
        .client_properties(user, password)
        .into_iter()
        .fold(KafkaConnection::new(broker.bootstrap_servers()), |c, (k, v)| c.with_property(k, v))
}

#[tokio::test]
async fn relay_and_consumer_work_over_sasl_ssl_and_a_tls_database() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("relay_and_consumer_work_over_sasl_ssl_and_a_tls_database") {
        return Ok(());
    }
    consumer::init_tracing();
    let (broker, postgres) =
        tokio::join!(testkit::SecureBroker::start(), testkit::Postgres::start_with_tls());
    let (broker, postgres) = (broker?, postgres?);
    eprintln!("SASL_SSL broker at {}: {}", broker.bootstrap_servers(), broker.version());
    let topic = "secure.commands";
    broker.create_topics(&[topic, "secure.commands.dlq"], 2).await?;
    let kafka = connection(&broker, "admin", ADMIN_PASSWORD);
    kafka.verify(Duration::from_secs(20)).await.context("admin connects")?;

    let db_url = format!("{}?sslmode=require", postgres.fresh_database().await?);
    let pool = connect(&db_url, 10).await?;
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&pool).await?;
    assert!(ssl, "the database connection is encrypted");
    outbox::migrate(&pool).await?;
    let effects = consumer::prepare_database(&db_url).await?;

    // Commands committed to the outbox, published over SASL_SSL by the relay ...
    let mut sent = Vec::new();
    for _ in 0..50 {
        let m = consumer::command(topic, 1)?;
        sent.push(m.envelope.event_id);
        enqueue_committed(&pool, &m).await?;
    }
    let relay =
        OutboxRelay::new(pool.clone(), ProducerConfig::from_connection(&kafka)?, relay_config("secure"))?;
    let cancel_relay = outbox::CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(cancel_relay.clone()));
    // ... and applied by a consumer connected the same way.
    let config = consumer::consumer_config("", "secure-consumer", topic).with_connection(&kafka)?;
    let running = consumer::spawn_quick_consumer(config, &effects)?;
    let counts = consumer::wait_for_effects(&effects, &sent, Duration::from_secs(60)).await?;
    assert!(counts.values().all(|n| *n == 1), "each command applied once: {counts:?}");
    running.cancel.cancel();
    running.task.await??;
    cancel_relay.cancel();
    relay_task.await??;
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_or_a_missing_acl_is_refused_clearly() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("a_wrong_password_or_a_missing_acl_is_refused_clearly") {
        return Ok(());
    }
    let broker = testkit::SecureBroker::start().await?;
    broker.create_topics(&["secure.acl"], 1).await?;

    let wrong = connection(&broker, "admin", "not-the-password");
    let err = wrong.verify(Duration::from_secs(20)).await.expect_err("a wrong password must be refused");
    assert!(matches!(err, ConnectionError::Refused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("Authentication failed"), "librdkafka's reason is passed on: {text}");
    eprintln!("wrong password: {text}");

    // Authenticated but not authorized: the publish fails with the broker's reason.
    let reader = connection(&broker, "reader", READER_PASSWORD);
    reader.verify(Duration::from_secs(20)).await.context("reader authenticates")?;
    let config = ProducerConfig::from_connection(&reader)?.with_override("message.timeout.ms", "10000");
    let publisher = producers::KafkaPublisher::new(&config)?;
    let m = consumer::command("secure.acl", 1)?;
    let err = consumer::send(&publisher, &m).await.expect_err("reader has no ACL to write");
    let text = format!("{err:#}");
    assert!(text.to_ascii_lowercase().contains("authoriz"), "{text}");
    Ok(())
}

#[tokio::test]
async fn sslmode_require_refuses_a_database_without_tls() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("sslmode_require_refuses_a_database_without_tls") {
        return Ok(());
    }
    let postgres = testkit::Postgres::start().await?;
    let url = format!("{}?sslmode=require", postgres.url());
    let err = sqlx::PgConnection::connect(&url).await.expect_err("no TLS on this server");
    eprintln!("sslmode=require against a plaintext server: {err}");
    Ok(())
}
