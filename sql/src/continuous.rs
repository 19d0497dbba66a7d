//! Continuous queries: planned once by DataFusion, executed each time the watermark moves.
//!
//! A query reads its streams either through the window functions — then each execution sees
//! the rows of the windows the watermark has just closed, and emits their results — or
//! directly — then each execution sees the rows the watermark has passed since the last one.
//! A current-state table (`latest_quotes`, ...) in a continuous query is the query's own view
//! of that stream, advanced with the same watermark: each execution sees, per instrument, the
//! last row before the watermark of that step — never a row from beyond it, and the same rows
//! whatever the timing of the job's threads.
//!
//! The window lifecycle is ours, not DataFusion's: DataFusion has no watermarks, and its
//! streaming aggregation emits a group only when a later key arrives, so a window would wait
//! for the next record instead of closing on time, and late rows could not be counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use arrow_array::{BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::runtime::Handle;

use crate::error::SqlError;
use crate::hub::{Event, Hub};
use crate::hub::{KEY_COLUMN, LATEST_PREFIX, LatestRows, latest_batch, remember_latest};
use crate::output::QueryOutput;
use crate::tables::{Slot, WindowFeed, WindowFunction, register_step_table};

/// The most events one step takes from the queue (bounds what a step holds in memory).
const MAX_EVENTS_PER_STEP: usize = 1024;

/// A continuous query as declared (`[[query]]` in a pipeline file, or submitted ad hoc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryDef {
    /// Its name (also the name of its output stream).
    pub name: String,
    /// The SELECT statement.
    pub sql: String,
    /// How far behind the watermark a window stays open for late rows, in nanoseconds.
    pub lateness_ns: i64,
}

/// Counters of a running continuous query.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Input rows received.
    pub rows_in: AtomicU64,
    /// Result rows emitted.
    pub rows_out: AtomicU64,
    /// Windows closed.
    pub windows: AtomicU64,
    /// Input rows that came after their windows had closed (not in any result).
    pub late_rows: AtomicU64,
    /// Executions.
    pub steps: AtomicU64,
    /// Why the query stopped, when it failed.
    pub error: Mutex<Option<String>>,
    /// The latest late row, for the report: (its time, the boundary it missed).
    pub last_late: Mutex<Option<(i64, i64)>>,
}

impl QueryStats {
    /// A one-line account of the query.
    pub fn summary(&self, name: &str) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = format!(
            "query {name}: {} rows in, {} windows, {} rows out, {} late rows",
            g(&self.rows_in),
            g(&self.windows),
            g(&self.rows_out),
            g(&self.late_rows)
        );
        if let Some((t, b)) = *self.last_late.lock().unwrap_or_else(|p| p.into_inner()) {
            s.push_str(&format!(
                " (latest: event time {} ns arrived after windows up to {} ns had closed)",
                t, b
            ));
        }
        if let Some(e) = self
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            s.push_str(&format!("; FAILED: {e}"));
        }
        s
    }
}

/// A planned continuous query.
pub struct ContinuousQuery {
    def: QueryDef,
    ctx: SessionContext,
    plan: LogicalPlan,
    schema: SchemaRef,
    feeds: Vec<WindowFeed>,
    plain: BTreeMap<String, PlainFeed>,
    state: BTreeMap<String, StateFeed>,
    streams: Vec<String>,
}

/// A stream read directly: rows wait for the watermark, then go to one execution.
struct PlainFeed {
    time_index: usize,
    pending: Vec<RecordBatch>,
    slot: Slot,
}

/// A current-state table as the query sees it: the last row per instrument before the
/// query's watermark.
struct StateFeed {
    stream: String,
    schema: SchemaRef,
    key: usize,
    time_index: usize,
    pending: Vec<RecordBatch>,
    latest: LatestRows,
    slot: Slot,
}

/// Takes the rows before `bound` (by the time column) out of `pending`, leaving the rest.
fn release(
    pending: &mut Vec<RecordBatch>,
    time_index: usize,
    bound: i64,
) -> Result<Vec<RecordBatch>, SqlError> {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for b in std::mem::take(pending) {
        let times = b
            .column(time_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| {
                SqlError::Execution("a time column is not a nanosecond timestamp".into())
            })?;
        let early = times
            .iter()
            .filter(|t| t.is_some_and(|t| t < bound))
            .count();
        if early == b.num_rows() {
            before.push(b);
        } else if early == 0 {
            after.push(b);
        } else {
            let mask: BooleanArray = times
                .iter()
                .map(|t| Some(t.is_some_and(|t| t < bound)))
                .collect();
            before.push(filter_record_batch(&b, &mask)?);
            let rest: BooleanArray = mask.iter().map(|m| m.map(|m| !m)).collect();
            after.push(filter_record_batch(&b, &rest)?);
        }
    }
    *pending = after;
    Ok(before)
}

impl std::fmt::Debug for ContinuousQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContinuousQuery")
            .field("name", &self.def.name)
            .field("streams", &self.streams)
            .finish()
    }
}

/// The options every query is planned with: queries only, no DDL or DML.
pub(crate) fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl ContinuousQuery {
    /// Plans `def` against the hub's declared streams. Every error — syntax (with its
    /// position), an unknown table or column, a bad window — comes back here, before the query
    /// touches any data.
    pub async fn plan(hub: &Arc<Hub>, def: QueryDef) -> Result<Self, SqlError> {
        if def.lateness_ns < 0 {
            return Err(SqlError::plan(format!(
                "query {}: allowed lateness must not be negative",
                def.name
            )));
        }
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        let feeds = Arc::new(Mutex::new(Vec::new()));
        WindowFunction::register(&ctx, hub, Some(feeds.clone()));
        let mut plain = BTreeMap::new();
        let mut state = BTreeMap::new();
        for info in hub.streams() {
            let time_index = info.schema.index_of(&info.time_column)?;
            let slot = Slot::default();
            register_step_table(&ctx, &info.name, info.schema.clone(), slot.clone())?;
            plain.insert(
                info.name.clone(),
                PlainFeed {
                    time_index,
                    pending: Vec::new(),
                    slot,
                },
            );
            if let Ok(key) = info.schema.index_of(KEY_COLUMN) {
                let slot = Slot::default();
                let table = format!("{LATEST_PREFIX}{}", info.name);
                register_step_table(&ctx, &table, info.schema.clone(), slot.clone())?;
                state.insert(
                    table,
                    StateFeed {
                        stream: info.name.clone(),
                        schema: info.schema.clone(),
                        key,
                        time_index,
                        pending: Vec::new(),
                        latest: BTreeMap::new(),
                        slot,
                    },
                );
            }
        }
        let df = ctx
            .sql_with_options(&def.sql, read_only())
            .await
            .map_err(|e| SqlError::Plan(format!("query {}: {}", def.name, SqlError::from(e))))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let plan = df.into_optimized_plan()?;
        // The tables read, found in the plan (subqueries included).
        let mut scanned: Vec<String> = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let name = scan.table_name.table().to_string();
                if !scanned.contains(&name) {
                    scanned.push(name);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        plain.retain(|name, _| scanned.contains(name));
        state.retain(|name, _| scanned.contains(name));
        let feeds = std::mem::take(&mut *feeds.lock().unwrap_or_else(|p| p.into_inner()));
        if !feeds.is_empty() && !plain.is_empty() {
            return Err(SqlError::plan(format!(
                "query {}: a continuous query reads its streams either all through window \
                 functions or all directly; {} is read directly",
                def.name,
                plain.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if feeds.is_empty() && plain.is_empty() {
            return Err(SqlError::plan(format!(
                "query {}: a continuous query must read at least one stream, directly or through \
                 tumble(), hop() or session(); current-state tables alone never change",
                def.name
            )));
        }
        let mut streams: Vec<String> = feeds
            .iter()
            .map(|f| f.buffer.spec().table.clone())
            .collect();
        streams.extend(plain.keys().cloned());
        streams.extend(state.values().map(|s| s.stream.clone()));
        streams.sort();
        streams.dedup();
        Ok(Self {
            def,
            ctx,
            plan,
            schema,
            feeds,
            plain,
            state,
            streams,
        })
    }

    /// The streams the query reads.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The schema of its results.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The definition.
    pub fn def(&self) -> &QueryDef {
        &self.def
    }

    async fn execute(&self) -> Result<Vec<RecordBatch>, SqlError> {
        let state = self.ctx.state();
        let physical = DefaultPhysicalPlanner::default()
            .create_physical_plan(&self.plan, &state)
            .await?;
        Ok(datafusion::physical_plan::collect(physical, self.ctx.task_ctx()).await?)
    }

    /// Runs the query over events from `events` until every stream it reads has ended, writing
    /// results to `output`. Returns when done or on the first error (which is also recorded in
    /// `stats`).
    pub fn run(
        mut self,
        events: Receiver<Event>,
        output: &mut dyn QueryOutput,
        rt: &Handle,
        stats: &QueryStats,
    ) -> Result<(), SqlError> {
        let result = self.run_inner(events, output, rt, stats);
        if let Err(e) = &result {
            *stats.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        result
    }

    /// Files one event: rows go to the buffers, watermarks to `marks`.
    fn take(
        &mut self,
        event: Event,
        marks: &mut BTreeMap<String, i64>,
        stats: &QueryStats,
    ) -> Result<(), SqlError> {
        match event {
            Event::Batch(stream, batch) => {
                for feed in self
                    .feeds
                    .iter_mut()
                    .filter(|f| f.buffer.spec().table == *stream)
                {
                    stats
                        .rows_in
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    let before = feed.buffer.late_rows;
                    feed.buffer.insert(&batch)?;
                    let late = feed.buffer.late_rows - before;
                    if late > 0 {
                        stats.late_rows.fetch_add(late, Ordering::Relaxed);
                        *stats.last_late.lock().unwrap_or_else(|p| p.into_inner()) =
                            feed.buffer.last_late;
                    }
                }
                if let Some(feed) = self.plain.get_mut(&*stream) {
                    stats
                        .rows_in
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    feed.pending.push(batch.clone());
                }
                for feed in self.state.values_mut().filter(|f| f.stream == *stream) {
                    feed.pending.push(batch.clone());
                }
            }
            Event::Watermark(stream, w) => {
                if let Some(m) = marks.get_mut(&*stream) {
                    *m = (*m).max(w);
                }
            }
            Event::Finish(stream) => {
                if let Some(m) = marks.get_mut(&*stream) {
                    *m = i64::MAX;
                }
            }
        }
        // Windows close at once, so a row that arrives after the watermark passed its window
        // is late however many events this step takes.
        let watermark = marks.values().copied().min().unwrap_or(i64::MIN);
        let boundary = if watermark == i64::MAX {
            i64::MAX
        } else {
            watermark.saturating_sub(self.def.lateness_ns)
        };
        for feed in &mut self.feeds {
            let closed = feed.buffer.close_to(boundary)?;
            stats.windows.fetch_add(closed.windows, Ordering::Relaxed);
            if !closed.batches.is_empty() {
                feed.slot.extend(closed.batches);
            }
        }
        Ok(())
    }

    fn run_inner(
        &mut self,
        events: Receiver<Event>,
        output: &mut dyn QueryOutput,
        rt: &Handle,
        stats: &QueryStats,
    ) -> Result<(), SqlError> {
        // Per stream: its watermark, i64::MAX once it has ended.
        let mut marks: BTreeMap<String, i64> =
            self.streams.iter().map(|s| (s.clone(), i64::MIN)).collect();
        let mut released_to = i64::MIN;
        while let Ok(event) = events.recv() {
            // Take everything already waiting, then make one step of it: a query that is
            // behind catches up in few large steps instead of many small ones.
            self.take(event, &mut marks, stats)?;
            for _ in 0..MAX_EVENTS_PER_STEP {
                match events.try_recv() {
                    Ok(event) => self.take(event, &mut marks, stats)?,
                    Err(_) => break,
                }
            }
            let watermark = marks.values().copied().min().unwrap_or(i64::MIN);
            if watermark <= released_to {
                continue;
            }
            released_to = watermark;
            let mut ready = false;
            for feed in self.plain.values_mut() {
                let now = release(&mut feed.pending, feed.time_index, watermark)?;
                ready |= !now.is_empty();
                feed.slot.set(now);
            }
            for feed in self.state.values_mut() {
                let now = release(&mut feed.pending, feed.time_index, watermark)?;
                for b in &now {
                    remember_latest(&mut feed.latest, b, feed.key);
                }
                feed.slot
                    .set(vec![latest_batch(&feed.schema, &feed.latest)?]);
            }
            ready |= self.feeds.iter().any(|f| !f.slot.is_empty());
            if ready {
                let batches = rt.block_on(self.execute())?;
                stats.steps.fetch_add(1, Ordering::Relaxed);
                for feed in &self.feeds {
                    feed.slot.set(Vec::new());
                }
                for feed in self.plain.values() {
                    feed.slot.set(Vec::new());
                }
                for b in batches.iter().filter(|b| b.num_rows() > 0) {
                    output.write(b)?;
                    stats
                        .rows_out
                        .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                }
            }
            if watermark == i64::MAX {
                break;
            }
            output.watermark(watermark)?;
        }
        output.finish()
    }
}
