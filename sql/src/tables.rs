//! The DataFusion tables of the streams. Every table is a DataFusion `StreamingTable` whose
//! partition reads the live hub when a query runs: a stream's retained history, its latest
//! row per instrument, or — inside a continuous query — the rows the watermark has just
//! released. Nothing is copied into a memory table; batches are shared. The windows of a
//! continuous query are a [`WindowTable`], whose rows hold only the columns the query reads.

use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::catalog::Session;
use datafusion::catalog::TableFunctionArgs;
use datafusion::catalog::TableFunctionImpl;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::prelude::SessionContext;

use crate::error::SqlError;
use crate::fold::Fold;
use crate::hub::{Hub, LATEST_PREFIX};
use crate::window::{WindowBuffer, WindowSpec};

/// The window table functions.
pub const WINDOW_FUNCTIONS: [&str; 3] = ["tumble", "hop", "session"];

/// Batches handed to one execution of a continuous query.
#[derive(Debug, Clone, Default)]
pub struct Slot(Arc<Mutex<Vec<RecordBatch>>>);

impl Slot {
    /// Replaces the batches.
    pub fn set(&self, batches: Vec<RecordBatch>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = batches;
    }
    /// Takes the batches out.
    pub fn take(&self) -> Vec<RecordBatch> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    /// Adds batches.
    pub fn extend(&self, batches: impl IntoIterator<Item = RecordBatch>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batches);
    }
    /// Whether there is nothing to run over.
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
    fn get(&self) -> Vec<RecordBatch> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug)]
enum Source {
    History(Arc<Hub>, String),
    Latest(Arc<Hub>, String),
    Windows(Arc<Hub>, WindowSpec),
    Slot(Slot),
    /// A window feed's rows, which hold the columns `columns` of the windowed schema
    /// ([`Layout`]); read are those at `read`.
    Kept {
        slot: Slot,
        read: Vec<usize>,
    },
}

#[derive(Debug)]
struct LivePartition {
    schema: SchemaRef,
    source: Source,
}

impl LivePartition {
    fn batches(&self) -> Result<Vec<RecordBatch>, SqlError> {
        match &self.source {
            Source::History(hub, name) => Ok(hub.history(name)),
            Source::Latest(hub, name) => Ok(hub.latest(name)?.into_iter().collect()),
            Source::Windows(hub, spec) => {
                let stream = hub
                    .stream(&spec.table)
                    .ok_or_else(|| SqlError::plan(format!("no stream named {}", spec.table)))?;
                let mut buffer = WindowBuffer::new(spec.clone(), &stream.schema)?;
                for b in hub.history(&spec.table) {
                    buffer.insert(&b)?;
                }
                buffer.all_windows()
            }
            Source::Slot(slot) => Ok(slot.get()),
            Source::Kept { slot, read } => slot
                .get()
                .iter()
                .map(|b| b.project(read).map_err(SqlError::from))
                .collect(),
        }
    }
}

impl PartitionStream for LivePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let items: Vec<DfResult<RecordBatch>> = match self.batches() {
            Ok(b) => b.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(DataFusionError::External(Box::new(e)))],
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(items),
        ))
    }
}

fn table(schema: SchemaRef, source: Source) -> DfResult<Arc<dyn TableProvider>> {
    let partition = LivePartition {
        schema: schema.clone(),
        source,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?))
}

/// Registers the hub's streams (their retained history) and current-state tables in a
/// snapshot context, skipping those already there.
pub fn register_snapshot_tables(ctx: &SessionContext, hub: &Arc<Hub>) -> Result<(), SqlError> {
    for info in hub.streams() {
        if !ctx.table_exist(info.name.as_str())? {
            ctx.register_table(
                info.name.as_str(),
                table(
                    info.schema.clone(),
                    Source::History(hub.clone(), info.name.clone()),
                )?,
            )?;
        }
        let latest = format!("{LATEST_PREFIX}{}", info.name);
        if hub.has_latest(&info.name) && !ctx.table_exist(latest.as_str())? {
            ctx.register_table(
                latest.as_str(),
                table(
                    info.schema.clone(),
                    Source::Latest(hub.clone(), info.name.clone()),
                )?,
            )?;
        }
    }
    Ok(())
}

/// Registers one stream of a continuous query: its rows come from `slot` at each step.
pub fn register_step_table(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    slot: Slot,
) -> Result<(), SqlError> {
    ctx.register_table(name, table(schema, Source::Slot(slot))?)?;
    Ok(())
}

/// A windowed stream read by a continuous query.
#[derive(Debug)]
pub struct WindowFeed {
    /// Rows waiting for their windows to close.
    pub buffer: WindowBuffer,
    /// Where the closed windows' rows go for the next execution.
    pub slot: Slot,
    /// Which columns of the windowed schema those rows have.
    pub layout: Layout,
    /// How its rows are folded into aggregate states, when they can be.
    pub fold: Option<Fold>,
    /// When folding: the states of the windows closed since the last execution.
    pub closed: Vec<RecordBatch>,
}

/// For each column of a window feed's batches, its index in the windowed table's schema (the
/// stream's columns, then `window_start` and `window_end`); all of them until the query's
/// plan says which it reads ([`crate::window::WindowBuffer::keep_only`]).
#[derive(Debug, Clone, Default)]
pub struct Layout(Arc<Mutex<Option<Vec<usize>>>>);

impl Layout {
    /// Sets the columns the feed's batches have.
    pub fn set(&self, columns: Vec<usize>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(columns);
    }

    fn get(&self) -> Option<Vec<usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The windows of one window function call in a continuous query: a table of the windowed
/// schema whose rows come from a [`Slot`] at each execution, holding only the columns of its
/// [`Layout`]; a scan reads the ones it projects.
#[derive(Debug)]
pub struct WindowTable {
    schema: SchemaRef,
    slot: Slot,
    layout: Layout,
    /// Its feed's place among the query's window feeds.
    pub feed: usize,
}

#[async_trait::async_trait]
impl TableProvider for WindowTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let wanted = projection.unwrap_or(&all);
        let columns = self.layout.get().unwrap_or_else(|| all.clone());
        let read = wanted
            .iter()
            .map(|c| {
                columns.iter().position(|k| k == c).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "column {} of the windows is not kept",
                        self.schema.field(*c).name()
                    ))
                })
            })
            .collect::<DfResult<Vec<_>>>()?;
        let _ = limit; // The limit stays above the scan; the scan reads every row released.
        Ok(Arc::new(WindowScanExec::new(
            Arc::new(self.schema.project(wanted)?),
            self.slot.clone(),
            read,
            self.feed,
        )))
    }
}

/// The scan of a window feed in a continuous query: the rows of the slot, the columns `read`
/// of each. Its own plan node, so that [`crate::fold`] can find the aggregation above it.
#[derive(Debug)]
pub struct WindowScanExec {
    partition: LivePartition,
    properties: Arc<PlanProperties>,
    /// Its feed's place among the query's window feeds.
    feed: usize,
}

impl WindowScanExec {
    fn new(schema: SchemaRef, slot: Slot, read: Vec<usize>, feed: usize) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            partition: LivePartition {
                schema,
                source: Source::Kept { slot, read },
            },
            properties: Arc::new(properties),
            feed,
        }
    }

    /// Its feed's place among the query's window feeds.
    pub fn feed(&self) -> usize {
        self.feed
    }
}

impl DisplayAs for WindowScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WindowScanExec")
    }
}

impl ExecutionPlan for WindowScanExec {
    fn name(&self) -> &str {
        "WindowScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "a window scan has one partition, not {}",
                partition + 1
            )));
        }
        Ok(self.partition.execute(ctx))
    }
}

/// `tumble`, `hop` and `session` as table functions.
#[derive(Debug)]
pub struct WindowFunction {
    name: &'static str,
    hub: Arc<Hub>,
    /// In a continuous query, the feeds created by planning; in a snapshot, `None`.
    feeds: Option<Arc<Mutex<Vec<WindowFeed>>>>,
}

impl WindowFunction {
    /// Registers the three window functions in `ctx`.
    pub fn register(
        ctx: &SessionContext,
        hub: &Arc<Hub>,
        feeds: Option<Arc<Mutex<Vec<WindowFeed>>>>,
    ) {
        for name in WINDOW_FUNCTIONS {
            ctx.register_udtf(
                name,
                Arc::new(WindowFunction {
                    name,
                    hub: hub.clone(),
                    feeds: feeds.clone(),
                }),
            );
        }
    }
}

impl TableFunctionImpl for WindowFunction {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> DfResult<Arc<dyn TableProvider>> {
        let plan_err = |e: SqlError| DataFusionError::Plan(e.to_string());
        let spec = WindowSpec::from_args(self.name, args.exprs()).map_err(plan_err)?;
        let Some(stream) = self.hub.stream(&spec.table) else {
            let names: Vec<String> = self.hub.streams().into_iter().map(|s| s.name).collect();
            return Err(DataFusionError::Plan(format!(
                "{}(): no stream named {} (streams: {})",
                self.name,
                spec.table,
                names.join(", ")
            )));
        };
        match &self.feeds {
            None => {
                let schema = spec.schema(&stream.schema).map_err(plan_err)?;
                table(schema, Source::Windows(self.hub.clone(), spec))
            }
            Some(feeds) => {
                let buffer = WindowBuffer::new(spec, &stream.schema).map_err(plan_err)?;
                let slot = Slot::default();
                let layout = Layout::default();
                let schema = buffer.schema().clone();
                let mut feeds = feeds.lock().unwrap_or_else(|p| p.into_inner());
                feeds.push(WindowFeed {
                    buffer,
                    slot: slot.clone(),
                    layout: layout.clone(),
                    fold: None,
                    closed: Vec::new(),
                });
                Ok(Arc::new(WindowTable {
                    schema,
                    slot,
                    layout,
                    feed: feeds.len() - 1,
                }))
            }
        }
    }
}
