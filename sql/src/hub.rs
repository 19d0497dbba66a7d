//! The stream hub: where a running pipeline's streams arrive as Arrow batches, in event-time
//! order, with their watermarks. It keeps each stream's recent history (for snapshot
//! queries), the latest row per instrument (the current-state tables), and hands every batch
//! and watermark to the continuous queries that read the stream.
//!
//! Continuous queries receive events through bounded channels: a query that falls behind
//! slows the pipeline down (back-pressure) rather than losing rows. A query that fails (or a
//! remote client that stops reading, after a timeout) is dropped from the hub and reported;
//! the pipeline and the other queries go on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use crate::error::SqlError;
use crate::window::column_list;

/// The column current-state tables are keyed by.
pub const KEY_COLUMN: &str = "instrument_id";
/// Prefix of the current-state tables (`latest_quotes`, `latest_positions`, ...).
pub const LATEST_PREFIX: &str = "latest_";

/// How much history each stream keeps for snapshot queries.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Event-time span kept behind the stream's watermark, in nanoseconds.
    pub span_ns: i64,
    /// At most this many rows per stream (the oldest go first).
    pub max_rows: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            span_ns: 15 * 60 * 1_000_000_000,
            max_rows: 2_000_000,
        }
    }
}

/// The last row of each instrument: instrument id -> (batch, row).
pub(crate) type LatestRows = BTreeMap<u32, (RecordBatch, usize)>;

/// What a continuous query receives from the hub.
#[derive(Debug, Clone)]
pub enum Event {
    /// Rows of a stream, in event-time order.
    Batch(Arc<str>, RecordBatch),
    /// No later row of the stream has an event time below this.
    Watermark(Arc<str>, i64),
    /// The stream has ended.
    Finish(Arc<str>),
    /// A live job with checkpoints: every row of the stream before this checkpoint time came
    /// before this event, none at or after it.
    Checkpoint(Arc<str>, i64),
}

/// Events buffered per subscriber before the pipeline waits for it.
const CHANNEL_DEPTH: usize = 256;

/// A stream's description.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The stream's name, also its table name.
    pub name: String,
    /// Its Arrow schema.
    pub schema: SchemaRef,
    /// Its event-time column.
    pub time_column: String,
}

struct Table {
    info: StreamInfo,
    time_index: usize,
    /// Batches with their largest event time.
    history: VecDeque<(i64, RecordBatch)>,
    rows: usize,
    watermark: Option<i64>,
    finished: bool,
    /// The last row per instrument: (batch, row).
    latest: Option<(usize, LatestRows)>,
}

struct Subscriber {
    id: u64,
    streams: Vec<String>,
    tx: SyncSender<Event>,
}

#[derive(Default)]
struct Inner {
    tables: BTreeMap<String, Table>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    errors: Vec<String>,
}

/// See the module documentation.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
    retention: Retention,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("streams", &self.streams().len())
            .finish()
    }
}

impl Hub {
    /// An empty hub keeping `retention` of history.
    pub fn new(retention: Retention) -> Self {
        Self {
            inner: Mutex::default(),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares a stream before its first batch, so queries can be planned against it.
    pub fn declare(
        &self,
        name: &str,
        schema: SchemaRef,
        time_column: &str,
    ) -> Result<(), SqlError> {
        let time_index = schema.index_of(time_column).map_err(|_| {
            SqlError::plan(format!(
                "stream {name} has no time column {time_column} (its columns: {})",
                column_list(&schema)
            ))
        })?;
        if !matches!(
            schema.field(time_index).data_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, _)
        ) {
            return Err(SqlError::plan(format!(
                "stream {name}: time column {time_column} is not a nanosecond timestamp"
            )));
        }
        let latest = schema
            .index_of(KEY_COLUMN)
            .ok()
            .filter(|&i| schema.field(i).data_type() == &DataType::UInt32)
            .map(|i| (i, BTreeMap::new()));
        let mut inner = self.lock();
        if let Some(t) = inner.tables.get(name) {
            if t.info.schema != schema {
                return Err(SqlError::plan(format!(
                    "stream {name} is already declared with other columns ({})",
                    column_list(&t.info.schema)
                )));
            }
            return Ok(());
        }
        inner.tables.insert(
            name.to_string(),
            Table {
                info: StreamInfo {
                    name: name.to_string(),
                    schema,
                    time_column: time_column.to_string(),
                },
                time_index,
                history: VecDeque::new(),
                rows: 0,
                watermark: None,
                finished: false,
                latest,
            },
        );
        Ok(())
    }

    /// The declared streams.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.lock()
            .tables
            .values()
            .map(|t| t.info.clone())
            .collect()
    }

    /// One stream's description.
    pub fn stream(&self, name: &str) -> Option<StreamInfo> {
        self.lock().tables.get(name).map(|t| t.info.clone())
    }

    /// Problems met while receiving (batches refused); each names its stream.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// Receives rows of a stream (in event-time order). A batch whose columns differ from the
    /// declared ones is refused and reported, the stream goes on.
    pub fn push(&self, name: &str, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        let stream: Arc<str> = Arc::from(name);
        let targets = {
            let mut inner = self.lock();
            let retention = self.retention;
            let Some(table) = inner.tables.get_mut(name) else {
                let msg = format!("rows for undeclared stream {name} were not kept");
                push_error(&mut inner.errors, msg);
                return;
            };
            if batch.schema() != table.info.schema {
                let msg = format!(
                    "a batch of stream {name} has columns ({}) instead of ({}); it was not kept",
                    column_list(&batch.schema()),
                    column_list(&table.info.schema)
                );
                push_error(&mut inner.errors, msg);
                return;
            }
            table.remember(&batch, retention);
            senders(&inner.subscribers, name)
        };
        self.deliver(targets, Event::Batch(stream, batch));
    }

    /// No later row of the stream will have an event time below `watermark`.
    pub fn advance(&self, name: &str, watermark: i64) {
        let targets = {
            let mut inner = self.lock();
            let retention = self.retention;
            let Some(table) = inner.tables.get_mut(name) else {
                return;
            };
            if table.watermark.is_some_and(|w| w >= watermark) {
                return;
            }
            table.watermark = Some(watermark);
            table.trim(retention);
            senders(&inner.subscribers, name)
        };
        self.deliver(targets, Event::Watermark(Arc::from(name), watermark));
    }

    /// The stream has ended.
    pub fn finish(&self, name: &str) {
        let targets = {
            let mut inner = self.lock();
            let Some(table) = inner.tables.get_mut(name) else {
                return;
            };
            table.finished = true;
            senders(&inner.subscribers, name)
        };
        self.deliver(targets, Event::Finish(Arc::from(name)));
    }

    /// The stream has reached checkpoint time `at`: every row before it has been pushed, none
    /// at or after it.
    pub fn checkpoint(&self, name: &str, at: i64) {
        let targets = senders(&self.lock().subscribers, name);
        self.deliver(targets, Event::Checkpoint(Arc::from(name), at));
    }

    /// Subscribes to streams; the receiver gets their events from now on, starting with each
    /// stream's current watermark and end. The pipeline waits for a subscriber that is behind;
    /// one whose receiver is gone is dropped.
    pub fn subscribe(&self, streams: &[String]) -> Result<Receiver<Event>, SqlError> {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let mut inner = self.lock();
        for s in streams {
            let Some(t) = inner.tables.get(s) else {
                return Err(SqlError::plan(format!("no stream named {s}")));
            };
            let name: Arc<str> = Arc::from(s.as_str());
            if let Some(w) = t.watermark {
                let _ = tx.try_send(Event::Watermark(name.clone(), w));
            }
            if t.finished {
                let _ = tx.try_send(Event::Finish(name));
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.subscribers.push(Subscriber {
            id,
            streams: streams.to_vec(),
            tx,
        });
        Ok(rx)
    }

    fn deliver(&self, targets: Vec<(u64, SyncSender<Event>)>, event: Event) {
        let mut gone = Vec::new();
        for (id, tx) in targets {
            // Back-pressure: the pipeline waits for a query that is behind.
            if tx.send(event.clone()).is_err() {
                gone.push(id);
            }
        }
        if !gone.is_empty() {
            let mut inner = self.lock();
            inner.subscribers.retain(|s| !gone.contains(&s.id));
        }
    }

    /// The retained history of a stream (shared batches, not copies).
    pub fn history(&self, name: &str) -> Vec<RecordBatch> {
        self.lock()
            .tables
            .get(name)
            .map(|t| t.history.iter().map(|(_, b)| b.clone()).collect())
            .unwrap_or_default()
    }

    /// The last row of each instrument of a stream, in instrument order; `None` when the
    /// stream has no instrument column.
    pub fn latest(&self, name: &str) -> Result<Option<RecordBatch>, SqlError> {
        let inner = self.lock();
        let Some(table) = inner.tables.get(name) else {
            return Ok(None);
        };
        let Some((_, rows)) = &table.latest else {
            return Ok(None);
        };
        latest_batch(&table.info.schema, rows).map(Some)
    }

    /// Whether a stream has a current-state table.
    pub fn has_latest(&self, name: &str) -> bool {
        self.lock()
            .tables
            .get(name)
            .is_some_and(|t| t.latest.is_some())
    }
}

impl tickflow_sinks::StreamTap for Hub {
    fn declare(&self, stream: &str, schema: SchemaRef, time_column: &str) -> Result<(), String> {
        Hub::declare(self, stream, schema, time_column).map_err(|e| e.to_string())
    }
    fn batch(&self, stream: &str, batch: RecordBatch) {
        self.push(stream, batch);
    }
    fn watermark(&self, stream: &str, watermark: i64) {
        self.advance(stream, watermark);
    }
    fn finish(&self, stream: &str) {
        Hub::finish(self, stream);
    }
    fn checkpoint(&self, stream: &str, at: i64) {
        Hub::checkpoint(self, stream, at);
    }
}

/// The rows `rows` points at (one per instrument), as one batch.
pub(crate) fn latest_batch(schema: &SchemaRef, rows: &LatestRows) -> Result<RecordBatch, SqlError> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let batches: Vec<&RecordBatch> = rows.values().map(|(b, _)| b).collect();
    let idx: Vec<(usize, usize)> = rows
        .values()
        .enumerate()
        .map(|(n, (_, r))| (n, *r))
        .collect();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let cols: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::interleave::interleave(&cols, &idx)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Records, in `rows`, the last row of each instrument of `batch` (`key`: the instrument
/// column).
pub(crate) fn remember_latest(rows: &mut LatestRows, batch: &RecordBatch, key: usize) {
    if let Some(ids) = batch.column(key).as_any().downcast_ref::<UInt32Array>() {
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                rows.insert(id, (batch.clone(), i));
            }
        }
    }
}

fn push_error(errors: &mut Vec<String>, msg: String) {
    if errors.len() < 100 {
        errors.push(msg);
    }
}

fn senders(subs: &[Subscriber], stream: &str) -> Vec<(u64, SyncSender<Event>)> {
    subs.iter()
        .filter(|s| s.streams.iter().any(|n| n == stream))
        .map(|s| (s.id, s.tx.clone()))
        .collect()
}

impl Table {
    fn remember(&mut self, batch: &RecordBatch, retention: Retention) {
        let times = batch
            .column(self.time_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>();
        let max = times
            .map(|t| t.iter().flatten().max().unwrap_or(i64::MIN))
            .unwrap_or(i64::MIN);
        self.rows += batch.num_rows();
        self.history.push_back((max, batch.clone()));
        if let Some((key, rows)) = &mut self.latest {
            remember_latest(rows, batch, *key);
        }
        self.trim(retention);
    }

    fn trim(&mut self, retention: Retention) {
        let horizon = self
            .watermark
            .map_or(i64::MIN, |w| w.saturating_sub(retention.span_ns));
        while let Some((max, b)) = self.history.front() {
            if self.rows > retention.max_rows || *max < horizon {
                self.rows -= b.num_rows();
                self.history.pop_front();
            } else {
                break;
            }
        }
        // The oldest batch kept may start before the horizon: cut its leading rows (a stream's
        // rows come in event-time order).
        if let Some((_, b)) = self.history.front_mut()
            && let Some(times) = b
                .column(self.time_index)
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
        {
            let old = times
                .iter()
                .take_while(|t| t.is_some_and(|t| t < horizon))
                .count();
            if old > 0 {
                *b = b.slice(old, b.num_rows() - old);
                self.rows -= old;
            }
        }
    }
}
