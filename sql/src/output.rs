//! Where a continuous query's results go: a file (JSON Lines or Parquet), the terminal, a
//! channel (Flight SQL clients, tests), or nowhere.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tickflow_sinks::ParquetOutput;

use crate::error::SqlError;

/// Receives a continuous query's result batches.
pub trait QueryOutput: Send {
    /// Writes one batch of results.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError>;
    /// The query has taken in every input row with an event time below `t` and written what
    /// they closed (called after the results of each step; never with `i64::MAX`).
    fn watermark(&mut self, _t: i64) -> Result<(), SqlError> {
        Ok(())
    }
    /// Called once when the query ends.
    fn finish(&mut self) -> Result<(), SqlError> {
        Ok(())
    }
    /// A live job: makes the results written so far durable where the output can (on disk);
    /// [`QueryOutput::durable`] says whether they all are now.
    fn flush(&mut self) -> Result<(), SqlError> {
        Ok(())
    }
    /// Whether every result written so far is durable after the last flush: an output that
    /// makes results durable in larger steps (rolled Parquet parts) says `false` until it has.
    fn durable(&self) -> bool {
        true
    }
    /// Outputs a resumed live job goes on with: how far they are with every result written so
    /// far (a JSON Lines file's length, the rows of rolled Parquet parts).
    fn position(&self) -> Option<u64> {
        None
    }
    /// Outputs a resumed live job goes on with from more than a position (a Kafka topic: its
    /// producer's state, `tickflow_sinks::kafka::TopicProducer::state`), with every result
    /// written so far.
    fn resume_state(&self) -> Option<Vec<u8>> {
        None
    }
    /// A live job: the query has taken its state for checkpoint time `at`, with every input row
    /// before `at` taken in; what it writes from now on, a job resumed from that checkpoint
    /// writes again. An output that feeds the dataflow (a query stream) hands its later rows
    /// on at or after `at`, so that they fall after the checkpoint's cut there too.
    fn checkpoint(&mut self, _at: i64) -> Result<(), SqlError> {
        Ok(())
    }
}

/// Keeps every batch in memory (tests, small results).
#[derive(Debug, Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<RecordBatch>>>);

impl Collect {
    /// The batches so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl QueryOutput for Collect {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(batch.clone());
        Ok(())
    }
}

/// Discards the results (the query still runs, for its counters).
#[derive(Debug, Default)]
pub struct Discard;

impl QueryOutput for Discard {
    fn write(&mut self, _batch: &RecordBatch) -> Result<(), SqlError> {
        Ok(())
    }
}

/// Prints each batch as a table, at most `limit` rows in all.
#[derive(Debug)]
pub struct Stdout {
    name: String,
    limit: usize,
    printed: usize,
}

impl Stdout {
    /// Prints results of query `name`.
    pub fn new(name: &str, limit: usize) -> Self {
        Self {
            name: name.to_string(),
            limit,
            printed: 0,
        }
    }
}

impl QueryOutput for Stdout {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        if self.printed >= self.limit {
            return Ok(());
        }
        let n = batch.num_rows().min(self.limit - self.printed);
        self.printed += n;
        let text = arrow_cast::pretty::pretty_format_batches(&[batch.slice(0, n)])?;
        println!("[{}]\n{text}", self.name);
        Ok(())
    }
}

/// Counts the bytes written through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// How a file output starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Afresh: an existing file is replaced (a replay).
    Afresh,
    /// After what a previous run of a live job wrote: JSON Lines after its complete lines,
    /// Parquet after its closed parts.
    After,
    /// Where a checkpoint left it: at this length (JSON Lines) or this many rows (Parquet).
    At(u64),
}

/// JSON Lines, one object per result row, in `dir/<name>.jsonl`.
pub struct Jsonl {
    name: String,
    writer: arrow_json::LineDelimitedWriter<Counting<BufWriter<File>>>,
}

impl std::fmt::Debug for Jsonl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jsonl").field("name", &self.name).finish()
    }
}

impl Jsonl {
    /// Creates (truncates) `dir/<name>.jsonl`.
    pub fn create(dir: &Path, name: &str) -> Result<Self, SqlError> {
        Self::open(dir, name, Start::Afresh)
    }

    /// Opens `dir/<name>.jsonl` as `start` says.
    pub fn open(dir: &Path, name: &str, start: Start) -> Result<Self, SqlError> {
        let path = dir.join(format!("{name}.jsonl"));
        let opened = match start {
            Start::Afresh => File::create(&path)
                .map(|f| (f, 0))
                .map_err(|e| e.to_string()),
            Start::After => tickflow_sinks::jsonl::reopen(&path, None).map_err(|e| e.to_string()),
            Start::At(length) => {
                tickflow_sinks::jsonl::reopen(&path, Some(length)).map_err(|e| e.to_string())
            }
        };
        let (file, bytes) = opened.map_err(|reason| SqlError::Sink {
            sink: path.display().to_string(),
            reason,
        })?;
        let out = Counting {
            inner: BufWriter::new(file),
            bytes,
        };
        Ok(Self {
            name: path.display().to_string(),
            writer: arrow_json::LineDelimitedWriter::new(out),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> SqlError {
        SqlError::Sink {
            sink: self.name.clone(),
            reason: e.to_string(),
        }
    }
}

impl QueryOutput for Jsonl {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.writer.write(batch).map_err(|e| self.error(e))
    }
    fn flush(&mut self) -> Result<(), SqlError> {
        self.writer.get_mut().flush().map_err(|e| self.error(e))
    }
    fn position(&self) -> Option<u64> {
        // The writer hands each batch on whole: every result written so far is counted.
        Some(self.writer.get_ref().bytes)
    }
    fn finish(&mut self) -> Result<(), SqlError> {
        self.writer.finish().map_err(|e| self.error(e))?;
        QueryOutput::flush(self)
    }
}

/// Parquet: `dir/<name>.parquet`, or for a live job rolled parts in `dir/<name>/` (see
/// [`tickflow_sinks::ParquetOutput`]).
pub struct Parquet {
    name: String,
    schema: SchemaRef,
    out: ParquetOutput,
}

impl std::fmt::Debug for Parquet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parquet").field("name", &self.name).finish()
    }
}

impl Parquet {
    /// Creates (truncates) `dir/<name>.parquet` for results of `schema`.
    pub fn create(dir: &Path, name: &str, schema: SchemaRef) -> Result<Self, SqlError> {
        let path = dir.join(format!("{name}.parquet"));
        Self::new(&path, schema, ParquetOutput::create(dir, name))
    }

    fn new(
        path: &Path,
        schema: SchemaRef,
        out: tickflow_sinks::Result<ParquetOutput>,
    ) -> Result<Self, SqlError> {
        let name = path.display().to_string();
        match out {
            Ok(out) => Ok(Self { name, schema, out }),
            Err(e) => Err(SqlError::Sink {
                sink: name,
                reason: e.to_string(),
            }),
        }
    }

    /// Rolled parts in `dir/<name>/`, each open for at least `roll`: after the closed parts
    /// there ([`Start::After`]) or keeping the rows a checkpoint counted ([`Start::At`]).
    pub fn rolling(
        dir: &Path,
        name: &str,
        schema: SchemaRef,
        roll: std::time::Duration,
        start: Start,
    ) -> Result<Self, SqlError> {
        let resume = match start {
            Start::At(rows) => Some(rows),
            Start::After | Start::Afresh => None,
        };
        let out = ParquetOutput::rolling(dir, name, roll, resume);
        Self::new(&dir.join(name), schema, out)
    }

    fn error(&self, e: impl std::fmt::Display) -> SqlError {
        SqlError::Sink {
            sink: self.name.clone(),
            reason: e.to_string(),
        }
    }
}

impl QueryOutput for Parquet {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.out.write(batch).map_err(|e| self.error(e))
    }
    fn flush(&mut self) -> Result<(), SqlError> {
        if self.out.due() {
            self.out.close_part().map_err(|e| self.error(e))?;
        }
        Ok(())
    }
    fn durable(&self) -> bool {
        self.out.durable()
    }
    fn position(&self) -> Option<u64> {
        self.out.position()
    }
    fn finish(&mut self) -> Result<(), SqlError> {
        self.out
            .finish(self.schema.clone())
            .map(drop)
            .map_err(|e| self.error(e))
    }
}

/// How long a remote client may leave results unread before its query is stopped.
pub const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends batches to a channel (a remote client); the query stops when the receiver is gone or
/// has not taken a batch for [`CLIENT_TIMEOUT`].
#[derive(Debug)]
pub struct Channel {
    tx: tokio::sync::mpsc::Sender<RecordBatch>,
}

impl Channel {
    /// Results go to `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<RecordBatch>) -> Self {
        Self { tx }
    }
}

impl QueryOutput for Channel {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
        let mut item = batch.clone();
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    return Err(SqlError::Transport("the client hung up".into()));
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(SqlError::Transport(format!(
                            "the client read no results for {} s",
                            CLIENT_TIMEOUT.as_secs()
                        )));
                    }
                    item = back;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }
}
