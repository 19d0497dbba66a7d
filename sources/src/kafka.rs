//! Kafka: market data from a topic (`[[source]] kind = "kafka"`).
//!
//! Each partition of the topic is one part, so partitions spread over the workers like files
//! do. A part reads from the consumer group's committed offset (the partition's first offset
//! when the group has none) to the partition's end as it was when the job was planned: a run
//! over a topic is a bounded replay, and the next run goes on where this one finished. Offsets
//! are committed only when the whole run has finished, after every sink has processed every
//! record ([`commit`]), so a run that stops early reads the same records again.
//!
//! With `follow = true` the job is live: a [`Follower`] reads the worker's partitions without
//! end, each record going on as it arrives, with the watermark kept per partition
//! ([`Frontier`]); the runtime commits, every `commit_interval`, the offsets behind what every
//! sink has made durable, and everything read when the job is stopped.
//!
//! Messages are JSON objects, as `tickflow publish` writes them: `type` (`trade`, `quote` or
//! `book`), `instrument` (the symbol) and the record's fields as the JSON Lines sinks write
//! them. Prices and sizes are read from their decimal text, never through floating point.
//! Messages that start with `TF` are the compact binary encoding instead
//! ([`tickflow_core::wire`], `tickflow publish --encoding binary`); a topic may mix both. A
//! message that cannot be decoded becomes a reject naming the partition, the offset and what
//! is wrong, and goes to the dead-letter topic (which the job creates when it starts) with that
//! reason as its key, when the source has one; the run goes on.
//!
//! Instruments are declared when the job is planned: those listed in `symbols`, or else the
//! keys of the messages the parts will read (the symbols, as `tickflow publish` keys them).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, Quote, Reject, RejectReason, SeqNo, Side, Timestamp, Trade,
};

use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// How long metadata, offset and watermark requests may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a part waits for a message it knows exists before it gives up on the partition.
const STALL: Duration = Duration::from_secs(30);

/// A Kafka source as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KafkaSourceConfig {
    /// The topic.
    pub topic: String,
    /// Bootstrap brokers; `TICKFLOW_KAFKA_BROKERS` overrides them.
    pub brokers: Option<String>,
    /// Consumer group whose committed offsets the source starts from and advances.
    pub group: String,
    /// Topic that undecodable messages go to, with the reason.
    pub dead_letter: Option<String>,
    /// Venue of the instruments.
    pub venue: String,
    /// Instruments to declare; empty: the keys of the messages to read.
    pub symbols: Vec<String>,
    /// Follow the topic without end (a live job) instead of reading it to its end.
    pub follow: bool,
    /// Following: a partition with no message for this long stops holding the watermark back.
    pub idle_timeout: tickflow_core::Duration,
    /// Following: how often the offsets of processed records are committed.
    pub commit_interval: tickflow_core::Duration,
}

impl KafkaSourceConfig {
    /// A source of `topic` with the defaults: group `tickflow`, venue `kafka`.
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            brokers: None,
            group: "tickflow".into(),
            dead_letter: None,
            venue: "kafka".into(),
            symbols: Vec::new(),
            follow: false,
            idle_timeout: tickflow_core::Duration::from_secs(2),
            commit_interval: tickflow_core::Duration::from_secs(5),
        }
    }

    /// The brokers to use ([`tickflow_core::kafka::brokers`]).
    pub fn brokers(&self) -> String {
        tickflow_core::kafka::brokers(self.brokers.as_deref())
    }

    fn consumer(&self) -> Result<BaseConsumer> {
        self.consumer_with_eof(false)
    }

    /// A consumer of the group that never commits on its own; with `eof`, polling reports the
    /// end of each partition.
    fn consumer_with_eof(&self, eof: bool) -> Result<BaseConsumer> {
        self.settings(eof)
            .create()
            .map_err(|e| self.error(format!("cannot create a consumer: {e}")))
    }

    /// A consumer for [`fetch_from`]'s probes: a fetch returns what the broker has at once
    /// instead of waiting up to half a second for more.
    fn probe_consumer(&self) -> Result<BaseConsumer> {
        self.settings(false)
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(|e| self.error(format!("cannot create a consumer: {e}")))
    }

    fn settings(&self, eof: bool) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers())
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", if eof { "true" } else { "false" })
            // An offset the broker no longer has is an error, never a silent jump.
            .set("auto.offset.reset", "error");
        c
    }

    fn error(&self, reason: String) -> Error {
        Error::Config(format!(
            "kafka topic {} on {}: {reason}",
            self.topic,
            self.brokers()
        ))
    }
}

/// One partition to read: offsets `start..end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionRange {
    /// Partition.
    pub partition: i32,
    /// First offset to read.
    pub start: i64,
    /// One past the last offset to read.
    pub end: i64,
}

/// The partitions of the topic with the offsets a run reads: from the group's committed
/// offset (or the first offset) to the end as of now.
pub fn partitions(config: &KafkaSourceConfig) -> Result<Vec<PartitionRange>> {
    let consumer = config.consumer()?;
    let metadata = consumer
        .fetch_metadata(Some(&config.topic), TIMEOUT)
        .map_err(|e| config.error(format!("cannot read the topic's metadata: {e}")))?;
    let mut ids: Vec<i32> = Vec::new();
    for t in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == config.topic)
    {
        if let Some(e) = t.error() {
            return Err(config.error(format!("the topic cannot be read: {e:?}")));
        }
        ids.extend(t.partitions().iter().map(|p| p.id()));
    }
    if ids.is_empty() {
        return Err(config.error("the topic does not exist or has no partitions".into()));
    }
    ids.sort_unstable();
    let mut wanted = TopicPartitionList::new();
    for p in &ids {
        wanted.add_partition(&config.topic, *p);
    }
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .map_err(|e| config.error(format!("cannot read the group's committed offsets: {e}")))?;
    let mut out = Vec::new();
    for p in ids {
        let (low, high) = consumer
            .fetch_watermarks(&config.topic, p, TIMEOUT)
            .map_err(|e| config.error(format!("cannot read the offsets of partition {p}: {e}")))?;
        // A following job with declared symbols never needs the end; the key scan does.
        let end = if high > low && (!config.follow || config.symbols.is_empty()) {
            last_batch_end(config, p, high)?
        } else {
            high
        };
        let start = match committed
            .find_partition(&config.topic, p)
            .map(|e| e.offset())
        {
            // Following, the end is not known (and not needed): the commit stands.
            Some(Offset::Offset(o)) if o >= low && config.follow => o,
            Some(Offset::Offset(o)) if o >= low => o.min(end),
            _ => low,
        };
        out.push(PartitionRange {
            partition: p,
            start,
            end,
        });
    }
    Ok(out)
}

/// The true end of a partition whose high watermark is `high`: one past the last offset of the
/// record batch that starts before `high`. Kafka brokers report one past the last record;
/// some Kafka-compatible brokers (tansu 0.6) report one past the first record of the last
/// batch, so the last batch is read to find its end.
fn last_batch_end(config: &KafkaSourceConfig, partition: i32, high: i64) -> Result<i64> {
    let consumer = config.consumer_with_eof(true)?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&config.topic, partition, Offset::Offset(high - 1))
        .map_err(|e| config.error(e.to_string()))?;
    consumer
        .assign(&list)
        .map_err(|e| config.error(format!("cannot assign partition {partition}: {e}")))?;
    let mut end = high;
    let started = std::time::Instant::now();
    let mut last_message = None::<std::time::Instant>;
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                end = end.max(m.offset() + 1);
                last_message = Some(std::time::Instant::now());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                return Err(
                    config.error(format!("cannot read the end of partition {partition}: {e}"))
                );
            }
            None => {
                // No end-of-partition event: stop once the last batch has stopped arriving.
                let quiet = last_message.map_or(started.elapsed(), |t| t.elapsed());
                if quiet > Duration::from_secs(1) && last_message.is_some()
                    || started.elapsed() > TIMEOUT
                {
                    break;
                }
            }
        }
    }
    Ok(end)
}

/// The instruments the source declares: `symbols`, or the keys of the messages in `ranges`.
pub fn instruments(
    config: &KafkaSourceConfig,
    ranges: &[PartitionRange],
) -> Result<Vec<InstrumentSpec>> {
    let mut symbols: BTreeSet<String> = config.symbols.iter().cloned().collect();
    if symbols.is_empty() {
        for range in ranges.iter().filter(|r| r.start < r.end) {
            let consumer = assign(config, range)?;
            let mut next = range.start;
            let mut last_progress = std::time::Instant::now();
            while next < range.end {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        next = m.offset() + 1;
                        last_progress = std::time::Instant::now();
                        if let Some(k) = m.key().and_then(|k| std::str::from_utf8(k).ok())
                            && !k.is_empty()
                        {
                            symbols.insert(k.to_string());
                        }
                    }
                    Some(Err(e)) => {
                        return Err(
                            config.error(format!("cannot read partition {}: {e}", range.partition))
                        );
                    }
                    None if last_progress.elapsed() > STALL => {
                        return Err(config.error(format!(
                            "partition {} stopped at offset {next} before its end {}",
                            range.partition, range.end
                        )));
                    }
                    None => {}
                }
            }
        }
    }
    Ok(symbols
        .into_iter()
        .map(|symbol| InstrumentSpec {
            symbol,
            venue: config.venue.clone(),
            tick_size: Price::from_raw(10_000_000),
            lot_size: Quantity::from_raw(1_000_000_000),
            currency: "USD".into(),
        })
        .collect())
}

/// The offset to fetch from to read `partition` from `start`: `start` itself on Kafka. tansu
/// 0.6 answers a fetch at an offset inside a record batch with the batches after it, losing
/// the batch's later records, so the first record a fetch returns is checked: when it is past
/// `start`, fetching starts earlier (1, then 4,096, 65,536, ... records back, down to the first
/// offset) until the batch holding `start` comes back. The readers skip records before
/// `start`: reading a few thousand records too many costs milliseconds, a probe a fetch round
/// trip, and a producer's record batches hold thousands of small messages.
/// (A fetch at or past tansu's high watermark, [`last_batch_end`], returns nothing at all.)
fn fetch_from(
    consumer: &BaseConsumer,
    config: &KafkaSourceConfig,
    topic: &str,
    partition: i32,
    start: i64,
) -> Result<i64> {
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .map_err(|e| {
            config.error(format!(
                "cannot read the offsets of partition {partition}: {e}"
            ))
        })?;
    // At or past the high watermark tansu returns nothing at all, even where its last batch
    // goes on past it: begin with that batch (on Kafka: the last record, skipped).
    let mut from = if start >= high && high > low {
        high - 1
    } else {
        start
    };
    let mut back = 1i64;
    // One consumer for every probe: a new one costs a connection and a metadata round trip.
    let probe = config.probe_consumer()?;
    while from > low {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(|e| config.error(e.to_string()))?;
        probe
            .assign(&list)
            .map_err(|e| config.error(format!("cannot assign partition {partition}: {e}")))?;
        let first = match probe.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => m.offset(),
            // Nothing after `start` yet (or an error the reader will report).
            _ => return Ok(from),
        };
        if first <= start {
            return Ok(from);
        }
        from = (start - back).max(low);
        back = if back == 1 {
            4096
        } else {
            back.saturating_mul(16)
        };
    }
    Ok(from.max(low))
}

fn assign(config: &KafkaSourceConfig, range: &PartitionRange) -> Result<BaseConsumer> {
    let consumer = config.consumer()?;
    let mut list = TopicPartitionList::new();
    let from = fetch_from(
        &consumer,
        config,
        &config.topic,
        range.partition,
        range.start,
    )?;
    list.add_partition_offset(&config.topic, range.partition, Offset::Offset(from))
        .map_err(|e| config.error(e.to_string()))?;
    consumer
        .assign(&list)
        .map_err(|e| config.error(format!("cannot assign partition {}: {e}", range.partition)))?;
    Ok(consumer)
}

/// Commits the end of every range for the group: called once the run that read them has
/// finished, so the next run starts after them.
pub fn commit(config: &KafkaSourceConfig, ranges: &[PartitionRange]) -> Result<()> {
    let consumer = config.consumer()?;
    let mut list = TopicPartitionList::new();
    for r in ranges {
        list.add_partition_offset(&config.topic, r.partition, Offset::Offset(r.end))
            .map_err(|e| config.error(e.to_string()))?;
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .map_err(|e| config.error(format!("cannot commit the offsets read: {e}")))
}

/// Turns messages into records, and undecodable ones into rejects that also go to the
/// dead-letter topic.
struct Decoder {
    config: KafkaSourceConfig,
    registry: std::sync::Arc<InstrumentRegistry>,
    dead_letter: Option<BaseProducer<Delivered>>,
    /// Per partition of the dead-letter topic, its end when the producer started: every dead
    /// letter this decoder sends is at or after it.
    floor: BTreeMap<i32, i64>,
    /// Positions (partition, offset) of the source whose dead letters are in the topic already
    /// (read back on resuming): not sent again.
    sent: std::sync::Mutex<BTreeSet<(i32, i64)>>,
}

/// The last offset delivered to each partition of the dead-letter topic.
#[derive(Default)]
struct Delivered(std::sync::Mutex<BTreeMap<i32, i64>>);

impl rdkafka::ClientContext for Delivered {}

impl rdkafka::producer::ProducerContext for Delivered {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _opaque: ()) {
        if let Ok(m) = result {
            let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let l = last.entry(m.partition()).or_insert(m.offset());
            *l = (*l).max(m.offset());
        }
    }
}

impl Decoder {
    fn new(
        config: &KafkaSourceConfig,
        registry: std::sync::Arc<InstrumentRegistry>,
    ) -> Result<Self> {
        let dead_letter = match &config.dead_letter {
            Some(_) => Some(
                ClientConfig::new()
                    .set("bootstrap.servers", config.brokers())
                    .set("enable.idempotence", "true")
                    .create_with_context(Delivered::default())
                    .map_err(|e| {
                        config.error(format!("cannot create the dead-letter producer: {e}"))
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            registry,
            dead_letter,
            floor: BTreeMap::new(),
            sent: std::sync::Mutex::default(),
        })
    }

    /// With checkpoints, before the first dead letter: notes where the dead-letter topic's
    /// partitions end, so that each checkpoint can say where the dead letters sent after it
    /// start ([`Decoder::dead_letter_from`]).
    fn note_dead_letter_ends(&mut self) -> Result<()> {
        let (Some(producer), Some(topic)) = (&self.dead_letter, &self.config.dead_letter) else {
            return Ok(());
        };
        let client = producer.client();
        let metadata = client.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| {
            self.config
                .error(format!("cannot read the metadata of {topic}: {e}"))
        })?;
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                let (_, high) = client
                    .fetch_watermarks(topic, p.id(), TIMEOUT)
                    .map_err(|e| {
                        self.config.error(format!(
                            "cannot read the offsets of {topic} partition {}: {e}",
                            p.id()
                        ))
                    })?;
                self.floor.insert(p.id(), high);
            }
        }
        Ok(())
    }

    /// Per partition of the dead-letter topic, an offset at or before the first dead letter
    /// this decoder sends from now on: after the last one delivered (all sent so far are, when
    /// the reader flushed them), or its end when the decoder started. Empty without one.
    fn dead_letter_from(&self) -> Vec<(i32, i64)> {
        let Some(producer) = &self.dead_letter else {
            return Vec::new();
        };
        let delivered = producer
            .context()
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.floor
            .iter()
            .map(|(&p, &f)| (p, delivered.get(&p).map_or(f, |d| f.max(d + 1))))
            .collect()
    }

    /// Reads the dead-letter topic back from `from` (per partition of it) and notes the dead
    /// letters of the source's partitions `mine` found there: they are not sent again.
    fn read_back(&self, from: &BTreeMap<i32, i64>, mine: &BTreeSet<i32>) -> Result<()> {
        let (Some(topic), false) = (&self.config.dead_letter, from.is_empty()) else {
            return Ok(());
        };
        let consumer: BaseConsumer = self
            .config
            .settings(true)
            .set(
                "group.id",
                format!("{}-dead-letter-read-back", self.config.group),
            )
            .create()
            .map_err(|e| self.config.error(format!("cannot create a consumer: {e}")))?;
        let mut list = TopicPartitionList::new();
        let mut reading = BTreeSet::new();
        for (&p, &f) in from {
            let (low, high) = consumer.fetch_watermarks(topic, p, TIMEOUT).map_err(|e| {
                self.config.error(format!(
                    "cannot read the offsets of {topic} partition {p}: {e}"
                ))
            })?;
            if high <= f.max(low) {
                continue;
            }
            let start = fetch_from(&consumer, &self.config, topic, p, f)?;
            list.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| self.config.error(e.to_string()))?;
            reading.insert(p);
        }
        if reading.is_empty() {
            return Ok(());
        }
        consumer
            .assign(&list)
            .map_err(|e| self.config.error(format!("cannot read {topic} back: {e}")))?;
        let prefix = format!("{}/", self.config.topic);
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = std::time::Instant::now();
        while !reading.is_empty() {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last = std::time::Instant::now();
                    // Keys are `topic/partition@offset: reason`.
                    let key = std::str::from_utf8(m.key().unwrap_or_default()).unwrap_or("");
                    let position = key
                        .strip_prefix(&prefix)
                        .and_then(|k| k.split_once(':'))
                        .and_then(|(at, _)| at.split_once('@'))
                        .and_then(|(p, o)| Some((p.parse::<i32>().ok()?, o.parse::<i64>().ok()?)));
                    if let Some((p, o)) = position
                        && mine.contains(&p)
                    {
                        sent.insert((p, o));
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    reading.remove(&p);
                }
                Some(Err(e)) => {
                    return Err(self.config.error(format!("cannot read {topic} back: {e}")));
                }
                None if last.elapsed() > Duration::from_secs(30) => {
                    return Err(self.config.error(format!(
                        "cannot read {topic} back: its partitions {reading:?} gave nothing for 30 s"
                    )));
                }
                None => {}
            }
        }
        if !sent.is_empty() {
            eprintln!(
                "kafka topic {}: {} dead letters that the job before the restart sent after the \
                 checkpoint are in {topic}; they are not sent again",
                self.config.topic,
                sent.len()
            );
        }
        Ok(())
    }

    /// The record of the message at `offset` of `partition`, numbered as part `source`; an
    /// undecodable one goes to the dead-letter topic when `dead_letter` (not when a checkpoint
    /// holds it: it went there before).
    fn item(
        &self,
        partition: i32,
        offset: i64,
        source: u16,
        payload: &[u8],
        dead_letter: bool,
    ) -> SourceItem {
        let seq = SeqNo::new(source, u64::try_from(offset).unwrap_or(0));
        match decode(payload, &self.registry, &self.config.venue, seq) {
            Ok(event) => SourceItem::Event(event),
            Err(detail) if dead_letter => self.reject(partition, offset, source, payload, detail),
            Err(detail) => SourceItem::Bad(self.bad(partition, offset, source, detail)),
        }
    }

    fn reject(
        &self,
        partition: i32,
        offset: i64,
        source: u16,
        payload: &[u8],
        detail: String,
    ) -> SourceItem {
        let already = self
            .sent
            .lock()
            .map(|mut s| !s.is_empty() && s.remove(&(partition, offset)))
            .unwrap_or(false);
        if let (Some(producer), Some(topic), false) =
            (&self.dead_letter, &self.config.dead_letter, already)
        {
            let key = format!("{}/{partition}@{offset}: {detail}", self.config.topic);
            let record = BaseRecord::<[u8], [u8]>::to(topic)
                .key(key.as_bytes())
                .payload(payload);
            if let Err((e, _)) = producer.send(record) {
                // The reject below still reports the message; say the dead letter failed too.
                return SourceItem::Bad(self.bad(
                    partition,
                    offset,
                    source,
                    format!("{detail} (and the dead-letter topic refused it: {e})"),
                ));
            }
            producer.poll(Duration::ZERO);
        }
        SourceItem::Bad(self.bad(partition, offset, source, detail))
    }

    fn bad(&self, partition: i32, offset: i64, source: u16, detail: String) -> Reject {
        Reject {
            instrument: None,
            ts_event: None,
            reason: RejectReason::Malformed,
            detail,
            origin: format!("kafka:{}/{partition}@{offset}", self.config.topic),
            line: u64::try_from(offset).unwrap_or(0),
            seq: SeqNo::new(source, u64::try_from(offset).unwrap_or(0)),
        }
    }

    fn flush(&self) {
        if let Some(p) = &self.dead_letter {
            let _ = p.flush(TIMEOUT);
        }
    }
}

/// Reads one partition range and decodes its messages.
pub struct PartitionReader {
    decoder: Decoder,
    range: PartitionRange,
    consumer: BaseConsumer,
    source: u16,
    next: i64,
    waiting_since: Option<std::time::Instant>,
    /// The next offset to read, for the commit at the end of the run.
    read_to: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl PartitionReader {
    /// Opens `range` of the source's topic; records get sequence numbers of part `source`.
    pub fn open(
        config: &KafkaSourceConfig,
        range: &PartitionRange,
        source: u16,
        registry: std::sync::Arc<InstrumentRegistry>,
        read_to: std::sync::Arc<std::sync::atomic::AtomicI64>,
    ) -> Result<Self> {
        Ok(Self {
            decoder: Decoder::new(config, registry)?,
            consumer: assign(config, range)?,
            range: range.clone(),
            source,
            next: range.start,
            waiting_since: None,
            read_to,
        })
    }

    fn bad(&self, offset: i64, detail: String) -> SourceItem {
        SourceItem::Bad(
            self.decoder
                .bad(self.range.partition, offset, self.source, detail),
        )
    }
}

impl PartReader for PartitionReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        while self.next < self.range.end {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    self.waiting_since = None;
                    let offset = m.offset();
                    if offset < self.range.start.max(self.next) {
                        // Before the start, in the batch reading began with (`fetch_from`),
                        // or delivered again.
                        continue;
                    }
                    self.next = offset + 1;
                    if offset >= self.range.end {
                        break;
                    }
                    // Read, and (once the run has finished) processed: a rejected message too,
                    // which went to the rejects stream and the dead-letter topic.
                    self.read_to
                        .store(self.next, std::sync::atomic::Ordering::Release);
                    return Some(self.decoder.item(
                        self.range.partition,
                        offset,
                        self.source,
                        m.payload().unwrap_or_default(),
                        true,
                    ));
                }
                Some(Err(e)) => {
                    let offset = self.next;
                    self.next = self.range.end;
                    return Some(
                        self.bad(offset, format!("cannot read the partition further: {e}")),
                    );
                }
                None => {
                    let since = *self
                        .waiting_since
                        .get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > STALL {
                        let offset = self.next;
                        self.next = self.range.end;
                        return Some(self.bad(
                            offset,
                            format!(
                                "no message for {} s although the partition ends at {}",
                                STALL.as_secs(),
                                self.range.end
                            ),
                        ));
                    }
                }
            }
        }
        self.decoder.flush();
        None
    }
}

/// How far a [`Follower`]'s partitions have got in event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frontier {
    /// The oldest of the newest event times of the active partitions (a message within the
    /// idle timeout, or none yet while the job is younger than it): `i64::MIN` while an active
    /// partition has sent nothing; `None` when every partition is idle.
    pub active: Option<i64>,
    /// The newest event time read from any partition.
    pub newest: Option<i64>,
}

/// Where the reading of one partition stood at a checkpoint at event time `at`: every record
/// with an event time at or after `at` is at `resume` or later, and every record before
/// `read_to` with an event time before `at` was already taken into account (processed, or
/// rejected as late), so a job resumed from the checkpoint reads from `resume` and drops those.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The first offset a resumed job reads.
    pub resume: i64,
    /// The next offset the reader would have read.
    pub read_to: i64,
    /// With a dead-letter topic: per partition of it, an offset at or before the first dead
    /// letter its reader sent after the checkpoint (a resumed reader reads them back and does
    /// not send them again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letter: Vec<(i32, i64)>,
}

/// One partition a [`Follower`] reads.
struct Followed {
    topic: String,
    /// Index of the part in the plan (the source of its records' sequence numbers).
    source: u16,
    partition: i32,
    /// The first offset to read; earlier ones the fetch returns are skipped.
    start: i64,
    /// Newest event time read, `i64::MIN` before the first record.
    max_seen: i64,
    /// When the last message came, `None` before the first.
    last_message: Option<std::time::Instant>,
    /// The next offset to read, shared with the plan for the commit at the end.
    read_to: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// With checkpoints: `(boundary, offset)` each time a record's event time reached a
    /// checkpoint boundary past every earlier record's, so the first offset at or after any
    /// boundary is known.
    marks: VecDeque<(i64, i64)>,
    /// Resumed from a checkpoint at `.1`: records before offset `.0` older than `.1` are in it.
    skip: Option<(i64, i64)>,
    /// Index of its consumer (and decoder) in the follower.
    consumer: usize,
}

/// Follows partitions without end (`follow = true`): the Kafka parts one worker of a live
/// job reads, one consumer per source, each assigned its partitions at their start offsets.
///
/// Records are not merged across partitions: each goes on as it arrives, and the watermark is
/// kept per partition ([`Follower::frontier`]).
pub struct Follower {
    /// One consumer per source, with its decoder and its partitions' indices in `partitions`.
    consumers: Vec<(BaseConsumer, Decoder, Vec<usize>)>,
    partitions: Vec<Followed>,
    idle: Duration,
    started: std::time::Instant,
    turn: usize,
    /// The last error each consumer reported, and when it was last printed.
    errors: Vec<Option<(String, std::time::Instant)>>,
    /// The event time between checkpoints, when there are checkpoints.
    interval: Option<i64>,
    /// Records dropped because the checkpoint the job resumed from holds them.
    skipped: u64,
}

impl Follower {
    /// Opens the Kafka parts among `parts` (numbered as in their plan).
    pub fn open<'a>(
        parts: impl IntoIterator<Item = (usize, &'a crate::Part)>,
        registry: &std::sync::Arc<InstrumentRegistry>,
    ) -> Result<Self> {
        let mut groups: Vec<(&KafkaSourceConfig, TopicPartitionList, Vec<usize>)> = Vec::new();
        let mut partitions = Vec::new();
        let mut idle = Duration::MAX;
        for (_, part) in parts {
            let crate::Part::Kafka {
                config,
                range,
                source,
                read_to,
            } = part
            else {
                continue;
            };
            let at = match groups.iter().position(|(c, _, _)| *c == config) {
                Some(at) => at,
                None => {
                    groups.push((config, TopicPartitionList::new(), Vec::new()));
                    groups.len() - 1
                }
            };
            let (_, list, members) = &mut groups[at];
            let from = fetch_from(
                &config.consumer()?,
                config,
                &config.topic,
                range.partition,
                range.start,
            )?;
            list.add_partition_offset(&config.topic, range.partition, Offset::Offset(from))
                .map_err(|e| config.error(e.to_string()))?;
            members.push(partitions.len());
            idle = idle.min(config.idle_timeout.to_std());
            partitions.push(Followed {
                topic: config.topic.clone(),
                source: *source,
                partition: range.partition,
                start: range.start,
                max_seen: i64::MIN,
                last_message: None,
                read_to: read_to.clone(),
                marks: VecDeque::new(),
                skip: None,
                consumer: at,
            });
        }
        let mut consumers = Vec::new();
        for (config, list, members) in groups {
            let consumer = config.consumer()?;
            consumer
                .assign(&list)
                .map_err(|e| config.error(format!("cannot assign its partitions: {e}")))?;
            consumers.push((consumer, Decoder::new(config, registry.clone())?, members));
        }
        Ok(Self {
            errors: consumers.iter().map(|_| None).collect(),
            consumers,
            partitions,
            idle,
            started: std::time::Instant::now(),
            turn: 0,
            interval: None,
            skipped: 0,
        })
    }

    /// Tracks checkpoint boundaries every `interval` of event time; `resumed` is the checkpoint
    /// the job resumes from (its time and partitions), whose records are dropped as they come
    /// (the partitions were opened at its `resume` offsets), and whose undecodable messages
    /// are neither rejected nor dead-lettered again. The dead letters the job before the
    /// restart sent after the checkpoint are read back first, and not sent again.
    pub fn set_checkpoints(
        &mut self,
        interval: i64,
        resumed: Option<(i64, &[PartitionCheckpoint])>,
    ) -> Result<()> {
        self.interval = Some(interval.max(1));
        for (_, decoder, _) in &mut self.consumers {
            decoder.note_dead_letter_ends()?;
        }
        if let Some((at, parts)) = resumed {
            // Per consumer: the earliest dead letter its partitions' readers may have sent
            // after the checkpoint, per partition of the dead-letter topic.
            let mut from: Vec<BTreeMap<i32, i64>> = vec![BTreeMap::new(); self.consumers.len()];
            for p in &mut self.partitions {
                if let Some(c) = parts
                    .iter()
                    .find(|c| c.topic == p.topic && c.partition == p.partition)
                {
                    p.skip = Some((c.read_to, at));
                    for &(dp, offset) in &c.dead_letter {
                        let f = from[p.consumer].entry(dp).or_insert(offset);
                        *f = (*f).min(offset);
                    }
                }
            }
            for ((_, decoder, members), from) in self.consumers.iter().zip(from) {
                let mine: BTreeSet<i32> = members
                    .iter()
                    .map(|&j| self.partitions[j].partition)
                    .collect();
                decoder.read_back(&from, &mine)?;
            }
        }
        Ok(())
    }

    /// Where each partition stands for a checkpoint at `at`, which the watermark has just
    /// reached: no record read later is older than `at` unless it is late.
    pub fn checkpoint(&mut self, at: i64) -> Vec<PartitionCheckpoint> {
        let dead_letters: Vec<Vec<(i32, i64)>> = self
            .consumers
            .iter()
            .map(|(_, d, _)| d.dead_letter_from())
            .collect();
        self.partitions
            .iter_mut()
            .map(|p| {
                let read_to = p.read_to.load(std::sync::atomic::Ordering::Acquire);
                while p.marks.front().is_some_and(|(b, _)| *b < at) {
                    p.marks.pop_front();
                }
                let resume = p.marks.front().map_or(read_to, |(_, o)| *o).min(read_to);
                PartitionCheckpoint {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    resume,
                    read_to,
                    dead_letter: dead_letters[p.consumer].clone(),
                }
            })
            .collect()
    }

    /// Records dropped so far because the checkpoint the job resumed from holds them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether there is nothing to follow.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// The next record, or `None` when no message came within `wait`.
    pub fn poll(&mut self, wait: Duration) -> Option<SourceItem> {
        let Self {
            consumers,
            partitions,
            errors,
            turn,
            interval,
            skipped,
            ..
        } = self;
        let n = consumers.len();
        let mut taker = Taker {
            partitions,
            interval: *interval,
            skipped,
        };
        for k in 0..n {
            let i = (*turn + k) % n;
            let (consumer, decoder, members) = &consumers[i];
            if let Some(m) = consumer.poll(Duration::ZERO) {
                *turn = i;
                if let Some(item) = taker.take(decoder, members, &mut errors[i], m) {
                    return Some(item);
                }
            }
        }
        if n == 1 {
            let (consumer, decoder, members) = &consumers[0];
            loop {
                let before = *taker.skipped;
                let m = consumer.poll(wait)?;
                match taker.take(decoder, members, &mut errors[0], m) {
                    Some(item) => return Some(item),
                    // A record the checkpoint holds: on to the next at once.
                    None if *taker.skipped > before => {}
                    None => return None,
                }
            }
        } else {
            std::thread::sleep(wait.min(Duration::from_micros(200)));
            None
        }
    }

    /// How far the followed partitions have got in event time.
    pub fn frontier(&self) -> Frontier {
        let now = std::time::Instant::now();
        let mut active = None::<i64>;
        let mut newest = i64::MIN;
        for p in &self.partitions {
            newest = newest.max(p.max_seen);
            let last = p.last_message.unwrap_or(self.started);
            if now.duration_since(last) < self.idle {
                active = Some(active.map_or(p.max_seen, |a| a.min(p.max_seen)));
            }
        }
        Frontier {
            active,
            newest: (newest != i64::MIN).then_some(newest),
        }
    }

    /// Where each partition's reader got: (part index, next offset).
    pub fn positions(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.partitions.iter().map(|p| {
            (
                usize::from(p.source),
                p.read_to.load(std::sync::atomic::Ordering::Acquire),
            )
        })
    }

    /// Sends what waits for the dead-letter topics.
    pub fn flush(&self) {
        for (_, d, _) in &self.consumers {
            d.flush();
        }
    }
}

/// What [`Follower::poll`] updates as it takes a message.
struct Taker<'a> {
    partitions: &'a mut [Followed],
    interval: Option<i64>,
    skipped: &'a mut u64,
}

impl Taker<'_> {
    /// The record of a message a [`Follower`]'s consumer returned, updating its partition; `None`
    /// for a client error, which is printed (now and then) while the client retries on its own,
    /// and for a record the checkpoint the job resumed from holds (counted in `skipped`).
    fn take(
        &mut self,
        decoder: &Decoder,
        members: &[usize],
        last_error: &mut Option<(String, std::time::Instant)>,
        message: std::result::Result<
            rdkafka::message::BorrowedMessage<'_>,
            rdkafka::error::KafkaError,
        >,
    ) -> Option<SourceItem> {
        let partitions = &mut *self.partitions;
        let m = match message {
            Ok(m) => m,
            Err(e) => {
                let text = e.to_string();
                let repeat = last_error
                    .as_ref()
                    .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(30));
                if !repeat {
                    eprintln!(
                        "kafka topic {}: {text} (still following)",
                        decoder.config.topic
                    );
                    *last_error = Some((text, std::time::Instant::now()));
                }
                return None;
            }
        };
        let at = members
            .iter()
            .copied()
            .find(|&j| partitions[j].partition == m.partition())?;
        let p = &mut partitions[at];
        let offset = m.offset();
        // Before the start (in the batch the fetch began with), or delivered again.
        if offset
            < p.start
                .max(p.read_to.load(std::sync::atomic::Ordering::Relaxed))
        {
            return None;
        }
        // Read before the checkpoint the job resumed from: an undecodable message was
        // rejected and dead-lettered then (its reject is in the checkpoint's outputs).
        let held = p.skip.is_some_and(|(below, _)| offset < below);
        let item = decoder.item(
            p.partition,
            offset,
            p.source,
            m.payload().unwrap_or_default(),
            !held,
        );
        p.last_message = Some(std::time::Instant::now());
        p.read_to
            .store(offset + 1, std::sync::atomic::Ordering::Release);
        if held && matches!(item, SourceItem::Bad(_)) {
            *self.skipped += 1;
            return None;
        }
        if let SourceItem::Event(e) = &item {
            let ts = e.ts_event().nanos();
            if p.skip.is_some_and(|(below, at)| offset < below && ts < at) {
                *self.skipped += 1;
                return None;
            }
            p.max_seen = p.max_seen.max(ts);
            if let Some(interval) = self.interval {
                let b = ts.saturating_sub(ts.rem_euclid(interval));
                if p.marks.back().is_none_or(|(last, _)| b > *last) {
                    p.marks.push_back((b, offset));
                }
            }
        }
        Some(item)
    }
}

/// The fields of a flat JSON object, values as written: strings unescaped, other values as
/// their text (`12.5`, `null`, `true`).
fn fields(text: &str) -> std::result::Result<Vec<(String, String, bool)>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> std::result::Result<String, String> {
        // b[*i] is the opening quote.
        *i += 1;
        let mut out = String::new();
        let start = *i;
        let mut plain = true;
        while *i < b.len() {
            match b[*i] {
                b'"' => {
                    if plain {
                        out.push_str(&text[start..*i]);
                    }
                    *i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    if plain {
                        out.push_str(&text[start..*i]);
                        plain = false;
                    }
                    let esc = *b.get(*i + 1).ok_or("unterminated string")?;
                    *i += 2;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            // Four hex digits, no sign (which from_str_radix would take).
                            let unit = |at: usize| {
                                let hex = text.get(at..at + 4)?;
                                hex.bytes()
                                    .all(|d| d.is_ascii_hexdigit())
                                    .then(|| u32::from_str_radix(hex, 16).ok())?
                            };
                            let c = unit(*i).ok_or("bad \\u escape")?;
                            *i += 4;
                            // A character beyond the first 65,536 is written as a surrogate pair.
                            let low =
                                (0xD800..0xDC00).contains(&c) && b.get(*i..*i + 2) == Some(b"\\u");
                            let c = match unit(*i + 2)
                                .filter(|l| low && (0xDC00..0xE000).contains(l))
                            {
                                Some(l) => {
                                    *i += 6;
                                    0x10000 + ((c - 0xD800) << 10) + (l - 0xDC00)
                                }
                                None => c,
                            };
                            out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err("bad escape in a string".into()),
                    }
                }
                _ => {
                    if !plain {
                        // Copy one UTF-8 character.
                        let ch = text[*i..].chars().next().ok_or("bad text")?;
                        out.push(ch);
                        *i += ch.len_utf8();
                        continue;
                    }
                    *i += 1;
                }
            }
        }
        Err("unterminated string".into())
    };
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err("not a JSON object".into());
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        match b.get(i) {
            Some(b'}') if out.is_empty() => {
                i += 1;
                break;
            }
            Some(b'"') => {}
            _ => return Err("expected a field name".into()),
        }
        let key = string(&mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected ':' after \"{key}\""));
        }
        i += 1;
        ws(&mut i);
        let (value, quoted) = match b.get(i) {
            Some(b'"') => (string(&mut i)?, true),
            Some(b'{' | b'[') => return Err(format!("field {key}: nested values are not read")),
            Some(_) => {
                let start = i;
                while i < b.len() && !matches!(b[i], b',' | b'}') && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                (text[start..i].to_string(), false)
            }
            None => return Err("unexpected end".into()),
        };
        out.push((key, value, quoted));
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return Err("expected ',' or '}'".into()),
        }
    }
    ws(&mut i);
    if i != b.len() {
        return Err("text after the object".into());
    }
    Ok(out)
}

/// Decodes one message into a market record.
pub fn decode(
    payload: &[u8],
    registry: &InstrumentRegistry,
    venue: &str,
    seq: SeqNo,
) -> std::result::Result<MarketEvent, String> {
    let unknown =
        |symbol: &str| format!("unknown instrument {symbol} (not declared when the job started)");
    if tickflow_core::wire::is_binary(payload) {
        return tickflow_core::wire::decode(
            payload,
            |symbol| {
                registry
                    .lookup(venue, symbol)
                    .ok_or_else(|| unknown(symbol))
            },
            seq,
        );
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| "the message is neither UTF-8 JSON nor a binary record".to_string())?;
    let fields = fields(text).map_err(|e| format!("not a JSON object of fields: {e}"))?;
    let get = |name: &str| -> Option<(&str, bool)> {
        fields
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, v, q)| (v.as_str(), *q))
    };
    let required = |name: &str| -> std::result::Result<&str, String> {
        match get(name) {
            Some(("null", false)) | None => Err(format!("field {name} is missing")),
            Some((v, _)) => Ok(v),
        }
    };
    let optional = |name: &str| match get(name) {
        Some(("null", false)) | None => None,
        Some((v, _)) => Some(v),
    };
    let time = |name: &str| -> std::result::Result<Timestamp, String> {
        let v = required(name)?;
        match v.parse::<i64>() {
            Ok(ns) => Ok(Timestamp(ns)),
            Err(_) => Timestamp::parse_rfc3339(v).map_err(|e| format!("field {name}: {e}")),
        }
    };
    let price = |name: &str| -> std::result::Result<Price, String> {
        Price::parse(required(name)?).map_err(|e| format!("field {name}: {e}"))
    };
    let opt_price = |name: &str| -> std::result::Result<Option<Price>, String> {
        optional(name)
            .map(|v| Price::parse(v).map_err(|e| format!("field {name}: {e}")))
            .transpose()
    };
    let qty = |name: &str| -> std::result::Result<Quantity, String> {
        Quantity::parse(required(name)?).map_err(|e| format!("field {name}: {e}"))
    };
    let id = |name: &str| -> std::result::Result<Option<u64>, String> {
        optional(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("field {name}: not an id: {v}"))
            })
            .transpose()
    };
    let flag = |name: &str| matches!(get(name), Some(("true", false)));
    let side = |name: &str| -> std::result::Result<Side, String> {
        match optional(name) {
            None => Ok(Side::None),
            Some(v) => Side::from_name(v).ok_or_else(|| format!("field {name}: unknown side {v}")),
        }
    };
    let symbol = required("instrument")?;
    let instrument: InstrumentId = registry
        .lookup(venue, symbol)
        .ok_or_else(|| unknown(symbol))?;
    let ts_event = time("ts_event")?;
    let ts_recv = if optional("ts_recv").is_some() {
        time("ts_recv")?
    } else {
        ts_event
    };
    match required("type")? {
        "trade" => Ok(MarketEvent::Trade(Trade {
            instrument,
            ts_event,
            ts_recv,
            price: price("price")?,
            size: qty("size")?,
            aggressor: side("aggressor")?,
            trade_id: id("trade_id")?,
            suspicious: flag("suspicious"),
            seq,
        })),
        "quote" => Ok(MarketEvent::Quote(Quote {
            instrument,
            ts_event,
            ts_recv,
            bid: opt_price("bid")?,
            bid_size: qty("bid_size")?,
            ask: opt_price("ask")?,
            ask_size: qty("ask_size")?,
            update_id: id("update_id")?,
            suspicious: flag("suspicious"),
            seq,
        })),
        "book" => {
            let action = required("action")?;
            Ok(MarketEvent::Book(BookEvent {
                instrument,
                ts_event,
                ts_recv,
                action: BookAction::from_name(action)
                    .ok_or_else(|| format!("field action: unknown action {action}"))?,
                side: side("side")?,
                price: price("price")?,
                size: qty("size")?,
                order_id: id("order_id")?,
                suspicious: flag("suspicious"),
                seq,
            }))
        }
        other => Err(format!(
            "field type: unknown record type {other} (expected trade, quote or book)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> InstrumentRegistry {
        let mut r = InstrumentRegistry::new();
        r.register(InstrumentSpec {
            symbol: "AIG".into(),
            venue: "kafka".into(),
            tick_size: Price::from_raw(10_000_000),
            lot_size: Quantity::from_raw(1_000_000_000),
            currency: "USD".into(),
        });
        r
    }

    #[test]
    fn decodes_what_publish_writes_exactly() {
        let reg = registry();
        let msg = br#"{"type":"trade","instrument":"AIG","ts_event":"2013-10-07T08:00:00.688Z","ts_recv":"2013-10-07T08:00:00.688Z","price":49.18,"size":300,"aggressor":"none","trade_id":null,"suspicious":false}"#;
        let MarketEvent::Trade(t) = decode(msg, &reg, "kafka", SeqNo::new(1, 7)).unwrap() else {
            panic!("not a trade");
        };
        assert_eq!(t.price, Price::parse("49.18").unwrap());
        assert_eq!(t.size, Quantity::parse("300").unwrap());
        assert_eq!(
            t.ts_event,
            Timestamp::parse_rfc3339("2013-10-07T08:00:00.688Z").unwrap()
        );
        assert_eq!(t.trade_id, None);
        assert_eq!(t.seq, SeqNo::new(1, 7));
        // A price that floating point cannot hold stays exact.
        let msg = br#"{"type":"quote","instrument":"AIG","ts_event":1381132800688000000,"bid":12345678.123456789,"bid_size":"1.5","ask":null,"ask_size":0}"#;
        let MarketEvent::Quote(q) = decode(msg, &reg, "kafka", SeqNo::new(1, 8)).unwrap() else {
            panic!("not a quote");
        };
        assert_eq!(q.bid, Some(Price::parse("12345678.123456789").unwrap()));
        assert_eq!(q.ask, None);
        assert_eq!(q.ts_recv, q.ts_event);
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let reg = registry();
        let e = |m: &[u8]| decode(m, &reg, "kafka", SeqNo::new(0, 0)).unwrap_err();
        assert!(e(b"\xff\xfe").contains("neither UTF-8 JSON nor a binary record"));
        assert!(e(b"TF\x01\x01").contains("shorter than its 8-byte header"));
        assert!(e(b"[1,2]").contains("not a JSON object"));
        assert!(e(br#"{"type":"trade","instrument":"XYZ"}"#).contains("unknown instrument XYZ"));
        assert!(
            e(br#"{"type":"trade","instrument":"AIG","ts_event":"2013-10-07T08:00:00Z","size":1}"#)
                .contains("field price is missing")
        );
        assert!(
            e(br#"{"type":"trade","instrument":"AIG","ts_event":"2013-10-07T08:00:00Z","price":NaN,"size":1}"#)
                .contains("field price")
        );
        assert!(
            e(br#"{"type":"bar","instrument":"AIG","ts_event":"2013-10-07T08:00:00Z"}"#)
                .contains("unknown record type bar")
        );
        assert!(e(br#"{"type":"trade","instrument":"AIG" "x":1}"#).contains("expected ','"));
        // A character of more than one byte in a time's offset is refused, not cut in two.
        assert!(
            e(r#"{"type":"trade","instrument":"AIG","ts_event":"2013-10-07T08:00:00+0é:0","price":1,"size":1}"#.as_bytes())
                .contains("field ts_event")
        );
    }

    #[test]
    fn strings_are_unescaped() {
        let f = fields(r#"{"a":"x\"y\\z\u00e9","b" : 12 , "c":"é"}"#).unwrap();
        assert_eq!(f[0], ("a".into(), "x\"y\\zé".into(), true));
        assert_eq!(f[1], ("b".into(), "12".into(), false));
        assert_eq!(f[2], ("c".into(), "é".into(), true));
        // A surrogate pair is one character; a lone half is a replacement character.
        let f = fields(r#"{"a":"\ud83d\ude00!","b":"\ud83d","c":"\ude00\ud83dx"}"#).unwrap();
        assert_eq!(f[0].1, "\u{1f600}!");
        assert_eq!(f[1].1, "\u{fffd}");
        assert_eq!(f[2].1, "\u{fffd}\u{fffd}x");
        for bad in [r#"{"a":"\u+041"}"#, r#"{"a":"\u00"}"#, r#"{"a":"\u00é0"}"#] {
            assert_eq!(fields(bad).unwrap_err(), "bad \\u escape", "{bad}");
        }
    }

    /// A record and its message as `tickflow publish` writes it, JSON or binary, for the
    /// property below.
    fn message(
        kind: u8,
        binary: bool,
        a: i64,
        b: i64,
        t: i64,
        id: Option<u64>,
    ) -> (MarketEvent, Vec<u8>) {
        let price = Price::from_raw(a.rem_euclid(1 << 50) + 1);
        let size = Quantity::from_raw(b.rem_euclid(1 << 40) + 1);
        let (ts_event, seq) = (Timestamp(t), SeqNo::new(0, 0));
        let id_text = id.map_or("null".to_string(), |i| i.to_string());
        // Times as nanoseconds or as RFC 3339 text.
        let time = if t % 2 == 0 {
            t.to_string()
        } else {
            format!("\"{ts_event}\"")
        };
        let (event, json) = match kind % 3 {
            0 => (
                MarketEvent::Trade(Trade {
                    instrument: InstrumentId(0),
                    ts_event,
                    ts_recv: ts_event,
                    price,
                    size,
                    aggressor: Side::Buy,
                    trade_id: id,
                    suspicious: false,
                    seq,
                }),
                format!(
                    r#"{{"type":"trade","instrument":"AIG","ts_event":{time},"price":{price},"size":"{size}","aggressor":"buy","trade_id":{id_text},"suspicious":false}}"#
                ),
            ),
            1 => (
                MarketEvent::Quote(Quote {
                    instrument: InstrumentId(0),
                    ts_event,
                    ts_recv: ts_event,
                    bid: Some(price),
                    bid_size: size,
                    ask: None,
                    ask_size: Quantity::ZERO,
                    update_id: id,
                    suspicious: true,
                    seq,
                }),
                format!(
                    r#"{{ "type" : "quote", "instrument":"A\u0049G","ts_event":{time},"ts_recv":{time},"bid":{price},"bid_size":{size},"ask":null,"ask_size":0,"update_id":{id_text},"suspicious":true}}"#
                ),
            ),
            _ => (
                MarketEvent::Book(BookEvent {
                    instrument: InstrumentId(0),
                    ts_event,
                    ts_recv: ts_event,
                    action: BookAction::Modify,
                    side: Side::Sell,
                    price,
                    size,
                    order_id: id,
                    suspicious: false,
                    seq,
                }),
                format!(
                    r#"{{"type":"book","instrument":"AIG","ts_event":{time},"action":"modify","side":"sell","price":"{price}","size":{size},"order_id":{id_text}}}"#
                ),
            ),
        };
        let mut out = Vec::new();
        if binary {
            tickflow_core::wire::encode(&event, "AIG", &mut out).unwrap();
        } else {
            out = json.into_bytes();
        }
        (event, out)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        /// Whatever a topic holds, decoding answers with a record or an error; a message as
        /// written decodes to the record it was written from.
        #[test]
        fn no_message_makes_decoding_panic(
            kind in 0u8..3, binary: bool, a: i64, b: i64, t in 0i64..4_000_000_000_000_000_000, id: Option<u64>,
            edits in proptest::collection::vec((0usize..200, 0usize..4, proptest::collection::vec(proptest::num::u8::ANY, 0..6), "\\PC{0,4}"), 0..4),
        ) {
            let reg = registry();
            let (event, original) = message(kind, binary, a, b, t, id);
            let first = decode(&original, &reg, "kafka", SeqNo::new(0, 0));
            proptest::prop_assert_eq!(first, Ok(event), "{}", String::from_utf8_lossy(&original));
            let mut m = original;
            for (at, cut, bytes, text) in edits {
                let at = at.min(m.len());
                let end = (at + cut).min(m.len());
                // Bytes of any value in binary messages, text in JSON ones.
                let with = if binary { bytes } else { text.into_bytes() };
                m.splice(at..end, with);
                let _ = decode(&m, &reg, "kafka", SeqNo::new(0, 0));
            }
        }
    }
}
