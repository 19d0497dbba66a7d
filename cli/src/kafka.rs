//! Kafka commands: `tickflow publish` replays recorded market data into a topic, and
//! `tickflow signals tail` prints a signal topic as a trader's console would.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tickflow_core::MarketEvent;
use tickflow_sinks::SinkRecord;
use tickflow_sinks::kafka::{Start, TopicProducer, brokers};
use tickflow_sources::{Merger, ReplayFormat, SourceConfig, SourceItem};

/// `tickflow publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Recorded data: a file or a directory (any format `tickflow run --data` reads).
    #[arg(long)]
    pub data: PathBuf,
    /// Format, when the file names do not tell it.
    #[arg(long, default_value = "auto", value_parser = ReplayFormat::NAMES)]
    pub format: String,
    /// The size given to each side of a quote from files that record none (TrueFX), which
    /// are not read without it.
    #[arg(long, value_name = "SIZE", value_parser = crate::positive_quantity)]
    pub quote_size: Option<tickflow_core::Quantity>,
    /// The topic; created (with --partitions) if it does not exist.
    #[arg(long)]
    pub topic: String,
    /// Messages per second (default: as fast as the brokers take them).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bootstrap brokers (TICKFLOW_KAFKA_BROKERS overrides; default 127.0.0.1:9092).
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Partitions of a topic this command creates (1 to 100000, as a pipeline file's Kafka sink).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,
    /// Message encoding: `json` (one JSON object per record) or `binary` (the compact
    /// fixed-layout encoding, README "Kafka messages").
    #[arg(long, default_value = "json", value_parser = ["json", "binary"])]
    pub encoding: String,
}

/// One market record as a message: `{"type":"trade"|"quote"|"book", ...}` followed by the
/// fields of its JSON Lines record.
pub fn market_message(
    event: &MarketEvent,
    registry: &tickflow_core::InstrumentRegistry,
    out: &mut String,
) {
    out.clear();
    let kind = match event {
        MarketEvent::Trade(t) => {
            t.write_json(registry, out);
            "\"type\":\"trade\","
        }
        MarketEvent::Quote(q) => {
            q.write_json(registry, out);
            "\"type\":\"quote\","
        }
        MarketEvent::Book(b) => {
            b.write_json(registry, out);
            "\"type\":\"book\","
        }
    };
    // Right after the record's opening brace.
    out.insert_str(1, kind);
}

/// Replays `args.data` into the topic in event-time order; prints what it sent.
pub fn publish_command(args: PublishArgs) -> Result<bool> {
    let format = ReplayFormat::from_name(&args.format).context("unknown --format")?;
    if !args.data.exists() {
        bail!("--data {}: no such file or directory", args.data.display());
    }
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be a positive number of messages per second, got {r}");
    }
    let plan = tickflow_sources::plan(&[SourceConfig::Replay {
        path: args.data.clone(),
        format,
        quote_size: args.quote_size,
    }])?;
    if !plan.left_out.is_empty() {
        eprintln!(
            "tickflow: {} file{} under {} left out (not read):",
            plan.left_out.len(),
            if plan.left_out.len() == 1 { "" } else { "s" },
            args.data.display()
        );
        for line in tickflow_sources::describe_left_out(&plan.left_out) {
            eprintln!("  {line}");
        }
    }
    let registry = Arc::new(plan.registry.clone());
    let mut merger = Merger::lazy(plan.parts.iter().enumerate(), &registry);
    let brokers = brokers(args.brokers.as_deref());
    let mut producer = TopicProducer::new(&brokers, &args.topic, args.partitions, Start::Plain)?;
    let started = Instant::now();
    let (mut sent, mut bad) = (0u64, 0u64);
    let binary = args.encoding == "binary";
    let mut message = String::new();
    let mut bytes = Vec::new();
    while let Some(item) = merger.next_item() {
        match item {
            SourceItem::Event(event) => {
                if let Some(rate) = args.rate {
                    let due = started + Duration::from_secs_f64(sent as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                let key = registry.symbol(event.instrument());
                let payload = if binary {
                    tickflow_core::wire::encode(&event, key, &mut bytes)
                        .map_err(anyhow::Error::msg)?;
                    bytes.as_slice()
                } else {
                    market_message(&event, &registry, &mut message);
                    message.as_bytes()
                };
                producer.send(key.as_bytes(), payload)?;
                sent += 1;
                if sent.is_multiple_of(4096) {
                    producer.poll();
                }
            }
            SourceItem::Bad(reject) => {
                bad += 1;
                if bad <= 5 {
                    eprintln!(
                        "publish: left out a row that cannot be read: {}",
                        reject.detail
                    );
                }
            }
        }
    }
    let delivered = producer.finish()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "published {delivered} records to {} on {brokers} in {secs:.2} s ({:.0}/s); {bad} unreadable rows left out",
        args.topic,
        delivered as f64 / secs.max(1e-9)
    );
    Ok(true)
}

/// `tickflow signals tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// The signal topic.
    #[arg(long)]
    pub topic: String,
    /// Bootstrap brokers (TICKFLOW_KAFKA_BROKERS overrides; default 127.0.0.1:9092).
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Start from the oldest message instead of new ones only.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop after this many seconds without a message (default: never).
    #[arg(long, value_name = "SECONDS")]
    pub idle: Option<f64>,
}

/// One signal message as a console line; `None` when the message is not a signal.
pub fn signal_line(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let side = v.get("side")?.as_str()?;
    Some(format!(
        "{}  {:<4}  {:<10}  strength {:.2}  {}",
        v.get("ts_event")?.as_str()?,
        side.to_uppercase(),
        v.get("instrument")?.as_str()?,
        v.get("strength")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        v.get("reason").and_then(|r| r.as_str()).unwrap_or("")
    ))
}

/// Prints the signals of a topic as they arrive, every partition, without joining a group's
/// offsets (a console never moves anyone's position).
pub fn tail_command(args: TailArgs) -> Result<bool> {
    let brokers = brokers(args.brokers.as_deref());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "tickflow-signals-tail")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of topic {} on {brokers}", args.topic))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == args.topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {} does not exist on {brokers}", args.topic);
    }
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let offset = if args.from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        assignment
            .add_partition_offset(&args.topic, *p, offset)
            .context("assigning partitions")?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    let mut seen = 0u64;
    let mut last = Instant::now();
    let stdout = std::io::stdout();
    loop {
        if args.max.is_some_and(|m| seen >= m) {
            break;
        }
        if args.idle.is_some_and(|s| last.elapsed().as_secs_f64() >= s) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => eprintln!("signals tail: {e}"),
            Some(Ok(m)) => {
                seen += 1;
                last = Instant::now();
                let payload = m.payload().unwrap_or_default();
                let line = signal_line(payload).unwrap_or_else(|| {
                    format!(
                        "? not a signal (partition {} offset {}): {}",
                        m.partition(),
                        m.offset(),
                        String::from_utf8_lossy(payload)
                    )
                });
                let mut out = stdout.lock();
                if writeln!(out, "{line}").is_err() {
                    // The reader went away (a closed pipe): stop quietly.
                    return Ok(true);
                }
            }
        }
    }
    eprintln!("{seen} messages");
    Ok(true)
}
