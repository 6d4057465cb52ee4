//! Smoke test of the infrastructure itself: a record produced through rdkafka
//! comes back from the broker with its headers, and a row written to
//! PostgreSQL is read back. The second test shows the same round trip failing
//! when the broker is gone, so a green smoke test means a broker answered.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    Ok(testkit::external::client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "8000")
        .create()?)
}

async fn produce_one(bootstrap: &str, topic: &str, key: &str, marker: &str) -> anyhow::Result<(i32, i64)> {
    let producer = producer(bootstrap)?;
    let headers =
        OwnedHeaders::new().insert(Header { key: "smoke-marker", value: Some(marker) }).insert(Header {
            key: "traceparent",
            value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        });
    let delivery = producer
        .send(FutureRecord::to(topic).key(key).payload("hello").headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("delivery failed: {e}"))?;
    Ok((delivery.partition, delivery.offset))
}

#[tokio::test]
async fn kafka_round_trip_with_headers_and_postgres_round_trip() -> anyhow::Result<()> {
    let env = testkit::Environment::start().await?;
    // The suite's log names the broker it ran on (nextest shows this test's output).
    println!(
        "broker: {} (image {}, {})",
        env.broker.version(),
        env.broker.image().full(),
        env.broker.bootstrap_servers()
    );
    let topic = "smoke.test";
    env.broker.create_topics(&[topic], 1).await?;
    let marker = Uuid::new_v4().to_string();

    let (partition, offset) = produce_one(env.broker.bootstrap_servers(), topic, "k1", &marker).await?;
    assert_eq!(partition, 0);
    assert!(offset >= 0);

    let consumer: StreamConsumer = testkit::external::client_config(env.broker.bootstrap_servers())
        .set("group.id", format!("smoke-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let msg = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
    assert_eq!(msg.key(), Some(&b"k1"[..]));
    assert_eq!(msg.payload(), Some(&b"hello"[..]));
    let headers = msg.headers().ok_or_else(|| anyhow::anyhow!("record came back without headers"))?;
    let found: Vec<(String, Vec<u8>)> =
        headers.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect();
    assert!(found.contains(&("smoke-marker".to_owned(), marker.as_bytes().to_vec())), "headers: {found:?}");
    assert!(found.iter().any(|(k, _)| k == "traceparent"));

    let db = env.postgres.fresh_database().await?;
    let pool = sqlx::PgPool::connect(&db).await?;
    sqlx::query("CREATE TABLE smoke (id uuid PRIMARY KEY, note text NOT NULL)").execute(&pool).await?;
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO smoke (id, note) VALUES ($1, $2)").bind(id).bind(&marker).execute(&pool).await?;
    let note: String =
        sqlx::query_scalar("SELECT note FROM smoke WHERE id = $1").bind(id).fetch_one(&pool).await?;
    assert_eq!(note, marker);
    Ok(())
}

#[tokio::test]
async fn produce_fails_when_the_broker_is_gone() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("produce_fails_when_the_broker_is_gone") {
        return Ok(());
    }
    let broker = testkit::Broker::start().await?;
    let topic = "smoke.gone";
    broker.create_topics(&[topic], 1).await?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    broker.kill().await?;
    let result = produce_one(&bootstrap, topic, "k1", "nobody-home").await;
    assert!(result.is_err(), "a record was acknowledged by a killed broker: {result:?}");
    Ok(())
}
