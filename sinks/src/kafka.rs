//! Kafka: any stream to a topic, one JSON object per message (the JSON Lines record), keyed by
//! the instrument's symbol so each instrument stays ordered within its partition (records of
//! no instrument, such as portfolio totals, are keyed by the stream type's name).
//!
//! The producer is idempotent (`enable.idempotence`: no duplicates and no reordering when
//! librdkafka retries), waits for every in-sync replica (`acks=all`), and retries failed
//! deliveries until `delivery.timeout.ms`; what still fails is counted and reported when the
//! stream ends, with the first error, and the run says so. A full local queue makes `write`
//! wait for deliveries (back-pressure), never drop.
//!
//! Resumed from a checkpoint, a producer sends nothing twice. The producer of a job that takes
//! checkpoints ([`Start::Checkpointed`], [`Start::Resume`]) gives every message two
//! headers: `tickflow-writer`, the producer's id (kept across resumes by the checkpoints), and
//! `tickflow-row`, the row's number in what the producer was given. A checkpoint notes the
//! producer's state ([`TopicProducer::state`]): its id, how many rows it had been given before
//! the checkpoint time, and, per partition, an offset at or before the first message of a
//! later row (the last it had seen delivered there: the brokers keep an idempotent producer's
//! messages in order). A resumed producer reads the partitions from those offsets, takes the
//! messages of its id from that row on (what the job before the restart had sent after the
//! checkpoint time), and leaves out, once each, the rows it is given again that are among
//! them: the same key and the same value. A resumed job gives its sinks the same rows after
//! the checkpoint time (in the same order, and a query's results of one step in any order), so
//! each row is in the topic once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tickflow_core::InstrumentRegistry;
pub use tickflow_core::kafka::brokers;

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

/// How long the end of a stream waits for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a metadata or offsets request to the brokers may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A resumed producer reading back what was sent stops at the partitions' ends, or once no
/// message has come for this long (brokers that do not report a partition's end).
const QUIET: Duration = Duration::from_secs(5);
/// The header naming the producer of a message.
pub const WRITER_HEADER: &str = "tickflow-writer";
/// The header numbering a message's row among those its producer was given (8 bytes, big
/// endian).
pub const ROW_HEADER: &str = "tickflow-row";

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

/// What the delivery reports said: the deliveries that failed after librdkafka's retries, and
/// per partition the offset of the last message delivered.
#[derive(Default)]
struct Deliveries {
    failed: u64,
    first: Option<String>,
    last: HashMap<i32, i64>,
}

/// Counts failed deliveries and notes where delivered messages went.
#[derive(Default, Clone)]
pub struct DeliveryReport(Arc<Mutex<Deliveries>>);

impl DeliveryReport {
    fn lock(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        let mut d = self.lock();
        match result {
            Ok(m) => {
                let last = d.last.entry(m.partition()).or_insert(m.offset());
                *last = (*last).max(m.offset());
            }
            Err((e, _)) => {
                d.failed += 1;
                if d.first.is_none() {
                    d.first = Some(e.to_string());
                }
            }
        }
    }
}

/// What a checkpoint keeps of a producer ([`TopicProducer::state`]).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ProducerState {
    /// The producer's id, in the `tickflow-writer` header of its messages.
    writer: String,
    /// Rows it had been given (sent, or found already sent).
    rows: u64,
    /// Per partition: an offset at or before its first message of a later row.
    from: BTreeMap<i32, i64>,
}

/// A new producer id: the time and the process, unique among the producers of the process
/// (short: every message carries it).
fn new_writer() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:x}.{:x}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The messages a resumed producer found already sent: key and value, with how many times.
#[derive(Default)]
struct AlreadySent {
    messages: HashMap<Vec<u8>, u32>,
    /// Messages found.
    found: u64,
    /// Found and not matched yet.
    left: usize,
    /// The partitions' read offsets and the highest row found: until the producer has been
    /// given more rows than that, its checkpoints must read from there too.
    from: BTreeMap<i32, i64>,
    last_row: Option<u64>,
    /// Rows left out because they were found.
    skipped: u64,
    /// Reused for the lookups.
    scratch: Vec<u8>,
}

impl AlreadySent {
    fn entry(buf: &mut Vec<u8>, key: &[u8], payload: &[u8]) {
        buf.clear();
        buf.extend_from_slice(&(key.len() as u64).to_be_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(payload);
    }

    fn add(&mut self, key: &[u8], payload: &[u8]) {
        let mut entry = Vec::new();
        Self::entry(&mut entry, key, payload);
        *self.messages.entry(entry).or_default() += 1;
        self.found += 1;
        self.left += 1;
    }

    /// Whether a message with this key and value was found and not yet matched; matches it.
    fn take(&mut self, key: &[u8], payload: &[u8]) -> bool {
        if self.left == 0 {
            return false;
        }
        Self::entry(&mut self.scratch, key, payload);
        match self.messages.get_mut(&self.scratch) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.messages.remove(&self.scratch);
                }
                self.left -= 1;
                self.skipped += 1;
                true
            }
            None => false,
        }
    }
}

/// How a [`TopicProducer`] starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// For a job without checkpoints (or `tickflow publish`): messages without headers.
    Plain,
    /// For a job that takes checkpoints: a new producer id, and where each partition ends now
    /// (before it, none of this producer's messages can be).
    Checkpointed,
    /// Going on from the state a checkpoint noted ([`TopicProducer::state`]).
    Resume(&'a [u8]),
}

/// An idempotent producer to one topic.
pub struct TopicProducer {
    producer: BaseProducer<DeliveryReport>,
    report: DeliveryReport,
    topic: String,
    /// Messages sent.
    sent: u64,
    /// With checkpoints: what numbers the rows and finds them again.
    resumable: Option<Resumable>,
}

/// What lets the producer of a job with checkpoints go on from one without sending a row twice.
struct Resumable {
    /// The producer's id ([`WRITER_HEADER`]).
    writer: String,
    /// Rows given so far: the next row's number ([`ROW_HEADER`]).
    rows: u64,
    /// Per partition, the offset before which none of this producer's messages can be: the
    /// last one there when it started.
    floor: BTreeMap<i32, i64>,
    /// What the job before a restart had sent after the checkpoint.
    already: AlreadySent,
}

impl TopicProducer {
    /// Connects to `brokers` for `topic`, creating the topic (`partitions`) if it is missing;
    /// with [`Start::Resume`], reads what this producer had sent after the checkpoint, so that
    /// those rows, given again, are left out.
    pub fn new(brokers: &str, topic: &str, partitions: i32, start: Start<'_>) -> Result<Self> {
        let state: Option<ProducerState> = match start {
            Start::Resume(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| {
                kafka_error(topic, "the checkpoint's producer state is damaged", e)
            })?),
            _ => None,
        };
        ensure_topic(brokers, topic, partitions)?;
        let report = DeliveryReport::default();
        let producer: BaseProducer<DeliveryReport> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("delivery.timeout.ms", "30000")
            .create_with_context(report.clone())
            .map_err(|e| kafka_error(topic, "cannot create a producer", e))?;
        let resumable = match (start, state) {
            (Start::Plain, _) => None,
            (_, state) => {
                let mut floor = BTreeMap::new();
                for (p, low, high) in watermarks(producer.client(), topic)? {
                    // The last message there (on brokers that report the end of the last
                    // record batch as one past its first record: that batch's first, which is
                    // before ours too).
                    floor.insert(p, (high - 1).max(low));
                }
                Some(match state {
                    Some(s) => Resumable {
                        already: read_back(brokers, topic, &s.writer, s.rows, &s.from)?,
                        writer: s.writer,
                        rows: s.rows,
                        floor,
                    },
                    None => Resumable {
                        writer: new_writer(),
                        rows: 0,
                        floor,
                        already: AlreadySent::default(),
                    },
                })
            }
        };
        Ok(Self {
            producer,
            report,
            topic: topic.to_string(),
            sent: 0,
            resumable,
        })
    }

    /// Where this producer stands, for a checkpoint taken now (every row before the checkpoint
    /// time given, none after): see the module's documentation. `None` for a
    /// [`Start::Plain`] producer.
    pub fn state(&self) -> Option<Vec<u8>> {
        let r = self.resumable.as_ref()?;
        let mut from = r.floor.clone();
        for (p, last) in &self.report.lock().last {
            let f = from.entry(*p).or_insert(*last);
            *f = (*f).max(*last);
        }
        // Messages the job before the restart sent of rows not given yet are read again by a
        // job resuming from this checkpoint.
        if r.already.last_row.is_some_and(|last| last >= r.rows) {
            for (p, o) in &r.already.from {
                let f = from.entry(*p).or_insert(*o);
                *f = (*f).min(*o);
            }
        }
        let state = ProducerState {
            writer: r.writer.clone(),
            rows: r.rows,
            from,
        };
        serde_json::to_vec(&state).ok()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Messages of the job before a restart, sent after the checkpoint, that were found in
    /// the topic (their rows are left out when given again).
    pub fn already_sent(&self) -> u64 {
        self.resumable.as_ref().map_or(0, |r| r.already.found)
    }

    /// Rows left out because the job before a restart had sent them.
    pub fn skipped(&self) -> u64 {
        self.resumable.as_ref().map_or(0, |r| r.already.skipped)
    }

    /// Queues one row's message, unless a resumed producer finds it already sent; waits while
    /// the local queue is full.
    pub fn send(&mut self, key: &[u8], payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        if let Some(r) = &mut self.resumable {
            let row = r.rows;
            r.rows += 1;
            if r.already.take(key, payload) {
                return Ok(());
            }
            record = record.headers(
                OwnedHeaders::new_with_capacity(2)
                    .insert(Header {
                        key: WRITER_HEADER,
                        value: Some(r.writer.as_bytes()),
                    })
                    .insert(Header {
                        key: ROW_HEADER,
                        value: Some(&row.to_be_bytes()),
                    }),
            );
        }
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
        let d = self.report.lock();
        if d.failed > 0 {
            return Err(Error::Kafka {
                topic: self.topic.clone(),
                reason: format!(
                    "{} of {} messages were not delivered; first error: {}",
                    d.failed,
                    self.sent,
                    d.first.as_deref().unwrap_or("unknown")
                ),
            });
        }
        Ok(())
    }
}

/// The partitions of `topic` with their first and next offsets.
fn watermarks<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<Vec<(i32, i64, i64)>> {
    let metadata = client
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| kafka_error(topic, "cannot read the topic's metadata", e))?;
    let mut out = Vec::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (low, high) = client
                .fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
                .map_err(|e| {
                    kafka_error(
                        topic,
                        &format!("cannot read partition {}'s offsets", p.id()),
                        e,
                    )
                })?;
            out.push((p.id(), low, high));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads `topic`'s partitions from `from` (the first offset where a partition is not named)
/// to their ends, and gathers `writer`'s messages of row `rows` on.
fn read_back(
    brokers: &str,
    topic: &str,
    writer: &str,
    rows: u64,
    from: &BTreeMap<i32, i64>,
) -> Result<AlreadySent> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("tickflow-read-back-{writer}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| kafka_error(topic, "cannot create a consumer", e))?;
    let mut list = TopicPartitionList::new();
    let mut reading = BTreeMap::new();
    for (p, low, high) in watermarks(consumer.client(), topic)? {
        if high <= low {
            continue;
        }
        // Never past the last message there: some brokers answer a fetch past their
        // reported end with nothing at all.
        let start = from.get(&p).copied().unwrap_or(low).clamp(low, high - 1);
        list.add_partition_offset(topic, p, Offset::Offset(start))
            .map_err(|e| kafka_error(topic, "cannot read the topic back", e))?;
        reading.insert(p, start);
    }
    let mut found = AlreadySent {
        from: reading.clone(),
        ..AlreadySent::default()
    };
    if reading.is_empty() {
        return Ok(found);
    }
    consumer
        .assign(&list)
        .map_err(|e| kafka_error(topic, "cannot read the topic back", e))?;
    let mut last = Instant::now();
    while !reading.is_empty() && last.elapsed() < QUIET {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let mut mine = false;
                let mut row = None;
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        match (h.key, h.value) {
                            (WRITER_HEADER, Some(v)) => mine = v == writer.as_bytes(),
                            (ROW_HEADER, Some(v)) => {
                                row = v.try_into().ok().map(u64::from_be_bytes);
                            }
                            _ => {}
                        }
                    }
                }
                if let (true, Some(row)) = (mine, row)
                    && row >= rows
                {
                    found.add(m.key().unwrap_or_default(), m.payload().unwrap_or_default());
                    found.last_row = found.last_row.max(Some(row));
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                reading.remove(&p);
            }
            Some(Err(e)) => return Err(kafka_error(topic, "cannot read the topic back", e)),
            None => {}
        }
    }
    Ok(found)
}

/// Writes a stream to a topic: key = the instrument's symbol, value = the record as in JSON
/// Lines.
pub struct KafkaSink {
    producer: TopicProducer,
    registry: Arc<InstrumentRegistry>,
    line: String,
}

impl KafkaSink {
    /// A sink through `producer` (its checkpoint state is the sink's, [`Sink::resume_state`]).
    pub fn new(producer: TopicProducer, registry: Arc<InstrumentRegistry>) -> Self {
        Self {
            producer,
            registry,
            line: String::new(),
        }
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

    fn resume_state(&self) -> Option<Vec<u8>> {
        self.producer.state()
    }
}
