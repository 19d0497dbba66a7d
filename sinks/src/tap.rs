//! A tap on a running pipeline: every stream as Arrow batches, in event-time order, with its
//! watermark — what the SQL layer turns into tables. The tap is a sink like the others, so
//! it receives exactly what the file sinks receive.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tickflow_core::{InstrumentRegistry, Timestamp};

use crate::{Error, Result, Sink, SinkRecord};

/// Receives streams from a running pipeline (from one thread per stream).
pub trait StreamTap: Send + Sync {
    /// Announces a stream, its columns and its event-time column, before any batch.
    fn declare(
        &self,
        stream: &str,
        schema: SchemaRef,
        time_column: &str,
    ) -> std::result::Result<(), String>;
    /// Rows of a stream, in event-time order.
    fn batch(&self, stream: &str, batch: RecordBatch);
    /// No later row of the stream has an event time below `watermark` (nanoseconds).
    fn watermark(&self, stream: &str, watermark: i64);
    /// The stream has ended.
    fn finish(&self, stream: &str);
    /// A live job with checkpoints: the stream has reached checkpoint time `at` (every row
    /// before it has been handed on, none at or after it).
    fn checkpoint(&self, _stream: &str, _at: i64) {}
}

/// The event-time column of a stream's schema: `ts_event`, or `end` for bars and indicator
/// rows.
pub fn time_column(schema: &SchemaRef) -> Option<&'static str> {
    ["ts_event", "end"]
        .into_iter()
        .find(|c| schema.index_of(c).is_ok())
}

/// Rows a tap sink gathers before it hands them on.
const FLUSH_ROWS: usize = 8192;
/// The longest a tap sink holds rows or a watermark back, in wall-clock time.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// A sink that hands batches to a [`StreamTap`]. The dataflow delivers a stream one event-time
/// step at a time (a millisecond by default), often a handful of rows; the sink gathers steps
/// into batches of up to [`FLUSH_ROWS`] rows, holding rows and the watermark back at most
/// [`FLUSH_AFTER`], so queries see few large batches instead of many tiny ones.
pub struct TapSink<T> {
    tap: Arc<dyn StreamTap>,
    stream: String,
    registry: Arc<InstrumentRegistry>,
    rows: u64,
    buffer: Vec<T>,
    watermark: Option<i64>,
    last_flush: std::time::Instant,
}

impl<T> TapSink<T> {
    /// Taps stream `stream`.
    pub fn new(tap: Arc<dyn StreamTap>, stream: &str, registry: Arc<InstrumentRegistry>) -> Self {
        Self {
            tap,
            stream: stream.to_string(),
            registry,
            rows: 0,
            buffer: Vec::new(),
            watermark: None,
            last_flush: std::time::Instant::now(),
        }
    }
}

impl<T: SinkRecord> TapSink<T> {
    /// Hands on the gathered rows, then the watermark.
    fn flush(&mut self) -> Result<()> {
        self.last_flush = std::time::Instant::now();
        if !self.buffer.is_empty() {
            let batch =
                T::to_record_batch(&self.buffer, &self.registry).map_err(|e| Error::Encode {
                    path: format!("tap:{}", self.stream).into(),
                    reason: e.to_string(),
                })?;
            self.rows += self.buffer.len() as u64;
            self.buffer.clear();
            self.tap.batch(&self.stream, batch);
        }
        if let Some(w) = self.watermark.take() {
            self.tap.watermark(&self.stream, w);
        }
        Ok(())
    }

    fn due(&self) -> bool {
        self.buffer.len() >= FLUSH_ROWS || self.last_flush.elapsed() >= FLUSH_AFTER
    }
}

impl<T: SinkRecord> Sink<T> for TapSink<T> {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        self.buffer.extend_from_slice(rows);
        if self.due() {
            self.flush()?;
        }
        Ok(())
    }

    fn watermark(&mut self, watermark: Timestamp) {
        self.watermark = Some(watermark.0);
        if self.due() {
            // A batch that cannot be encoded is reported by the next write or finish.
            let _ = self.flush();
        }
    }

    fn checkpoint(&mut self, at: i64) {
        // The rows before the mark go first; a batch that cannot be encoded is reported by the
        // next write or finish.
        let _ = self.flush();
        self.tap.checkpoint(&self.stream, at);
    }

    fn finish(&mut self) -> Result<u64> {
        let flushed = self.flush();
        self.tap.finish(&self.stream);
        flushed.map(|()| self.rows)
    }
}
