//! Kafka: any stream to a topic, one JSON object per message (the JSON Lines record), keyed by
//! the instrument's symbol so each instrument stays ordered within its partition (records of
//! no instrument, such as portfolio totals, are keyed by the stream type's name).
//!
//! The producer is idempotent (`enable.idempotence`: no duplicates and no reordering when
//! librdkafka retries), waits for every in-sync replica (`acks=all`), and retries failed
//! deliveries until `delivery.timeout.ms`; what still fails is counted and reported when the
//! stream ends, with the first error, and the run says so. A full local queue makes `write`
//! wait for deliveries (back-pressure), never drop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use tickflow_core::InstrumentRegistry;
pub use tickflow_core::kafka::brokers;

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

/// How long the end of a stream waits for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

fn kafka_error(topic: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        topic: topic.to_string(),
        reason: format!("{what}: {e}"),
    }
}

/// Creates `topic` with `partitions` partitions unless it exists (brokers need not create
/// topics on their own).
pub fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| kafka_error(topic, "cannot create an admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    // Brokers that cannot be reached are reported after 15 s, not librdkafka's default 60.
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .map_err(|e| kafka_error(topic, &format!("cannot reach the brokers at {brokers}"), e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(kafka_error(topic, "cannot create the topic", code)),
        }
    }
    Ok(())
}

/// Deliveries that failed after librdkafka's retries.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

/// Counts failed deliveries.
#[derive(Default, Clone)]
pub struct DeliveryReport(Arc<Mutex<Failures>>);

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((e, _)) = result {
            let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
            f.count += 1;
            if f.first.is_none() {
                f.first = Some(e.to_string());
            }
        }
    }
}

/// An idempotent producer to one topic.
pub struct TopicProducer {
    producer: BaseProducer<DeliveryReport>,
    report: DeliveryReport,
    topic: String,
    sent: u64,
}

impl TopicProducer {
    /// Connects to `brokers` for `topic`, creating the topic (`partitions`) if it is missing.
    pub fn new(brokers: &str, topic: &str, partitions: i32) -> Result<Self> {
        ensure_topic(brokers, topic, partitions)?;
        let report = DeliveryReport::default();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("delivery.timeout.ms", "30000")
            .create_with_context(report.clone())
            .map_err(|e| kafka_error(topic, "cannot create a producer", e))?;
        Ok(Self {
            producer,
            report,
            topic: topic.to_string(),
            sent: 0,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues one message; waits while the local queue is full.
    pub fn send(&mut self, key: &[u8], payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(kafka_error(&self.topic, "cannot queue a message", e)),
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Serves delivery reports without waiting.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until every queued message is delivered or has failed; returns how many were
    /// delivered, or an error naming how many were not.
    pub fn finish(&mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.sent)
    }

    /// Waits until every queued message is delivered or has failed; an error names how many
    /// were not.
    pub fn flush(&mut self) -> Result<()> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| kafka_error(&self.topic, "messages still undelivered", e))?;
        let f = self.report.0.lock().unwrap_or_else(|p| p.into_inner());
        if f.count > 0 {
            return Err(Error::Kafka {
                topic: self.topic.clone(),
                reason: format!(
                    "{} of {} messages were not delivered; first error: {}",
                    f.count,
                    self.sent,
                    f.first.as_deref().unwrap_or("unknown")
                ),
            });
        }
        Ok(())
    }
}

/// Writes a stream to a topic: key = the instrument's symbol, value = the record as in JSON
/// Lines.
pub struct KafkaSink {
    producer: TopicProducer,
    registry: Arc<InstrumentRegistry>,
    line: String,
}

impl KafkaSink {
    /// A sink to `topic` on `brokers`, creating the topic (`partitions`) if it is missing.
    pub fn create(
        brokers: &str,
        topic: &str,
        partitions: i32,
        registry: Arc<InstrumentRegistry>,
    ) -> Result<Self> {
        Ok(Self {
            producer: TopicProducer::new(brokers, topic, partitions)?,
            registry,
            line: String::new(),
        })
    }
}

impl<T: SinkRecord> Sink<T> for KafkaSink {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        for row in rows {
            self.line.clear();
            row.write_json(&self.registry, &mut self.line);
            // Records of no instrument (portfolio totals) share one key, so they stay ordered.
            let key = match row.instrument() {
                Some(id) => self.registry.symbol(id),
                None => T::NAME,
            };
            self.producer.send(key.as_bytes(), self.line.as_bytes())?;
        }
        self.producer.poll();
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.producer.flush()
    }

    fn finish(&mut self) -> Result<u64> {
        self.producer.finish()
    }
}
