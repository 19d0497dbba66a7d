//! The job runtime: plans the sources, builds the dataflow on every worker, drives the
//! sources, and collects the summary.
//!
//! Each worker reads its share of the source parts (part `i` goes to worker `i % workers`),
//! merges them in event-time order and sends every record at its own event time (rounded to
//! the granularity). The worker's input capability — its watermark — is held at the newest
//! event time it has read minus the allowed lateness; a record older than that is sent at the
//! watermark instead and normalize rejects it as late. At most two chunks of input are in
//! flight per worker, so memory stays bounded however large the input.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_schema::SchemaRef;

use tickflow_core::{
    ArrowRecord, Bar, BookEvent, Fill, IndicatorRow, InstrumentId, InstrumentRegistry, MarketEvent,
    Order, Origin, PortfolioValue, Position, Prediction, Quote, Reject, RiskReject, Signal,
    Timestamp, Trade,
};
use tickflow_operators::adapter::{
    Gather, Stamped, Time, apply, apply_with_state, ordered_sink, split, throttle,
};
use tickflow_operators::exchange::{ExchangeInput, SimExchange};
use tickflow_operators::features::{FeatureInput, Features};
use tickflow_operators::indicators::Indicators;
use tickflow_operators::portfolio::portfolio;
use tickflow_operators::predict::{self, PREDICTION_COLUMNS, Predict};
use tickflow_operators::risk::{Mark, Risk, RiskDecision, RiskInput};
use tickflow_operators::signals::Signals;
use tickflow_operators::{Normalize, NormalizeConfig, Record, TimeBars, VolumeBars};
use tickflow_sinks::{
    DiscardSink, JsonlSink, KafkaSink, ParquetSink, Sink, SinkRecord, StdoutSink, StreamTap,
    TapSink,
};
use tickflow_sources::{Merger, Pacer, Part, Plan, SourceItem};
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::vec::UnorderedInput;
use timely::dataflow::operators::{ConnectLoop, Feedback, Inspect, Probe};
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

use crate::checkpoint::{Restored, Store, WorkerCheckpoints};
use crate::config::{OperatorKind, Pipeline, SinkDef, SinkKind, StreamType};
use crate::query_stream::{self, FeedEvent, QueryFeeds};
use crate::report::{ReportBuilder, Tally};
use crate::stats::{CheckpointSummary, Progress, Stats, Summary};

/// Records read per chunk before the watermark moves.
const CHUNK: usize = 4096;

/// Longest a waiting worker parks before looking again (it wakes earlier when work arrives).
const PARK: std::time::Duration = std::time::Duration::from_millis(1);

/// Receives progress while a job runs.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How a run is carried out.
#[derive(Clone)]
pub struct RunOptions {
    /// Worker threads.
    pub workers: usize,
    /// Directory for file sinks that do not name their own.
    pub output_dir: PathBuf,
    /// Replay speed as a multiple of real time; `None` for as fast as possible.
    pub speed: Option<f64>,
    /// Called every `progress_interval` while the job runs.
    pub progress: Option<ProgressFn>,
    /// How often to report progress.
    pub progress_interval: std::time::Duration,
    /// Receives every stream as Arrow batches with watermarks (the SQL layer).
    pub tap: Option<Arc<dyn StreamTap>>,
    /// The results of the queries whose output is a stream (`sink = "stream"`), from the SQL
    /// layer; the run takes them.
    pub query_feeds: QueryFeeds,
    /// Set (by a signal handler) to stop a job early: reading stops, what was read is
    /// processed and written (a live Kafka job's offsets committed), and the run returns with
    /// its summary marked as stopped. A job that follows Kafka topics ends only this way.
    pub stop: Option<&'static AtomicBool>,
    /// A live job: where its outputs outside the dataflow (the SQL layer's queries) say how far
    /// their results are durable; input offsets are committed only behind them too.
    pub durable: Arc<Durable>,
    /// A live job with `[checkpoint]` whose checkpoints were opened before the run (by the SQL
    /// layer, whose queries are in them); `None` opens them here.
    pub recovery: Option<Recovery>,
    /// Called once the dataflow has finished, before the last commit of the Kafka offsets:
    /// waits for the outputs outside the dataflow (the SQL layer's queries) to finish; an error
    /// (a query that failed, so its results are incomplete) keeps the offsets uncommitted.
    pub settle: Option<Settle>,
}

/// See [`RunOptions::settle`].
pub type Settle = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            output_dir: PathBuf::from("tickflow-out"),
            speed: None,
            progress: None,
            progress_interval: std::time::Duration::from_secs(2),
            tap: None,
            query_feeds: QueryFeeds::default(),
            stop: None,
            durable: Arc::default(),
            recovery: None,
            settle: None,
        }
    }
}

/// The checkpoints of a live job: where they go, and the newest complete one, which the job
/// resumes from.
#[derive(Clone)]
pub struct Recovery {
    /// Where checkpoints go.
    pub store: Arc<Store>,
    /// The checkpoint the job resumes from.
    pub restored: Option<Arc<Restored>>,
}

impl Recovery {
    /// Opens the checkpoints `pipeline`'s `[checkpoint]` names, for a job of `workers` workers;
    /// `None` when it names none.
    pub fn open(pipeline: &Pipeline, workers: usize) -> Result<Option<Self>, RunError> {
        let Some(c) = &pipeline.checkpoint else {
            return Ok(None);
        };
        let store = Store::new(&c.dir, c.interval, pipeline, workers)
            .map_err(|e| RunError::Options(e.to_string()))?;
        let restored = store.load().map_err(|e| RunError::Options(e.to_string()))?;
        Ok(Some(Self {
            store: Arc::new(store),
            restored: restored.map(Arc::new),
        }))
    }
}

/// Errors that stop a run before or while it starts.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: run options that cannot work.
    #[error("{0}")]
    Options(String),
    /// Bad input: sources that cannot be planned (missing path, unknown format).
    #[error(transparent)]
    Sources(#[from] tickflow_sources::Error),
    /// Bad input: operator parameters that cannot work.
    #[error(transparent)]
    Operator(#[from] tickflow_operators::Error),
    /// Unavailable dependency: an output that cannot be created.
    #[error(transparent)]
    Sink(#[from] tickflow_sinks::Error),
    /// Bad input: a model that cannot be trained, loaded or used.
    #[error(transparent)]
    Model(#[from] tickflow_models::Error),
    /// Internal: the dataflow runtime failed.
    #[error("dataflow runtime: {0}")]
    Runtime(String),
}

/// The sinks of one stream, typed by its records.
enum TypedSinks {
    Trades(Vec<(String, Box<dyn Sink<Trade>>)>),
    Quotes(Vec<(String, Box<dyn Sink<Quote>>)>),
    Book(Vec<(String, Box<dyn Sink<BookEvent>>)>),
    Rejects(Vec<(String, Box<dyn Sink<Reject>>)>),
    Bars(Vec<(String, Box<dyn Sink<Bar>>)>),
    Indicators(Vec<(String, Box<dyn Sink<IndicatorRow>>)>),
    Signals(Vec<(String, Box<dyn Sink<Signal>>)>),
    Predictions(Vec<(String, Box<dyn Sink<Prediction>>)>),
    Orders(Vec<(String, Box<dyn Sink<Order>>)>),
    RiskRejects(Vec<(String, Box<dyn Sink<RiskReject>>)>),
    Fills(Vec<(String, Box<dyn Sink<Fill>>)>),
    Positions(Vec<(String, Box<dyn Sink<Position>>)>),
    Portfolio(Vec<(String, Box<dyn Sink<PortfolioValue>>)>),
}

/// Sinks of a stream, with a name per sink for the summary.
type Named<T> = Vec<(String, Box<dyn Sink<T>>)>;

/// What making a job's sinks needs besides their definitions.
struct Making<'a> {
    registry: &'a Arc<InstrumentRegistry>,
    /// The checkpoint the job resumes from: where the outputs stood (a JSON Lines file there
    /// goes on from its length, rolled Parquet parts from their rows) and what the sinks kept
    /// (a Kafka sink's producer).
    restored: Option<&'a Restored>,
    /// The job takes checkpoints: its Kafka sinks number their rows for them.
    checkpoints: bool,
    /// A live job: Parquet sinks write rolled parts, and files it finds go on (a replay's
    /// start afresh).
    live: bool,
}

/// Makes one sink.
fn make_sink<T: SinkRecord>(
    def: &SinkDef,
    dir: &std::path::Path,
    stream: &str,
    making: &Making<'_>,
) -> Result<(String, Box<dyn Sink<T>>), RunError> {
    let Making {
        registry, restored, ..
    } = *making;
    let files = restored.map(|r| &r.files);
    Ok(match &def.kind {
        SinkKind::Stdout { limit } => (
            format!("stdout:{stream}"),
            Box::new(StdoutSink::new(registry.clone(), *limit)),
        ),
        SinkKind::Jsonl => {
            let name = format!("{}", dir.join(format!("{stream}.jsonl")).display());
            let sink = match files.and_then(|f| f.get(&name)) {
                Some(length) => JsonlSink::resume(dir, stream, registry.clone(), *length)?,
                // A live job never drops what it wrote before: its input was committed.
                None if making.live => JsonlSink::append(dir, stream, registry.clone())?,
                None => JsonlSink::create(dir, stream, registry.clone())?,
            };
            (name, Box::new(sink))
        }
        SinkKind::Parquet if making.live => {
            let name = format!("{}", dir.join(stream).display());
            let resume = files.and_then(|f| f.get(&name)).copied();
            let roll =
                std::time::Duration::from_nanos(u64::try_from(def.roll.nanos()).unwrap_or(0));
            let sink = ParquetSink::<T>::rolling(dir, stream, registry.clone(), roll, resume)?;
            (name, Box::new(sink))
        }
        SinkKind::Parquet => (
            format!("{}", dir.join(format!("{stream}.parquet")).display()),
            Box::new(ParquetSink::<T>::create(dir, stream, registry.clone())?),
        ),
        SinkKind::Discard => (
            format!("discard:{stream}"),
            Box::new(DiscardSink::default()),
        ),
        SinkKind::Kafka {
            brokers,
            topic,
            partitions,
        } => {
            let topic = crate::config::kafka_topic(topic, stream);
            let brokers = tickflow_sinks::kafka::brokers(brokers.as_deref());
            let name = format!("kafka:{topic}");
            let producer = crate::checkpoint::kafka_producer(
                (&brokers, &topic, *partitions),
                making.checkpoints,
                restored,
                &sink_key(stream, &name),
                &name,
            )?;
            (name, Box::new(KafkaSink::new(producer, registry.clone())))
        }
    })
}

/// Creates every sink of the pipeline, keyed by stream. Files are created before any worker
/// starts, so a directory that cannot be written stops the run with a clear error.
fn create_sinks(
    pipeline: &Pipeline,
    opts: &RunOptions,
    making: &Making<'_>,
) -> Result<BTreeMap<String, TypedSinks>, RunError> {
    let mut out: BTreeMap<String, TypedSinks> = BTreeMap::new();
    for sink in &pipeline.sinks {
        let dir = sink.dir.clone().unwrap_or_else(|| opts.output_dir.clone());
        for stream in &sink.streams {
            let ty = pipeline
                .stream_type(stream)
                .ok_or_else(|| RunError::Options(format!("unknown stream {stream}")))?;
            let entry = out
                .entry(stream.clone())
                .or_insert_with(|| TypedSinks::empty(ty));
            match entry {
                TypedSinks::Trades(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Quotes(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Book(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Rejects(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Bars(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Indicators(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Signals(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Predictions(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Orders(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::RiskRejects(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Fills(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Positions(v) => v.push(make_sink(sink, &dir, stream, making)?),
                TypedSinks::Portfolio(v) => v.push(make_sink(sink, &dir, stream, making)?),
            }
        }
    }
    Ok(out)
}

impl TypedSinks {
    fn empty(ty: StreamType) -> Self {
        match ty {
            StreamType::Trades => Self::Trades(Vec::new()),
            StreamType::Quotes => Self::Quotes(Vec::new()),
            StreamType::Book => Self::Book(Vec::new()),
            StreamType::Rejects => Self::Rejects(Vec::new()),
            StreamType::Bars => Self::Bars(Vec::new()),
            StreamType::Indicators => Self::Indicators(Vec::new()),
            StreamType::Signals => Self::Signals(Vec::new()),
            StreamType::Predictions => Self::Predictions(Vec::new()),
            StreamType::Orders => Self::Orders(Vec::new()),
            StreamType::RiskRejects => Self::RiskRejects(Vec::new()),
            StreamType::Fills => Self::Fills(Vec::new()),
            StreamType::Positions => Self::Positions(Vec::new()),
            StreamType::Portfolio => Self::Portfolio(Vec::new()),
        }
    }

    /// Adds a tap on the stream.
    fn tap(&mut self, tap: &Arc<dyn StreamTap>, stream: &str, registry: &Arc<InstrumentRegistry>) {
        fn add<T: SinkRecord>(
            v: &mut Named<T>,
            tap: &Arc<dyn StreamTap>,
            stream: &str,
            registry: &Arc<InstrumentRegistry>,
        ) {
            let sink = TapSink::<T>::new(tap.clone(), stream, registry.clone());
            v.push((format!("sql:{stream}"), Box::new(sink)));
        }
        match self {
            Self::Trades(v) => add(v, tap, stream, registry),
            Self::Quotes(v) => add(v, tap, stream, registry),
            Self::Book(v) => add(v, tap, stream, registry),
            Self::Rejects(v) => add(v, tap, stream, registry),
            Self::Bars(v) => add(v, tap, stream, registry),
            Self::Indicators(v) => add(v, tap, stream, registry),
            Self::Signals(v) => add(v, tap, stream, registry),
            Self::Predictions(v) => add(v, tap, stream, registry),
            Self::Orders(v) => add(v, tap, stream, registry),
            Self::RiskRejects(v) => add(v, tap, stream, registry),
            Self::Fills(v) => add(v, tap, stream, registry),
            Self::Positions(v) => add(v, tap, stream, registry),
            Self::Portfolio(v) => add(v, tap, stream, registry),
        }
    }
}

/// The Arrow schema of a stream of type `ty` (`columns`: an indicator or feature stream's
/// value columns).
fn stream_schema(ty: StreamType, columns: &[String]) -> SchemaRef {
    match ty {
        StreamType::Trades => Trade::schema(),
        StreamType::Quotes => Quote::schema(),
        StreamType::Book => BookEvent::schema(),
        StreamType::Rejects => Reject::schema(),
        StreamType::Bars => Bar::schema(),
        StreamType::Indicators => IndicatorRow::schema_for(&[IndicatorRow {
            instrument: InstrumentId(0),
            end: Timestamp(0),
            names: columns.to_vec().into(),
            values: Vec::new(),
        }]),
        StreamType::Signals => Signal::schema(),
        StreamType::Predictions => Prediction::schema(),
        StreamType::Orders => Order::schema(),
        StreamType::RiskRejects => RiskReject::schema(),
        StreamType::Fills => Fill::schema(),
        StreamType::Positions => Position::schema(),
        StreamType::Portfolio => PortfolioValue::schema(),
    }
}

/// A named stream as the SQL layer sees it.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    /// The stream's name.
    pub name: String,
    /// Its columns.
    pub schema: SchemaRef,
    /// Its event-time column.
    pub time_column: &'static str,
}

/// Every stream of the pipeline with its Arrow schema and event-time column.
pub fn stream_schemas(pipeline: &Pipeline) -> Vec<StreamSchema> {
    pipeline
        .stream_names()
        .into_iter()
        .filter_map(|name| {
            // A query stream's columns are known once its query is planned.
            if pipeline
                .stream_query(&name)
                .is_some_and(|q| q.columns.is_none())
            {
                return None;
            }
            let ty = pipeline.stream_type(&name)?;
            let schema = stream_schema(ty, &pipeline.columns(&name));
            let time_column = tickflow_sinks::tap::time_column(&schema)?;
            Some(StreamSchema {
                name,
                schema,
                time_column,
            })
        })
        .collect()
}

/// Taps every stream of the pipeline for SQL: declares it, then adds a tap sink.
fn add_taps(
    pipeline: &Pipeline,
    tap: &Arc<dyn StreamTap>,
    registry: &Arc<InstrumentRegistry>,
    sinks: &mut BTreeMap<String, TypedSinks>,
) -> Result<(), RunError> {
    for s in stream_schemas(pipeline) {
        let Some(ty) = pipeline.stream_type(&s.name) else {
            continue;
        };
        tap.declare(&s.name, s.schema, s.time_column)
            .map_err(RunError::Options)?;
        sinks
            .entry(s.name.clone())
            .or_insert_with(|| TypedSinks::empty(ty))
            .tap(tap, &s.name, registry);
    }
    Ok(())
}

/// Kafka offsets a live job has reached: (part index, next offset).
type Positions = Vec<(usize, i64)>;

/// Everything the workers share.
struct Shared {
    pipeline: Pipeline,
    plan: Plan,
    registry: Arc<InstrumentRegistry>,
    origins: Vec<Origin>,
    stats: Arc<Stats>,
    sinks: Mutex<Option<BTreeMap<String, TypedSinks>>>,
    speed: Option<f64>,
    /// Whether every stream is tapped (so every stream gets a sink operator).
    tapped: bool,
    /// Predict operators by name, their models loaded and checked once before the workers
    /// start; each worker takes a copy (the weights are shared, not copied).
    predictors: BTreeMap<String, Predict>,
    /// The feeds of the query streams, taken by worker 0.
    query_feeds: Mutex<Option<BTreeMap<String, Receiver<FeedEvent>>>>,
    /// Stops reading when set.
    stop: Option<&'static AtomicBool>,
    /// A live job: where workers send the offsets their sinks have processed, and how often.
    commits: Mutex<Option<std::sync::mpsc::Sender<Positions>>>,
    commit_interval: std::time::Duration,
    /// A live job: the workers' watermarks.
    board: Arc<Board>,
    /// A live job: how far each output has made its rows durable.
    durable: Arc<Durable>,
    /// A live job: how often its sinks flush.
    flush_every: Option<std::time::Duration>,
    /// A live job with `[checkpoint]`: where its checkpoints go, and the one it resumes from.
    checkpoints: Option<Arc<Store>>,
    restored: Option<Arc<Restored>>,
}

/// How far the outputs of a live job have made their rows durable: one slot per output (the
/// sinks of a sunk stream, a query's output), the watermark at its last flush. Input offsets
/// are committed, and checkpoints written, only behind the oldest.
#[derive(Debug, Default)]
pub struct Durable {
    slots: Mutex<Vec<i64>>,
}

impl Durable {
    /// A slot for one more output.
    pub fn register(&self) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.push(i64::MIN);
        slots.len() - 1
    }

    /// Every row of output `slot` at a time before `t` is durable.
    pub fn set(&self, slot: usize, t: i64) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get_mut(slot) {
            *s = t;
        }
    }

    /// Whether every row at a time up to `t` is durable in every sink.
    fn passed(&self, t: i64) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.iter().all(|s| *s > t)
    }
}

/// Checks every operator's parameters against the streams it reads (signal rules name columns
/// the input has, models match their input's features), loading the models of the predict
/// operators, which it returns by operator name. A query stream's columns must have been
/// recorded first.
pub fn check_operators(pipeline: &Pipeline) -> Result<BTreeMap<String, Predict>, RunError> {
    let mut predictors = BTreeMap::new();
    for op in &pipeline.operators {
        match &op.kind {
            OperatorKind::TimeBars { interval } => drop(TimeBars::<Trade>::new(*interval)?),
            OperatorKind::VolumeBars { volume } => drop(VolumeBars::new(*volume)?),
            OperatorKind::Indicators { periods } => drop(Indicators::new(periods.clone())?),
            OperatorKind::Signals { strategy } => drop(Signals::new(
                strategy.clone(),
                &pipeline.columns(&op.input),
            )?),
            OperatorKind::Features { config, .. } => {
                drop(Features::new(config.clone(), &pipeline.columns(&op.input))?)
            }
            OperatorKind::Predict { config } => {
                let predict = Predict::new(config.clone(), &pipeline.columns(&op.input))?;
                // The same columns over other bars (another interval, volume bars, mid-price
                // bars) mean other things, and so does a horizon counted in bars.
                let learned = predict.predictor().meta().bars.as_deref();
                let here = pipeline.bar_basis(&op.input);
                if let (Some(learned), Some(here)) = (learned, here.as_deref())
                    && learned != here
                {
                    let hint = if learned.ends_with("over quotes (mid prices)")
                        && here.ends_with("over trades")
                    {
                        "; `tickflow run --mid-bars` builds the time bars from quotes"
                    } else {
                        ""
                    };
                    return Err(tickflow_models::Error::Model {
                        path: config.model.display().to_string(),
                        reason: format!(
                            "it was trained on features of {learned}; operator `{}` reads \
                             features of {here} (train it on this pipeline, or build its bars as \
                             the model's{hint})",
                            op.name
                        ),
                    }
                    .into());
                }
                predictors.insert(op.name.clone(), predict);
            }
            OperatorKind::Risk { config, .. } => drop(Risk::new(config.clone())?),
            OperatorKind::Exchange { config, .. } => drop(SimExchange::new(config.clone())?),
            OperatorKind::Portfolio { .. } => {}
        }
    }
    Ok(predictors)
}

/// Runs a pipeline to completion.
pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<Summary, RunError> {
    if opts.workers == 0 || opts.workers > 256 {
        return Err(RunError::Options(format!(
            "--workers must be between 1 and 256, got {}",
            opts.workers
        )));
    }
    if let Some(s) = opts.speed
        && !(s.is_finite() && s > 0.0)
    {
        return Err(RunError::Options(format!(
            "--speed must be a positive number, got {s}"
        )));
    }
    let feeds = opts.query_feeds.names();
    for q in pipeline.stream_queries() {
        if q.columns.is_none() || !feeds.contains(&q.name) {
            return Err(RunError::Options(format!(
                "query `{}` has sink = \"stream\", but no SQL engine runs it: its stream is fed \
                 by the SQL layer, which `tickflow run` starts",
                q.name
            )));
        }
    }
    let mut plan = tickflow_sources::plan(&pipeline.sources)?;
    let live = plan.live();
    let (checkpoints, restored) = match &pipeline.checkpoint {
        Some(c) => {
            if !live {
                return Err(RunError::Options(format!(
                    "[checkpoint] is for live jobs, whose sources are Kafka topics followed with \
                     `follow = true`; this job's sources end (a replay, or a bounded read of a \
                     topic), and such a job runs again from its start (checkpoint directory {})",
                    c.dir.display()
                )));
            }
            let Recovery { store, restored } = match &opts.recovery {
                Some(r) => r.clone(),
                None => Recovery::open(pipeline, opts.workers)?
                    .ok_or_else(|| RunError::Runtime("no checkpoint store".into()))?,
            };
            if let Some(r) = &restored {
                resume_parts(&mut plan, r);
                eprintln!(
                    "tickflow: resuming from the checkpoint at {} ({})",
                    Timestamp(r.at),
                    r.path.display()
                );
            }
            (Some(store), restored)
        }
        None => (None, None),
    };
    let committed = plan.clone();
    let commit_interval = pipeline
        .live_commits()
        .unwrap_or(std::time::Duration::from_secs(5));
    if live && opts.speed.is_some() {
        return Err(RunError::Options(
            "--speed paces a replay of recorded data; a job following Kafka topics runs as the \
             messages arrive"
                .into(),
        ));
    }
    // A live job commits, now and then, the offsets its sinks have processed; one thread does
    // it, so that the workers never wait for the brokers.
    let (commits, committer) = if live {
        let (tx, rx) = std::sync::mpsc::channel::<Positions>();
        let plan = plan.clone();
        let handle = std::thread::Builder::new()
            .name("tickflow:commit".into())
            .spawn(move || {
                for positions in rx {
                    if let Err(e) = tickflow_sources::commit_offsets(&plan, positions) {
                        eprintln!("tickflow: {e}; the next commit tries again");
                    }
                }
            })
            .map_err(|e| RunError::Runtime(format!("cannot start the commit thread: {e}")))?;
        (Some(tx), Some(handle))
    } else {
        (None, None)
    };
    // Dead-letter topics exist before any reader needs one.
    for source in &pipeline.sources {
        if let tickflow_sources::SourceConfig::Kafka(k) = source
            && let Some(topic) = &k.dead_letter
        {
            tickflow_sinks::kafka::ensure_topic(&k.brokers(), topic, 1)?;
        }
    }
    let registry = Arc::new(plan.registry.clone());
    let origins: Vec<Origin> = plan.parts.iter().map(Part::origin).collect();
    // Refuse bad operator parameters before any thread starts.
    Normalize::new(normalize_config(pipeline, &origins))?;
    let predictors = check_operators(pipeline)?;
    let models: Vec<(String, String)> = predictors
        .iter()
        .map(|(op, p)| (op.clone(), p.predictor().describe()))
        .collect();
    let mut sinks = create_sinks(
        pipeline,
        opts,
        &Making {
            registry: &registry,
            restored: restored.as_deref(),
            checkpoints: checkpoints.is_some(),
            live,
        },
    )?;
    if let Some(tap) = &opts.tap {
        add_taps(pipeline, tap, &registry, &mut sinks)?;
    }
    let operator_streams: Vec<String> = pipeline
        .stream_queries()
        .map(|q| q.name.clone())
        .chain(pipeline.operators.iter().flat_map(|o| {
            std::iter::once(o.name.clone())
                .chain(o.kind.extra_outputs().into_iter().map(|(n, _)| n))
        }))
        .collect();
    let stats = Arc::new(Stats::new(&operator_streams));
    let shared = Arc::new(Shared {
        pipeline: pipeline.clone(),
        plan,
        registry,
        origins,
        stats: stats.clone(),
        sinks: Mutex::new(Some(sinks)),
        speed: opts.speed,
        tapped: opts.tap.is_some(),
        predictors,
        query_feeds: Mutex::new(Some(opts.query_feeds.take())),
        stop: opts.stop,
        commits: Mutex::new(commits),
        commit_interval,
        board: Arc::new(Board::new(opts.workers)),
        durable: opts.durable.clone(),
        flush_every: live.then_some(commit_interval),
        checkpoints: checkpoints.clone(),
        restored,
    });

    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reporter = opts.progress.clone().map(|report| {
        let (stats, done, interval) = (stats.clone(), done.clone(), opts.progress_interval);
        std::thread::spawn(move || {
            let mut next = Instant::now() + interval;
            // Parked until the next report is due; the end of the run unparks it at once, so
            // a short job is not held up by the reporter.
            while !done.load(Ordering::Acquire) {
                std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
                if !done.load(Ordering::Acquire) && Instant::now() >= next {
                    report(&stats.progress());
                    next += interval;
                }
            }
        })
    });
    let worker_shared = shared.clone();
    let result = timely::execute(timely::Config::process(opts.workers), move |worker| {
        worker_main(worker, &worker_shared)
    });
    let outcome = match result {
        Ok(guards) => guards.join().into_iter().try_for_each(|r| {
            r.map_err(RunError::Runtime)
                .and_then(|r| r.map_err(RunError::Runtime))
        }),
        Err(e) => Err(RunError::Runtime(e)),
    };
    done.store(true, Ordering::Release);
    if let Some(h) = reporter {
        h.thread().unpark();
        let _ = h.join();
    }
    // The periodic commits end before the last one below, which must not be overtaken.
    if let Ok(mut tx) = shared.commits.lock() {
        tx.take();
    }
    if let Some(h) = committer {
        let _ = h.join();
    }
    outcome?;
    if let Some(settle) = &opts.settle
        && let Err(e) = settle()
    {
        stats.error(e);
    }
    // Everything read has been processed by every sink and query: the Kafka offsets may move
    // on, unless one failed, in which case the next run reads the same records again.
    let failed = stats.errors.lock().map_or(true, |e| !e.is_empty());
    let kafka = committed
        .parts
        .iter()
        .any(|p| matches!(p, Part::Kafka { .. }));
    if kafka && !committed.live() && stats.stopped.load(Ordering::SeqCst) {
        // A bounded read stopped part-way: the merge had read records ahead of what went
        // out, so the offsets read overstate what was processed. Nothing is committed.
        eprintln!(
            "tickflow: stopped before the end of the topic: the kafka offsets are not committed, \
             so the next run reads the same records again"
        );
    } else if failed {
        if kafka {
            stats.error(
                "kafka offsets were not committed because of the errors above; the next run \
                 reads the same records again"
                    .into(),
            );
        }
    } else {
        tickflow_sources::commit_read(&committed)?;
    }
    let mut summary = Summary::collect(&stats, &pipeline.name, opts.workers, started.elapsed());
    summary.left_out = committed.left_out.clone();
    summary.models = models;
    if let (Some(store), Some(c)) = (&checkpoints, &pipeline.checkpoint) {
        let (written, newest) = store.written();
        summary.checkpoints = Some(CheckpointSummary {
            cost: store.cost(),
            dir: c.dir.display().to_string(),
            resumed_from: shared.restored.as_ref().map(|r| Timestamp(r.at)),
            taken_by: shared
                .restored
                .as_ref()
                .map(|r| r.workers)
                .filter(|w| *w != opts.workers),
            skipped: stats.skipped.load(Ordering::Relaxed),
            written,
            newest: newest.map(Timestamp),
        });
    }
    Ok(summary)
}

fn normalize_config(pipeline: &Pipeline, origins: &[Origin]) -> NormalizeConfig {
    NormalizeConfig {
        granularity: pipeline.granularity,
        dedupe_window: pipeline.normalize.dedupe_window,
        origins: origins.to_vec(),
    }
}

/// A typed stream of the dataflow under construction.
#[derive(Clone)]
enum Handle<'s> {
    Trades(StreamVec<'s, Time, Stamped<Trade>>),
    Quotes(StreamVec<'s, Time, Stamped<Quote>>),
    Book(StreamVec<'s, Time, Stamped<BookEvent>>),
    Rejects(StreamVec<'s, Time, Stamped<Reject>>),
    Bars(StreamVec<'s, Time, Stamped<Bar>>),
    Indicators(StreamVec<'s, Time, Stamped<IndicatorRow>>),
    Signals(StreamVec<'s, Time, Stamped<Signal>>),
    Predictions(StreamVec<'s, Time, Stamped<Prediction>>),
    Orders(StreamVec<'s, Time, Stamped<Order>>),
    RiskRejects(StreamVec<'s, Time, Stamped<RiskReject>>),
    Fills(StreamVec<'s, Time, Stamped<Fill>>),
    Positions(StreamVec<'s, Time, Stamped<Position>>),
    Portfolio(StreamVec<'s, Time, Stamped<PortfolioValue>>),
}

impl<'s> Handle<'s> {
    /// The same stream behind a [`throttle`].
    fn throttled(&self, every: std::time::Duration) -> Self {
        macro_rules! each {
            ($($v:ident),*) => {
                match self {
                    $(Handle::$v(s) => Handle::$v(throttle(s.clone(), every)),)*
                }
            };
        }
        each!(
            Trades,
            Quotes,
            Book,
            Rejects,
            Bars,
            Indicators,
            Signals,
            Predictions,
            Orders,
            RiskRejects,
            Fills,
            Positions,
            Portfolio
        )
    }
}

/// What consumers off the trading path (sinks, the run report, the portfolio valuation) read
/// of stream `name`: the same records, the watermark moved at most once per `every` of wall
/// time. One throttle per stream, shared by all of them.
fn view<'s>(
    views: &mut BTreeMap<String, Handle<'s>>,
    streams: &BTreeMap<String, Handle<'s>>,
    name: &str,
    every: std::time::Duration,
) -> Option<Handle<'s>> {
    if let Some(h) = views.get(name) {
        return Some(h.clone());
    }
    let h = streams.get(name)?.throttled(every);
    views.insert(name.to_owned(), h.clone());
    Some(h)
}

/// Counts the records of operator stream `index` as they pass.
fn counted<'s, T: 'static>(
    stream: StreamVec<'s, Time, T>,
    stats: &Arc<Stats>,
    index: usize,
) -> StreamVec<'s, Time, T> {
    let stats = stats.clone();
    stream.inspect_core(move |event| {
        if let Ok((_, batch)) = event {
            stats.streams[index]
                .1
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    })
}

/// The checkpoint times a sink has passed: what it keeps for a checkpoint (a file's length, the
/// report's tally) is noted for each, with every row before it taken in and none after.
struct Marks {
    every: i64,
    /// The last checkpoint time noted; `None` before the first row or watermark.
    last: Option<i64>,
    /// Where the job's checkpoint times are counted from.
    store: Arc<Store>,
}

impl Marks {
    fn new(store: &Arc<Store>) -> Self {
        Self {
            every: store.interval(),
            last: None,
            store: store.clone(),
        }
    }

    /// Nothing at or after `t` has been taken in yet: the checkpoint times up to `t` not noted
    /// yet, oldest first.
    fn before(&mut self, t: Time) -> Vec<i64> {
        let every = self.every;
        let Some(at) = tickflow_operators::adapter::boundary(t, every) else {
            return Vec::new();
        };
        let passed = match self.last {
            // From the job's first checkpoint time: a stream whose first row comes later
            // stood where it starts at the checkpoint times before it.
            None => {
                let from = (at - every).min(self.store.origin().unwrap_or(i64::MAX));
                passed_boundaries(from, at, every).collect()
            }
            Some(last) if at > last => passed_boundaries(last, at, every).collect(),
            Some(_) => return Vec::new(),
        };
        self.last = Some(at);
        passed
    }
}

/// One sink of a stream: its name, the sink, whether it failed, and the watermark at the last
/// flush after which every row it had was durable.
type Attached<T> = (String, Box<dyn Sink<T>>, bool, i64);

/// The name under which a checkpoint keeps the state of sink `sink` of `stream`.
fn sink_key(stream: &str, sink: &str) -> String {
    format!("sink/{stream}/{sink}")
}

/// Notes where `stream`'s sinks stood (file lengths, rows of Parquet parts, Kafka producers) at
/// every checkpoint time up to `t` not noted yet, and tells the sinks (the SQL tap hands the
/// mark on).
fn note_files<T>(
    marks: &RefCell<Marks>,
    store: &Store,
    stream: &str,
    t: Time,
    sinks: &mut [Attached<T>],
) {
    for b in marks.borrow_mut().before(t) {
        for (name, sink, _, _) in sinks.iter_mut().filter(|s| !s.2) {
            if let Some(p) = sink.position() {
                store.file_position(name, b, p);
            }
            if let Some(state) = sink.resume_state() {
                store.sink_state_at(&sink_key(stream, name), b, Ok(state));
            }
            sink.checkpoint(b);
        }
    }
}

/// Attaches one stream's sinks (present on worker 0 only; other workers forward to it).
fn attach<'s, T: SinkRecord + Record>(
    stream: StreamVec<'s, Time, Stamped<T>>,
    name: &str,
    sinks: Named<T>,
    all_discard: bool,
    probe: &ProbeHandle<Time>,
    shared: &Shared,
) {
    let (stats, durable) = (&shared.stats, &shared.durable);
    let checkpoints = shared.checkpoints.as_ref();
    // With checkpoints, the file sinks a resumed job goes on with note, for each checkpoint
    // time, how long their file was when every row before that time was written and none
    // after it; the SQL tap hands each checkpoint time on to the queries.
    let marks = checkpoints.map(|store| {
        for (n, s) in &sinks {
            if s.position().is_some() {
                store.file_sink(n);
            }
            if s.resume_state().is_some() {
                store.sink_state(&sink_key(name, n));
            }
        }
        (Rc::new(RefCell::new(Marks::new(store))), store.clone())
    });
    let (write_marks, progress_marks) = (marks.clone(), marks);
    // A live job flushes the sinks now and then, and says how far their rows are durable.
    let flushing = match shared.flush_every {
        Some(every) if !sinks.is_empty() => Some((durable.clone(), durable.register(), every)),
        _ => None,
    };
    let mut last_flush = Instant::now();
    let finished = flushing.as_ref().map(|(d, slot, _)| (d.clone(), *slot));
    // A stream that stands still is flushed too, so its rows become durable (and the offsets
    // and checkpoints behind them can go on) without waiting for the next move.
    let revisit = flushing.as_ref().map(|(_, _, every)| *every / 2);
    let mark_stats = stats.clone();
    let sinks = Rc::new(RefCell::new(
        sinks
            .into_iter()
            .map(|(n, s)| (n, s, false, i64::MIN))
            .collect::<Vec<_>>(),
    ));
    let (write_sinks, mark_sinks, finish_sinks) = (sinks.clone(), sinks.clone(), sinks);
    let (stream_name, mark_name) = (name.to_owned(), name.to_owned());
    let (write_stats, finish_stats) = (stats.clone(), stats.clone());
    let gather = if all_discard {
        Gather::Local
    } else {
        Gather::Single
    };
    ordered_sink(
        stream,
        &format!("sink:{name}"),
        gather,
        move |step: Time, batch: &mut Vec<T>| {
            if let Some((m, store)) = &write_marks {
                note_files(m, store, &stream_name, step, &mut write_sinks.borrow_mut());
            }
            for (sink_name, sink, failed, _) in write_sinks.borrow_mut().iter_mut() {
                if *failed {
                    continue;
                }
                if let Err(e) = sink.write(batch) {
                    // Keep the pipeline running; this sink stops and the run reports the error.
                    *failed = true;
                    write_stats.error(format!(
                        "sink {sink_name} failed, later rows were not written: {e}"
                    ));
                }
            }
        },
        move |watermark: Time| {
            if let Some((m, store)) = &progress_marks {
                note_files(
                    m,
                    store,
                    &mark_name,
                    watermark,
                    &mut mark_sinks.borrow_mut(),
                );
            }
            let flush = flushing
                .as_ref()
                .is_some_and(|(_, _, every)| last_flush.elapsed() >= *every / 2);
            let mut durable_to = watermark;
            for (sink_name, sink, failed, durable_at) in mark_sinks.borrow_mut().iter_mut() {
                if *failed {
                    // Rows this sink lost are never committed behind.
                    durable_to = i64::MIN;
                    continue;
                }
                sink.watermark(Timestamp(watermark));
                if !flush {
                    continue;
                }
                if let Err(e) = sink.flush() {
                    *failed = true;
                    durable_to = i64::MIN;
                    mark_stats.error(format!(
                        "sink {sink_name} failed, later rows were not written: {e}"
                    ));
                    continue;
                }
                // A sink that makes rows durable in larger steps (rolled Parquet parts) holds
                // the commits back to its last step.
                if sink.durable() {
                    *durable_at = watermark;
                }
                durable_to = durable_to.min(*durable_at);
            }
            if flush && let Some((durable, slot, _)) = &flushing {
                last_flush = Instant::now();
                durable.set(*slot, durable_to);
            }
        },
        revisit,
        move || {
            let mut whole = true;
            for (sink_name, sink, failed, _) in finish_sinks.borrow_mut().iter_mut() {
                whole &= !*failed;
                match sink.finish() {
                    Ok(rows) => {
                        if let Ok(mut v) = finish_stats.sink_rows.lock() {
                            v.push((sink_name.clone(), rows));
                        }
                    }
                    Err(e) => {
                        whole = false;
                        finish_stats.error(format!("sink {sink_name} could not be closed: {e}"))
                    }
                }
            }
            // Closed whole: every row is durable.
            if whole && let Some((durable, slot)) = &finished {
                durable.set(*slot, i64::MAX);
            }
        },
    )
    .probe_with(probe);
}

/// Builds the dataflow of one worker. Returns the input handles.
#[allow(
    clippy::type_complexity,
    reason = "the four input handles are returned together once"
)]
fn build<'s>(
    scope: Scope<'s, Time>,
    shared: &Shared,
    mut sinks: BTreeMap<String, TypedSinks>,
    flow: &ProbeHandle<Time>,
    probe: &ProbeHandle<Time>,
) -> Result<(InputEnds, InputEnds2, Vec<QueryInput>), String> {
    let stats = &shared.stats;
    let ((events_in, events_cap), events) = scope.new_unordered_input::<Stamped<MarketEvent>>();
    let ((rejects_in, rejects_cap), parse_rejects) = scope.new_unordered_input::<Stamped<Reject>>();
    let normalize = Normalize::new(normalize_config(&shared.pipeline, &shared.origins))
        .map_err(|e| e.to_string())?;
    // Only the kinds something reads (an operator, a sink, the SQL tap) are passed on; all are
    // counted.
    let reads =
        |stream: &str| {
            shared.pipeline.operators.iter().any(|o| {
                o.input == stream || o.kind.extra_inputs().iter().any(|(s, _)| *s == stream)
            }) || shared
                .pipeline
                .sinks
                .iter()
                .any(|s| s.streams.iter().any(|x| x == stream))
                || shared.tapped
        };
    let keep = [reads("trades"), reads("quotes"), reads("book")];
    let counts = stats.clone();
    let parts = split(apply(events, normalize), keep, move |c| {
        for (slot, n) in counts.accepted.iter().zip(c) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    });
    // The flow probe sits right after normalize: operators that hold output back (bars,
    // windows) never stall the sources.
    let progress = parts.trades.clone().probe_with(flow);
    let counts = stats.clone();
    let rejects = parse_rejects
        .concat(parts.rejects)
        .inspect_core(move |event| {
            if let Ok((_, batch)) = event {
                for (_, r) in batch.iter() {
                    counts.rejected[r.reason.index()].fetch_add(1, Ordering::Relaxed);
                }
            }
        });

    let mut streams: BTreeMap<String, Handle<'s>> = BTreeMap::new();
    streams.insert("trades".into(), Handle::Trades(progress));
    streams.insert("quotes".into(), Handle::Quotes(parts.quotes));
    streams.insert("book".into(), Handle::Book(parts.book));
    streams.insert("rejects".into(), Handle::Rejects(rejects));

    let stream_index = |name: &str| stats.streams.iter().position(|(n, _)| n == name);
    let gran = shared.pipeline.granularity.nanos().max(1);
    // Query streams: inputs fed by worker 0 from the SQL layer.
    let mut query_inputs = Vec::new();
    for q in shared.pipeline.stream_queries() {
        let ((handle, cap), stream) = scope.new_unordered_input::<Stamped<IndicatorRow>>();
        let index = stream_index(&q.name).ok_or("query stream without a counter")?;
        streams.insert(
            q.name.clone(),
            Handle::Indicators(counted(stream, stats, index)),
        );
        query_inputs.push(QueryInput {
            name: q.name.clone(),
            handle,
            cap: Some(cap),
            feed: None,
            time: q.time.clone().unwrap_or_default(),
            names: shared.pipeline.columns(&q.name).into(),
            unkeyed: 0,
        });
    }
    // What sinks, the report and the valuation read (see `view`).
    let every = shared.pipeline.watermark_interval.to_std();
    let mut views: BTreeMap<String, Handle<'s>> = BTreeMap::new();
    // Feedback edges still to close: (fills stream, loop handle).
    let mut loops = Vec::new();
    for op in &shared.pipeline.operators {
        let index = stream_index(&op.name).ok_or("operator stream without a counter")?;
        let err = |e: tickflow_operators::Error| e.to_string();
        let missing = |s: &str| format!("operator {} reads stream {s} of the wrong type", op.name);
        let mut extra: Vec<(String, Handle<'s>)> = Vec::new();
        let handle = match (&op.kind, streams.get(&op.input)) {
            (OperatorKind::TimeBars { interval }, Some(Handle::Trades(input))) => {
                Handle::Bars(counted(
                    apply(
                        input.clone(),
                        TimeBars::<Trade>::new(*interval).map_err(err)?,
                    ),
                    stats,
                    index,
                ))
            }
            (OperatorKind::TimeBars { interval }, Some(Handle::Quotes(input))) => {
                Handle::Bars(counted(
                    apply(
                        input.clone(),
                        TimeBars::<Quote>::new(*interval).map_err(err)?,
                    ),
                    stats,
                    index,
                ))
            }
            (OperatorKind::VolumeBars { volume }, Some(Handle::Trades(input))) => {
                Handle::Bars(counted(
                    apply(input.clone(), VolumeBars::new(*volume).map_err(err)?),
                    stats,
                    index,
                ))
            }
            (OperatorKind::Indicators { periods }, Some(Handle::Bars(input))) => {
                Handle::Indicators(counted(
                    apply(
                        input.clone(),
                        Indicators::new(periods.clone()).map_err(err)?,
                    ),
                    stats,
                    index,
                ))
            }
            (OperatorKind::Signals { strategy }, Some(Handle::Indicators(input))) => {
                let columns = shared.pipeline.columns(&op.input);
                Handle::Signals(counted(
                    apply(
                        input.clone(),
                        Signals::new(strategy.clone(), &columns).map_err(err)?,
                    ),
                    stats,
                    index,
                ))
            }
            (OperatorKind::Signals { strategy }, Some(Handle::Predictions(input))) => {
                let names: Arc<[String]> = PREDICTION_COLUMNS.map(String::from).to_vec().into();
                let rows = input
                    .clone()
                    .map(move |(t, p)| (t, predict::as_row(&p, &names)));
                Handle::Signals(counted(
                    apply(
                        rows,
                        Signals::new(strategy.clone(), &PREDICTION_COLUMNS.map(String::from))
                            .map_err(err)?,
                    ),
                    stats,
                    index,
                ))
            }
            (OperatorKind::Predict { .. }, Some(Handle::Indicators(input))) => {
                let predict =
                    shared.predictors.get(&op.name).cloned().ok_or_else(|| {
                        format!("predict operator `{}` has no loaded model", op.name)
                    })?;
                Handle::Predictions(counted(apply(input.clone(), predict), stats, index))
            }
            (OperatorKind::Features { config, quotes }, Some(Handle::Indicators(input))) => {
                // The bars the indicators were computed on.
                let bars_name = shared.pipeline.bars_of(op).unwrap_or_default();
                let (Some(Handle::Bars(bars)), Some(Handle::Quotes(book))) =
                    (streams.get(&bars_name), streams.get(quotes))
                else {
                    return Err(missing(&bars_name));
                };
                let features = Features::new(config.clone(), &shared.pipeline.columns(&op.input))
                    .map_err(err)?;
                let merged = book
                    .clone()
                    .map(|(t, q)| (t, FeatureInput::Quote(q)))
                    .concat(bars.clone().map(|(t, b)| (t, FeatureInput::Bar(b))))
                    .concat(input.clone().map(|(t, r)| (t, FeatureInput::Row(r))));
                Handle::Indicators(counted(apply(merged, features), stats, index))
            }
            (
                OperatorKind::Risk {
                    config,
                    prices,
                    fills,
                    rejects,
                },
                Some(Handle::Signals(input)),
            ) => {
                let Some(Handle::Bars(bars)) = streams.get(prices) else {
                    return Err(missing(prices));
                };
                // Positions come back from the exchange's fills one nanosecond later.
                let (handle, cycle) = scope.feedback::<Vec<Stamped<RiskInput>>>(1);
                loops.push((fills.clone(), handle));
                let marks = bars.clone().map(|(t, b)| {
                    (
                        t,
                        RiskInput::Mark(Mark {
                            instrument: b.instrument,
                            ts: b.end,
                            price: b.close,
                        }),
                    )
                });
                let signals = input.clone().map(|(t, s)| (t, RiskInput::Signal(s)));
                // Fills only update state: the orders' frontier follows the signals and
                // marks, and risk waits for the loop only while it has working orders.
                let decisions = apply_with_state(
                    signals.concat(marks),
                    Some(cycle),
                    Risk::new(config.clone()).map_err(err)?,
                );
                let orders = decisions.clone().flat_map(|(t, d)| match d {
                    RiskDecision::Accepted(o) => Some((t, o)),
                    RiskDecision::Rejected(_) => None,
                });
                let refused = decisions.flat_map(|(t, d)| match d {
                    RiskDecision::Rejected(r) => Some((t, r)),
                    RiskDecision::Accepted(_) => None,
                });
                let at = stream_index(rejects).ok_or("risk rejects without a counter")?;
                extra.push((
                    rejects.clone(),
                    Handle::RiskRejects(counted(refused, stats, at)),
                ));
                Handle::Orders(counted(orders, stats, index))
            }
            (
                OperatorKind::Exchange {
                    config,
                    quotes,
                    trades,
                },
                Some(Handle::Orders(input)),
            ) => {
                let Some(Handle::Quotes(book)) = streams.get(quotes) else {
                    return Err(missing(quotes));
                };
                let exchange = SimExchange::new(config.clone()).map_err(err)?;
                let latency = exchange.latency().nanos();
                // Each order reaches the exchange `latency` after it was created.
                let orders = input.clone().map(move |(t, o)| {
                    let arrival = o.ts_event.nanos().saturating_add(latency);
                    (
                        floor(arrival, gran).max(t),
                        ExchangeInput::Order {
                            arrival: Timestamp(arrival),
                            order: o,
                        },
                    )
                });
                let mut market = book.clone().map(|(t, q)| (t, ExchangeInput::Quote(q)));
                if config.fill_on_trades {
                    let Some(Handle::Trades(prints)) = streams.get(trades) else {
                        return Err(missing(trades));
                    };
                    market =
                        market.concat(prints.clone().map(|(t, x)| (t, ExchangeInput::Trade(x))));
                }
                Handle::Fills(counted(
                    apply(market.concat(orders), exchange),
                    stats,
                    index,
                ))
            }
            (OperatorKind::Portfolio { prices, totals, .. }, Some(Handle::Fills(_))) => {
                let (Some(Handle::Fills(fills)), Some(Handle::Bars(bars))) = (
                    view(&mut views, &streams, &op.input, every),
                    view(&mut views, &streams, prices, every),
                ) else {
                    return Err(missing(prices));
                };
                let resumed_at = shared.restored.as_ref().map(|r| r.at);
                let (positions, values) = portfolio(fills, bars, resumed_at);
                let at = stream_index(totals).ok_or("portfolio totals without a counter")?;
                extra.push((
                    totals.clone(),
                    Handle::Portfolio(counted(values, stats, at)),
                ));
                Handle::Positions(counted(positions, stats, index))
            }
            _ => {
                return Err(format!(
                    "operator {} cannot read stream {}",
                    op.name, op.input
                ));
            }
        };
        streams.insert(op.name.clone(), handle);
        streams.extend(extra);
    }
    for (fills, handle) in loops {
        match streams.get(&fills) {
            Some(Handle::Fills(s)) => s
                .clone()
                .map(|(t, f)| (t.saturating_add(1), RiskInput::Fill(f)))
                .connect_loop(handle),
            _ => {
                return Err(format!(
                    "risk reads fills from {fills}, which is not an exchange's fills"
                ));
            }
        }
    }
    // Every worker builds the taps (the dataflows must match); worker 0 receives the records.
    attach_report(
        shared,
        &streams,
        &mut views,
        every,
        probe,
        scope.index() == 0,
    )?;

    // Every worker builds the same sink operators; only worker 0 holds the sink objects.
    let mut defs: BTreeMap<&str, bool> = BTreeMap::new();
    for sink in &shared.pipeline.sinks {
        for s in &sink.streams {
            let all_discard = defs.entry(s.as_str()).or_insert(true);
            *all_discard &= matches!(sink.kind, SinkKind::Discard);
        }
    }
    if shared.tapped {
        for name in streams.keys() {
            defs.insert(name.as_str(), false);
        }
    }
    for (name, all_discard) in defs {
        let Some(handle) = view(&mut views, &streams, name, every) else {
            continue;
        };
        let mine = sinks.remove(name);
        // Each stream's sinks, taken out of the typed set (empty on workers other than 0).
        macro_rules! attach_as {
            ($stream:expr, $variant:ident) => {
                attach(
                    $stream.clone(),
                    name,
                    match mine {
                        Some(TypedSinks::$variant(v)) => v,
                        _ => Vec::new(),
                    },
                    all_discard,
                    probe,
                    shared,
                )
            };
        }
        match handle {
            Handle::Trades(s) => attach_as!(s, Trades),
            Handle::Quotes(s) => attach_as!(s, Quotes),
            Handle::Book(s) => attach_as!(s, Book),
            Handle::Rejects(s) => attach_as!(s, Rejects),
            Handle::Bars(s) => attach_as!(s, Bars),
            Handle::Indicators(s) => attach_as!(s, Indicators),
            Handle::Signals(s) => attach_as!(s, Signals),
            Handle::Predictions(s) => attach_as!(s, Predictions),
            Handle::Orders(s) => attach_as!(s, Orders),
            Handle::RiskRejects(s) => attach_as!(s, RiskRejects),
            Handle::Fills(s) => attach_as!(s, Fills),
            Handle::Positions(s) => attach_as!(s, Positions),
            Handle::Portfolio(s) => attach_as!(s, Portfolio),
        }
    }
    Ok((
        (events_in, events_cap),
        (rejects_in, rejects_cap),
        query_inputs,
    ))
}

/// Feeds the trading streams to the report: the taps gather every record on worker 0, which
/// stores the report (`leader`). Only pipelines with a portfolio have a report.
fn attach_report<'s>(
    shared: &Shared,
    streams: &BTreeMap<String, Handle<'s>>,
    views: &mut BTreeMap<String, Handle<'s>>,
    every: std::time::Duration,
    probe: &ProbeHandle<Time>,
    leader: bool,
) -> Result<(), String> {
    let Some(capital) = shared
        .pipeline
        .operators
        .iter()
        .find_map(|o| match &o.kind {
            OperatorKind::Portfolio { capital, .. } => Some(*capital),
            _ => None,
        })
    else {
        return Ok(());
    };
    // The trading streams, as consumers off the trading path read them.
    let trading: Vec<(String, Handle<'s>)> = streams
        .iter()
        .filter(|(_, h)| {
            matches!(
                h,
                Handle::Orders(_)
                    | Handle::RiskRejects(_)
                    | Handle::Fills(_)
                    | Handle::Positions(_)
                    | Handle::Portfolio(_)
            )
        })
        .filter_map(|(name, _)| Some((name.clone(), view(views, streams, name, every)?)))
        .collect();
    // With checkpoints, each stream's tally is in them (taken as that stream passes each
    // checkpoint time) and a resumed job's report goes on from the tallies it resumes from.
    let checkpoints = shared.checkpoints.as_ref().filter(|_| leader);
    let mut builder = ReportBuilder::new(capital);
    if let Some(store) = checkpoints {
        for (name, _) in &trading {
            let part = report_state(name);
            store.sink_state(&part);
            if let Some(r) = &shared.restored {
                let bytes = r.sink_state(&part).map_err(|e| e.to_string())?;
                *builder.stream(name) = Tally::restore(bytes).map_err(|e| {
                    format!(
                        "checkpoint {}: the report's tally of {name} does not parse: {e}",
                        r.path.display()
                    )
                })?;
            }
        }
    }
    let state = Rc::new(RefCell::new((Some(builder), trading.len())));
    let stats = shared.stats.clone();
    let registry = shared.registry.clone();
    // Runs when one tap's stream ends; the last one stores the report.
    let finish = {
        let state = state.clone();
        move || {
            let mut s = state.borrow_mut();
            s.1 -= 1;
            if s.1 == 0
                && leader
                && let Some(b) = s.0.take()
                && let Ok(mut slot) = stats.trading.lock()
                && slot.is_none()
            {
                *slot = Some(b.finish());
            }
        }
    };
    /// Where a tap feeds the report.
    struct To<'a> {
        name: &'a str,
        state: &'a Rc<RefCell<(Option<ReportBuilder>, usize)>>,
        checkpoints: Option<&'a Arc<Store>>,
        probe: &'a ProbeHandle<Time>,
    }
    fn tap<'s, T: Record>(
        stream: &StreamVec<'s, Time, Stamped<T>>,
        to: To<'_>,
        finish: impl FnOnce() + 'static,
        mut each: impl FnMut(&mut Tally, &T) + 'static,
    ) {
        let To {
            name,
            state,
            checkpoints,
            probe,
        } = to;
        let (write_state, progress_state) = (state.clone(), state.clone());
        let marks = checkpoints.map(|store| {
            Rc::new(TallyMarks {
                marks: RefCell::new(Marks::new(store)),
                store: store.clone(),
                stream: name.to_owned(),
            })
        });
        let progress_marks = marks.clone();
        let name = name.to_owned();
        ordered_sink(
            stream.clone(),
            "report",
            Gather::Single,
            move |step, batch: &mut Vec<T>| {
                if let Some(m) = &marks {
                    m.note(&write_state, step);
                }
                if let Some(b) = write_state.borrow_mut().0.as_mut() {
                    let tally = b.stream(&name);
                    batch.iter().for_each(|r| each(tally, r));
                }
            },
            move |watermark| {
                if let Some(m) = &progress_marks {
                    m.note(&progress_state, watermark);
                }
            },
            None,
            finish,
        )
        .probe_with(probe);
    }
    for (name, h) in &trading {
        let f = finish.clone();
        let to = To {
            name,
            state: &state,
            checkpoints,
            probe,
        };
        match h {
            Handle::Orders(s) => tap(s, to, f, |b, o| b.order(o)),
            Handle::RiskRejects(s) => tap(s, to, f, |b, r| b.reject(r.reason)),
            Handle::Fills(s) => tap(s, to, f, |b, x| b.fill(x)),
            Handle::Positions(s) => {
                let registry = registry.clone();
                tap(s, to, f, move |b, p| {
                    b.position(registry.symbol(p.instrument), p)
                })
            }
            Handle::Portfolio(s) => tap(s, to, f, |b, v| b.value(v)),
            _ => {}
        }
    }
    Ok(())
}

/// Where the report's tally of one stream is checkpointed.
struct TallyMarks {
    marks: RefCell<Marks>,
    store: Arc<Store>,
    stream: String,
}

impl TallyMarks {
    /// Notes the tally at every checkpoint time up to `t` not noted yet (nothing at or after
    /// `t` has been counted).
    fn note(&self, state: &RefCell<(Option<ReportBuilder>, usize)>, t: Time) {
        for b in self.marks.borrow_mut().before(t) {
            let tally = match state.borrow_mut().0.as_mut() {
                Some(builder) => builder
                    .stream(&self.stream)
                    .snapshot()
                    .map_err(|e| e.to_string()),
                None => Err("the report is already finished".to_owned()),
            };
            self.store
                .sink_state_at(&report_state(&self.stream), b, tally);
        }
    }
}

/// The name under which a checkpoint keeps the report's tally of stream `stream`.
fn report_state(stream: &str) -> String {
    format!("report-{stream}")
}

type InputEnds = (
    timely::dataflow::operators::vec::unordered_input::UnorderedHandle<Time, Stamped<MarketEvent>>,
    timely::dataflow::operators::ActivateCapability<Time>,
);
type InputEnds2 = (
    timely::dataflow::operators::vec::unordered_input::UnorderedHandle<Time, Stamped<Reject>>,
    timely::dataflow::operators::ActivateCapability<Time>,
);

/// The input of one query stream. Worker 0 feeds it from the SQL layer; the other workers
/// release their capability at once.
struct QueryInput {
    name: String,
    handle: timely::dataflow::operators::vec::unordered_input::UnorderedHandle<
        Time,
        Stamped<IndicatorRow>,
    >,
    cap: Option<timely::dataflow::operators::ActivateCapability<Time>>,
    feed: Option<Receiver<FeedEvent>>,
    /// The event-time column of the results.
    time: String,
    /// The value columns.
    names: Arc<[String]>,
    /// Result rows left out for want of an instrument or an event time.
    unkeyed: usize,
}

impl QueryInput {
    /// Moves what the query has sent into the dataflow; returns whether anything came. A row
    /// goes out at its own event time, or at the query's watermark when it is behind it. A
    /// query that takes its state for a checkpoint moves its watermark to the checkpoint time
    /// (it has taken in every input row before it), so the rows it writes later, which a job
    /// resumed from that checkpoint writes again, fall after the checkpoint here too, whatever
    /// their event time (a window held open by the allowed lateness ends before it).
    fn pump(&mut self, gran: i64, stats: &Stats) -> bool {
        let (Some(feed), Some(cap)) = (self.feed.as_ref(), self.cap.as_mut()) else {
            return false;
        };
        let mut any = false;
        let mut ended = None;
        loop {
            match feed.try_recv() {
                Ok(FeedEvent::Rows(batch)) => {
                    any = true;
                    match query_stream::decode(&batch, &self.time, &self.names) {
                        Ok((rows, unkeyed)) => {
                            self.unkeyed += unkeyed;
                            let now = *cap.time();
                            self.handle.activate().session(&*cap).give_iterator(
                                rows.into_iter()
                                    .map(|r| (floor(r.end.nanos(), gran).max(now), r)),
                            );
                        }
                        Err(e) => stats.error(format!(
                            "query stream {}: a result batch was refused: {e}",
                            self.name
                        )),
                    }
                }
                Ok(FeedEvent::Watermark(w)) => {
                    any = true;
                    let t = floor(w, gran);
                    if t > *cap.time() {
                        cap.downgrade(&t);
                    }
                }
                Ok(FeedEvent::End) => {
                    ended = Some(true);
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    ended = Some(false);
                    break;
                }
            }
        }
        if let Some(clean) = ended {
            if !clean {
                stats.error(format!(
                    "query stream {} ended before its query finished (the query's error says why)",
                    self.name
                ));
            }
            if self.unkeyed > 0 {
                stats.error(format!(
                    "query stream {}: {} result rows had no instrument_id or event time and were \
                     left out",
                    self.name, self.unkeyed
                ));
            }
            self.cap = None;
            self.feed = None;
            return true;
        }
        any
    }
}

/// Feeds every query stream (worker 0); returns whether anything came.
fn pump(queries: &mut [QueryInput], gran: i64, stats: &Stats) -> bool {
    let mut any = false;
    for q in queries {
        any |= q.pump(gran, stats);
    }
    any
}

fn floor(t: i64, step: i64) -> i64 {
    Timestamp(t).floor(tickflow_core::Duration(step)).nanos()
}

/// Longest a live job's reader waits for a message before it hands over an empty chunk (so
/// the watermark and the stop flag are looked at).
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// At most this many checkpoint times are noted at once (the latest ones): a watermark that
/// jumps far (a gap in the data) passes many at once, and only the last can matter.
const MAX_CHECKPOINTS_AT_ONCE: i64 = 64;

/// The checkpoint times after `last` up to `at` (multiples of `every`), at most
/// [`MAX_CHECKPOINTS_AT_ONCE`] of them, the latest.
fn passed_boundaries(last: i64, at: i64, every: i64) -> impl Iterator<Item = i64> {
    let count = ((at - last) / every).clamp(0, MAX_CHECKPOINTS_AT_ONCE);
    (0..count).rev().map(move |k| at - k * every)
}

/// Longest a worker waiting for its reader parks between steps.
const READ_WAIT: std::time::Duration = std::time::Duration::from_micros(200);

/// One chunk of input as the reader thread hands it to its worker.
#[derive(Default)]
struct Chunk {
    /// Events with their steps.
    events: Vec<(i64, MarketEvent)>,
    /// Rows that could not be parsed.
    bad: Vec<Reject>,
    /// The watermark (input capability) after this chunk.
    hold: i64,
    /// The input has ended.
    exhausted: bool,
    /// Pacing cut the chunk short.
    paced: bool,
    /// A live job: the latest time a record of the chunk was sent at.
    newest: i64,
    /// A live job: where each of the worker's partitions had got after the chunk (part index,
    /// next offset).
    positions: Positions,
    /// A live job with checkpoints: the checkpoint times this chunk's watermark passed, with
    /// where the partitions stood.
    checkpoints: Vec<(i64, Vec<tickflow_sources::kafka::PartitionCheckpoint>)>,
}

/// Reads a worker's parts in event-time order and cuts them into chunks. Each record is sent
/// at its own event time rounded to the granularity; the watermark is held at the newest event
/// time read minus the allowed lateness, and a record older than that goes out at the
/// watermark, where normalize sees it is late.
struct ChunkReader {
    merger: Merger,
    pacer: Pacer,
    gran: i64,
    lateness: i64,
    max_seen: i64,
    carry: Option<MarketEvent>,
    /// The watermark of the previous chunk.
    cur: i64,
    stats: Arc<Stats>,
    /// A live job: the worker's Kafka partitions, followed without end.
    live: Option<tickflow_sources::kafka::Follower>,
    /// Set on a stop request: reading ends, what was read goes out.
    stop: Option<&'static AtomicBool>,
    /// A live job: the workers' watermarks, so that a worker whose partitions are idle follows
    /// the others instead of holding them back.
    board: Arc<Board>,
    /// This worker.
    index: usize,
    /// A live job's checkpoints: their interval, and where their times are counted from (the
    /// readers tell it the records they read before the first watermark).
    store: Option<Arc<Store>>,
    /// The checkpoint time the watermark last passed (`None` before the first watermark of a
    /// job that does not resume).
    checkpointed: Option<i64>,
    /// Records the follower has skipped so far (counted in the stats).
    skipped: u64,
}

/// What each worker of a live job proposes as its watermark.
struct Board {
    /// Per worker: the watermark its active partitions allow, `i64::MIN` when all are idle.
    active: Vec<std::sync::atomic::AtomicI64>,
    /// Per worker: the newest event time it has read, less the lateness.
    newest: Vec<std::sync::atomic::AtomicI64>,
}

impl Board {
    fn new(workers: usize) -> Self {
        let slots = || {
            (0..workers)
                .map(|_| std::sync::atomic::AtomicI64::new(i64::MIN))
                .collect()
        };
        Self {
            active: slots(),
            newest: slots(),
        }
    }

    /// Worker `me`'s watermark after a chunk, from its partitions' frontier: the oldest event
    /// time its active partitions have reached (held where one has sent nothing yet). A worker
    /// whose partitions are all idle follows the other workers' watermarks (the oldest of the
    /// active ones, else the newest of all), so an idle partition holds nothing back; a record
    /// it sends later that is older than the watermark is late.
    fn hold(
        &self,
        me: usize,
        frontier: tickflow_sources::kafka::Frontier,
        lateness: i64,
        gran: i64,
        cur: i64,
    ) -> i64 {
        let less_lateness = |t: i64| floor(t.saturating_sub(lateness), gran);
        let newest = frontier.newest.map_or(i64::MIN, less_lateness);
        self.newest[me].store(newest, Ordering::Relaxed);
        let hold = match frontier.active {
            Some(i64::MIN) => cur,
            Some(t) => less_lateness(t).max(cur),
            None => {
                let others = self
                    .active
                    .iter()
                    .enumerate()
                    .filter(|(w, _)| *w != me)
                    .map(|(_, a)| a.load(Ordering::Relaxed))
                    .filter(|a| *a != i64::MIN)
                    .min();
                let follow = others.unwrap_or_else(|| {
                    self.newest
                        .iter()
                        .map(|n| n.load(Ordering::Relaxed))
                        .max()
                        .unwrap_or(i64::MIN)
                });
                follow.max(newest).max(cur)
            }
        };
        self.active[me].store(
            if frontier.active.is_some() {
                hold
            } else {
                i64::MIN
            },
            Ordering::Relaxed,
        );
        hold
    }
}

impl ChunkReader {
    /// A live job's chunk: what has arrived, each record at its own event time (or the
    /// watermark, when it is behind it), returned as soon as nothing more is waiting so that
    /// records go on without delay; empty after `LIVE_WAIT` with nothing. The watermark follows
    /// the partitions' [`frontier`](tickflow_sources::kafka::Follower::frontier) less the
    /// allowed lateness.
    fn fill_live(&mut self, chunk: &mut Chunk) {
        let (gran, lateness, cur) = (self.gran, self.lateness, self.cur);
        let stop = self.stopping();
        let Some(follower) = self.live.as_mut() else {
            return;
        };
        chunk.exhausted = false;
        chunk.paced = false;
        chunk.newest = cur;
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let mut read = 0u64;
        if follower.is_empty() || stop {
            follower.flush();
            chunk.exhausted = true;
        } else {
            while chunk.events.len() + chunk.bad.len() < CHUNK {
                let wait = if read == 0 {
                    LIVE_WAIT
                } else {
                    std::time::Duration::ZERO
                };
                let Some(item) = follower.poll(wait) else {
                    break;
                };
                read += 1;
                match item {
                    SourceItem::Event(e) => {
                        let ts = e.ts_event().nanos();
                        let t = floor(ts, gran).max(cur);
                        chunk.newest = chunk.newest.max(t);
                        first = first.min(ts);
                        last = last.max(ts);
                        chunk.events.push((t, e));
                    }
                    SourceItem::Bad(r) => chunk.bad.push(r),
                }
            }
        }
        self.stats.note_read(read, first, last);
        let skipped = follower.skipped();
        if skipped > self.skipped {
            self.stats
                .skipped
                .fetch_add(skipped - self.skipped, Ordering::Relaxed);
            self.skipped = skipped;
        }
        if !chunk.bad.is_empty() {
            // Undecodable messages are in the dead-letter topic before their offsets can be
            // committed.
            follower.flush();
        }
        chunk.hold = self
            .board
            .hold(self.index, follower.frontier(), lateness, gran, cur);
        chunk.positions.clear();
        chunk.positions.extend(follower.positions());
        self.cur = chunk.hold;
        // Each checkpoint time the watermark passed: where the partitions stand for it. Every
        // one is reported, not only the last, because an operator whose input has no step
        // between two of them snapshots at the later one only. They are counted from the
        // first record read: a job that starts on a backlog (a whole day waiting in the topic,
        // read before its partitions' frontiers let the watermark move) checkpoints within
        // it, as its operators do (see [`tickflow_operators::adapter::apply`]).
        chunk.checkpoints.clear();
        let Some(store) = &self.store else { return };
        if self.checkpointed.is_none() && first != i64::MAX {
            store.note_origin(first);
        }
        let every = store.interval();
        if let Some(at) = tickflow_operators::adapter::boundary(chunk.hold, every) {
            match self.checkpointed {
                None => {
                    // From the oldest record any reader has read (this one's included).
                    let start = store.origin().map_or(at, |o| o.min(at));
                    for b in passed_boundaries(start, at, every) {
                        chunk.checkpoints.push((b, follower.checkpoint(b)));
                    }
                    self.checkpointed = Some(at);
                }
                Some(last) if at > last => {
                    for b in passed_boundaries(last, at, every) {
                        chunk.checkpoints.push((b, follower.checkpoint(b)));
                    }
                    self.checkpointed = Some(at);
                }
                Some(_) => {}
            }
        }
    }

    /// The watermark the records read so far allow: the newest event time less the allowed
    /// lateness, rounded to the granularity (`i64::MIN` before the first record).
    fn watermark(&self) -> i64 {
        if self.max_seen == i64::MIN {
            i64::MIN
        } else {
            floor(self.max_seen.saturating_sub(self.lateness), self.gran)
        }
    }

    /// True once a stop has been requested (and noted in the run's stats).
    fn stopping(&self) -> bool {
        let stop = self.stop.is_some_and(|s| s.load(Ordering::Relaxed));
        if stop {
            self.stats.stopped.store(true, Ordering::Relaxed);
        }
        stop
    }

    fn fill(&mut self, chunk: &mut Chunk) {
        if self.live.is_some() {
            return self.fill_live(chunk);
        }
        // On a stop request the input ends here: a record held back by the pacer has been
        // read, so it still goes out, at once.
        let stopping = self.stopping();
        let (gran, cur) = (self.gran, self.cur);
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let mut read = 0u64;
        chunk.exhausted = false;
        chunk.paced = false;
        // The worker hands the events to the dataflow whole, buffer and all.
        chunk.events.reserve(CHUNK);
        while chunk.events.len() + chunk.bad.len() < CHUNK {
            let item = match self.carry.take() {
                Some(e) => SourceItem::Event(e),
                None if stopping => {
                    chunk.exhausted = true;
                    break;
                }
                None => match self.merger.next_item() {
                    Some(item) => {
                        read += 1;
                        item
                    }
                    None => {
                        chunk.exhausted = true;
                        break;
                    }
                },
            };
            match item {
                SourceItem::Event(e) => {
                    let ts = e.ts_event().nanos();
                    let wait = if stopping {
                        std::time::Duration::ZERO
                    } else {
                        self.pacer.delay_for(e.ts_event())
                    };
                    if !wait.is_zero() {
                        self.carry = Some(e);
                        chunk.paced = true;
                        if chunk.events.is_empty() && chunk.bad.is_empty() {
                            std::thread::sleep(wait.min(std::time::Duration::from_millis(20)));
                        }
                        break;
                    }
                    let t = floor(ts, gran).max(self.watermark()).max(cur);
                    self.max_seen = self.max_seen.max(ts);
                    first = first.min(ts);
                    last = last.max(ts);
                    chunk.events.push((t, e));
                }
                SourceItem::Bad(r) => chunk.bad.push(r),
            }
        }
        self.stats.note_read(read, first, last);
        chunk.hold = self.watermark().max(cur);
        self.cur = chunk.hold;
    }
}

/// Starts each partition a checkpoint names at its `resume` offset (partitions it does not
/// name start where the group's committed offsets say).
fn resume_parts(plan: &mut Plan, restored: &Restored) {
    for part in &mut plan.parts {
        if let Part::Kafka {
            config,
            range,
            read_to,
            ..
        } = part
            && let Some(c) = restored
                .partitions
                .iter()
                .find(|c| c.topic == config.topic && c.partition == range.partition)
        {
            range.start = c.resume;
            read_to.store(c.resume, Ordering::Release);
        }
    }
}

/// One worker: builds the dataflow, drives its parts, steps until everything is written.
fn worker_main(worker: &mut timely::worker::Worker, shared: &Shared) -> Result<(), String> {
    let index = worker.index();
    let peers = worker.peers();
    let sinks = if index == 0 {
        shared
            .sinks
            .lock()
            .map_err(|_| "sink set poisoned")?
            .take()
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let probe = ProbeHandle::new();
    let flow = ProbeHandle::new();
    // With checkpoints, every operator the dataflow applies snapshots at their times, and
    // takes back its state when the job resumes.
    let guard = tickflow_operators::adapter::checkpointing(shared.checkpoints.as_ref().map(|s| {
        Rc::new(WorkerCheckpoints {
            store: s.clone(),
            worker: index,
            restored: shared.restored.clone(),
        }) as Rc<dyn tickflow_operators::adapter::Checkpoints>
    }));
    let built = worker.dataflow::<Time, _, _>(|scope| build(scope, shared, sinks, &flow, &probe));
    let checkpointed = guard.operators();
    drop(guard);
    let ((mut events_in, mut events_cap), (mut rejects_in, mut rejects_cap), mut queries) = built?;
    if let Some(store) = &shared.checkpoints {
        let reads = shared
            .plan
            .parts
            .iter()
            .enumerate()
            .any(|(i, _)| i % peers == index);
        store.built(index, checkpointed, reads);
        if let Some(r) = &shared.restored {
            crate::checkpoint::check_shape(r, checkpointed)?;
            if let Some(e) = store.restore_errors().first() {
                return Err(format!(
                    "checkpoint {}: cannot resume: {e}",
                    r.path.display()
                ));
            }
            // Nothing before the checkpoint comes again.
            events_cap.downgrade(&r.at);
            rejects_cap.downgrade(&r.at);
            // A resumed query writes what the first job's query wrote after taking its state,
            // which went into the dataflow after the checkpoint time (see `QueryInput::pump`).
            for q in &mut queries {
                if let Some(cap) = q.cap.as_mut() {
                    cap.downgrade(&r.at);
                }
            }
        }
    }
    let mut caps = Some((events_cap, rejects_cap));
    let stats = &shared.stats;
    let gran = shared.pipeline.granularity.nanos().max(1);
    // Worker 0 feeds the query streams; the others hold nothing back.
    if index == 0 {
        let mut feeds = shared
            .query_feeds
            .lock()
            .map_err(|_| "query feeds poisoned")?
            .take()
            .unwrap_or_default();
        for q in &mut queries {
            q.feed = feeds.remove(&q.name);
            if q.feed.is_none() {
                return Err(format!("query stream {} has no feed", q.name));
            }
        }
    } else {
        for q in &mut queries {
            q.cap = None;
        }
    }

    // This worker's parts, opened on first read by whoever reads (the reader thread where
    // there is one); a part that cannot be opened becomes a reject. A recorded day is opened
    // only when the merge reaches that day.
    let mine = shared
        .plan
        .parts
        .iter()
        .enumerate()
        .filter(|(i, _)| i % peers == index);
    let (merger, live) = if shared.plan.live() {
        let mut follower = tickflow_sources::kafka::Follower::open(mine, &shared.registry)
            .map_err(|e| e.to_string())?;
        if let Some(store) = &shared.checkpoints {
            let resumed = shared
                .restored
                .as_ref()
                .map(|r| (r.at, r.partitions.as_slice()));
            follower
                .set_checkpoints(store.interval(), resumed)
                .map_err(|e| e.to_string())?;
        }
        (Merger::new(Vec::new()), Some(follower))
    } else {
        (Merger::lazy(mine, &shared.registry), None)
    };
    // Reading and parsing run on a thread of their own, a chunk ahead of the dataflow.
    let initial = *caps.as_ref().ok_or("input capability missing")?.0.time();
    let mut reader = ChunkReader {
        merger,
        pacer: Pacer::new(shared.speed),
        gran: shared.pipeline.granularity.nanos().max(1),
        lateness: shared.pipeline.allowed_lateness.nanos(),
        max_seen: i64::MIN,
        carry: None,
        cur: initial,
        stats: shared.stats.clone(),
        live,
        stop: shared.stop,
        board: shared.board.clone(),
        index,
        checkpointed: shared.restored.as_ref().map(|r| r.at),
        store: shared.checkpoints.clone(),
        skipped: 0,
    };
    // A live job: the offsets each chunk reached, until the sinks have processed it.
    let commits = shared
        .commits
        .lock()
        .map_err(|_| "commit channel poisoned")?
        .clone();
    let mut pending: std::collections::VecDeque<(i64, Positions)> = Default::default();
    let mut last_commit = Instant::now();
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Chunk>();
    let first = Chunk::default();
    // A reader thread only where there is a core for it; otherwise the worker reads.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (read_thread, mut inline) = if cores >= 2 * peers {
        let handle = std::thread::Builder::new()
            .name(format!("tickflow:read-{index}"))
            .spawn(move || {
                let mut chunk = first;
                loop {
                    reader.fill(&mut chunk);
                    let done = chunk.exhausted;
                    if full_tx.send(chunk).is_err() || done {
                        return;
                    }
                    chunk = empty_rx.try_recv().unwrap_or_default();
                }
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        (Some(handle), None)
    } else {
        (None, Some((reader, first)))
    };

    let mut prev_hold = i64::MIN;
    while let Some((events_cap, rejects_cap)) = caps.as_mut() {
        let mut chunk = match inline.as_mut() {
            Some((reader, spare)) => {
                let mut chunk = std::mem::take(spare);
                reader.fill(&mut chunk);
                chunk
            }
            // Keep the dataflow moving while the reader works on the next chunk.
            None => loop {
                match full_rx.try_recv() {
                    Ok(c) => break c,
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        if !pump(&mut queries, gran, stats) {
                            worker.step_or_park(Some(READ_WAIT));
                        }
                    }
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        return Err("the reader thread stopped unexpectedly".into());
                    }
                }
            },
        };
        let cur = *events_cap.time();
        // The whole chunk goes out under the current watermark, as one message (the buffer
        // itself, not a copy); each record carries its step.
        if !chunk.events.is_empty() {
            events_in
                .activate()
                .session(&*events_cap)
                .give_container(&mut chunk.events);
            // What timely hands back may be a used buffer.
            chunk.events.clear();
        }
        if !chunk.bad.is_empty() {
            rejects_in
                .activate()
                .session(&*rejects_cap)
                .give_iterator(chunk.bad.drain(..).map(|r| (cur, r)));
        }
        if chunk.exhausted {
            caps = None;
        } else {
            events_cap.downgrade(&chunk.hold);
            rejects_cap.downgrade(&chunk.hold);
            pump(&mut queries, gran, stats);
            worker.step();
            // Flow control: let normalize catch up with the previous chunk (parking, not
            // spinning, while other workers catch up).
            while flow.less_than(&prev_hold) {
                if !pump(&mut queries, gran, stats) {
                    worker.step_or_park(Some(PARK));
                }
            }
            prev_hold = chunk.hold;
            if index == 0 {
                flow.with_frontier(|f| {
                    if let Some(t) = f.first() {
                        stats.watermark.store(*t, Ordering::Relaxed);
                    }
                });
            }
            if chunk.paced {
                worker.step();
            }
            if let Some(store) = &shared.checkpoints {
                for (at, parts) in chunk.checkpoints.drain(..) {
                    store.source(index, at, parts);
                }
            }
            if let Some(tx) = &commits {
                if pending.back().is_none_or(|(_, p)| *p != chunk.positions) {
                    pending.push_back((chunk.newest.max(cur), chunk.positions.clone()));
                }
                if last_commit.elapsed() >= shared.commit_interval {
                    last_commit = Instant::now();
                    if let Some(store) = &shared.checkpoints {
                        store.write_ready(|t| shared.durable.passed(t));
                    }
                    let mut processed = None;
                    while pending
                        .front()
                        .is_some_and(|(t, _)| !probe.less_equal(t) && shared.durable.passed(*t))
                    {
                        processed = pending.pop_front().map(|(_, p)| p);
                    }
                    if let Some(p) = processed {
                        let _ = tx.send(p);
                    }
                }
            }
        }
        match inline.as_mut() {
            Some((_, spare)) => *spare = chunk,
            None => {
                let _ = empty_tx.send(chunk);
            }
        }
    }
    if let Some(handle) = read_thread
        && handle.join().is_err()
    {
        return Err("the reader thread panicked".into());
    }
    // This worker's input is done; park between steps until every sink has finished (and
    // every query stream has ended).
    while !probe.done() {
        if !pump(&mut queries, gran, stats) {
            worker.step_or_park(Some(PARK));
        }
    }
    // A checkpoint that completed but waited for the sinks is written once they have finished.
    if let Some(store) = &shared.checkpoints {
        store.write_ready(|t| shared.durable.passed(t));
    }
    Ok(())
}

/// Progress line: records read, rate, event time reached.
pub fn format_progress(p: &Progress, elapsed: std::time::Duration) -> String {
    let rate = p.read as f64 / elapsed.as_secs_f64().max(1e-9);
    match p.watermark {
        Some(t) => format!(
            "… {} records read ({:.0}/s), {} rejected, event time {t}",
            p.read, rate, p.rejected
        ),
        None => format!(
            "… {} records read ({:.0}/s), {} rejected",
            p.read, rate, p.rejected
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_sources::kafka::Frontier;

    fn frontier(active: Option<i64>, newest: Option<i64>) -> Frontier {
        Frontier { active, newest }
    }

    #[test]
    fn a_live_worker_holds_at_its_slowest_active_partition_and_follows_when_idle() {
        let board = Board::new(2);
        let (lateness, gran) = (10, 5);
        // Worker 0's active partitions have reached 100 (the slowest): 100 - 10 = 90.
        assert_eq!(
            board.hold(0, frontier(Some(100), Some(130)), lateness, gran, 0),
            90
        );
        // An active partition that has sent nothing holds the watermark where it is.
        assert_eq!(
            board.hold(1, frontier(Some(i64::MIN), None), lateness, gran, 40),
            40
        );
        // Worker 1's partitions all idle: it follows worker 0's active watermark, or its own
        // newest when that is later.
        assert_eq!(
            board.hold(1, frontier(None, Some(60)), lateness, gran, 40),
            90
        );
        assert_eq!(
            board.hold(1, frontier(None, Some(203)), lateness, gran, 40),
            190
        );
        // Every worker idle: the newest event time anyone has read.
        assert_eq!(
            board.hold(0, frontier(None, Some(130)), lateness, gran, 90),
            190
        );
        // Never backwards.
        assert_eq!(
            board.hold(0, frontier(Some(50), Some(130)), lateness, gran, 190),
            190
        );
    }
}
