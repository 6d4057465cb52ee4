//! A stalled lane is visible. With the broker down, a lane's batch gets no
//! delivery report (librdkafka retries without end: the relay never times a
//! record out), and every later row of the lane waits behind it. The relay
//! raises an alarm naming the lane, the row, the topic, the error and since
//! when; once the broker is back the rows go out in order and the alarm
//! clears.

use std::collections::HashMap;
use std::time::Duration;

use super::support::*;
use outbox::AlarmKind;

#[tokio::test]
async fn a_stalled_lane_says_which_row_which_error_and_since_when() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers("a_stalled_lane_says_which_row_which_error_and_since_when") {
        return Ok(());
    }
    let s = setup(1).await?;
    let bootstrap = s.env.broker.bootstrap_servers().to_owned();
    let config = outbox::RelayConfig { stall_after: Duration::from_secs(2), ..relay_config("stall") };
    let relay = InProcessRelay::start(&s.pool, &bootstrap, config)?;
    enqueue_committed(&s.pool, &message(&s.topic, "warm-up", 0)).await?;
    consume_until(&bootstrap, &s.topic, 1, Duration::from_secs(30), |v| !v.is_empty()).await?;

    s.env.broker.kill().await?;
    let mut tx = s.pool.begin().await?;
    let enqueued = outbox::enqueue(&mut tx, &message(&s.topic, "k", 0)).await?;
    tx.commit().await?;
    for i in 1..4 {
        enqueue_committed(&s.pool, &message(&s.topic, "k", i)).await?;
    }
    let raised = eventually(Duration::from_secs(20), || async {
        Ok(relay.stats.alarms().iter().any(|a| a.kind == AlarmKind::Stalled))
    })
    .await?;
    let alarms = relay.stats.alarms();
    assert!(raised, "no stall alarm: {alarms:?}");
    let alarm = &alarms[0];
    assert_eq!((alarm.lane, alarm.row), (enqueued.lane, Some(enqueued.id)), "{alarm:?}");
    assert_eq!(alarm.topic.as_deref(), Some(s.topic.as_str()));
    assert!(alarm.error.contains("no delivery report"), "{alarm:?}");
    assert!(chrono::Utc::now() - alarm.since >= chrono::TimeDelta::seconds(2), "{alarm:?}");

    s.env.broker.start_again().await?;
    let cleared =
        eventually(Duration::from_secs(60), || async { Ok(relay.stats.alarms().is_empty()) }).await?;
    let seen = consume_until(&bootstrap, &s.topic, 1, Duration::from_secs(60), |v| v.len() >= 5).await?;
    let left = relay.stats.alarms();
    relay.stop().await?;
    assert!(cleared, "the alarm stays after the lane moved on: {left:?}");
    let expected = HashMap::from([("k".to_owned(), 4u64), ("warm-up".to_owned(), 1u64)]);
    check_per_key_order(&seen, &expected)?;
    Ok(())
}
