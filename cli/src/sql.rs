//! The SQL side of the command: the engine of a running job (its `[[query]]`s and the Flight
//! SQL endpoint), and `tickflow sql`, the client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use tickflow_pipelines::{Pipeline, QueryDef as PipelineQuery, SinkKind, stream_schemas};
use tickflow_sinks::StreamTap;
use tickflow_sql::output::{Discard, Jsonl, Parquet, QueryOutput, Stdout};
use tickflow_sql::{QueryDef, Retention, SqlEngine, flight};

/// Result rows printed per query by a `stdout` query sink when the pipeline sets no limit.
const STDOUT_ROWS: u64 = 50;

/// SQL settings of `tickflow run`.
pub struct SqlSettings {
    /// Serve Flight SQL here.
    pub listen: Option<SocketAddr>,
    /// Event-time history kept per stream, in seconds.
    pub retention_secs: u64,
}

/// The engine of a running job, with its streams declared.
pub struct Job {
    /// The engine.
    pub engine: Arc<SqlEngine>,
    /// Where Flight SQL answers, if it does.
    pub address: Option<SocketAddr>,
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

/// Plans every `[[query]]` of the pipeline against its streams; all problems at once.
pub fn check_queries(pipeline: &Pipeline, origin: &str) -> Result<()> {
    if pipeline.queries.is_empty() {
        return Ok(());
    }
    let engine = engine_for(pipeline, 60)?;
    let errors: Vec<String> = pipeline
        .queries
        .iter()
        .filter_map(|q| {
            let e = engine.handle().block_on(engine.plan(def(q))).err()?;
            Some(format!(
                "{origin}: {e} (lines within the query; its SQL starts on line {} of the file)",
                q.sql_line
            ))
        })
        .collect();
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// Starts the SQL engine of a job when it has queries or serves SQL; `None` otherwise.
pub fn start(
    pipeline: &Pipeline,
    origin: &str,
    settings: &SqlSettings,
    output_dir: &Path,
) -> Result<Option<Job>> {
    if pipeline.queries.is_empty() && settings.listen.is_none() {
        return Ok(None);
    }
    let engine = engine_for(pipeline, settings.retention_secs)?;
    check_queries(pipeline, origin)?;
    for q in &pipeline.queries {
        let query = engine.handle().block_on(engine.plan(def(q)))?;
        let dir = q.dir.clone().unwrap_or_else(|| output_dir.to_path_buf());
        if matches!(q.sink, SinkKind::Jsonl | SinkKind::Parquet) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let output: Box<dyn QueryOutput> = match q.sink {
            SinkKind::Stdout { limit } => Box::new(Stdout::new(
                &q.name,
                usize::try_from(limit.unwrap_or(STDOUT_ROWS)).unwrap_or(usize::MAX),
            )),
            SinkKind::Jsonl => Box::new(Jsonl::create(&dir, &q.name)?),
            SinkKind::Parquet => Box::new(Parquet::create(&dir, &q.name, query.schema().clone())?),
            SinkKind::Discard => Box::new(Discard),
        };
        engine.start(query, output)?;
    }
    let address = match settings.listen {
        Some(addr) => {
            let bound = flight::spawn(engine.clone(), addr)?;
            eprintln!("tickflow: Arrow Flight SQL on {bound}");
            Some(bound)
        }
        None => None,
    };
    Ok(Some(Job { engine, address }))
}

impl Job {
    /// The tap the pipeline feeds.
    pub fn tap(&self) -> Arc<dyn StreamTap> {
        self.engine.hub().clone()
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
                let empty = arrow_array::RecordBatch::new_empty(schema);
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
