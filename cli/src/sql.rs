//! The SQL side of the command: the engine of a running job (its `[[query]]`s and the Flight
//! SQL endpoint), and `tickflow sql`, the client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use anyhow::{Context, Result, bail};
use arrow_array::Array;
use arrow_array::RecordBatch;
use tickflow_pipelines::checkpoint::Store;
use tickflow_pipelines::{
    Durable, FeedEvent, Pipeline, QueryDef as PipelineQuery, QueryFeeds, QuerySink, Recovery,
    SinkKind, row_columns, stream_schemas,
};
use tickflow_sinks::StreamTap;
use tickflow_sinks::kafka::TopicProducer;
use tickflow_sql::checkpoint::Taken;
use tickflow_sql::fold::FOLD_ROWS;
use tickflow_sql::output::{Discard, Jsonl, Parquet, QueryOutput, Start, Stdout};
use tickflow_sql::{ContinuousQuery, QueryDef, QueryHooks, Retention, SqlEngine, SqlError, flight};

/// Result rows printed per query by a `stdout` query sink when the pipeline sets no limit.
const STDOUT_ROWS: u64 = 50;

/// SQL settings of `tickflow run`.
pub struct SqlSettings {
    /// Serve Flight SQL here.
    pub listen: Option<SocketAddr>,
    /// Event-time history kept per stream, in seconds.
    pub retention_secs: u64,
}

/// What the queries of a live job (one following Kafka topics) share with the job.
pub struct Live<'a> {
    /// How often the outputs flush (as often as the job's sinks).
    pub flush_every: std::time::Duration,
    /// Where each query's output says how far its results are durable.
    pub durable: &'a Arc<Durable>,
    /// The job's checkpoints, when it takes them.
    pub recovery: Option<&'a Recovery>,
}

/// The name under which a checkpoint keeps the state of query `name`.
fn query_state(name: &str) -> String {
    format!("query-{name}")
}

/// The name under which a checkpoint keeps the state of query `name`'s output, when it has
/// one besides a position (a Kafka topic's producer).
fn output_state(name: &str) -> String {
    format!("query-{name}/output")
}

/// A live job's query: its checkpoints go to the job's store, its durability to the job.
struct Hooks {
    /// The name of its state in a checkpoint.
    state: String,
    /// Its output file (by the name a checkpoint notes its position under), if it has one.
    file: Option<String>,
    /// The name of its output's state in a checkpoint, if the output keeps one.
    output: Option<String>,
    store: Option<Arc<Store>>,
    durable: Arc<Durable>,
    slot: usize,
    flush_every: std::time::Duration,
}

impl QueryHooks for Hooks {
    fn flush_every(&self) -> std::time::Duration {
        self.flush_every
    }
    /// The job writes at most one checkpoint per commit (every other flush): the queries take
    /// their state for at most one checkpoint time per flush interval, the same times.
    fn begin(&mut self, at: i64) -> bool {
        self.store
            .as_ref()
            .is_some_and(|s| s.join(at, self.flush_every))
    }
    fn give_up(&mut self, at: i64) {
        if let Some(store) = &self.store {
            store.leave(at);
        }
    }
    fn checkpoint(
        &mut self,
        at: i64,
        (state, took): Taken,
        position: Option<u64>,
        output_state: Option<Vec<u8>>,
    ) {
        if let Some(store) = &self.store {
            store.snapshot_took(took);
            if let (Some(file), Some(p)) = (&self.file, position) {
                store.file_position(file, at, p);
            }
            if let (Some(name), Some(s)) = (&self.output, output_state) {
                store.sink_state_at(name, at, Ok(s));
            }
            store.sink_state_at(&self.state, at, state);
        }
    }
    fn durable(&mut self, t: i64) {
        self.durable.set(self.slot, t);
    }
}

/// The hooks of query `name` of a live job, whose output file (by the name a checkpoint notes
/// its position under) is `file`, and whose output keeps a state of its own if `kept` (a Kafka
/// topic); with checkpoints, the query's state is restored from the one the job resumes from,
/// and the checkpoints wait for its state and its output's position or state.
fn hooks_for(
    name: &str,
    query: &mut ContinuousQuery,
    file: Option<String>,
    kept: bool,
    live: &Live<'_>,
) -> Result<Box<dyn QueryHooks>> {
    let state = query_state(name);
    let store = live.recovery.map(|r| r.store.clone());
    if let Some(r) = live.recovery.and_then(|r| r.restored.as_deref()) {
        let bytes = r.sink_state(&state)?;
        query
            .restore(bytes)
            .with_context(|| format!("resuming from the checkpoint in {}", r.path.display()))?;
    }
    let output = kept.then(|| output_state(name));
    if let Some(store) = &store {
        store.sink_state(&state);
        if let Some(f) = &file {
            store.file_sink(f);
        }
        if let Some(o) = &output {
            store.sink_state(o);
        }
    }
    Ok(Box::new(Hooks {
        state,
        file,
        output,
        store,
        durable: live.durable.clone(),
        slot: live.durable.register(),
        flush_every: live.flush_every,
    }))
}

/// The engine of a running job, with its streams declared.
pub struct Job {
    /// The engine.
    pub engine: Arc<SqlEngine>,
    /// Where Flight SQL answers, if it does.
    pub address: Option<SocketAddr>,
    /// The results of the queries whose output is a stream, for the dataflow.
    pub feeds: QueryFeeds,
    /// The names of the pipeline's queries.
    queries: Vec<String>,
}

/// A query's results to a Kafka topic: one JSON object per row (as the `jsonl` query sink
/// writes it), keyed by the row's `symbol` when it has one, else by the query's name.
struct ToKafka {
    name: String,
    producer: TopicProducer,
}

impl ToKafka {
    fn error(&self, e: impl std::fmt::Display) -> SqlError {
        SqlError::Sink {
            sink: format!("kafka topic {}", self.producer.topic()),
            reason: e.to_string(),
        }
    }
}

impl QueryOutput for ToKafka {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        let mut lines = Vec::new();
        {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut lines);
            w.write(batch).map_err(|e| self.error(e))?;
            w.finish().map_err(|e| self.error(e))?;
        }
        let symbols = match batch.column_by_name("symbol") {
            Some(c) => Some(
                arrow_cast::cast(c, &arrow_schema::DataType::Utf8).map_err(|e| self.error(e))?,
            ),
            None => None,
        };
        let symbols = symbols
            .as_ref()
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>());
        for (i, line) in lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let key = match symbols {
                Some(s) if s.is_valid(i) => s.value(i),
                _ => self.name.as_str(),
            };
            self.producer
                .send(key.as_bytes(), line)
                .map_err(|e| SqlError::Sink {
                    sink: format!("query {}", self.name),
                    reason: e.to_string(),
                })?;
        }
        self.producer.poll();
        Ok(())
    }
    /// Waits until the brokers have acknowledged every result sent.
    fn flush(&mut self) -> Result<(), SqlError> {
        self.producer.flush().map_err(|e| self.error(e))
    }
    /// A resumed job's results are sent once: see `tickflow_sinks::kafka`.
    fn resume_state(&self) -> Option<Vec<u8>> {
        self.producer.state()
    }
    fn finish(&mut self) -> Result<(), SqlError> {
        self.producer
            .finish()
            .map(drop)
            .map_err(|e| SqlError::Sink {
                sink: format!("query {}", self.name),
                reason: e.to_string(),
            })
    }
}

/// A query's results on their way into the dataflow (`sink = "stream"`). The channel is
/// unbounded: the query must never wait for the dataflow, which may itself be waiting for the
/// query's input to be taken (see `tickflow_pipelines::query_stream`).
struct ToStream {
    name: String,
    tx: Sender<FeedEvent>,
}

impl ToStream {
    fn send(&self, event: FeedEvent) -> Result<(), SqlError> {
        self.tx.send(event).map_err(|_| SqlError::Sink {
            sink: format!("stream {}", self.name),
            reason: "the pipeline has stopped".into(),
        })
    }
}

impl QueryOutput for ToStream {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.send(FeedEvent::Rows(batch.clone()))
    }
    fn watermark(&mut self, t: i64) -> Result<(), SqlError> {
        self.send(FeedEvent::Watermark(t))
    }
    /// Every input row before `at` is taken in: later rows go into the dataflow at or after it.
    fn checkpoint(&mut self, at: i64) -> Result<(), SqlError> {
        self.send(FeedEvent::Watermark(at))
    }
    fn finish(&mut self) -> Result<(), SqlError> {
        self.send(FeedEvent::End)
    }
}

fn engine_for(pipeline: &Pipeline, retention_secs: u64) -> Result<Arc<SqlEngine>> {
    let retention = Retention {
        span_ns: i64::try_from(retention_secs)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
            .context("--sql-retention is too large")?,
        ..Retention::default()
    };
    let engine = Arc::new(SqlEngine::new(retention)?);
    for s in stream_schemas(pipeline) {
        engine.hub().declare(&s.name, s.schema, s.time_column)?;
    }
    Ok(engine)
}

fn def(q: &PipelineQuery) -> QueryDef {
    QueryDef {
        name: q.name.clone(),
        sql: q.sql.clone(),
        lateness_ns: q.lateness.nanos(),
    }
}

/// Plans every `[[query]]` of the pipeline against its streams, in file order; all problems
/// at once. A query whose results are a stream gets its columns recorded in the pipeline and
/// its table declared, so the queries after it can read it; it may not read a stream that
/// depends on its own results.
fn plan_all(
    engine: &SqlEngine,
    pipeline: &mut Pipeline,
    origin: &str,
) -> Result<Vec<ContinuousQuery>> {
    let mut planned = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    // Query stream -> the streams its query reads.
    let mut reads: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for q in pipeline.queries.clone() {
        let at = |e: &dyn std::fmt::Display| {
            format!(
                "{origin}: {e} (lines within the query; its SQL starts on line {} of the file)",
                q.sql_line
            )
        };
        let query = match engine.handle().block_on(engine.plan(def(&q))) {
            Ok(mut query) => {
                query.fold_at(match q.fold_rows {
                    None => Some(FOLD_ROWS),
                    Some(0) => None,
                    Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                });
                query
            }
            Err(e) => {
                let hint = if pipeline.stream_query(&q.name).is_some()
                    || !e.to_string().contains("not found")
                {
                    String::new()
                } else {
                    " (a query reads the streams of the queries declared before it)".into()
                };
                errors.push(format!("{}{hint}", at(&e)));
                continue;
            }
        };
        if q.sink == QuerySink::Stream {
            let mut problem = None;
            let downstream = pipeline.downstream_of(&q.name, &reads);
            if let Some(cycle) = query.streams().iter().find(|s| downstream.contains(*s)) {
                problem = Some(format!(
                    "query {}: it reads `{cycle}`, which is computed from its own results; a \
                     query stream cannot feed itself",
                    q.name
                ));
            }
            match row_columns(&q.name, query.schema(), q.time.as_deref()) {
                Ok(columns) if problem.is_none() => {
                    if let Err(e) = pipeline.set_query_columns(&q.name, columns) {
                        problem = Some(e);
                    }
                }
                Ok(_) => {}
                Err(e) => problem = Some(e),
            }
            if let Some(p) = problem {
                errors.push(at(&p));
                continue;
            }
            reads.insert(q.name.clone(), query.streams().to_vec());
            if let Some(s) = stream_schemas(pipeline)
                .into_iter()
                .find(|s| s.name == q.name)
            {
                engine.hub().declare(&s.name, s.schema, s.time_column)?;
            }
        }
        planned.push(query);
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(planned)
}

/// Plans every `[[query]]` of the pipeline against its streams, all problems at once, and
/// records the columns of the query streams in `pipeline`.
pub fn check_queries(pipeline: &mut Pipeline, origin: &str) -> Result<()> {
    if pipeline.queries.is_empty() {
        return Ok(());
    }
    let engine = engine_for(pipeline, 60)?;
    plan_all(&engine, pipeline, origin).map(drop)
}

/// Starts the SQL engine of a job when it has queries or serves SQL; `None` otherwise. The
/// columns of the query streams are recorded in `pipeline`. The queries of a live job (`live`)
/// go on with the files a previous run wrote, say how far their results are durable, and with
/// checkpoints take theirs and resume from them.
pub fn start(
    pipeline: &mut Pipeline,
    origin: &str,
    settings: &SqlSettings,
    output_dir: &Path,
    live: Option<Live<'_>>,
) -> Result<Option<Job>> {
    if pipeline.queries.is_empty() && settings.listen.is_none() {
        return Ok(None);
    }
    let engine = engine_for(pipeline, settings.retention_secs)?;
    let feeds = QueryFeeds::default();
    for query in plan_all(&engine, pipeline, origin)? {
        let name = query.def().name.clone();
        let q = pipeline
            .queries
            .iter()
            .find(|q| q.name == name)
            .context("a planned query is not in the pipeline")?;
        let dir = q.dir.clone().unwrap_or_else(|| output_dir.to_path_buf());
        if matches!(q.sink, QuerySink::Sink(SinkKind::Jsonl | SinkKind::Parquet)) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let restored = live
            .as_ref()
            .and_then(|l| l.recovery)
            .and_then(|r| r.restored.as_deref());
        // A file output: the name a checkpoint notes its position under (as the sinks'), and
        // where it starts.
        let file = match &q.sink {
            QuerySink::Sink(SinkKind::Jsonl) => Some(dir.join(format!("{}.jsonl", q.name))),
            QuerySink::Sink(SinkKind::Parquet) if live.is_some() => Some(dir.join(&q.name)),
            _ => None,
        }
        .map(|p| p.display().to_string());
        // The state first: a checkpoint that cannot be resumed from leaves the files as they are.
        let mut query = query;
        let to_kafka = matches!(q.sink, QuerySink::Sink(SinkKind::Kafka { .. }));
        let hooks = match &live {
            Some(l) => Some(hooks_for(&q.name, &mut query, file.clone(), to_kafka, l)?),
            None => None,
        };
        let start = match (&file, restored) {
            (Some(f), Some(r)) if r.files.contains_key(f) => Start::At(r.files[f]),
            // A live job never drops what it wrote before: its input was committed.
            _ if live.is_some() => Start::After,
            _ => Start::Afresh,
        };
        let output: Box<dyn QueryOutput> = match &q.sink {
            QuerySink::Sink(SinkKind::Stdout { limit }) => Box::new(Stdout::new(
                &q.name,
                usize::try_from(limit.unwrap_or(STDOUT_ROWS)).unwrap_or(usize::MAX),
            )),
            QuerySink::Sink(SinkKind::Jsonl) => Box::new(Jsonl::open(&dir, &q.name, start)?),
            QuerySink::Sink(SinkKind::Parquet) if live.is_some() => Box::new(Parquet::rolling(
                &dir,
                &q.name,
                query.schema().clone(),
                q.roll.to_std(),
                start,
            )?),
            QuerySink::Sink(SinkKind::Parquet) => {
                Box::new(Parquet::create(&dir, &q.name, query.schema().clone())?)
            }
            QuerySink::Sink(SinkKind::Discard) => Box::new(Discard),
            QuerySink::Sink(SinkKind::Kafka {
                brokers,
                topic,
                partitions,
            }) => {
                let topic = tickflow_pipelines::config::kafka_topic(topic, &q.name);
                let brokers = tickflow_sinks::kafka::brokers(brokers.as_deref());
                let producer = tickflow_pipelines::checkpoint::kafka_producer(
                    (&brokers, &topic, *partitions),
                    live.as_ref().is_some_and(|l| l.recovery.is_some()),
                    restored,
                    &output_state(&q.name),
                    &format!("query {}", q.name),
                )?;
                Box::new(ToKafka {
                    name: q.name.clone(),
                    producer,
                })
            }
            QuerySink::Stream => Box::new(ToStream {
                name: q.name.clone(),
                tx: feeds.open(&q.name),
            }),
        };
        engine.start_with(query, output, hooks)?;
    }
    let address = match settings.listen {
        Some(addr) => {
            let bound = flight::spawn(engine.clone(), addr)?;
            eprintln!("tickflow: Arrow Flight SQL on {bound}");
            Some(bound)
        }
        None => None,
    };
    Ok(Some(Job {
        engine,
        address,
        feeds,
        queries: pipeline.queries.iter().map(|q| q.name.clone()).collect(),
    }))
}

impl Job {
    /// The tap the pipeline feeds.
    pub fn tap(&self) -> Arc<dyn StreamTap> {
        self.engine.hub().clone()
    }

    /// What the run calls before its last commit: waits for the queries to finish, and says
    /// which of the pipeline's queries failed (a client's query over Flight SQL that fails does
    /// not hold the commit back).
    pub fn settle(&self) -> tickflow_pipelines::Settle {
        let (engine, names) = (self.engine.clone(), self.queries.clone());
        Arc::new(move || {
            let failed: Vec<String> = engine
                .wait()
                .into_iter()
                .filter(|q| names.contains(&q.name))
                .filter_map(|q| {
                    let e = q.stats.error.lock().unwrap_or_else(|p| p.into_inner());
                    e.as_ref().map(|e| format!("query {} failed: {e}", q.name))
                })
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join("; "))
            }
        })
    }

    /// Waits for the queries to finish and prints their counters; false if one failed.
    pub fn finish(&self) -> bool {
        let mut ok = true;
        for q in self.engine.wait() {
            let failed = q
                .stats
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            ok &= !failed;
            println!("{}", q.stats.summary(&q.name));
        }
        for e in self.engine.hub().errors() {
            println!("sql: {e}");
            ok = false;
        }
        ok
    }
}

/// `tickflow sql`: runs a statement on a job's Flight SQL endpoint and prints the result.
pub fn query_command(connect: &str, statement: &str, continuous: bool) -> Result<bool> {
    let statement = if continuous && flight::continuous_part(statement).is_none() {
        format!("{} {statement}", flight::CONTINUOUS)
    } else {
        statement.to_string()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    rt.block_on(async {
        let mut client = flight::Client::connect(connect).await?;
        if flight::continuous_part(&statement).is_some() {
            let rows = std::sync::atomic::AtomicU64::new(0);
            client
                .run(&statement, |b| {
                    rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    match arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(b)) {
                        Ok(t) => println!("{t}"),
                        Err(e) => eprintln!("error: cannot print a batch: {e}"),
                    }
                    true
                })
                .await?;
            eprintln!("{} rows", rows.load(Ordering::Relaxed));
        } else {
            let (schema, batches) = client.query(&statement).await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if batches.is_empty() {
                let empty = RecordBatch::new_empty(schema);
                println!("{}", arrow_cast::pretty::pretty_format_batches(&[empty])?);
            } else {
                println!("{}", arrow_cast::pretty::pretty_format_batches(&batches)?);
            }
            eprintln!("{rows} row{}", if rows == 1 { "" } else { "s" });
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(true)
}
