//! Where a continuous query's results go: a file (JSON Lines or Parquet), the terminal, a
//! channel (Flight SQL clients, tests), or nowhere.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;

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

/// JSON Lines, one object per result row, in `dir/<name>.jsonl`.
pub struct Jsonl {
    name: String,
    writer: arrow_json::LineDelimitedWriter<BufWriter<File>>,
}

impl std::fmt::Debug for Jsonl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jsonl").field("name", &self.name).finish()
    }
}

impl Jsonl {
    /// Creates (truncates) `dir/<name>.jsonl`.
    pub fn create(dir: &Path, name: &str) -> Result<Self, SqlError> {
        let path = dir.join(format!("{name}.jsonl"));
        let file = File::create(&path).map_err(|e| SqlError::Sink {
            sink: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            name: path.display().to_string(),
            writer: arrow_json::LineDelimitedWriter::new(BufWriter::new(file)),
        })
    }
}

impl QueryOutput for Jsonl {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.writer.write(batch).map_err(|e| SqlError::Sink {
            sink: self.name.clone(),
            reason: e.to_string(),
        })
    }
    fn finish(&mut self) -> Result<(), SqlError> {
        let err = |e: String| SqlError::Sink {
            sink: self.name.clone(),
            reason: e,
        };
        self.writer.finish().map_err(|e| err(e.to_string()))?;
        self.writer
            .get_mut()
            .flush()
            .map_err(|e| err(e.to_string()))
    }
}

/// Parquet, in `dir/<name>.parquet`.
pub struct Parquet {
    name: String,
    writer: Option<ArrowWriter<File>>,
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
        let err = |e: String| SqlError::Sink {
            sink: path.display().to_string(),
            reason: e,
        };
        let file = File::create(&path).map_err(|e| err(e.to_string()))?;
        let writer = ArrowWriter::try_new(file, schema, None).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            name: path.display().to_string(),
            writer: Some(writer),
        })
    }
}

impl QueryOutput for Parquet {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        w.write(batch).map_err(|e| SqlError::Sink {
            sink: self.name.clone(),
            reason: e.to_string(),
        })
    }
    fn finish(&mut self) -> Result<(), SqlError> {
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| SqlError::Sink {
                sink: self.name.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
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
