//! Arrow Flight SQL: the running job answers standard clients (ADBC, JDBC tools, pyarrow),
//! and `tickflow sql` is a client.
//!
//! A statement is a snapshot query, unless it starts with the word `CONTINUOUS`: then it is
//! a continuous query, and its result stream stays open, one batch per step, until the
//! streams end or the client hangs up. A client that stops reading for longer than
//! [`crate::output::CLIENT_TIMEOUT`] is dropped, so it holds the pipeline up no longer than that.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    CommandGetSqlInfo, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use arrow_schema::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

use crate::continuous::QueryDef;
use crate::engine::SqlEngine;
use crate::error::SqlError;
use crate::output::Channel;

/// The keyword that makes a statement continuous.
pub const CONTINUOUS: &str = "CONTINUOUS";

/// Splits `CONTINUOUS SELECT ...` into the query; `None` for a snapshot statement.
pub fn continuous_part(sql: &str) -> Option<&str> {
    let s = sql.trim_start();
    let head = s.get(..CONTINUOUS.len())?;
    let rest = &s[CONTINUOUS.len()..];
    (head.eq_ignore_ascii_case(CONTINUOUS) && rest.starts_with(char::is_whitespace)).then_some(rest)
}

static SQL_INFO: LazyLock<Result<SqlInfoData, String>> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "tickflow");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.build().map_err(|e| e.to_string())
});

fn sql_info() -> Result<&'static SqlInfoData, Status> {
    SQL_INFO.as_ref().map_err(|e| Status::internal(e.clone()))
}

fn status(e: SqlError) -> Status {
    match e {
        SqlError::Plan(m) => Status::invalid_argument(m),
        e @ SqlError::Query(_) => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// The Flight SQL service over an engine.
#[derive(Clone)]
pub struct FlightSqlServer {
    engine: Arc<SqlEngine>,
}

impl std::fmt::Debug for FlightSqlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlightSqlServer")
    }
}

type DataStream =
    Pin<Box<dyn futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

impl FlightSqlServer {
    /// A service answering from `engine`.
    pub fn new(engine: Arc<SqlEngine>) -> Self {
        Self { engine }
    }

    async fn schema_of(&self, sql: &str) -> Result<SchemaRef, SqlError> {
        match continuous_part(sql) {
            Some(q) => Ok(self
                .engine
                .plan(QueryDef {
                    name: "adhoc".into(),
                    sql: q.to_string(),
                    lateness_ns: 0,
                })
                .await?
                .schema()
                .clone()),
            None => self.engine.plan_snapshot(sql).await,
        }
    }

    fn encode(
        schema: SchemaRef,
        batches: impl futures::Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
    ) -> DataStream {
        Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(batches)
                .map_err(Status::from),
        )
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.schema_of(&query.query).await.map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the statement is not UTF-8"))?;
        if let Some(q) = continuous_part(&sql) {
            let query = self
                .engine
                .plan(QueryDef {
                    name: "adhoc".into(),
                    sql: q.to_string(),
                    lateness_ns: 0,
                })
                .await
                .map_err(status)?;
            let schema = query.schema().clone();
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            self.engine
                .start(query, Box::new(Channel::new(tx)))
                .map_err(status)?;
            let batches = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
            return Ok(Response::new(Self::encode(schema, batches)));
        }
        let (schema, batches) = self.engine.query(&sql).await.map_err(status)?;
        let batches = futures::stream::iter(batches.into_iter().map(Ok));
        Ok(Response::new(Self::encode(schema, batches)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(query.into_builder(sql_info()?).schema().as_ref())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let builder = query.into_builder(sql_info()?);
        let schema = builder.schema();
        let batch = builder.build();
        Ok(Response::new(Self::encode(
            schema,
            futures::stream::once(async move { batch }),
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves Flight SQL on `addr` (port 0 picks a free one) from the engine's runtime; returns
/// the address bound.
pub fn spawn(engine: Arc<SqlEngine>, addr: SocketAddr) -> Result<SocketAddr, SqlError> {
    let handle = engine.handle().clone();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| SqlError::Transport(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| SqlError::Transport(e.to_string()))?;
    let service = FlightServiceServer::new(FlightSqlServer::new(engine));
    handle.spawn(async move {
        // Small answers must not wait for delayed acknowledgements (40 ms each way).
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|c| {
                let _ = c.set_nodelay(true);
            })
        });
        if let Err(e) = Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
        {
            eprintln!("error: the Flight SQL server stopped: {e}");
        }
    });
    Ok(bound)
}

/// A Flight SQL client session.
pub struct Client {
    inner: FlightSqlServiceClient<tonic::transport::Channel>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

fn remote(e: FlightError) -> SqlError {
    match e {
        FlightError::Tonic(s) if s.code() == tonic::Code::InvalidArgument => {
            match s.message().strip_prefix("query failed: ") {
                Some(why) => SqlError::Query(why.to_string()),
                None => SqlError::Plan(s.message().to_string()),
            }
        }
        FlightError::Tonic(s) => SqlError::Transport(format!("{}: {}", s.code(), s.message())),
        other => SqlError::Transport(other.to_string()),
    }
}

impl Client {
    /// Connects to a Flight SQL server at `addr` (`HOST:PORT`).
    pub async fn connect(addr: &str) -> Result<Self, SqlError> {
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let channel = Endpoint::new(url.clone())
            .map_err(|e| SqlError::Transport(format!("bad address {addr}: {e}")))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| {
                SqlError::Transport(format!(
                    "cannot connect to {addr}: {} (is a job running there with its SQL endpoint \
                     open: `tickflow run ... --sql-listen {addr}`?)",
                    tickflow_core::describe(&e)
                ))
            })?;
        Ok(Self {
            inner: FlightSqlServiceClient::new(channel),
        })
    }

    /// Runs a statement; `each` receives the result batches as they come (a continuous
    /// statement keeps sending until the server's streams end). Returns the schema.
    pub async fn run(
        &mut self,
        sql: &str,
        mut each: impl FnMut(&RecordBatch) -> bool,
    ) -> Result<SchemaRef, SqlError> {
        let info = self
            .inner
            .execute(sql.to_string(), None)
            .await
            .map_err(remote)?;
        let schema = Arc::new(
            info.clone()
                .try_decode_schema()
                .map_err(|e| SqlError::Transport(e.to_string()))?,
        );
        for ep in info.endpoint {
            let Some(ticket) = ep.ticket else { continue };
            let mut stream = self.inner.do_get(ticket).await.map_err(remote)?;
            while let Some(batch) = stream.try_next().await.map_err(remote)? {
                if !each(&batch) {
                    return Ok(schema);
                }
            }
        }
        Ok(schema)
    }

    /// Runs a snapshot statement and returns all its rows.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), SqlError> {
        let mut out = Vec::new();
        let schema = self
            .run(sql, |b| {
                out.push(b.clone());
                true
            })
            .await?;
        Ok((schema, out))
    }
}
