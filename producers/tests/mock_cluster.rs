//! KafkaPublisher against librdkafka's in-process mock cluster: acknowledged
//! records land in call order on their partition, and an oversized record is
//! reported as permanent (park it) rather than retriable.

use producers::{KafkaPublisher, ProducerConfig, Publisher, Record};
use rdkafka::mocking::MockCluster;

#[tokio::test]
async fn delivers_in_call_order_and_flags_oversized_records_as_permanent() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("t", 1, 1).expect("create topic");
    let publisher = KafkaPublisher::new(&ProducerConfig::new(cluster.bootstrap_servers())).expect("producer");

    let payloads: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_be_bytes().to_vec()).collect();
    // Start every publish before awaiting any: order must follow the calls.
    let futures: Vec<_> = payloads
        .iter()
        .map(|p| {
            publisher.publish(Record {
                topic: "t",
                key: Some(b"k"),
                payload: Some(p),
                headers: vec![("event-id", b"x")],
            })
        })
        .collect();
    let deliveries = futures::future::join_all(futures).await;
    let offsets: Vec<i64> = deliveries.into_iter().map(|d| d.expect("delivered").offset).collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "offsets follow call order: {offsets:?}");

    let big = vec![0u8; 2_000_000];
    let err = publisher
        .publish(Record { topic: "t", key: Some(b"k"), payload: Some(&big), headers: vec![] })
        .await
        .expect_err("2 MB exceeds message.max.bytes");
    assert!(!err.is_retriable(), "too large must be permanent: {err}");
}
