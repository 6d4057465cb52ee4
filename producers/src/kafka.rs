//! [`KafkaPublisher`]: the idempotent, `acks=all` rdkafka producer behind the
//! [`Publisher`] trait.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::ProducerConfig;
use crate::error::PublishError;
use crate::publisher::{Delivery, Publisher};
use crate::record::Record;

/// Publishes through one rdkafka `FutureProducer`. Cheap to share behind an
/// `Arc`; librdkafka batches records from all callers.
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// Creates the producer (it connects lazily, on the first record).
    pub fn new(config: &ProducerConfig) -> Result<Self, PublishError> {
        let producer: FutureProducer =
            config.client_config()?.create().map_err(|e| PublishError::CreateProducer(e.to_string()))?;
        Ok(KafkaPublisher { producer })
    }

    /// The underlying rdkafka producer (escape hatch: metadata, flush, stats).
    pub fn inner(&self) -> &FutureProducer {
        &self.producer
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.producer.flush(timeout).map_err(|e| PublishError::from_kafka(&e))
    }

    /// Whether librdkafka reports a fatal error (the producer must be replaced).
    pub fn fatal_error(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    /// Classifies `err`; a fatal error carries librdkafka's underlying reason
    /// (e.g. the authorisation failure that made the producer fatal).
    fn error(&self, err: &rdkafka::error::KafkaError) -> PublishError {
        match PublishError::from_kafka(err) {
            PublishError::ProducerFatal(what) => match self.fatal_error() {
                Some(why) => PublishError::ProducerFatal(format!("{what} ({why})")),
                None => PublishError::ProducerFatal(what),
            },
            other => other,
        }
    }
}

impl Publisher for KafkaPublisher {
    fn publish<'a>(
        &'a self,
        record: Record<'a>,
    ) -> impl std::future::Future<Output = Result<Delivery, PublishError>> + Send + 'a {
        // Enqueue now (see the trait docs): the order of calls is the order of
        // records in librdkafka's partition queues.
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: Some(*value) });
        }
        let mut fr: FutureRecord<'a, [u8], [u8]> = FutureRecord::to(record.topic).headers(headers);
        if let Some(k) = record.key {
            fr = fr.key(k);
        }
        if let Some(p) = record.payload {
            fr = fr.payload(p);
        }
        let queued = self.producer.send_result(fr).map_err(|(e, _)| self.error(&e));
        async move {
            match queued?.await {
                Ok(Ok(d)) => Ok(Delivery { partition: d.partition, offset: d.offset }),
                Ok(Err((e, _))) => Err(self.error(&e)),
                Err(_canceled) => Err(PublishError::Canceled),
            }
        }
    }
}
