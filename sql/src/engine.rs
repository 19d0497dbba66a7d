//! The SQL engine of a running job: the hub of its streams, snapshot queries, and the
//! continuous queries, each on its own thread so a slow or failing query never holds up
//! another.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::runtime::{Handle, Runtime};

use crate::continuous::{ContinuousQuery, QueryDef, QueryStats, read_only};
use crate::error::SqlError;
use crate::hub::{Hub, Retention};
use crate::output::QueryOutput;
use crate::tables::{WindowFunction, register_snapshot_tables};

/// A continuous query started by the engine.
#[derive(Debug, Clone)]
pub struct Started {
    /// Its name.
    pub name: String,
    /// Its result schema.
    pub schema: SchemaRef,
    /// Its counters.
    pub stats: Arc<QueryStats>,
}

struct Running {
    started: Started,
    thread: Option<JoinHandle<()>>,
}

/// See the module documentation.
pub struct SqlEngine {
    hub: Arc<Hub>,
    /// Taken when the engine is dropped, to shut the runtime down without waiting.
    runtime: Option<Runtime>,
    handle: Handle,
    snapshot: SessionContext,
    /// Held while stream tables are added to the snapshot context (concurrent queries).
    registering: Mutex<()>,
    queries: Mutex<Vec<Running>>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine").field("hub", &self.hub).finish()
    }
}

impl SqlEngine {
    /// An engine with its own runtime, keeping `retention` of each stream for snapshots.
    pub fn new(retention: Retention) -> Result<Self, SqlError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tickflow-sql")
            .enable_all()
            .build()
            .map_err(|e| SqlError::Execution(format!("cannot start the SQL runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let hub = Arc::new(Hub::new(retention));
        let snapshot =
            SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        WindowFunction::register(&snapshot, &hub, None);
        Ok(Self {
            hub,
            runtime: Some(runtime),
            handle,
            snapshot,
            registering: Mutex::new(()),
            queries: Mutex::new(Vec::new()),
        })
    }

    /// The hub the pipeline's streams go into.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The runtime queries run on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Answers a query over the streams' retained history and current state.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), SqlError> {
        self.register()?;
        let df = self.snapshot.sql_with_options(sql, read_only()).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok((schema, batches))
    }

    fn register(&self) -> Result<(), SqlError> {
        let _guard = self.registering.lock().unwrap_or_else(|p| p.into_inner());
        register_snapshot_tables(&self.snapshot, &self.hub)
    }

    /// The result schema of a snapshot query, without running it.
    pub async fn plan_snapshot(&self, sql: &str) -> Result<SchemaRef, SqlError> {
        self.register()?;
        let df = self.snapshot.sql_with_options(sql, read_only()).await?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// [`SqlEngine::query`] from a thread outside the runtime.
    pub fn query_blocking(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), SqlError> {
        self.handle.block_on(self.query(sql))
    }

    /// Plans a continuous query without starting it (to check it).
    pub async fn plan(&self, def: QueryDef) -> Result<ContinuousQuery, SqlError> {
        ContinuousQuery::plan(&self.hub, def).await
    }

    /// Starts a planned continuous query; its results go to `output`.
    pub fn start(
        &self,
        query: ContinuousQuery,
        output: Box<dyn QueryOutput>,
    ) -> Result<Started, SqlError> {
        self.start_with(query, output, None)
    }

    /// Starts a planned continuous query of a live job; its results go to `output`, its
    /// checkpoints and durability to `hooks` (see [`ContinuousQuery::run`]).
    pub fn start_with(
        &self,
        query: ContinuousQuery,
        mut output: Box<dyn QueryOutput>,
        mut hooks: Option<Box<dyn crate::QueryHooks>>,
    ) -> Result<Started, SqlError> {
        let events = self.hub.subscribe(query.streams())?;
        let started = Started {
            name: query.def().name.clone(),
            schema: query.schema().clone(),
            stats: Arc::new(QueryStats::default()),
        };
        let (stats, handle) = (started.stats.clone(), self.handle.clone());
        let thread = std::thread::Builder::new()
            .name(format!("query-{}", started.name))
            .spawn(move || {
                // The error is kept in the stats and reported; other queries go on.
                let hooks: Option<&mut dyn crate::QueryHooks> = match &mut hooks {
                    Some(h) => Some(h.as_mut()),
                    None => None,
                };
                let _ = query.run(events, output.as_mut(), &handle, &stats, hooks);
            })
            .map_err(|e| SqlError::Execution(format!("cannot start a query thread: {e}")))?;
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Running {
                started: started.clone(),
                thread: Some(thread),
            });
        Ok(started)
    }

    /// Plans and starts a continuous query from a thread outside the runtime.
    pub fn start_blocking(
        &self,
        def: QueryDef,
        output: Box<dyn QueryOutput>,
    ) -> Result<Started, SqlError> {
        let query = self.handle.block_on(self.plan(def))?;
        self.start(query, output)
    }

    /// The continuous queries started so far.
    pub fn queries(&self) -> Vec<Started> {
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| r.started.clone())
            .collect()
    }

    /// Waits for every continuous query to finish (their streams have ended) and returns
    /// them with their counters.
    pub fn wait(&self) -> Vec<Started> {
        let mut queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        for q in queries.iter_mut() {
            if let Some(t) = q.thread.take()
                && t.join().is_err()
            {
                *q.started
                    .stats
                    .error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some("the query thread panicked".into());
            }
        }
        queries.iter().map(|r| r.started.clone()).collect()
    }
}

impl Drop for SqlEngine {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
