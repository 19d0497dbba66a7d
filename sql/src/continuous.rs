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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};

use arrow_array::{BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::runtime::Handle;

use crate::checkpoint::{Batches, Decoded, QueryHooks, Saved, SavedLatest, SavedWindows};
use crate::error::SqlError;
use crate::fold::{FOLD_ROWS, Fold};
use crate::hub::{Event, Hub};
use crate::hub::{KEY_COLUMN, LATEST_PREFIX, LatestRows, latest_batch, remember_latest};
use crate::output::QueryOutput;
use crate::tables::{Slot, WindowFeed, WindowFunction, WindowTable, register_step_table};
use crate::window::{Folder, WindowKind};

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
    /// Rows folded into the aggregate states of open windows.
    pub folded_rows: AtomicU64,
    /// The most rows and rows of aggregate states the open windows held at once (as each
    /// batch of rows came in).
    pub peak_open: AtomicU64,
    /// Why the query stopped, when it failed.
    pub error: Mutex<Option<String>>,
    /// The latest late row, for the report: (its time, the boundary it missed).
    pub last_late: Mutex<Option<(i64, i64)>>,
}

impl QueryStats {
    /// An account of the query: one line, and one more when it folded rows of open windows.
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
        // On a line of its own: how far rows are folded depends on how they were batched.
        if g(&self.folded_rows) > 0 {
            s.push_str(&format!(
                "\n  open windows folded {} rows into aggregate states, holding at most {} rows \
                 and states at once",
                g(&self.folded_rows),
                g(&self.peak_open)
            ));
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
    /// Per stream read: its watermark, `i64::MAX` once it has ended.
    marks: BTreeMap<String, i64>,
    /// The watermark of the last execution.
    released_to: i64,
    /// Counters taken back from a checkpoint, for the stats.
    restored: Option<Saved>,
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
        // The tables read, found in the plan (subqueries included), and the columns of each
        // window feed the plan reads.
        let mut scanned: Vec<String> = Vec::new();
        let mut window_columns: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let name = scan.table_name.table().to_string();
                if !scanned.contains(&name) {
                    scanned.push(name);
                }
                // A window feed that no scan reads keeps every column.
                if let Ok(provider) = source_as_provider(&scan.source)
                    && let Some(w) = provider.downcast_ref::<WindowTable>()
                {
                    let used = window_columns.entry(w.feed).or_default();
                    match &scan.projection {
                        Some(p) => used.extend(p),
                        None => used.extend(0..w.schema().fields().len()),
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        plain.retain(|name, _| scanned.contains(name));
        state.retain(|name, _| scanned.contains(name));
        let mut feeds = std::mem::take(&mut *feeds.lock().unwrap_or_else(|p| p.into_inner()));
        // A window holds, until it closes, only the columns the query reads.
        for (i, feed) in feeds.iter_mut().enumerate() {
            if let Some(used) = window_columns.get(&i) {
                feed.buffer.keep_only(used)?;
                feed.layout.set(feed.buffer.layout());
            }
        }
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
        let marks = streams.iter().map(|s| (s.clone(), i64::MIN)).collect();
        // The open windows of a window feed going into one aggregation are folded into its
        // states (see `fold`); not in plans with subqueries.
        let mut subqueries = false;
        plan.apply_with_subqueries(|node| {
            subqueries |= matches!(node, LogicalPlan::Subquery(_));
            Ok(TreeNodeRecursion::Continue)
        })?;
        if !feeds.is_empty() && !subqueries {
            let physical = DefaultPhysicalPlanner::default()
                .create_physical_plan(&plan, &ctx.state())
                .await?;
            for (i, feed) in feeds.iter_mut().enumerate() {
                let sessions = matches!(feed.buffer.spec().kind, WindowKind::Session { .. });
                feed.fold = Fold::find(&physical, i, FOLD_ROWS, sessions)?;
            }
        }
        Ok(Self {
            def,
            ctx,
            plan,
            schema,
            feeds,
            plain,
            state,
            streams,
            marks,
            released_to: i64::MIN,
            restored: None,
        })
    }

    /// Per window feed (call of `tumble`, `hop` or `session`, in the order of the SQL text),
    /// whether the query folds the rows of its open windows into aggregate states.
    pub fn folding(&self) -> Vec<bool> {
        self.feeds.iter().map(|f| f.fold.is_some()).collect()
    }

    /// Folds a pane's rows once it holds `rows` of them (the default is [`FOLD_ROWS`]), or,
    /// with `None`, keeps every row of the open windows. Before the query runs.
    pub fn fold_at(&mut self, rows: Option<usize>) {
        for feed in &mut self.feeds {
            match rows {
                None => feed.fold = None,
                Some(n) => {
                    if let Some(f) = &mut feed.fold {
                        f.rows = n.max(1);
                    }
                }
            }
        }
    }

    /// Notes in `stats` what the open windows hold.
    fn note_held(&self, stats: &QueryStats) {
        let held: usize = self
            .feeds
            .iter()
            .map(|f| {
                let (rows, states) = f.buffer.held();
                rows + states
            })
            .sum();
        stats.peak_open.fetch_max(held as u64, Ordering::Relaxed);
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

    /// The query's state, as a checkpoint keeps it: what its buffers hold, its watermarks and
    /// counters. Taken between executions (nothing waits in the execution slots).
    fn snapshot(&self, stats: &QueryStats) -> Result<Vec<u8>, SqlError> {
        let mut batches = Batches::default();
        let mut window_feeds = Vec::new();
        for feed in &self.feeds {
            let st = feed.buffer.state();
            let mut groups = Vec::with_capacity(st.groups.len());
            for (a, b, rows) in &st.groups {
                if let Some(i) = batches.add_all(rows)? {
                    groups.push((*a, *b, i));
                }
            }
            let mut saved = |states: &[(i64, Vec<RecordBatch>)]| {
                let mut out = Vec::with_capacity(states.len());
                for (at, states) in states {
                    if let Some(i) = batches.add_all(states)? {
                        out.push((*at, i));
                    }
                }
                Ok::<_, SqlError>(out)
            };
            let folded = saved(&st.folded)?;
            let pane_folded = saved(&st.pane_folded)?;
            window_feeds.push(SavedWindows {
                table: feed.buffer.spec().table.clone(),
                closed_to: st.closed_to,
                late_rows: st.late_rows,
                last_late: st.last_late,
                groups,
                folded,
                pane_folded,
            });
        }
        let mut plain = Vec::new();
        for (name, feed) in &self.plain {
            plain.push((name.clone(), batches.add_all(&feed.pending)?));
        }
        let mut state = Vec::new();
        for (table, feed) in &self.state {
            let latest = latest_batch(&feed.schema, &feed.latest)?;
            state.push(SavedLatest {
                table: table.clone(),
                latest: batches.add_all(&[latest])?,
                pending: batches.add_all(&feed.pending)?,
            });
        }
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let saved = Saved {
            query: self.def.name.clone(),
            sql: self.def.sql.clone(),
            lateness_ns: self.def.lateness_ns,
            marks: self.marks.iter().map(|(s, m)| (s.clone(), *m)).collect(),
            released_to: self.released_to,
            rows_in: g(&stats.rows_in),
            rows_out: g(&stats.rows_out),
            windows: g(&stats.windows),
            late_rows: g(&stats.late_rows),
            steps: g(&stats.steps),
            folded_rows: g(&stats.folded_rows),
            last_late: *stats.last_late.lock().unwrap_or_else(|p| p.into_inner()),
            window_feeds,
            plain,
            state,
        };
        batches.encode(&saved)
    }

    /// Takes back the state a checkpoint kept ([`ContinuousQuery::snapshot`]), before the query
    /// runs. The state must be of this query: the same SQL and allowed lateness.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SqlError> {
        let name = self.def.name.clone();
        let refuse = |what: String| SqlError::Execution(format!("query {name}: {what}"));
        let d = Decoded::decode(bytes).map_err(|e| refuse(e.to_string()))?;
        let saved = &d.saved;
        if saved.sql != self.def.sql || saved.lateness_ns != self.def.lateness_ns {
            return Err(refuse(
                "the checkpoint was taken with other SQL or another allowed lateness; run the \
                 query it was taken with, or remove the checkpoint directory to start afresh"
                    .into(),
            ));
        }
        let marks: BTreeMap<String, i64> = saved.marks.iter().cloned().collect();
        let same = marks.keys().eq(self.marks.keys())
            && saved
                .window_feeds
                .iter()
                .map(|w| &w.table)
                .eq(self.feeds.iter().map(|f| &f.buffer.spec().table))
            && saved.plain.iter().map(|(n, _)| n).eq(self.plain.keys())
            && saved.state.iter().map(|s| &s.table).eq(self.state.keys());
        if !same {
            return Err(refuse(
                "the checkpoint's state reads other streams than this query".into(),
            ));
        }
        for (feed, w) in self.feeds.iter_mut().zip(&saved.window_feeds) {
            let groups = w
                .groups
                .iter()
                .map(|&(a, b, i)| Ok((a, b, vec![d.batch(i)?])))
                .collect::<Result<Vec<_>, SqlError>>()?;
            let states = |saved: &[(i64, usize)]| {
                saved
                    .iter()
                    .map(|&(at, i)| Ok((at, vec![d.batch(i)?])))
                    .collect::<Result<Vec<_>, SqlError>>()
            };
            let folded = states(&w.folded)?;
            let pane_folded = states(&w.pane_folded)?;
            if let Some((_, states)) = folded.first().or(pane_folded.first()) {
                // States of panes are read by each of their windows with its bounds: only a
                // query that relabels states can.
                let fits = feed.fold.as_ref().is_some_and(|f| {
                    states.iter().all(|b| *b.schema() == *f.schema())
                        && (pane_folded.is_empty() || f.relabels())
                });
                if !fits {
                    return Err(refuse(format!(
                        "the checkpoint holds aggregate states of the open windows of {} that \
                         this query does not fold into; remove the checkpoint directory to \
                         start afresh",
                        w.table
                    )));
                }
            }
            feed.buffer.restore(crate::window::BufferState {
                closed_to: w.closed_to,
                late_rows: w.late_rows,
                last_late: w.last_late,
                groups,
                folded,
                pane_folded,
            })?;
        }
        for (name, i) in &saved.plain {
            if let Some(feed) = self.plain.get_mut(name) {
                feed.pending = d.batches(*i)?;
            }
        }
        for s in &saved.state {
            if let Some(feed) = self.state.get_mut(&s.table) {
                feed.latest.clear();
                for b in d.batches(s.latest)? {
                    remember_latest(&mut feed.latest, &b, feed.key);
                }
                feed.pending = d.batches(s.pending)?;
            }
        }
        self.marks = marks;
        self.released_to = saved.released_to;
        self.restored = Some(d.saved);
        Ok(())
    }

    /// Executes the plan; the aggregation of each window feed in `states` reads those
    /// states instead of its rows.
    async fn execute(
        &self,
        states: Vec<(usize, Vec<RecordBatch>)>,
    ) -> Result<Vec<RecordBatch>, SqlError> {
        let state = self.ctx.state();
        let mut physical = DefaultPhysicalPlanner::default()
            .create_physical_plan(&self.plan, &state)
            .await?;
        for (i, states) in states {
            if let Some(fold) = self.feeds.get(i).and_then(|f| f.fold.as_ref()) {
                physical = fold.substitute(physical, states)?;
            }
        }
        Ok(datafusion::physical_plan::collect(physical, self.ctx.task_ctx()).await?)
    }

    /// Folds the panes and sessions of window feed `i` holding enough rows into aggregate
    /// states.
    fn fold_ripe(&mut self, i: usize, rt: &Handle, stats: &QueryStats) -> Result<(), SqlError> {
        let Some(feed) = self.feeds.get_mut(i) else {
            return Ok(());
        };
        let Some(fold) = &feed.fold else {
            return Ok(());
        };
        // The partial aggregation reads the slot, where the rows of closed windows may wait
        // for the next execution.
        let waiting = feed.slot.take();
        let mut folder = Running {
            fold,
            slot: &feed.slot,
            rt,
            ctx: self.ctx.task_ctx(),
        };
        let folded = feed.buffer.fold(fold.rows, &mut folder);
        feed.slot.set(waiting);
        stats
            .folded_rows
            .fetch_add(folded? as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Runs the query over events from `events` until every stream it reads has ended, writing
    /// results to `output`. Returns when done or on the first error (which is also recorded in
    /// `stats`). With `hooks` (a live job), the query flushes its output now and then and says
    /// how far its results are durable, and takes a checkpoint of its state at each checkpoint
    /// time every stream it reads has reached.
    pub fn run(
        mut self,
        events: Receiver<Event>,
        output: &mut dyn QueryOutput,
        rt: &Handle,
        stats: &QueryStats,
        hooks: Option<&mut dyn QueryHooks>,
    ) -> Result<(), SqlError> {
        if let Some(saved) = self.restored.take() {
            stats.rows_in.store(saved.rows_in, Ordering::Relaxed);
            stats.rows_out.store(saved.rows_out, Ordering::Relaxed);
            stats.windows.store(saved.windows, Ordering::Relaxed);
            stats.late_rows.store(saved.late_rows, Ordering::Relaxed);
            stats.steps.store(saved.steps, Ordering::Relaxed);
            stats
                .folded_rows
                .store(saved.folded_rows, Ordering::Relaxed);
            *stats.last_late.lock().unwrap_or_else(|p| p.into_inner()) = saved.last_late;
        }
        let result = self.run_inner(events, output, rt, stats, hooks);
        if let Err(e) = &result {
            *stats.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        result
    }

    /// Files one event: rows go to the buffers, watermarks to the marks. With checkpoints, the
    /// events of a stream that has reached the checkpoint time being gathered wait in `gate`
    /// until the checkpoint is taken; returns that time once every stream has reached it.
    fn take(
        &mut self,
        event: Event,
        rt: &Handle,
        gate: &mut Gate,
        backlog: &mut VecDeque<Event>,
        stats: &QueryStats,
        hooks: Option<&mut (dyn QueryHooks + '_)>,
    ) -> Result<Option<i64>, SqlError> {
        if gate.holds(&event) {
            gate.held.push_back(event);
            return Ok(None);
        }
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
                // A pane's rows are folded as soon as there are enough of them.
                if self.feeds.iter().any(|f| f.buffer.spec().table == *stream) {
                    self.note_held(stats);
                    for i in 0..self.feeds.len() {
                        if self.feeds[i].buffer.spec().table == *stream {
                            self.fold_ripe(i, rt, stats)?;
                        }
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
                if let Some(m) = self.marks.get_mut(&*stream) {
                    *m = (*m).max(w);
                }
            }
            Event::Finish(stream) => {
                if let Some(m) = self.marks.get_mut(&*stream) {
                    *m = i64::MAX;
                }
                // A checkpoint cannot be completed by a stream that has ended.
                if let Some(h) = hooks {
                    gate.give_up(backlog, h);
                }
            }
            Event::Checkpoint(stream, at) => {
                if let Some(h) = hooks
                    && self.marks.contains_key(&*stream)
                {
                    return Ok(gate.reached(stream, at, self.marks.len(), backlog, h));
                }
            }
        }
        // Windows close at once, so a row that arrives after the watermark passed its window
        // is late however many events this step takes.
        let watermark = self.watermark();
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
            for ((start, end), states) in closed.states {
                for b in states {
                    let b = match &feed.fold {
                        Some(fold) => fold.relabel(b, start, end)?,
                        None => b,
                    };
                    feed.closed.push(b);
                }
            }
        }
        Ok(None)
    }

    /// The query's watermark: the least of its streams'.
    fn watermark(&self) -> i64 {
        self.marks.values().copied().min().unwrap_or(i64::MIN)
    }

    /// Executes the query over what the watermark has released since the last execution and
    /// writes the results. Returns whether every stream has ended.
    fn step(
        &mut self,
        output: &mut dyn QueryOutput,
        rt: &Handle,
        stats: &QueryStats,
    ) -> Result<bool, SqlError> {
        let watermark = self.watermark();
        if watermark <= self.released_to {
            return Ok(false);
        }
        self.released_to = watermark;
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
        ready |= self
            .feeds
            .iter()
            .any(|f| !f.slot.is_empty() || !f.closed.is_empty());
        if ready {
            // When a feed's closed windows hold aggregate states, their rows not folded yet
            // are folded now, and its aggregation reads the states; when they hold only rows
            // (all came in panes too small to fold), it reads the rows.
            let mut states = Vec::new();
            for (i, feed) in self.feeds.iter_mut().enumerate() {
                let Some(fold) = feed.fold.as_ref().filter(|_| !feed.closed.is_empty()) else {
                    continue;
                };
                let mut now = std::mem::take(&mut feed.closed);
                if !feed.slot.is_empty() {
                    now.extend(rt.block_on(fold.partial(self.ctx.task_ctx()))?);
                }
                states.push((i, now));
            }
            let batches = rt.block_on(self.execute(states))?;
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
            return Ok(true);
        }
        output.watermark(watermark)?;
        Ok(false)
    }

    /// Flushes the output and says how far its results are durable.
    fn flush(
        &self,
        output: &mut dyn QueryOutput,
        hooks: &mut dyn QueryHooks,
    ) -> Result<(), SqlError> {
        output.flush()?;
        if output.durable() {
            hooks.durable(self.released_to);
        }
        Ok(())
    }

    fn run_inner(
        &mut self,
        events: Receiver<Event>,
        output: &mut dyn QueryOutput,
        rt: &Handle,
        stats: &QueryStats,
        mut hooks: Option<&mut dyn QueryHooks>,
    ) -> Result<(), SqlError> {
        let mut gate = Gate::default();
        // Events to take before the channel's: those a checkpoint held back.
        let mut backlog: VecDeque<Event> = VecDeque::new();
        let flush_every = hooks.as_ref().map(|h| h.flush_every());
        let mut last_flush = std::time::Instant::now();
        loop {
            let event = match backlog.pop_front() {
                Some(e) => e,
                // A live query flushes when its streams stand still too, so that the results
                // it wrote last become durable (and the input behind them is committed).
                None => match flush_every {
                    Some(every) => match events.recv_timeout(every) {
                        Ok(e) => e,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Some(h) = hooks.as_deref_mut() {
                                last_flush = std::time::Instant::now();
                                self.flush(output, h)?;
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                    None => match events.recv() {
                        Ok(e) => e,
                        Err(_) => break,
                    },
                },
            };
            // Take everything already waiting, then make one step of it: a query that is
            // behind catches up in few large steps instead of many small ones.
            let mut checkpoint = self.take(
                event,
                rt,
                &mut gate,
                &mut backlog,
                stats,
                hooks.as_deref_mut(),
            )?;
            for _ in 0..MAX_EVENTS_PER_STEP {
                if checkpoint.is_some() {
                    break;
                }
                let next = match backlog.pop_front() {
                    Some(e) => e,
                    None => match events.try_recv() {
                        Ok(e) => e,
                        Err(_) => break,
                    },
                };
                checkpoint = self.take(
                    next,
                    rt,
                    &mut gate,
                    &mut backlog,
                    stats,
                    hooks.as_deref_mut(),
                )?;
            }
            let ended = self.step(output, rt, stats)?;
            if let (Some(at), Some(h)) = (checkpoint, hooks.as_deref_mut()) {
                // Every row before `at` has been taken in and its results written; none after.
                // A state that cannot be taken leaves this checkpoint out; the query goes on.
                let started = std::time::Instant::now();
                let state = self.snapshot(stats).map_err(|e| e.to_string());
                h.checkpoint(
                    at,
                    (state, started.elapsed()),
                    output.position(),
                    output.resume_state(),
                );
                output.checkpoint(at)?;
                gate.release(&mut backlog);
            }
            if ended {
                break;
            }
            if let (Some(every), Some(h)) = (flush_every, hooks.as_deref_mut())
                && last_flush.elapsed() >= every
            {
                last_flush = std::time::Instant::now();
                self.flush(output, h)?;
            }
        }
        output.finish()?;
        if let Some(h) = hooks {
            h.durable(i64::MAX);
        }
        Ok(())
    }
}

/// Folds rows into aggregate states by running the query's partial aggregation over them.
struct Running<'a> {
    fold: &'a Fold,
    /// The window feed's slot, which the partial aggregation reads.
    slot: &'a Slot,
    rt: &'a Handle,
    ctx: Arc<TaskContext>,
}

impl Folder for Running<'_> {
    fn partial(&mut self, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, SqlError> {
        self.slot.set(rows);
        let states = self.rt.block_on(self.fold.partial(self.ctx.clone()));
        self.slot.set(Vec::new());
        states
    }

    fn merge(&mut self, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, SqlError> {
        self.rt.block_on(self.fold.merge(states, self.ctx.clone()))
    }

    fn relabels(&self) -> bool {
        self.fold.relabels()
    }
}

/// The checkpoint a query is gathering: the streams that have reached its time, and their
/// events since, held until it is taken (so that the state holds every row before that time
/// and none after).
#[derive(Default)]
struct Gate {
    /// Checkpoint times up to this one are left out.
    skip_to: i64,
    /// The checkpoint time being gathered and the streams that have reached it.
    at: Option<(i64, BTreeSet<Arc<str>>)>,
    held: VecDeque<Event>,
}

impl Gate {
    /// Whether `event` must wait: its stream has reached the checkpoint being gathered.
    fn holds(&self, event: &Event) -> bool {
        let stream = match event {
            Event::Batch(s, _) | Event::Watermark(s, _) | Event::Finish(s) => s,
            Event::Checkpoint(s, _) => s,
        };
        self.at
            .as_ref()
            .is_some_and(|(_, reached)| reached.contains(stream))
    }

    /// `stream` has reached checkpoint time `at`; returns `at` once all `streams` have.
    fn reached(
        &mut self,
        stream: Arc<str>,
        at: i64,
        streams: usize,
        backlog: &mut VecDeque<Event>,
        hooks: &mut (dyn QueryHooks + '_),
    ) -> Option<i64> {
        if at <= self.skip_to {
            return None;
        }
        match &mut self.at {
            Some((b, reached)) if *b == at => {
                reached.insert(stream);
            }
            // A stream that is still before the checkpoint being gathered: a mark of an older
            // one that was given up.
            Some((b, _)) if at < *b => return None,
            // A new checkpoint time; when this stream went past the one being gathered without
            // reaching it (it skipped that time), that one cannot be taken.
            _ => {
                self.give_up(backlog, hooks);
                // The job may leave it out: one it can no longer complete, or one it would not
                // write (a query catching up passes checkpoint times faster than a job writes
                // checkpoints).
                if !hooks.begin(at) {
                    self.skip_to = at;
                    return None;
                }
                self.at = Some((at, BTreeSet::from([stream])));
            }
        }
        match &self.at {
            Some((b, reached)) if reached.len() == streams => Some(*b),
            _ => None,
        }
    }

    /// Gives up the checkpoint being gathered, if any: the held events are taken next.
    fn give_up(&mut self, backlog: &mut VecDeque<Event>, hooks: &mut (dyn QueryHooks + '_)) {
        if let Some((b, _)) = &self.at {
            hooks.give_up(*b);
        }
        self.release(backlog);
    }

    /// The checkpoint was taken (or given up): the held events go first, in their order.
    fn release(&mut self, backlog: &mut VecDeque<Event>) {
        self.at = None;
        while let Some(e) = self.held.pop_back() {
            backlog.push_front(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tickflow_core::{ArrowRecord, Quote, Trade};

    use super::{ContinuousQuery, QueryDef};
    use crate::hub::{Hub, Retention};

    /// `sql` planned over the trades and quotes.
    fn planned(sql: &str) -> ContinuousQuery {
        let hub = Arc::new(Hub::new(Retention::default()));
        hub.declare("trades", Trade::schema(), "ts_event").unwrap();
        hub.declare("quotes", Quote::schema(), "ts_event").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let def = QueryDef {
            name: "q".into(),
            sql: sql.into(),
            lateness_ns: 0,
        };
        rt.block_on(ContinuousQuery::plan(&hub, def))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The columns the windows of `sql` (over the trades) hold while they are open.
    fn held(sql: &str) -> Vec<String> {
        planned(sql).feeds[0]
            .buffer
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The trades' columns among `names`, in the stream's order, then the window columns.
    fn trades_columns(names: &[&str]) -> Vec<String> {
        Trade::schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| names.contains(&n.as_str()))
            .chain(["window_start".into(), "window_end".into()])
            .collect()
    }

    #[test]
    fn open_windows_hold_only_the_columns_the_query_reads() {
        assert_eq!(
            held(
                "SELECT symbol, window_end, sum(size) AS volume \
                 FROM tumble('trades', 'ts_event', INTERVAL '1 minute') GROUP BY symbol, window_end"
            ),
            trades_columns(&["symbol", "ts_event", "size"])
        );
        // A filter's column and an ORDER BY inside an aggregate are read too.
        assert_eq!(
            held(
                "SELECT window_end, last_value(price ORDER BY ts_event, seq) AS close \
                 FROM hop('trades', 'ts_event', INTERVAL '1 minute', INTERVAL '5 minutes') \
                 WHERE size > 100 GROUP BY window_end"
            ),
            trades_columns(&["ts_event", "price", "size", "seq"])
        );
        // Sessions keep their key, read or not.
        assert_eq!(
            held(
                "SELECT window_start, count(*) AS n \
                 FROM session('trades', 'ts_event', INTERVAL '1 minute', 'symbol') \
                 GROUP BY window_start"
            ),
            trades_columns(&["symbol", "ts_event"])
        );
        // Every column, when the query reads them all.
        let every = held("SELECT * FROM tumble('trades', 'ts_event', INTERVAL '1 minute')");
        assert_eq!(every.len(), Trade::schema().fields().len() + 2, "{every:?}");
    }

    /// Per window feed of `sql` (over the trades and quotes), whether it folds its open windows.
    fn folding(sql: &str) -> Vec<bool> {
        planned(sql).folding()
    }

    #[test]
    fn open_windows_are_folded_when_their_rows_go_row_by_row_into_one_aggregation() {
        let tumble = "tumble('trades', 'ts_event', INTERVAL '1 minute')";
        let hop = "hop('trades', 'ts_event', INTERVAL '1 minute', INTERVAL '5 minutes')";
        let session = "session('trades', 'ts_event', INTERVAL '1 minute', 'symbol')";
        let fold = [
            format!(
                "SELECT symbol, window_start, sum(size) FROM {tumble} GROUP BY symbol, window_start"
            ),
            format!(
                "SELECT symbol, window_end, avg(CAST(price AS DOUBLE) * 2) FROM {hop} \
                 WHERE size > 10 GROUP BY symbol, window_end HAVING count(*) > 2 ORDER BY symbol"
            ),
            format!("SELECT count(*) FROM {tumble}"),
            format!("SELECT DISTINCT symbol, window_start FROM {tumble}"),
            // The inner aggregation folds; the outer one reads its results.
            format!(
                "SELECT window_start, max(n) FROM (SELECT symbol, window_start, count(*) AS n \
                 FROM {tumble} GROUP BY symbol, window_start) GROUP BY window_start"
            ),
            // Sessions whose bounds are only group columns, or not read at all.
            format!(
                "SELECT symbol, window_start, window_end, count(*) FROM {session} \
                 GROUP BY symbol, window_start, window_end"
            ),
            format!("SELECT symbol, count(*) FROM {session} GROUP BY symbol"),
            // Tumbling windows filtered on their bounds (which are known as rows come).
            format!(
                "SELECT symbol, count(*) FROM {tumble} \
                 WHERE window_start > TIMESTAMP '2024-01-01T00:00:00Z' GROUP BY symbol"
            ),
            // Joined with current state after the aggregation.
            format!(
                "SELECT a.symbol, a.v, q.bid FROM (SELECT instrument_id, symbol, sum(size) AS v \
                 FROM {tumble} GROUP BY instrument_id, symbol) a \
                 JOIN latest_quotes q ON a.instrument_id = q.instrument_id"
            ),
        ];
        for sql in &fold {
            assert_eq!(folding(sql), [true], "{sql}");
        }
        let keep = [
            // No aggregation.
            format!("SELECT * FROM {tumble}"),
            // Sessions whose bounds are read otherwise than as group columns.
            format!(
                "SELECT symbol, count(*) FROM {session} \
                 WHERE window_start > TIMESTAMP '2024-01-01T00:00:00Z' GROUP BY symbol"
            ),
            format!("SELECT symbol, max(window_end) FROM {session} GROUP BY symbol"),
            format!(
                "SELECT symbol, e FROM (SELECT symbol, window_end + INTERVAL '1 second' AS e \
                 FROM {session}) GROUP BY symbol, e"
            ),
            // Rows ranked, or cut, before they are aggregated.
            format!(
                "SELECT symbol, sum(r) FROM (SELECT symbol, row_number() OVER (PARTITION BY \
                 symbol ORDER BY ts_event) AS r FROM {tumble}) GROUP BY symbol"
            ),
            format!("SELECT count(*) FROM (SELECT * FROM {tumble} LIMIT 10)"),
            // Joined with current state before the aggregation.
            format!(
                "SELECT t.symbol, sum(q.bid) FROM {tumble} t \
                 JOIN latest_quotes q ON t.instrument_id = q.instrument_id GROUP BY t.symbol"
            ),
            // The same windows read twice.
            format!(
                "WITH w AS (SELECT * FROM {tumble}) \
                 SELECT count(*) AS n FROM w UNION ALL SELECT sum(size) AS n FROM w"
            ),
        ];
        for sql in &keep {
            assert!(folding(sql).iter().all(|f| !f), "{sql}");
        }
        // Each window feed folds on its own: both aggregations of two windowed streams
        // joined, and the one of the trades but not the quotes joined to it as rows.
        let quotes = "tumble('quotes', 'ts_event', INTERVAL '1 minute')";
        let trades_per_minute = format!(
            "(SELECT symbol, window_start, count(*) AS n FROM {tumble} \
             GROUP BY symbol, window_start) t"
        );
        assert_eq!(
            folding(&format!(
                "SELECT t.symbol, t.n, q.m FROM {trades_per_minute} JOIN (SELECT symbol, \
                 window_start, count(*) AS m FROM {quotes} GROUP BY symbol, window_start) q \
                 ON t.symbol = q.symbol AND t.window_start = q.window_start"
            )),
            [true, true]
        );
        assert_eq!(
            folding(&format!(
                "SELECT t.symbol, t.n, q.bid FROM {trades_per_minute} JOIN {quotes} q \
                 ON t.symbol = q.symbol AND t.window_start = q.window_start"
            )),
            [true, false]
        );
    }
}
