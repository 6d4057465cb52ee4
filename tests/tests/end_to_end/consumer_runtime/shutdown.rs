//! The shutdown bound holds: `run` returns within `in_flight_grace +
//! close_timeout` (and a second) whatever the handler does, and what did not
//! finish is redelivered, not lost. Two handlers: one slower than the grace,
//! and one that fails during shutdown, so that its dead letter (to a topic
//! that does not exist yet) is being published while the consumer stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::support;
use consumers::{CancellationToken, Consumer, ConsumerConfig, Handler, HandlerError, InboundMessage};
use producers::{KafkaPublisher, ProducerConfig};
use sqlx::{Postgres, Transaction};

const GRACE: Duration = Duration::from_secs(2);
const CLOSE: Duration = Duration::from_secs(5);

/// Writes its effect, says it started, then sleeps `sleep`; with
/// `fail_on_stop`, waits for the shutdown instead and then fails
/// permanently (its record goes to the dead-letter topic).
#[derive(Clone)]
struct Stubborn {
    started: Arc<AtomicBool>,
    sleep: Duration,
    fail_on_stop: Option<CancellationToken>,
}

impl Handler for Stubborn {
    async fn handle(
        &self,
        message: &InboundMessage,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO consumer_effects (event_id, order_id, quantity) VALUES ($1, gen_random_uuid(), 1)",
        )
        .bind(message.envelope.event_id)
        .execute(&mut **tx)
        .await?;
        self.started.store(true, Ordering::SeqCst);
        if let Some(stop) = &self.fail_on_stop {
            stop.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err(HandlerError::permanent("refused during shutdown"));
        }
        tokio::time::sleep(self.sleep).await;
        Ok(())
    }
}

fn config(bootstrap: &str, group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        in_flight_grace: GRACE,
        close_timeout: CLOSE,
        ..support::consumer_config(bootstrap, group, topic)
    }
}

/// Runs `consumer` until `handler_started`, cancels, returns how long
/// shutdown took.
async fn stop_after_start<H: Handler + 'static>(
    consumer: Consumer<H>,
    started: &AtomicBool,
    cancel: CancellationToken,
) -> anyhow::Result<Duration> {
    let run = tokio::spawn(consumer.run(cancel.clone()));
    support::eventually("the handler to start", Duration::from_secs(60), || async {
        Ok(started.load(Ordering::SeqCst).then_some(()))
    })
    .await?;
    let t0 = Instant::now();
    cancel.cancel();
    run.await??;
    Ok(t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_grace_is_rolled_back_within_the_bound_and_redelivered()
-> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "slowstop.commands";
    env.broker.create_topics(&[topic, "slowstop.commands.dlq"], 1).await?;
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let m = support::command(topic, 1)?;
    support::send(&support::publisher(bootstrap)?, &m).await?;

    let started = Arc::new(AtomicBool::new(false));
    let slow = Stubborn { started: started.clone(), sleep: Duration::from_secs(60), fail_on_stop: None };
    let consumer = Consumer::new(config(bootstrap, "slowstop", topic), pool.clone(), slow)?;
    let took = stop_after_start(consumer, &started, CancellationToken::new()).await?;
    eprintln!("shutdown took {took:?} (grace {GRACE:?}, close {CLOSE:?})");
    assert!(took >= GRACE, "the handler got its grace: {took:?}");
    assert!(took <= GRACE + CLOSE + Duration::from_secs(1), "shutdown bound broken: {took:?}");
    assert!(support::effect_counts(&pool).await?.is_empty(), "the cut-off transaction was rolled back");

    let next = support::spawn_quick_consumer(support::consumer_config(bootstrap, "slowstop", topic), &pool)?;
    let counts = support::wait_for_effects(&pool, &[m.envelope.event_id], Duration::from_secs(60)).await?;
    assert_eq!(counts[&m.envelope.event_id], 1);
    next.cancel.cancel();
    next.task.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_published_during_shutdown_stays_within_the_bound_and_loses_nothing()
-> anyhow::Result<()> {
    support::init_tracing();
    let env = testkit::Environment::start().await?;
    let topic = "failstop.commands";
    let dlq = "failstop.commands.dlq";
    env.broker.create_topics(&[topic], 1).await?; // the dead letter cannot be published yet
    let pool = support::prepare_database(&env.postgres.fresh_database().await?).await?;
    let bootstrap = env.broker.bootstrap_servers();
    let m = support::command(topic, 1)?;
    support::send(&support::publisher(bootstrap)?, &m).await?;

    let cancel = CancellationToken::new();
    let started = Arc::new(AtomicBool::new(false));
    let failing =
        Stubborn { started: started.clone(), sleep: Duration::ZERO, fail_on_stop: Some(cancel.clone()) };
    let dead_letters = KafkaPublisher::new(&ProducerConfig {
        linger_ms: 0,
        overrides: support::cluster_properties(),
        ..ProducerConfig::new(bootstrap)
    })?;
    let consumer =
        Consumer::with_publisher(config(bootstrap, "failstop", topic), pool.clone(), failing, dead_letters)?;
    let stats = consumer.stats();
    let took = stop_after_start(consumer, &started, cancel).await?;
    eprintln!("shutdown with a dead letter in flight took {took:?}");
    assert!(took <= GRACE + CLOSE + Duration::from_secs(1), "shutdown bound broken: {took:?}");
    assert_eq!(stats.snapshot().dead_lettered, 0, "the dead letter could not be published");

    // Not committed, so the next consumer gets the record again.
    env.broker.create_topics(&[dlq], 1).await?;
    let again =
        Stubborn { started: Arc::new(AtomicBool::new(false)), sleep: Duration::ZERO, fail_on_stop: None };
    let consumer =
        Consumer::new(support::consumer_config(bootstrap, "failstop", topic), pool.clone(), again)?;
    let next_stats = consumer.stats();
    let next_cancel = CancellationToken::new();
    let next = tokio::spawn(consumer.run(next_cancel.clone()));
    let counts = support::wait_for_effects(&pool, &[m.envelope.event_id], Duration::from_secs(60)).await?;
    assert_eq!(counts[&m.envelope.event_id], 1, "redelivered and applied once");
    assert_eq!(next_stats.snapshot().applied, 1);
    next_cancel.cancel();
    next.await??;
    Ok(())
}
