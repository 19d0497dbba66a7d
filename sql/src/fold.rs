//! Incremental aggregation of open windows.
//!
//! When the rows of a window feed of a query (a call of `tumble`, `hop` or `session`) go into
//! one aggregation through row-by-row operators alone (filters, projections, a sort), and the
//! plan reads the feed nowhere else, an open window need not keep its rows: a
//! pane's rows are folded, once enough have come, into the partial aggregate states of each
//! window holding them — DataFusion's own `Partial` aggregation of the same plan — and
//! dropped. A window then holds one state per group (merged now and then, `PartialReduce`),
//! however long it is and however many rows it covers. When the window closes, the
//! aggregation of the query's plan reads the states (`Final`) instead of the rows.
//!
//! A session's bounds are known only when it closes, so its rows are folded with stand-in
//! window columns, and its states get the session's bounds when it closes: only when the
//! window columns reach the aggregation as bare group columns and nothing else reads them
//! (the usual `GROUP BY symbol, window_start, window_end`). Hopping windows whose window
//! columns are read that way fold each pane once, with stand-in window columns, and each
//! window holding the pane reads its states with the window's bounds when it closes: a row is
//! aggregated once, not once per window holding it (`size / slide` times).
//!
//! The results are those of the plain plan, whatever the rows folded: a final aggregation of
//! partial states of any split of the rows is the aggregation of the rows; that is what
//! DataFusion's own two-phase aggregation rests on. Each window feed of a query folds on its
//! own (the two aggregations of a join of two windowed streams, say). Feeds whose rows are
//! joined, ranked or cut before they are aggregated keep the rows of their open windows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, TimestampNanosecondArray};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, collect};

use crate::error::SqlError;
use crate::tables::WindowScanExec;
use crate::window::{WINDOW_END, WINDOW_START};

/// Rows a pane gathers before they are folded into its windows' states.
pub const FOLD_ROWS: usize = 4096;

/// Batches of states a window gathers before they are merged into one.
pub const MERGE_AT: usize = 8;

/// How a continuous query folds the rows of one of its window feeds into aggregate states.
#[derive(Debug)]
pub struct Fold {
    /// The feed's place among the query's window feeds.
    feed: usize,
    /// The rows in the window feed's slot, through the plan's operators below the
    /// aggregation, to their partial states.
    partial: Arc<AggregateExec>,
    /// The group columns of the states that are window columns, when nothing else reads the
    /// window columns (states can then be relabelled with other window bounds).
    labels: Option<Vec<(usize, Label)>>,
    /// Rows a pane gathers before it is folded.
    pub rows: usize,
}

/// A window column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Start,
    End,
}

impl Fold {
    /// The fold of window feed `feed` of `plan` (the query's physical plan), when its rows
    /// go into one aggregation row by row — and, for `sessions`, the window columns only as
    /// its bare group columns; `None` when they do not.
    pub fn find(
        plan: &Arc<dyn ExecutionPlan>,
        feed: usize,
        rows: usize,
        sessions: bool,
    ) -> Result<Option<Self>, SqlError> {
        let Some(target) = target(plan, feed) else {
            return Ok(None);
        };
        let Some(agg) = target.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let labels = labels(agg);
        if sessions && labels.is_none() {
            return Ok(None);
        }
        let partial = AggregateExec::try_new(
            AggregateMode::Partial,
            agg.group_expr().clone(),
            agg.aggr_expr().to_vec(),
            agg.filter_expr().to_vec(),
            agg.input().clone(),
            agg.input_schema(),
        )?;
        Ok(Some(Self {
            feed,
            partial: Arc::new(partial),
            labels,
            rows,
        }))
    }

    /// `states` of rows folded with stand-in window columns, with the window `[start, end)`.
    pub fn relabel(
        &self,
        states: RecordBatch,
        start: i64,
        end: i64,
    ) -> Result<RecordBatch, SqlError> {
        let Some(labels) = self.labels.as_ref().filter(|l| !l.is_empty()) else {
            return Ok(states);
        };
        let schema = states.schema();
        let mut columns = states.columns().to_vec();
        for &(g, label) in labels {
            let DataType::Timestamp(TimeUnit::Nanosecond, tz) = schema.field(g).data_type() else {
                return Err(SqlError::Execution(format!(
                    "the window column {} of the aggregate states is {}, not a timestamp",
                    schema.field(g).name(),
                    schema.field(g).data_type()
                )));
            };
            let value = if label == Label::Start { start } else { end };
            columns[g] = Arc::new(
                TimestampNanosecondArray::from_value(value, states.num_rows())
                    .with_timezone_opt(tz.clone()),
            );
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// Whether states folded with stand-in window columns can be given their window's bounds
    /// ([`Fold::relabel`]): nothing but the aggregation's bare group columns reads them.
    pub fn relabels(&self) -> bool {
        self.labels.is_some()
    }

    /// The schema of the states.
    pub fn schema(&self) -> SchemaRef {
        self.partial.schema()
    }

    /// The partial states of the rows now in the window feed's slot.
    pub async fn partial(&self, ctx: Arc<TaskContext>) -> Result<Vec<RecordBatch>, SqlError> {
        let out = collect(self.partial.clone(), ctx).await?;
        Ok(out.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    /// `states` merged: one state per group.
    pub async fn merge(
        &self,
        states: Vec<RecordBatch>,
        ctx: Arc<TaskContext>,
    ) -> Result<Vec<RecordBatch>, SqlError> {
        let reduce = AggregateExec::try_new(
            AggregateMode::PartialReduce,
            self.partial.group_expr().as_final(),
            self.partial.aggr_expr().to_vec(),
            self.partial.filter_expr().to_vec(),
            MemorySourceConfig::try_new_exec(&[states], self.schema(), None)?,
            self.partial.input_schema(),
        )?;
        let out = collect(Arc::new(reduce), ctx).await?;
        Ok(out.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    /// `plan` (planned again from the same logical plan) with its aggregation reading
    /// `states` in place of the window rows.
    pub fn substitute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        states: Vec<RecordBatch>,
    ) -> Result<Arc<dyn ExecutionPlan>, SqlError> {
        let target = target(&plan, self.feed).ok_or_else(|| {
            SqlError::Execution(
                "the plan of a query folding its windows no longer aggregates them".into(),
            )
        })?;
        let Some(agg) = target.downcast_ref::<AggregateExec>() else {
            return Err(SqlError::Execution(
                "the aggregation of a query folding its windows is gone".into(),
            ));
        };
        let source = MemorySourceConfig::try_new_exec(&[states], self.schema(), None)?;
        let replacement: Arc<dyn ExecutionPlan> = if *agg.mode() == AggregateMode::Partial {
            // Its parent merges partial states already.
            source
        } else {
            Arc::new(AggregateExec::try_new(
                AggregateMode::Final,
                agg.group_expr().as_final(),
                self.partial.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                source,
                agg.input_schema(),
            )?)
        };
        let out = plan.transform_up(|node| {
            Ok(
                if std::ptr::addr_eq(Arc::as_ptr(&node), Arc::as_ptr(&target)) {
                    Transformed::yes(replacement.clone())
                } else {
                    Transformed::no(node)
                },
            )
        })?;
        Ok(out.data)
    }
}

/// The aggregation over raw rows that reads the plan's only scan of window feed `feed`
/// through row-by-row operators alone, if there is one.
fn target(plan: &Arc<dyn ExecutionPlan>, feed: usize) -> Option<Arc<dyn ExecutionPlan>> {
    let mut scans = 0;
    let mut found = Vec::new();
    let mut stack = vec![plan.clone()];
    while let Some(node) = stack.pop() {
        if node
            .downcast_ref::<WindowScanExec>()
            .is_some_and(|s| s.feed() == feed)
        {
            scans += 1;
        }
        if let Some(agg) = node.downcast_ref::<AggregateExec>()
            && matches!(
                agg.mode(),
                AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
            )
            && row_by_row(agg.input(), feed)
        {
            found.push(node.clone());
        }
        stack.extend(node.children().into_iter().cloned());
    }
    if scans == 1 && found.len() == 1 {
        found.pop()
    } else {
        None
    }
}

/// The group columns of `agg` that are window columns, when the window columns of its rows
/// reach it as bare group columns and nothing else on the way reads them; `None` when
/// something does.
fn labels(agg: &AggregateExec) -> Option<Vec<(usize, Label)>> {
    // The operators from the aggregation's input down to the scan.
    let mut chain = vec![agg.input().clone()];
    while let Some(child) = chain
        .last()
        .and_then(|n| n.children().first().map(|c| (*c).clone()))
    {
        chain.push(child);
    }
    let scan = chain.pop()?;
    if !scan.is::<WindowScanExec>() {
        return None;
    }
    // Where the window columns are, operator by operator up to the aggregation.
    let mut window: HashMap<usize, Label> = scan
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f.name().as_str() {
            WINDOW_START => Some((i, Label::Start)),
            WINDOW_END => Some((i, Label::End)),
            _ => None,
        })
        .collect();
    let reads = |e: &Arc<dyn PhysicalExpr>, w: &HashMap<usize, Label>| {
        collect_columns(e)
            .iter()
            .any(|c| w.contains_key(&c.index()))
    };
    let bare = |e: &Arc<dyn PhysicalExpr>, w: &HashMap<usize, Label>| {
        e.downcast_ref::<Column>()
            .and_then(|c| w.get(&c.index()).copied())
    };
    for node in chain.iter().rev() {
        if let Some(f) = node.downcast_ref::<FilterExec>() {
            if reads(f.predicate(), &window) {
                return None;
            }
            if let Some(p) = f.projection() {
                window = p
                    .iter()
                    .enumerate()
                    .filter_map(|(new, old)| window.get(old).map(|l| (new, *l)))
                    .collect();
            }
        } else if let Some(p) = node.downcast_ref::<ProjectionExec>() {
            let mut next = HashMap::new();
            for (k, e) in p.expr().iter().enumerate() {
                if let Some(l) = bare(&e.expr, &window) {
                    next.insert(k, l);
                } else if reads(&e.expr, &window) {
                    return None;
                }
            }
            window = next;
        } else if let Some(s) = node.downcast_ref::<SortExec>()
            && s.expr().iter().any(|e| reads(&e.expr, &window))
        {
            return None;
        }
        // The others pass rows on as they are.
    }
    if agg.group_expr().has_grouping_set() {
        return None;
    }
    let mut out = Vec::new();
    for (g, (e, _)) in agg.group_expr().expr().iter().enumerate() {
        if let Some(l) = bare(e, &window) {
            out.push((g, l));
        } else if reads(e, &window) {
            return None;
        }
    }
    let aggregates_read = agg.aggr_expr().iter().any(|a| {
        a.expressions().iter().any(|e| reads(e, &window))
            || a.order_bys().iter().any(|o| reads(&o.expr, &window))
    });
    let filters_read = agg
        .filter_expr()
        .iter()
        .flatten()
        .any(|e| reads(e, &window));
    (!aggregates_read && !filters_read).then_some(out)
}

/// Whether `node` is the scan of window feed `feed`, or passes on rows of it one by one:
/// whatever the rows are split into, its output over the parts is its output over the whole.
fn row_by_row(node: &Arc<dyn ExecutionPlan>, feed: usize) -> bool {
    if let Some(scan) = node.downcast_ref::<WindowScanExec>() {
        return scan.feed() == feed;
    }
    let passes = node.fetch().is_none()
        && (node.is::<FilterExec>()
            || node.is::<ProjectionExec>()
            || node.is::<CoalescePartitionsExec>()
            || node.is::<RepartitionExec>()
            || node.is::<SortExec>()
            || node.is::<CooperativeExec>());
    let children = node.children();
    passes && children.len() == 1 && row_by_row(children[0], feed)
}
