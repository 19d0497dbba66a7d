//! Pipeline definitions: TOML in, a validated [`Pipeline`] out.
//!
//! The file is walked with its source positions, so validation reports every problem at once
//! — unknown keys, wrong types, bad values, dangling stream names — each with `file:line:column`.
//! The format is documented in the README and by `pipelines/daytrade.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use tickflow_core::{Duration, OrderType, Price, Quantity, TimeInForce, Timestamp};
use tickflow_operators::exchange::ExchangeConfig;
use tickflow_operators::features::FeatureConfig;
use tickflow_operators::indicators::IndicatorPeriods;
use tickflow_operators::predict::{PREDICTION_COLUMNS, PredictConfig};
use tickflow_operators::risk::RiskConfig;
use tickflow_operators::signals::StrategyConfig;
use tickflow_sources::kafka::KafkaSourceConfig;
use tickflow_sources::{ReplayFormat, SourceConfig, SyntheticConfig};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The default pipeline, compiled in so `tickflow run` works from any directory.
pub const DEFAULT_PIPELINE: &str = include_str!("../daytrade.toml");
/// Name under which the default pipeline is reported.
pub const DEFAULT_PIPELINE_NAME: &str = "pipelines/daytrade.toml";

/// Streams every pipeline has.
pub const BUILTIN_STREAMS: [&str; 4] = ["trades", "quotes", "book", "rejects"];

/// A validated pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// Name of the pipeline.
    pub name: String,
    /// Event-time step of the dataflow.
    pub granularity: Duration,
    /// How far behind the newest event time a record may arrive and still be accepted.
    pub allowed_lateness: Duration,
    /// Wall-clock time between the watermark moves that sinks, the run report and the
    /// portfolio valuation see (zero: every move). The trading path always sees every move.
    pub watermark_interval: Duration,
    /// Inputs.
    pub sources: Vec<SourceConfig>,
    /// Normalize settings.
    pub normalize: NormalizeSettings,
    /// Operators after normalize, in order.
    pub operators: Vec<OperatorDef>,
    /// Outputs.
    pub sinks: Vec<SinkDef>,
    /// Continuous SQL queries over the streams (`[[query]]`).
    pub queries: Vec<QueryDef>,
    /// Checkpoints of operator state and input positions (`[checkpoint]`).
    pub checkpoint: Option<CheckpointConfig>,
}

/// Where and how often a live job checkpoints (`[checkpoint]`).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    /// Directory of the checkpoints; a job that finds a complete one there resumes from it.
    pub dir: PathBuf,
    /// Event time between checkpoints.
    pub interval: Duration,
}

/// Settings of the normalize stage (always present: every record is validated).
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizeSettings {
    /// How long venue ids are remembered to drop duplicates.
    pub dedupe_window: Duration,
}

/// An operator of the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorDef {
    /// Name, which is also the name of its output stream.
    pub name: String,
    /// Input stream.
    pub input: String,
    /// What it does.
    pub kind: OperatorKind,
}

/// Operator kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum OperatorKind {
    /// Time bars of an interval: over trades, or over quotes as mid-price bars.
    TimeBars {
        /// Bar length.
        interval: Duration,
    },
    /// Volume bars of a volume.
    VolumeBars {
        /// Volume per bar.
        volume: Quantity,
    },
    /// The standard indicator set over a bar stream.
    Indicators {
        /// Periods.
        periods: IndicatorPeriods,
    },
    /// Strategy rules over an indicator stream.
    Signals {
        /// The strategy.
        strategy: StrategyConfig,
    },
    /// Feature vectors over an indicator stream, its bars and the quotes.
    Features {
        /// Horizons and indicator columns.
        config: FeatureConfig,
        /// Quotes stream for spread and order-flow imbalance.
        quotes: String,
    },
    /// A model over a features stream: feature rows in, predictions out.
    Predict {
        /// Model directory, device, first prediction time.
        config: PredictConfig,
    },
    /// Pre-trade risk: signals in, orders out (rejects to a second stream).
    Risk {
        /// Order generation and limits.
        config: RiskConfig,
        /// Bars stream whose closes are the last trade prices.
        prices: String,
        /// Fills stream that comes back through the feedback edge.
        fills: String,
        /// Name of the risk-rejects stream.
        rejects: String,
    },
    /// Simulated exchange: orders in, fills out.
    Exchange {
        /// Latency, slippage, fees.
        config: ExchangeConfig,
        /// Quotes stream the orders execute against.
        quotes: String,
        /// Trades stream, read with `fill_on_trades`.
        trades: String,
    },
    /// Portfolio valuation: fills in, positions out (totals to a second stream).
    Portfolio {
        /// Bars stream whose closes mark the positions.
        prices: String,
        /// Name of the portfolio-totals stream.
        totals: String,
        /// Capital the returns of the backtest report are relative to.
        capital: Price,
    },
}

impl OperatorKind {
    /// Stream type the operator reads.
    pub fn input_type(&self) -> StreamType {
        match self {
            OperatorKind::TimeBars { .. } | OperatorKind::VolumeBars { .. } => StreamType::Trades,
            OperatorKind::Indicators { .. } => StreamType::Bars,
            OperatorKind::Signals { .. } => StreamType::Indicators,
            OperatorKind::Features { .. } => StreamType::Indicators,
            OperatorKind::Predict { .. } => StreamType::Indicators,
            OperatorKind::Risk { .. } => StreamType::Signals,
            OperatorKind::Exchange { .. } => StreamType::Orders,
            OperatorKind::Portfolio { .. } => StreamType::Fills,
        }
    }
    /// Stream type the operator writes.
    pub fn output_type(&self) -> StreamType {
        match self {
            OperatorKind::TimeBars { .. } | OperatorKind::VolumeBars { .. } => StreamType::Bars,
            OperatorKind::Indicators { .. } => StreamType::Indicators,
            OperatorKind::Signals { .. } => StreamType::Signals,
            OperatorKind::Features { .. } => StreamType::Indicators,
            OperatorKind::Predict { .. } => StreamType::Predictions,
            OperatorKind::Risk { .. } => StreamType::Orders,
            OperatorKind::Exchange { .. } => StreamType::Fills,
            OperatorKind::Portfolio { .. } => StreamType::Positions,
        }
    }
    /// Streams the operator writes besides its own.
    /// Whether the operator can read a stream of type `ty`: its input type, predictions for
    /// signal rules (which see each prediction as a row of `p_up` and `expected_return`), or
    /// quotes for time bars (bars of mid prices).
    pub fn accepts(&self, ty: StreamType) -> bool {
        ty == self.input_type()
            || matches!(
                (self, ty),
                (OperatorKind::Signals { .. }, StreamType::Predictions)
                    | (OperatorKind::TimeBars { .. }, StreamType::Quotes)
            )
    }
    pub fn extra_outputs(&self) -> Vec<(String, StreamType)> {
        match self {
            OperatorKind::Risk { rejects, .. } => vec![(rejects.clone(), StreamType::RiskRejects)],
            OperatorKind::Portfolio { totals, .. } => vec![(totals.clone(), StreamType::Portfolio)],
            _ => Vec::new(),
        }
    }
    /// Streams the operator reads besides its input, defined before it.
    pub fn extra_inputs(&self) -> Vec<(&str, StreamType)> {
        match self {
            OperatorKind::Risk { prices, .. } | OperatorKind::Portfolio { prices, .. } => {
                vec![(prices.as_str(), StreamType::Bars)]
            }
            OperatorKind::Exchange {
                quotes,
                trades,
                config,
            } => {
                let mut v = vec![(quotes.as_str(), StreamType::Quotes)];
                if config.fill_on_trades {
                    v.push((trades.as_str(), StreamType::Trades));
                }
                v
            }
            OperatorKind::Features { quotes, .. } => vec![(quotes.as_str(), StreamType::Quotes)],
            _ => Vec::new(),
        }
    }
}

/// Record type of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamType {
    /// Trades.
    Trades,
    /// Quotes.
    Quotes,
    /// Order-book events.
    Book,
    /// Rejects.
    Rejects,
    /// Bars.
    Bars,
    /// Indicator rows.
    Indicators,
    /// Model predictions.
    Predictions,
    /// Trading signals.
    Signals,
    /// Orders that passed risk.
    Orders,
    /// Orders refused by risk.
    RiskRejects,
    /// Execution reports.
    Fills,
    /// Per-instrument positions and valuations.
    Positions,
    /// Portfolio totals.
    Portfolio,
}

impl fmt::Display for StreamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamType::Trades => "trades",
            StreamType::Quotes => "quotes",
            StreamType::Book => "order-book events",
            StreamType::Rejects => "rejected records",
            StreamType::Bars => "bars",
            StreamType::Indicators => "rows of indicators or features",
            StreamType::Predictions => "predictions",
            StreamType::Signals => "signals",
            StreamType::Orders => "orders",
            StreamType::RiskRejects => "orders refused by risk",
            StreamType::Fills => "fills",
            StreamType::Positions => "positions",
            StreamType::Portfolio => "portfolio totals",
        })
    }
}

/// An output.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkDef {
    /// Kind of output.
    pub kind: SinkKind,
    /// Streams it writes.
    pub streams: Vec<String>,
    /// Directory for file outputs; `None` means the run's output directory.
    pub dir: Option<PathBuf>,
    /// Parquet sinks of live jobs: how long a part stays open at least (default 1 minute).
    pub roll: Duration,
}

/// How long a part of a live job's Parquet sink stays open at least, by default.
pub const DEFAULT_ROLL: Duration = Duration::from_secs(60);

/// A continuous SQL query declared in the pipeline (`[[query]]`). The SQL itself is checked
/// by the SQL layer when the job starts.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryDef {
    /// Name of the query and of its output.
    pub name: String,
    /// The SELECT statement.
    pub sql: String,
    /// Where the results go: a sink (`stdout`, `jsonl`, `parquet` or `discard`), or a stream
    /// of the dataflow named after the query (`stream`).
    pub sink: QuerySink,
    /// For a query whose results are a stream: the event-time column of its rows (`time`;
    /// `None` picks `window_end`, `end` or `ts_event`, the first the results have).
    pub time: Option<String>,
    /// For a query whose results are a stream: the value columns its rows carry, known once the
    /// SQL layer has planned the query ([`Pipeline::set_query_columns`]).
    pub columns: Option<Vec<String>>,
    /// Directory for file outputs; `None` means the run's output directory.
    pub dir: Option<PathBuf>,
    /// How long a window stays open after the watermark passes its end.
    pub lateness: Duration,
    /// For a query whose windows go into one aggregation: how many rows a pane of its open
    /// windows gathers before they are folded into aggregate states (`fold_rows`; `None`: the
    /// SQL layer's default; 0: open windows keep their rows).
    pub fold_rows: Option<u64>,
    /// A parquet output of a live job: how long each part stays open (see [`SinkDef::roll`]).
    pub roll: Duration,
    /// Line of the pipeline file where the SQL text starts (1-based; 0 when not from a file),
    /// so errors the SQL layer reports by line within the query can be found in the file.
    pub sql_line: usize,
}

/// Where a query's results go.
#[derive(Clone, Debug, PartialEq)]
pub enum QuerySink {
    /// A sink of their own.
    Sink(SinkKind),
    /// A row stream of the dataflow, named after the query, that later operators (signals,
    /// predict), sinks and queries read: one row per result row, keyed by `instrument_id`, at
    /// its event-time column, carrying the numeric columns as values.
    Stream,
}

/// Sink kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    /// Human-readable lines on stdout, at most `limit` per stream.
    Stdout {
        /// Lines per stream.
        limit: Option<u64>,
    },
    /// JSON Lines files.
    Jsonl,
    /// Parquet files.
    Parquet,
    /// Count and drop.
    Discard,
    /// A Kafka topic per stream, one JSON message per record keyed by instrument.
    Kafka {
        /// Bootstrap brokers (`TICKFLOW_KAFKA_BROKERS` overrides them; default
        /// 127.0.0.1:9092).
        brokers: Option<String>,
        /// Topic name; `{stream}` is replaced by the stream's name (default `{stream}`).
        topic: String,
        /// Partitions of a topic the sink creates.
        partitions: i32,
    },
}

/// The topic a Kafka sink writes `stream` to.
pub fn kafka_topic(template: &str, stream: &str) -> String {
    template.replace("{stream}", stream)
}

impl Pipeline {
    /// The type of a named stream, if the pipeline has it.
    pub fn stream_type(&self, name: &str) -> Option<StreamType> {
        match name {
            "trades" => Some(StreamType::Trades),
            "quotes" => Some(StreamType::Quotes),
            "book" => Some(StreamType::Book),
            "rejects" => Some(StreamType::Rejects),
            _ => self
                .operators
                .iter()
                .find_map(|o| {
                    if o.name == name {
                        return Some(o.kind.output_type());
                    }
                    o.kind
                        .extra_outputs()
                        .into_iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| t)
                })
                .or_else(|| self.stream_query(name).map(|_| StreamType::Indicators)),
        }
    }

    /// The query whose results are stream `name`, if there is one.
    pub fn stream_query(&self, name: &str) -> Option<&QueryDef> {
        self.stream_queries().find(|q| q.name == name)
    }

    /// A live job (one following a Kafka topic, `follow = true`): how often it commits its
    /// input offsets (the shortest of its sources' intervals); `None` for a job whose sources
    /// end.
    pub fn live_commits(&self) -> Option<std::time::Duration> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                SourceConfig::Kafka(k) if k.follow => Some(k.commit_interval.to_std()),
                _ => None,
            })
            .min()
    }

    /// The queries whose results are streams, in file order.
    pub fn stream_queries(&self) -> impl Iterator<Item = &QueryDef> {
        self.queries
            .iter()
            .filter(|q| matches!(q.sink, QuerySink::Stream))
    }

    /// Records the event-time and value columns of the stream of query `name`, once the SQL
    /// layer has planned it ([`crate::row_columns`]). Errors when the pipeline has no such
    /// stream query.
    pub fn set_query_columns(
        &mut self,
        name: &str,
        columns: crate::RowColumns,
    ) -> Result<(), String> {
        let q = self
            .queries
            .iter_mut()
            .find(|q| q.name == name && matches!(q.sink, QuerySink::Stream))
            .ok_or_else(|| format!("the pipeline has no query `{name}` with sink = \"stream\""))?;
        q.time = Some(columns.time);
        q.columns = Some(columns.values);
        Ok(())
    }

    /// Every stream that depends on `stream`: the outputs of the operators that read it, and of
    /// the operators that read those, and so on, through `queries`' streams too
    /// (`queries`: query stream name → the streams that query reads).
    pub fn downstream_of(
        &self,
        stream: &str,
        queries: &BTreeMap<String, Vec<String>>,
    ) -> BTreeSet<String> {
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut todo = vec![stream.to_string()];
        while let Some(s) = todo.pop() {
            let mut outputs: Vec<String> = Vec::new();
            for o in &self.operators {
                if o.input == s || o.kind.extra_inputs().iter().any(|(x, _)| *x == s) {
                    outputs.push(o.name.clone());
                    outputs.extend(o.kind.extra_outputs().into_iter().map(|(n, _)| n));
                }
            }
            for (q, reads) in queries {
                if reads.contains(&s) {
                    outputs.push(q.clone());
                }
            }
            for out in outputs {
                if found.insert(out.clone()) {
                    todo.push(out);
                }
            }
        }
        found
    }

    /// Column names of a row stream (indicators or features); empty for any other stream.
    pub fn columns(&self, stream: &str) -> Vec<String> {
        if let Some(q) = self.stream_query(stream) {
            return q.columns.clone().unwrap_or_default();
        }
        columns_of(
            self.operators
                .iter()
                .map(|o| (o.name.as_str(), o.input.as_str(), &o.kind)),
            stream,
        )
        .unwrap_or_default()
    }

    /// The bars stream a features operator reads beside its indicator input: the input of that
    /// indicators operator.
    pub fn bars_of(&self, features: &OperatorDef) -> Option<String> {
        self.operators
            .iter()
            .find(|o| o.name == features.input)
            .map(|o| o.input.clone())
    }

    /// The bars under `stream`: the first bar operator up its chain of inputs, described as a
    /// model records the bars it learned from ("time bars of 30s over trades", "time bars of 1m
    /// over quotes (mid prices)", "volume bars of 500 over trades"). `None` where the chain
    /// reaches no bar operator (a query stream, a source stream).
    pub fn bar_basis(&self, stream: &str) -> Option<String> {
        let mut name = stream;
        // Inputs are defined before their readers, so the chain ends; the bound is a guard.
        for _ in 0..=self.operators.len() {
            let op = self.operators.iter().find(|o| o.name == name)?;
            match &op.kind {
                OperatorKind::TimeBars { interval } => {
                    let over = match self.stream_type(&op.input) {
                        Some(StreamType::Quotes) => "quotes (mid prices)",
                        _ => "trades",
                    };
                    return Some(format!("time bars of {interval} over {over}"));
                }
                OperatorKind::VolumeBars { volume } => {
                    return Some(format!("volume bars of {} over trades", volume.to_f64()));
                }
                _ => name = &op.input,
            }
        }
        None
    }

    /// Makes the time bars that read the `trades` stream read `quotes` instead, building them
    /// from mid prices: for data that records quotes and no trades (FX). Returns the names of
    /// the operators changed.
    pub fn mid_bars(&mut self) -> Vec<String> {
        let mut changed = Vec::new();
        for op in &mut self.operators {
            if matches!(op.kind, OperatorKind::TimeBars { .. }) && op.input == "trades" {
                op.input = "quotes".into();
                changed.push(op.name.clone());
            }
        }
        changed
    }

    /// Every stream name, built-in first.
    pub fn stream_names(&self) -> Vec<String> {
        BUILTIN_STREAMS
            .iter()
            .map(|s| s.to_string())
            .chain(self.stream_queries().map(|q| q.name.clone()))
            .chain(self.operators.iter().flat_map(|o| {
                std::iter::once(o.name.clone())
                    .chain(o.kind.extra_outputs().into_iter().map(|(n, _)| n))
            }))
            .collect()
    }

    /// Loads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string()).map_err(LoadError::Invalid)
    }

    /// The built-in default pipeline.
    pub fn default_pipeline() -> Self {
        Self::parse(DEFAULT_PIPELINE, DEFAULT_PIPELINE_NAME)
            .unwrap_or_else(|e| panic!("the built-in pipeline is invalid:\n{e}"))
    }

    /// Parses and validates pipeline text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigErrors> {
        let mut w = Walker {
            text,
            errors: Vec::new(),
        };
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                w.err(e.span().unwrap_or(0..0), e.message().to_owned());
                return Err(w.into_errors(origin));
            }
        };
        let pipeline = parse_root(&mut w, root.get_ref(), root.span());
        match pipeline {
            Some(p) if w.errors.is_empty() => Ok(p),
            _ => Err(w.into_errors(origin)),
        }
    }
}

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    /// File name (or `<text>`).
    pub origin: String,
    /// Problems in file order.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(
                f,
                "  {}:{}:{}: {}",
                self.origin, e.line, e.column, e.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Errors loading a pipeline file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read pipeline {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file has problems.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

struct Walker<'t> {
    text: &'t str,
    errors: Vec<(usize, String)>,
}

impl Walker<'_> {
    fn err(&mut self, span: Range<usize>, message: String) {
        self.errors.push((span.start, message));
    }

    fn into_errors(self, origin: &str) -> ConfigErrors {
        let mut errors: Vec<ConfigError> = self
            .errors
            .iter()
            .map(|(offset, message)| {
                let before = &self.text[..(*offset).min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                ConfigError {
                    line,
                    column,
                    message: message.clone(),
                }
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        ConfigErrors {
            origin: origin.to_owned(),
            errors,
        }
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// A decimal as written (a string, or a number's own digits, never through f64): `None` for a
/// value of another type.
fn decimal_text(value: &DeValue<'_>) -> Option<String> {
    value
        .as_str()
        .map(str::to_owned)
        .or_else(|| value.as_integer().map(|i| i.as_str().replace('_', "")))
        .or_else(|| value.as_float().map(|f| f.as_str().replace('_', "")))
}

/// A table being read: remembers which keys were used so the rest can be reported.
struct TableReader<'a, 'i> {
    table: &'a DeTable<'i>,
    span: Range<usize>,
    what: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> TableReader<'a, 'i> {
    fn new(table: &'a DeTable<'i>, span: Range<usize>, what: impl Into<String>) -> Self {
        Self {
            table,
            span,
            what: what.into(),
            known: Vec::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        self.known.push(key);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    fn string(&mut self, w: &mut Walker<'_>, key: &'static str) -> Option<(String, Range<usize>)> {
        let v = self.get(key)?;
        match v.get_ref().as_str() {
            Some(s) => Some((s.to_owned(), v.span())),
            None => {
                w.err(
                    v.span(),
                    format!(
                        "`{key}` in {} must be a string, found {}",
                        self.what,
                        v.get_ref().type_str()
                    ),
                );
                None
            }
        }
    }

    fn required_string(
        &mut self,
        w: &mut Walker<'_>,
        key: &'static str,
    ) -> Option<(String, Range<usize>)> {
        let found = self.get(key).is_some();
        self.known.pop();
        if !found {
            w.err(
                self.span.clone(),
                format!("{} is missing `{key}`", self.what),
            );
            self.known.push(key);
            return None;
        }
        self.string(w, key)
    }

    fn integer(&mut self, w: &mut Walker<'_>, key: &'static str, range: Range<i64>) -> Option<i64> {
        let v = self.get(key)?;
        let parsed = v
            .get_ref()
            .as_integer()
            .and_then(|i| i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok());
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                w.err(
                    v.span(),
                    format!(
                        "`{key}` in {} must be between {} and {}, found {n}",
                        self.what,
                        range.start,
                        range.end - 1
                    ),
                );
                None
            }
            None => {
                w.err(
                    v.span(),
                    format!(
                        "`{key}` in {} must be an integer, found {}",
                        self.what,
                        v.get_ref().type_str()
                    ),
                );
                None
            }
        }
    }

    fn float(&mut self, w: &mut Walker<'_>, key: &'static str, lo: f64, hi: f64) -> Option<f64> {
        let v = self.get(key)?;
        let value = v.get_ref();
        let parsed = value
            .as_float()
            .and_then(|f| f.as_str().replace('_', "").parse::<f64>().ok())
            .or_else(|| {
                value
                    .as_integer()
                    .and_then(|i| i.as_str().replace('_', "").parse::<f64>().ok())
            });
        match parsed {
            Some(x) if x.is_finite() && x >= lo && x <= hi => Some(x),
            Some(x) => {
                let range = if lo == f64::MIN_POSITIVE {
                    format!("greater than 0 and at most {}", show_float(hi))
                } else {
                    format!("between {} and {}", show_float(lo), show_float(hi))
                };
                w.err(
                    v.span(),
                    format!(
                        "`{key}` in {} must be {range}, found {}",
                        self.what,
                        show_float(x)
                    ),
                );
                None
            }
            None => {
                w.err(
                    v.span(),
                    format!(
                        "`{key}` in {} must be a number, found {}",
                        self.what,
                        value.type_str()
                    ),
                );
                None
            }
        }
    }

    fn strings_or_ints(&mut self, w: &mut Walker<'_>, key: &'static str) -> Option<Vec<i64>> {
        let v = self.get(key)?;
        let items = v.get_ref().as_array().map(|a| {
            a.iter()
                .map(|i| {
                    i.get_ref()
                        .as_integer()
                        .and_then(|x| x.as_str().replace('_', "").parse::<i64>().ok())
                })
                .collect::<Option<Vec<i64>>>()
        });
        match items {
            Some(Some(list)) => Some(list),
            _ => {
                w.err(
                    v.span(),
                    format!("`{key}` in {} must be an array of integers", self.what),
                );
                None
            }
        }
    }

    /// A decimal (number or string) parsed exactly; `Err(())` when present but invalid.
    fn fixed<T>(
        &mut self,
        w: &mut Walker<'_>,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, tickflow_core::ParseFixedError>,
        nonneg: impl Fn(&T) -> bool,
    ) -> Option<T> {
        let v = self.get(key)?;
        match decimal_text(v.get_ref()).map(|t| parse(&t)) {
            Some(Ok(x)) if nonneg(&x) => Some(x),
            Some(Ok(_)) => {
                w.err(
                    v.span(),
                    format!("`{key}` in {} must not be negative", self.what),
                );
                None
            }
            Some(Err(e)) => {
                w.err(v.span(), format!("`{key}` in {}: {e}", self.what));
                None
            }
            None => {
                w.err(
                    v.span(),
                    format!(
                        "`{key}` in {} must be a number or a decimal string",
                        self.what
                    ),
                );
                None
            }
        }
    }

    fn quantity(&mut self, w: &mut Walker<'_>, key: &'static str) -> Option<Quantity> {
        self.fixed(w, key, Quantity::parse, |q| q.raw() >= 0)
    }

    fn money(&mut self, w: &mut Walker<'_>, key: &'static str) -> Option<Price> {
        self.fixed(w, key, Price::parse, |p| p.raw() >= 0)
    }

    fn boolean(&mut self, w: &mut Walker<'_>, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref().as_bool() {
            Some(b) => Some(b),
            None => {
                w.err(
                    v.span(),
                    format!("`{key}` in {} must be true or false", self.what),
                );
                None
            }
        }
    }

    fn choice<T>(
        &mut self,
        w: &mut Walker<'_>,
        key: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Option<T> {
        let (text, span) = self.string(w, key)?;
        let parsed = parse(&text);
        if parsed.is_none() {
            w.err(
                span,
                format!(
                    "`{key}` in {} must be {expected}, found {text:?}",
                    self.what
                ),
            );
        }
        parsed
    }

    fn duration(&mut self, w: &mut Walker<'_>, key: &'static str) -> Option<Duration> {
        let (text, span) = self.string(w, key)?;
        match Duration::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                w.err(span, format!("`{key}` in {}: {e}", self.what));
                None
            }
        }
    }

    fn strings(
        &mut self,
        w: &mut Walker<'_>,
        key: &'static str,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let v = self.get(key)?;
        let Some(items) = v.get_ref().as_array() else {
            w.err(
                v.span(),
                format!("`{key}` in {} must be an array of strings", self.what),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push((s.to_owned(), item.span())),
                None => w.err(
                    item.span(),
                    format!(
                        "`{key}` in {} must hold strings, found {}",
                        self.what,
                        item.get_ref().type_str()
                    ),
                ),
            }
        }
        Some(out)
    }

    /// Reports keys that no getter asked for.
    fn finish(self, w: &mut Walker<'_>) {
        for (k, _) in self.table.iter() {
            let key = k.get_ref().as_ref();
            if !self.known.contains(&key) {
                let mut expected = self.known.clone();
                expected.sort_unstable();
                expected.dedup();
                w.err(
                    k.span(),
                    format!(
                        "unknown key `{key}` in {} (expected one of: {})",
                        self.what,
                        expected.join(", ")
                    ),
                );
            }
        }
    }
}

/// The tables of an array of tables (`[[source]]`).
fn tables<'a, 'i>(
    w: &mut Walker<'_>,
    v: &'a Value<'i>,
    what: &str,
) -> Vec<(&'a DeTable<'i>, Range<usize>)> {
    match v.get_ref().as_array() {
        Some(items) => items
            .iter()
            .filter_map(|item| match item.get_ref().as_table() {
                Some(t) => Some((t, item.span())),
                None => {
                    w.err(
                        item.span(),
                        format!("each {what} must be a table ([[{what}]])"),
                    );
                    None
                }
            })
            .collect(),
        None => {
            w.err(
                v.span(),
                format!("`{what}` must be an array of tables ([[{what}]])"),
            );
            Vec::new()
        }
    }
}

fn parse_root(w: &mut Walker<'_>, root: &DeTable<'_>, span: Range<usize>) -> Option<Pipeline> {
    let mut top = TableReader::new(root, span.clone(), "the pipeline file");
    let mut name = "pipeline".to_owned();
    let mut granularity = Duration::from_millis(1);
    let mut allowed_lateness = Duration::from_millis(500);
    let mut watermark_interval = Duration::from_millis(1);
    if let Some(v) = top.get("pipeline") {
        match v.get_ref().as_table() {
            Some(t) => {
                let mut p = TableReader::new(t, v.span(), "[pipeline]");
                if let Some((n, _)) = p.string(w, "name") {
                    name = n;
                }
                p.string(w, "description");
                if let Some(d) = p.duration(w, "granularity") {
                    if d.nanos() <= 0 {
                        w.err(
                            v.span(),
                            "`granularity` in [pipeline] must be positive".into(),
                        );
                    }
                    granularity = d;
                }
                if let Some(d) = p.duration(w, "allowed_lateness") {
                    allowed_lateness = d;
                }
                if let Some(d) = p.duration(w, "watermark_interval") {
                    if d > Duration::from_secs(1) {
                        w.err(
                            v.span(),
                            "`watermark_interval` in [pipeline] must be between 0 and 1s".into(),
                        );
                    }
                    watermark_interval = d;
                }
                p.finish(w);
            }
            None => w.err(v.span(), "`pipeline` must be a table ([pipeline])".into()),
        }
    }

    let mut sources = Vec::new();
    match top.get("source") {
        Some(v) => {
            for (i, (t, span)) in tables(w, v, "source").into_iter().enumerate() {
                if let Some(s) = parse_source(w, t, span, i + 1) {
                    sources.push(s);
                }
            }
        }
        None => w.err(0..0, "the pipeline has no [[source]]".into()),
    }

    let mut normalize = NormalizeSettings {
        dedupe_window: Duration::from_secs(60),
    };
    if let Some(v) = top.get("normalize") {
        match v.get_ref().as_table() {
            Some(t) => {
                let mut n = TableReader::new(t, v.span(), "[normalize]");
                if let Some(d) = n.duration(w, "dedupe_window") {
                    normalize.dedupe_window = d;
                }
                n.finish(w);
            }
            None => w.err(v.span(), "`normalize` must be a table ([normalize])".into()),
        }
    }

    let mut checkpoint = None;
    if let Some(v) = top.get("checkpoint") {
        match v.get_ref().as_table() {
            Some(t) => {
                let mut c = TableReader::new(t, v.span(), "[checkpoint]");
                let dir = c.required_string(w, "dir");
                let interval = c.duration(w, "interval").unwrap_or(Duration::from_secs(60));
                if interval.nanos() <= 0 {
                    w.err(
                        v.span(),
                        "`interval` in [checkpoint] must be positive".into(),
                    );
                } else if granularity.nanos() > 0 && interval.nanos() % granularity.nanos() != 0 {
                    // A checkpoint time must be a time the dataflow's records can have.
                    w.err(
                        v.span(),
                        format!(
                            "`interval` in [checkpoint] ({interval}) must be a whole multiple of \
                             the pipeline's `granularity` ({granularity})"
                        ),
                    );
                }
                match dir {
                    Some((d, span)) if d.trim().is_empty() => {
                        w.err(span, "`dir` in [checkpoint] must name a directory".into())
                    }
                    Some((d, _)) => {
                        checkpoint = Some(CheckpointConfig {
                            dir: PathBuf::from(d),
                            interval,
                        })
                    }
                    None => {}
                }
                c.finish(w);
            }
            None => w.err(
                v.span(),
                "`checkpoint` must be a table ([checkpoint])".into(),
            ),
        }
    }

    let mut operators: Vec<ParsedOperator> = Vec::new();
    if let Some(v) = top.get("operator") {
        for (i, (t, span)) in tables(w, v, "operator").into_iter().enumerate() {
            if let Some(op) = parse_operator(w, t, span, i + 1) {
                operators.push(op);
            }
        }
    }

    let mut sinks: Vec<ParsedSink> = Vec::new();
    if let Some(v) = top.get("sink") {
        for (i, (t, span)) in tables(w, v, "sink").into_iter().enumerate() {
            sinks.push(parse_sink(w, t, span, i + 1));
        }
    }
    let mut queries: Vec<(QueryDef, Range<usize>)> = Vec::new();
    if let Some(v) = top.get("query") {
        for (i, (t, span)) in tables(w, v, "query").into_iter().enumerate() {
            if let Some(q) = parse_query(w, t, span.clone(), i + 1) {
                queries.push((q, span));
            }
        }
    }
    top.finish(w);

    // Stream names: unique, inputs defined before use, sinks name existing streams. An
    // operator whose kind or parameters were refused still defines its stream (of unknown
    // type), so its name does not cause a second, misleading error.
    let mut known: Vec<(String, Option<StreamType>)> = vec![
        ("trades".into(), Some(StreamType::Trades)),
        ("quotes".into(), Some(StreamType::Quotes)),
        ("book".into(), Some(StreamType::Book)),
        ("rejects".into(), Some(StreamType::Rejects)),
    ];
    // Queries have names of their own; a query whose results are a stream is known to every
    // operator (what the query itself reads is checked when the SQL layer plans it).
    for (n, (q, span)) in queries.iter().enumerate() {
        if known.iter().any(|(k, _)| *k == q.name)
            || queries[..n].iter().any(|(o, _)| o.name == q.name)
        {
            w.err(
                span.clone(),
                format!("query name `{}` is already a stream or query name", q.name),
            );
        } else if q.sink == QuerySink::Stream {
            known.push((q.name.clone(), Some(StreamType::Indicators)));
        }
    }
    for op in &operators {
        if known.iter().any(|(n, _)| *n == op.name) {
            w.err(op.name_span.clone(), format!("stream `{}` is already defined; operator names must be unique and differ from {}", op.name, BUILTIN_STREAMS.join(", ")));
        }
        let wanted = op.kind.as_ref().map(OperatorKind::input_type);
        match known.iter().find(|(n, _)| *n == op.input) {
            Some((_, Some(ty)))
                if wanted.is_some_and(|w| w != *ty)
                    && !op.kind.as_ref().is_some_and(|k| k.accepts(*ty)) =>
            {
                let hint = match (&op.kind, ty) {
                    (Some(OperatorKind::VolumeBars { .. }), StreamType::Quotes) => {
                        " (quotes record no traded volume; time_bars over quotes builds bars of mid prices)"
                    }
                    _ => "",
                };
                w.err(
                    op.input_span.clone(),
                    format!(
                        "operator `{}` reads {} but stream `{}` carries {}{hint}",
                        op.name,
                        wanted.unwrap_or(*ty),
                        op.input,
                        ty
                    ),
                );
            }
            Some(_) => {}
            None => w.err(
                op.input_span.clone(),
                format!(
                    "operator `{}` reads unknown stream `{}` (known so far: {})",
                    op.name,
                    op.input,
                    known
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
        for (extra, ty) in op
            .kind
            .as_ref()
            .map(OperatorKind::extra_inputs)
            .unwrap_or_default()
        {
            match known.iter().find(|(n, _)| n == extra) {
                Some((_, Some(have))) if *have != ty => w.err(
                    op.name_span.clone(),
                    format!("operator `{}` reads {ty} from `{extra}`, which carries {have}", op.name),
                ),
                Some(_) => {}
                None => w.err(
                    op.name_span.clone(),
                    format!("operator `{}` reads unknown stream `{extra}` (it must be defined before the operator)", op.name),
                ),
            }
        }
        known.push((
            op.name.clone(),
            op.kind.as_ref().map(OperatorKind::output_type),
        ));
        for (extra, ty) in op
            .kind
            .as_ref()
            .map(OperatorKind::extra_outputs)
            .unwrap_or_default()
        {
            if known.iter().any(|(n, _)| *n == extra) {
                w.err(
                    op.name_span.clone(),
                    format!(
                        "stream `{extra}` of operator `{}` is already defined",
                        op.name
                    ),
                );
            }
            known.push((extra, Some(ty)));
        }
    }
    // Feedback edges: risk's fills come from an exchange anywhere in the pipeline.
    for op in &operators {
        for (stream, span) in &op.deferred {
            match known.iter().find(|(n, _)| n == stream) {
                Some((_, Some(StreamType::Fills))) | Some((_, None)) => {}
                Some((_, Some(ty))) => w.err(span.clone(), format!("`fills` of `{}` must be the fills of an exchange operator; `{stream}` carries {ty}", op.name)),
                None => w.err(span.clone(), format!("`fills` of `{}` names unknown stream `{stream}`; add an exchange operator with that name", op.name)),
            }
        }
    }
    // Signal rules name columns of their input row stream; features name indicator columns,
    // and give each of their columns once.
    let defined = operators.iter().filter_map(|o| {
        o.kind
            .as_ref()
            .map(|k| (o.name.as_str(), o.input.as_str(), k))
    });
    for op in &operators {
        if let Some(OperatorKind::Features { config, .. }) = &op.kind
            && let Some(input) = columns_of(defined.clone(), &op.input)
            && let Err(e) = config.columns(&input)
        {
            w.err(op.name_span.clone(), format!("operator `{}`: {e}", op.name));
        }
        if let Some(names) = columns_of(defined.clone(), &op.input) {
            for (text, span) in &op.rules {
                if let Err(e) = tickflow_operators::signals::parse(text, &names) {
                    // +1 for the opening quote of the TOML string.
                    let at = span.start + 1 + e.offset;
                    w.err(at..at, format!("rule of `{}`: {}", op.name, e.message));
                }
            }
        }
    }
    for (_, streams) in &sinks {
        for (stream, span) in streams {
            if !known.iter().any(|(n, _)| n == stream) {
                w.err(
                    span.clone(),
                    format!(
                        "sink writes unknown stream `{stream}` (streams: {})",
                        known
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
    for (q, span) in &queries {
        if q.sink != QuerySink::Stream && operators.iter().any(|o| o.name == q.name) {
            w.err(
                span.clone(),
                format!("query name `{}` is already a stream or query name", q.name),
            );
        }
    }
    let mut operators: Vec<OperatorDef> = operators
        .into_iter()
        .filter_map(|o| {
            o.kind.map(|kind| OperatorDef {
                name: o.name,
                input: o.input,
                kind,
            })
        })
        .collect();
    wire_kill_switches(&mut operators);
    Some(Pipeline {
        name,
        granularity,
        allowed_lateness,
        watermark_interval,
        sources,
        normalize,
        operators,
        sinks: sinks.into_iter().filter_map(|(s, _)| s).collect(),
        queries: queries.into_iter().map(|(q, _)| q).collect(),
        checkpoint,
    })
}

/// An exchange fed by a risk operator cancels what still works when that operator's kill switch
/// engages (`kill_at`).
fn wire_kill_switches(operators: &mut [OperatorDef]) {
    let kills: BTreeMap<String, Option<Timestamp>> = operators
        .iter()
        .filter_map(|o| match &o.kind {
            OperatorKind::Risk { config, .. } => Some((o.name.clone(), config.kill_at)),
            _ => None,
        })
        .collect();
    for o in operators.iter_mut() {
        if let OperatorKind::Exchange { config, .. } = &mut o.kind
            && let Some(kill_at) = kills.get(&o.input)
        {
            config.kill_at = *kill_at;
        }
    }
}

fn parse_source(
    w: &mut Walker<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
    n: usize,
) -> Option<SourceConfig> {
    let mut r = TableReader::new(t, span.clone(), format!("[[source]] #{n}"));
    let (kind, kind_span) = r.required_string(w, "kind")?;
    let out = match kind.as_str() {
        "synthetic" => {
            let mut c = SyntheticConfig::default();
            if let Some(v) = r.integer(w, "instruments", 1..10_001) {
                c.instruments = v as usize;
            }
            if let Some(v) = r.integer(w, "seed", 0..i64::MAX) {
                c.seed = v as u64;
            }
            if let Some((text, s)) = r.string(w, "start") {
                match Timestamp::parse_rfc3339(&text) {
                    Ok(t) => c.start = t,
                    Err(e) => w.err(s, format!("`start` in [[source]] #{n}: {e}")),
                }
            }
            if let Some(d) = r.duration(w, "duration") {
                c.duration = d;
            }
            if let Some(v) = r.float(w, "events_per_second", f64::MIN_POSITIVE, 1e9) {
                c.events_per_second = v;
            }
            if let Some(v) = r.float(w, "quote_ratio", 0.0, 0.99) {
                c.quote_ratio = v;
            }
            if let Some(v) = r.float(w, "correlation", 0.0, 1.0) {
                c.correlation = v;
            }
            if let Some(v) = r.float(w, "fault_rate", 0.0, 1.0) {
                c.fault_rate = v;
            }
            if let Some(v) = r.float(w, "signal", 0.0, 1.0) {
                c.signal = v;
            }
            if c.duration.nanos() <= 0 {
                w.err(
                    span,
                    format!("`duration` in [[source]] #{n} must be positive"),
                );
            }
            Some(SourceConfig::Synthetic(c))
        }
        "replay" => {
            let path = r.required_string(w, "path");
            let format = match r.string(w, "format") {
                Some((f, s)) => match ReplayFormat::from_name(&f) {
                    Some(f) => Some(f),
                    None => {
                        w.err(
                            s,
                            format!(
                                "unknown replay format `{f}` (expected one of: {})",
                                ReplayFormat::NAMES.join(", ")
                            ),
                        );
                        None
                    }
                },
                None => Some(ReplayFormat::Auto),
            };
            let quote_size = r.quantity(w, "quote_size");
            if let (Some(q), Some(span)) = (quote_size, r.get("quote_size").map(|v| v.span()))
                && q.is_zero()
            {
                w.err(
                    span,
                    format!("`quote_size` in [[source]] #{n} must be positive"),
                );
            }
            match (path, format) {
                (Some((p, _)), Some(format)) => Some(SourceConfig::Replay {
                    path: PathBuf::from(p),
                    format,
                    quote_size,
                }),
                _ => None,
            }
        }
        "kafka" => {
            let topic = r.required_string(w, "topic");
            let mut c =
                KafkaSourceConfig::new(&topic.as_ref().map(|(t, _)| t.clone()).unwrap_or_default());
            c.brokers = r.string(w, "brokers").map(|(b, _)| b);
            if let Some((g, _)) = r.string(w, "group") {
                c.group = g;
            }
            c.dead_letter = r.string(w, "dead_letter").map(|(d, _)| d);
            if let Some((v, _)) = r.string(w, "venue") {
                c.venue = v;
            }
            if let Some(s) = r.strings(w, "symbols") {
                c.symbols = s.into_iter().map(|(s, _)| s).collect();
            }
            if let Some(f) = r.boolean(w, "follow") {
                c.follow = f;
            }
            let mut positive = |key: &'static str, into: &mut Duration| {
                if let Some(d) = r.duration(w, key) {
                    if d.nanos() > 0 {
                        *into = d;
                    } else {
                        w.err(
                            kind_span.clone(),
                            format!("`{key}` of a kafka source must be positive"),
                        );
                    }
                }
            };
            positive("idle_timeout", &mut c.idle_timeout);
            positive("commit_interval", &mut c.commit_interval);
            topic.map(|_| SourceConfig::Kafka(c))
        }
        other => {
            w.err(
                kind_span,
                format!("unknown source kind `{other}` (expected synthetic, replay or kafka)"),
            );
            None
        }
    };
    r.finish(w);
    out
}

/// Periods of an `indicators` operator; every key is optional.
fn parse_periods(w: &mut Walker<'_>, r: &mut TableReader<'_, '_>, n: usize) -> IndicatorPeriods {
    let mut p = IndicatorPeriods::default();
    let period = |w: &mut Walker<'_>, r: &mut TableReader<'_, '_>, key: &'static str| {
        r.integer(w, key, 1..10_001).map(|v| v as usize)
    };
    if let Some(v) = period(w, r, "ma") {
        p.ma = v;
    }
    if let Some(v) = r.integer(w, "wilder", 2..10_001) {
        p.wilder = v as usize;
    }
    if let Some(v) = period(w, r, "roc") {
        p.roc = v;
    }
    for key in ["macd", "stoch"] {
        if let Some(list) = r.strings_or_ints(w, key) {
            match list[..] {
                [a, b, c] if [a, b, c].iter().all(|&x| (1..=10_000).contains(&x)) => {
                    let t = (a as usize, b as usize, c as usize);
                    if key == "macd" { p.macd = t } else { p.stoch = t }
                }
                _ => w.err(r.span.clone(), format!("`{key}` in [[operator]] #{n} must be three periods between 1 and 10000, e.g. [12, 26, 9]")),
            }
        }
    }
    if let Some(v) = r.float(w, "bollinger_k", 0.01, 100.0) {
        p.bb_k = v;
    }
    if let Some(d) = r.duration(w, "session_offset") {
        p.session_offset_ns = d.nanos();
    }
    p
}

/// Column names of the row stream `stream` among `(name, input, kind)` operators: indicator
/// columns, or the features computed over them. `None` for any other stream, or features whose
/// indicator list does not match its input.
fn columns_of<'a>(
    ops: impl Iterator<Item = (&'a str, &'a str, &'a OperatorKind)> + Clone,
    stream: &str,
) -> Option<Vec<String>> {
    let (_, input, kind) = ops.clone().find(|(n, _, _)| *n == stream)?;
    match kind {
        OperatorKind::Indicators { periods } => Some(periods.columns()),
        OperatorKind::Features { config, .. } => config.columns(&columns_of(ops, input)?).ok(),
        OperatorKind::Predict { .. } => Some(PREDICTION_COLUMNS.map(String::from).to_vec()),
        _ => None,
    }
}

/// An operator as read, before its kind is known to be valid.
struct ParsedOperator {
    name: String,
    name_span: Range<usize>,
    input: String,
    input_span: Range<usize>,
    kind: Option<OperatorKind>,
    /// Rule texts with their positions (signals), checked once the input's columns are known.
    rules: Vec<(String, Range<usize>)>,
    /// Streams read through a feedback edge (risk's fills), which may be defined later.
    deferred: Vec<(String, Range<usize>)>,
}

fn parse_operator(
    w: &mut Walker<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
    n: usize,
) -> Option<ParsedOperator> {
    let mut r = TableReader::new(t, span.clone(), format!("[[operator]] #{n}"));
    let name = r.required_string(w, "name");
    let input = r.required_string(w, "input");
    let kind = r.required_string(w, "kind");
    let mut rules = Vec::new();
    let mut deferred = Vec::new();
    let kind = kind.and_then(|(k, kspan)| match k.as_str() {
        "time_bars" => {
            let interval = r.duration(w, "interval");
            if interval.is_none() && !r.table.iter().any(|(k, _)| k.get_ref().as_ref() == "interval") {
                w.err(span.clone(), format!("[[operator]] #{n} (time_bars) is missing `interval`, e.g. \"1m\""));
            }
            match interval {
                Some(d) if d.nanos() <= 0 => {
                    w.err(span.clone(), format!("`interval` in [[operator]] #{n} must be positive"));
                    None
                }
                Some(interval) => Some(OperatorKind::TimeBars { interval }),
                None => None,
            }
        }
        "volume_bars" => {
            let volume = match r.get("volume") {
                Some(v) => {
                    match decimal_text(v.get_ref()).map(|t| Quantity::parse(&t)) {
                        Some(Ok(q)) if q.is_positive() => Some(q),
                        Some(Ok(q)) => {
                            w.err(v.span(), format!("`volume` in [[operator]] #{n} must be positive, found {q}"));
                            None
                        }
                        Some(Err(e)) => {
                            w.err(v.span(), format!("`volume` in [[operator]] #{n}: {e}"));
                            None
                        }
                        None => {
                            w.err(v.span(), format!("`volume` in [[operator]] #{n} must be a number or a decimal string"));
                            None
                        }
                    }
                }
                None => {
                    w.err(span.clone(), format!("[[operator]] #{n} (volume_bars) is missing `volume`"));
                    None
                }
            };
            volume.map(|volume| OperatorKind::VolumeBars { volume })
        }
        "signals" => {
            let buy = r.required_string(w, "buy");
            let sell = r.required_string(w, "sell");
            let min_holding = r.duration(w, "min_holding").unwrap_or(Duration::ZERO);
            let cooldown = r.duration(w, "cooldown").unwrap_or(Duration::ZERO);
            let strategy = r.string(w, "strategy").map(|(s, _)| s);
            match (buy, sell) {
                (Some((buy, bspan)), Some((sell, sspan))) => {
                    rules = vec![(buy.clone(), bspan), (sell.clone(), sspan)];
                    let name = strategy.or_else(|| name.as_ref().map(|(n, _)| n.clone())).unwrap_or_default();
                    Some(OperatorKind::Signals { strategy: StrategyConfig { name, buy, sell, min_holding, cooldown } })
                }
                _ => None,
            }
        }
        "indicators" => Some(OperatorKind::Indicators { periods: parse_periods(w, &mut r, n) }),
        "features" => {
            let d = FeatureConfig::default();
            let horizons = r.strings_or_ints(w, "horizons").map(|h| h.into_iter().map(|x| x.clamp(0, i64::from(u32::MAX)) as usize).collect::<Vec<_>>());
            if let Some(h) = &horizons
                && (h.is_empty() || h.iter().any(|&x| x == 0 || x > 10_000))
            {
                w.err(span.clone(), format!("`horizons` in [[operator]] #{n} must be bar counts between 1 and 10000"));
            }
            let indicators = r.strings(w, "indicators").map(|v| v.into_iter().map(|(s, _)| s).collect());
            let quotes = r.string(w, "quotes").map_or_else(|| "quotes".to_owned(), |(s, _)| s);
            let max_quote_age = r.duration(w, "max_quote_age").or(d.max_quote_age);
            if max_quote_age.is_some_and(|a| a.nanos() <= 0) {
                w.err(span.clone(), format!("`max_quote_age` in [[operator]] #{n} must be positive"));
            }
            Some(OperatorKind::Features { config: FeatureConfig { horizons: horizons.unwrap_or(d.horizons), indicators, max_quote_age }, quotes })
        }
        "risk" => {
            let d = RiskConfig::default();
            let prices = r.required_string(w, "prices");
            let fills = r.required_string(w, "fills");
            let rejects = r.string(w, "rejects").map_or_else(|| "risk_rejects".to_owned(), |(s, _)| s);
            let config = RiskConfig {
                position_size: r.quantity(w, "position_size").unwrap_or(d.position_size),
                allow_short: r.boolean(w, "allow_short").unwrap_or(d.allow_short),
                order_type: r.choice(w, "order_type", OrderType::from_name, "\"market\" or \"limit\"").unwrap_or(d.order_type),
                tif: r.choice(w, "time_in_force", TimeInForce::from_name, "\"ioc\" or \"gtc\"").unwrap_or(d.tif),
                limit_offset_bps: r.float(w, "limit_offset_bps", -9999.0, 9999.0).unwrap_or(d.limit_offset_bps),
                max_position: r.quantity(w, "max_position"),
                max_order_size: r.quantity(w, "max_order_size"),
                max_gross_notional: r.money(w, "max_gross_notional"),
                max_net_notional: r.money(w, "max_net_notional"),
                max_orders: r.integer(w, "max_orders", 0..1_000_000_000).map(|x| x as u32),
                rate_window: r.duration(w, "rate_window").unwrap_or(d.rate_window),
                price_band: r.float(w, "price_band", 0.0, 10.0),
                daily_loss_limit: r.money(w, "daily_loss_limit"),
                kill_switch: r.boolean(w, "kill_switch").unwrap_or(false),
                kill_at: r.string(w, "kill_at").and_then(|(t, span)| match Timestamp::parse_rfc3339(&t) {
                    Ok(ts) => Some(ts),
                    Err(e) => {
                        w.err(span, format!("`kill_at` in [[operator]] #{n}: {e}"));
                        None
                    }
                }),
            };
            if let Err(e) = tickflow_operators::risk::Risk::new(config.clone()) {
                w.err(span.clone(), format!("[[operator]] #{n}: {e}"));
            }
            match (prices, fills) {
                (Some((prices, _)), Some((fills, fspan))) => {
                    deferred = vec![(fills.clone(), fspan)];
                    Some(OperatorKind::Risk { config, prices, fills, rejects })
                }
                _ => None,
            }
        }
        "exchange" => {
            let d = ExchangeConfig::default();
            let quotes = r.string(w, "quotes").map_or_else(|| "quotes".to_owned(), |(s, _)| s);
            let trades = r.string(w, "trades").map_or_else(|| "trades".to_owned(), |(s, _)| s);
            let fill_on_trades = r.choice(w, "no_quote", |s| match s {
                "cancel" => Some(false),
                "last_trade" => Some(true),
                _ => None,
            }, "\"cancel\" or \"last_trade\"").unwrap_or(false);
            let config = ExchangeConfig {
                fill_on_trades,
                latency: r.duration(w, "latency").unwrap_or(d.latency),
                slippage_bps: r.float(w, "slippage_bps", 0.0, 999.0).unwrap_or(d.slippage_bps),
                fee_bps: r.float(w, "fee_bps", 0.0, 999.0).unwrap_or(d.fee_bps),
                fee_per_unit: r.money(w, "fee_per_unit").unwrap_or(d.fee_per_unit),
                max_quote_age: r.duration(w, "max_quote_age").or(d.max_quote_age),
                // Set from the risk operator that feeds this exchange (`wire_kill_switches`).
                kill_at: None,
            };
            if let Err(e) = tickflow_operators::exchange::SimExchange::new(config.clone()) {
                w.err(span.clone(), format!("[[operator]] #{n}: {e}"));
            }
            Some(OperatorKind::Exchange { config, quotes, trades })
        }
        "portfolio" => {
            let prices = r.required_string(w, "prices");
            let totals = r.string(w, "totals").map_or_else(|| "portfolio".to_owned(), |(s, _)| s);
            let capital = r.money(w, "capital").unwrap_or(Price::from_raw(1_000_000 * tickflow_core::FIXED_SCALE));
            if !capital.is_positive() {
                w.err(span.clone(), format!("`capital` in [[operator]] #{n} must be positive"));
            }
            prices.map(|(prices, _)| OperatorKind::Portfolio { prices, totals, capital })
        }
        "predict" => {
            let model = r.required_string(w, "model");
            let device = r.string(w, "device").and_then(|(d, dspan)| match tickflow_models::DeviceChoice::parse(&d) {
                Ok(d) => Some(d),
                Err(e) => {
                    w.err(dspan, format!("`device` in [[operator]] #{n}: {e}"));
                    None
                }
            });
            let from = r.string(w, "from").and_then(|(t, tspan)| match Timestamp::parse_rfc3339(&t) {
                Ok(ts) => Some(ts),
                Err(e) => {
                    w.err(tspan, format!("`from` in [[operator]] #{n}: {e}"));
                    None
                }
            });
            model.map(|(m, _)| OperatorKind::Predict { config: PredictConfig { model: PathBuf::from(m), device: device.unwrap_or_default(), from } })
        }
        other => {
            w.err(kspan, format!("unknown operator kind `{other}` (expected time_bars, volume_bars, indicators, features, predict, signals, risk, exchange or portfolio)"));
            None
        }
    });
    r.finish(w);
    let ((name, name_span), (input, input_span)) = (name?, input?);
    Some(ParsedOperator {
        name,
        name_span,
        input,
        input_span,
        kind,
        rules,
        deferred,
    })
}

/// A sink as read: its definition when its kind is valid, and its streams with positions.
type ParsedSink = (Option<SinkDef>, Vec<(String, Range<usize>)>);

fn parse_sink(w: &mut Walker<'_>, t: &DeTable<'_>, span: Range<usize>, n: usize) -> ParsedSink {
    let mut r = TableReader::new(t, span.clone(), format!("[[sink]] #{n}"));
    let kind = r.required_string(w, "kind");
    let streams = r.strings(w, "streams");
    if streams.is_none() && !t.iter().any(|(k, _)| k.get_ref().as_ref() == "streams") {
        w.err(
            span.clone(),
            format!("[[sink]] #{n} is missing `streams`, e.g. streams = [\"bars\"]"),
        );
    }
    let dir = r.string(w, "dir").map(|(d, _)| PathBuf::from(d));
    let limit = r.integer(w, "limit", 0..i64::MAX).map(|l| l as u64);
    let roll = r.string(w, "roll");
    let kind = kind.and_then(|(k, kspan)| {
        if k == "kafka" {
            Some(kafka_sink(w, &mut r, &format!("[[sink]] #{n}")))
        } else {
            sink_kind(w, &k, kspan, limit, "sink kind")
        }
    });
    let parquet = kind.as_ref().map(|k| *k == SinkKind::Parquet);
    let roll = roll_setting(w, roll, &format!("[[sink]] #{n}"), parquet);
    r.finish(w);
    // The streams are returned even when the kind was refused, so they are still checked.
    let streams = streams.unwrap_or_default();
    let def = kind.map(|kind| SinkDef {
        kind,
        streams: streams.iter().map(|(s, _)| s.clone()).collect(),
        dir,
        roll,
    });
    (def, streams)
}

/// The `roll` of a Parquet output (`parquet`: whether the output is one, when known): how
/// long a live job's part stays open; [`DEFAULT_ROLL`] when not set.
fn roll_setting(
    w: &mut Walker<'_>,
    roll: Option<(String, Range<usize>)>,
    what: &str,
    parquet: Option<bool>,
) -> Duration {
    let Some((text, span)) = roll else {
        return DEFAULT_ROLL;
    };
    match Duration::parse(&text) {
        Err(e) => w.err(span, format!("`roll` in {what}: {e}")),
        Ok(_) if parquet == Some(false) => w.err(
            span,
            format!("{what}: `roll` is a setting of parquet outputs"),
        ),
        Ok(d) if d.nanos() <= 0 => w.err(span, format!("{what}: `roll` must be positive")),
        Ok(d) => return d,
    }
    DEFAULT_ROLL
}

/// The settings of a Kafka sink: `topic` (default `{stream}`), `brokers`, `partitions`.
fn kafka_sink(w: &mut Walker<'_>, r: &mut TableReader<'_, '_>, what: &str) -> SinkKind {
    let topic = r.string(w, "topic").map(|(t, tspan)| {
        if kafka_topic(&t, "x").is_empty() {
            w.err(tspan, format!("{what}: `topic` must not be empty"));
        }
        t
    });
    SinkKind::Kafka {
        brokers: r.string(w, "brokers").map(|(b, _)| b),
        topic: topic.unwrap_or_else(|| "{stream}".to_string()),
        partitions: r.integer(w, "partitions", 1..100_001).unwrap_or(4) as i32,
    }
}

/// A sink kind by name; an unknown one is reported at `span` (`what`: how the error names it).
fn sink_kind(
    w: &mut Walker<'_>,
    kind: &str,
    span: Range<usize>,
    limit: Option<u64>,
    what: &str,
) -> Option<SinkKind> {
    match kind {
        "stdout" => Some(SinkKind::Stdout { limit }),
        "jsonl" => Some(SinkKind::Jsonl),
        "parquet" => Some(SinkKind::Parquet),
        "discard" => Some(SinkKind::Discard),
        other => {
            w.err(
                span,
                format!(
                    "unknown {what} `{other}` (expected {})",
                    if what == "query sink" {
                        "stdout, jsonl, parquet, kafka, discard or stream"
                    } else {
                        "stdout, jsonl, parquet, kafka or discard"
                    }
                ),
            );
            None
        }
    }
}

fn parse_query(
    w: &mut Walker<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
    n: usize,
) -> Option<QueryDef> {
    let mut r = TableReader::new(t, span, format!("[[query]] #{n}"));
    let name = r.required_string(w, "name");
    let sql = r.required_string(w, "sql");
    let sink = r.string(w, "sink");
    let dir = r.string(w, "dir").map(|(d, _)| PathBuf::from(d));
    let limit = r.integer(w, "limit", 0..i64::MAX).map(|l| l as u64);
    let lateness = r.duration(w, "lateness").unwrap_or(Duration::ZERO);
    let fold_rows = r.integer(w, "fold_rows", 0..i64::MAX).map(|n| n as u64);
    let time = r.string(w, "time");
    let roll = r.string(w, "roll");
    let sink = match sink {
        None => Some(QuerySink::Sink(SinkKind::Stdout { limit })),
        Some((k, _)) if k == "stream" => Some(QuerySink::Stream),
        Some((k, _)) if k == "kafka" => Some(QuerySink::Sink(kafka_sink(
            w,
            &mut r,
            &format!("[[query]] #{n}"),
        ))),
        Some((k, kspan)) => sink_kind(w, &k, kspan, limit, "query sink").map(QuerySink::Sink),
    };
    let parquet = sink
        .as_ref()
        .map(|s| *s == QuerySink::Sink(SinkKind::Parquet));
    let roll = roll_setting(w, roll, &format!("[[query]] #{n}"), parquet);
    if let (Some((_, tspan)), Some(QuerySink::Sink(_))) = (&time, &sink) {
        w.err(
            tspan.clone(),
            "`time` names the event-time column of a query stream; it needs sink = \"stream\""
                .to_string(),
        );
    }
    r.finish(w);
    let (sql, span) = sql?;
    // A multi-line string drops the newline right after its opening quotes.
    let opening = &w.text[span.start..w.text.len().min(span.start + 4)];
    let skip = usize::from(opening.starts_with("\"\"\"\n") || opening.starts_with("'''\n"));
    let sql_line = w.text[..span.start].matches('\n').count() + 1 + skip;
    Some(QueryDef {
        name: name?.0,
        sql,
        sql_line,
        sink: sink?,
        dir,
        lateness,
        fold_rows,
        roll,
        time: time.map(|(t, _)| t),
        columns: None,
    })
}

/// A number for an error message: plain when it reads well so, else in scientific notation
/// (`1e308`, not 309 digits).
fn show_float(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || (1e-4..1e15).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pipeline_is_valid() {
        let p = Pipeline::default_pipeline();
        assert_eq!(p.name, "daytrade");
        assert!(matches!(p.sources[0], SourceConfig::Synthetic(_)));
        assert!(p.stream_type("bars").is_some());
    }

    #[test]
    fn queries_are_read_with_their_sink_lateness_and_line() {
        let text = "[[source]]\nkind = \"synthetic\"\n\n[[query]]\nname = \"q\"\nsink = \"jsonl\"\nlateness = \"2s\"\nsql = \"\"\"\nSELECT 1\n\"\"\"\n";
        let p = Pipeline::parse(text, "x.toml").unwrap();
        assert_eq!(p.queries.len(), 1);
        let q = &p.queries[0];
        assert_eq!((q.name.as_str(), q.sql.trim()), ("q", "SELECT 1"));
        assert_eq!(q.sink, QuerySink::Sink(SinkKind::Jsonl));
        assert_eq!(q.lateness, Duration::from_secs(2));
        assert_eq!(q.fold_rows, None);
        assert_eq!(
            q.sql_line, 9,
            "the SQL text starts on the line after the quotes"
        );

        let folding = text.replace("lateness", "fold_rows = 100\nlateness");
        let p = Pipeline::parse(&folding, "x.toml").unwrap();
        assert_eq!(p.queries[0].fold_rows, Some(100));
        let e = Pipeline::parse(
            &text.replace("lateness", "fold_rows = -1\nlateness"),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fold_rows"), "{e}");

        let bad = "[[source]]\nkind = \"synthetic\"\n\n[[query]]\nname = \"trades\"\nsink = \"ftp\"\nsql = \"SELECT 1\"\n\n[[query]]\nsink = \"stdout\"\n";
        let e = Pipeline::parse(bad, "x.toml").unwrap_err().to_string();
        assert!(
            e.contains(
                "unknown query sink `ftp` (expected stdout, jsonl, parquet, kafka, discard or stream)"
            ),
            "{e}"
        );
        assert!(e.contains("[[query]] #2"), "{e}");
        let kafka = "[[source]]\nkind = \"synthetic\"\n\n[[query]]\nname = \"q\"\nsink = \"kafka\"\ntopic = \"t.{stream}\"\nsql = \"SELECT 1\"\n";
        let p = Pipeline::parse(kafka, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.queries[0].sink,
            QuerySink::Sink(SinkKind::Kafka {
                brokers: None,
                topic: "t.{stream}".into(),
                partitions: 4
            })
        );
        let dup = "[[source]]\nkind = \"synthetic\"\n\n[[query]]\nname = \"trades\"\nsql = \"SELECT 1\"\n";
        let e = Pipeline::parse(dup, "x.toml").unwrap_err().to_string();
        assert!(
            e.contains("query name `trades` is already a stream or query name"),
            "{e}"
        );
    }

    #[test]
    fn checkpoints_are_configured_and_refused_where_they_cannot_hold_the_state() {
        let base = "[[source]]\nkind = \"synthetic\"\n\n[[operator]]\nname = \"bars\"\nkind = \"time_bars\"\ninput = \"trades\"\ninterval = \"1m\"\n";
        let p = Pipeline::parse(
            &format!("{base}\n[checkpoint]\ndir = \"ck\"\ninterval = \"15m\"\n"),
            "x.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.checkpoint,
            Some(CheckpointConfig {
                dir: PathBuf::from("ck"),
                interval: Duration::from_secs(900),
            })
        );
        let defaults = Pipeline::parse(&format!("{base}\n[checkpoint]\ndir = \"ck\"\n"), "x.toml")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            defaults.checkpoint.map(|c| c.interval),
            Some(Duration::from_secs(60))
        );
        for (extra, wanted) in [
            ("[checkpoint]\ninterval = \"1m\"\n", "`dir`"),
            (
                "[checkpoint]\ndir = \" \"\n",
                "`dir` in [checkpoint] must name a directory",
            ),
            (
                "[checkpoint]\ndir = \"ck\"\ninterval = \"0s\"\n",
                "`interval` in [checkpoint] must be positive",
            ),
            ("[checkpoint]\ndir = \"ck\"\nevery = \"1m\"\n", "every"),
            (
                "[pipeline]\ngranularity = \"7s\"\n\n[checkpoint]\ndir = \"ck\"\ninterval = \"1m\"\n",
                "`interval` in [checkpoint] (1m) must be a whole multiple of the pipeline's `granularity` (7s)",
            ),
            (
                "[[sink]]\nkind = \"jsonl\"\nstreams = [\"bars\"]\nroll = \"1m\"\n",
                "`roll` is a setting of parquet outputs",
            ),
            (
                "[[sink]]\nkind = \"parquet\"\nstreams = [\"bars\"]\nroll = \"0s\"\n",
                "`roll` must be positive",
            ),
            (
                "[[sink]]\nkind = \"parquet\"\nstreams = [\"bars\"]\nroll = \"soon\"\n",
                "`roll` in [[sink]]",
            ),
            (
                "[[query]]\nname = \"q\"\nsql = \"SELECT * FROM bars\"\nsink = \"jsonl\"\nroll = \"1m\"\n",
                "[[query]] #1: `roll` is a setting of parquet outputs",
            ),
        ] {
            let e = Pipeline::parse(&format!("{base}\n{extra}"), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{extra}: {e}");
        }
        let with_portfolio =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("daytrade.toml"))
                .unwrap()
                + "\n[checkpoint]\ndir = \"ck\"\n";
        // The portfolio valuation and Parquet sinks (rolled parts) are checkpointed too.
        let live = Pipeline::parse(&with_portfolio, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(live.checkpoint.is_some());
        // So are continuous queries, with their rolled Parquet parts.
        let with_query = format!(
            "{with_portfolio}\n[[query]]\nname = \"q\"\nsql = \"SELECT * FROM bars\"\n\
             sink = \"parquet\"\nroll = \"10s\"\n"
        );
        let live = Pipeline::parse(&with_query, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(live.queries[0].roll, Duration::from_secs(10));
        // A job whose sources end is a replay: it is refused before anything runs.
        let dir = tempfile::tempdir().unwrap();
        let e = crate::runtime::run(
            &p,
            &crate::runtime::RunOptions {
                output_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[checkpoint] is for live jobs"), "{e}");
        assert!(!Path::new("ck").exists());
    }

    #[test]
    fn a_following_kafka_source_reads_its_settings_and_refuses_bad_ones() {
        let text = "[[source]]\nkind = \"kafka\"\ntopic = \"ticks\"\nfollow = true\nsymbols = [\"AIG\"]\nidle_timeout = \"750ms\"\ncommit_interval = \"1s\"\n";
        let p = Pipeline::parse(text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        let SourceConfig::Kafka(k) = &p.sources[0] else {
            panic!("not a kafka source");
        };
        assert!(k.follow);
        assert_eq!(k.idle_timeout, Duration::from_millis(750));
        assert_eq!(k.commit_interval, Duration::from_secs(1));
        let bad = text.replace("\"1s\"", "\"0s\"");
        let e = Pipeline::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(
            e.contains("`commit_interval` of a kafka source must be positive"),
            "{e}"
        );
        // A source that never ends cannot share a job with one that does.
        let mixed = format!("{text}\n[[source]]\nkind = \"synthetic\"\n");
        let p = Pipeline::parse(&mixed, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        let e = tickflow_sources::plan(&p.sources).unwrap_err().to_string();
        assert!(e.contains("follow = true never ends"), "{e}");
    }

    #[test]
    fn the_watermark_interval_defaults_to_a_millisecond_and_is_bounded() {
        let text = "[pipeline]\nname = \"w\"\n\n[[source]]\nkind = \"synthetic\"\n";
        let p = Pipeline::parse(text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.watermark_interval, Duration::from_millis(1));
        let zero = text.replace("name = \"w\"", "watermark_interval = \"0\"");
        let p = Pipeline::parse(&zero, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.watermark_interval, Duration::ZERO);
        let long = text.replace("name = \"w\"", "watermark_interval = \"5s\"");
        let e = Pipeline::parse(&long, "x.toml").unwrap_err().to_string();
        assert!(
            e.contains("`watermark_interval` in [pipeline] must be between 0 and 1s"),
            "{e}"
        );
    }

    #[test]
    fn numbers_out_of_range_are_shown_as_written_short() {
        let text = "[[source]]\nkind = \"synthetic\"\nevents_per_second = RATE\n\n[[operator]]\nname = \"ind\"\nkind = \"indicators\"\ninput = \"trades\"\nbollinger_k = 1e-7\n";
        for (rate, shown) in [
            ("1e308", "found 1e308"),
            ("0", "found 0"),
            ("-2.5", "found -2.5"),
        ] {
            let e = Pipeline::parse(&text.replace("RATE", rate), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "`events_per_second` in [[source]] #1 must be greater than 0 and at most 1000000000, {shown}"
                )),
                "{e}"
            );
        }
        let e = Pipeline::parse(&text.replace("RATE", "10"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`bollinger_k` in [[operator]] #1 must be between 0.01 and 100, found 1e-7"),
            "{e}"
        );
    }

    #[test]
    fn kafka_sinks_read_topic_brokers_and_partitions() {
        let text = "[[source]]\nkind = \"synthetic\"\n\n[[sink]]\nkind = \"kafka\"\nstreams = [\"trades\"]\ntopic = \"md.{stream}\"\nbrokers = \"h:1\"\npartitions = 6\n\n[[sink]]\nkind = \"kafka\"\nstreams = [\"quotes\"]\n";
        let p = Pipeline::parse(text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.sinks[0].kind,
            SinkKind::Kafka {
                brokers: Some("h:1".into()),
                topic: "md.{stream}".into(),
                partitions: 6
            }
        );
        assert_eq!(
            p.sinks[1].kind,
            SinkKind::Kafka {
                brokers: None,
                topic: "{stream}".into(),
                partitions: 4
            }
        );
        assert_eq!(kafka_topic("md.{stream}", "trades"), "md.trades");
        let bad = text.replace("partitions = 6", "partitions = 0");
        let e = Pipeline::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("partitions"), "{e}");
    }

    #[test]
    fn a_query_stream_is_a_row_stream_that_operators_read() {
        let text = r#"[[source]]
kind = "synthetic"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[operator]]
name = "signals"
kind = "signals"
input = "flow"
buy = "x > 1"
sell = "x < -1"

[[operator]]
name = "orders"
kind = "risk"
input = "signals"
prices = "bars"
fills = "fills"

[[operator]]
name = "fills"
kind = "exchange"
input = "orders"

[[query]]
name = "flow"
sink = "stream"
time = "window_end"
sql = "SELECT 1"
"#;
        let p = Pipeline::parse(text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.stream_type("flow"), Some(StreamType::Indicators));
        assert!(p.stream_names().contains(&"flow".to_string()));
        assert!(p.columns("flow").is_empty(), "unknown until planned");
        let mut p = p;
        p.set_query_columns(
            "flow",
            crate::RowColumns {
                time: "window_end".into(),
                values: vec!["x".into()],
            },
        )
        .unwrap();
        assert_eq!(p.columns("flow"), ["x"]);
        assert!(
            p.set_query_columns(
                "signals",
                crate::RowColumns {
                    time: String::new(),
                    values: vec![]
                }
            )
            .is_err()
        );
        // What depends on the query stream, through a query reading `orders`.
        let reads = BTreeMap::from([
            ("flow".to_string(), vec!["trades".to_string()]),
            ("late".to_string(), vec!["orders".to_string()]),
        ]);
        let down = p.downstream_of("flow", &reads);
        for s in ["signals", "orders", "fills", "late"] {
            assert!(down.contains(s), "{s} in {down:?}");
        }
        assert!(
            !down.contains("bars") && !down.contains("trades"),
            "{down:?}"
        );

        let clash = text.replace("name = \"flow\"", "name = \"bars\"");
        let e = Pipeline::parse(&clash, "x.toml").unwrap_err().to_string();
        assert!(e.contains("stream `bars` is already defined"), "{e}");
    }

    #[test]
    fn reports_every_problem_at_once_with_positions() {
        let text = r#"[pipeline]
name = "x"
granularity = "1 parsec"
colour = "blue"

[[source]]
kind = "synthetic"
instruments = 0
events_per_second = "fast"

[[source]]
kind = "ftp"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trade"
intervall = "1m"

[[sink]]
kind = "jsonl"
streams = ["bars", "nope"]
"#;
        let errs = Pipeline::parse(text, "bad.toml").unwrap_err();
        let lines: Vec<(usize, &str)> = errs
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        let has =
            |line: usize, needle: &str| lines.iter().any(|(l, m)| *l == line && m.contains(needle));
        assert!(has(3, "unknown unit"), "{errs}");
        assert!(has(4, "unknown key `colour`"), "{errs}");
        assert!(has(8, "between 1 and 10000"), "{errs}");
        assert!(has(9, "must be a number"), "{errs}");
        assert!(has(12, "unknown source kind `ftp`"), "{errs}");
        assert!(has(17, "unknown stream `trade`"), "{errs}");
        assert!(has(18, "unknown key `intervall`"), "{errs}");
        assert!(has(14, "missing `interval`"), "{errs}");
        assert!(has(22, "unknown stream `nope`"), "{errs}");
        assert_eq!(errs.errors.len(), 9, "{errs}");
        let shown = errs.to_string();
        assert!(
            shown.contains("bad.toml:18:1: unknown key `intervall`"),
            "{shown}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Whatever a pipeline file holds, it is read or refused with errors at positions in
        /// it; nothing panics.
        #[test]
        fn no_pipeline_text_makes_parsing_panic(
            edits in proptest::collection::vec((0usize..5_000, 0usize..12, "\\PC{0,10}|[\\[\\]{}=\"',#\n]{1,3}"), 1..6),
        ) {
            let mut text = DEFAULT_PIPELINE.to_string();
            for (at, cut, with) in edits {
                let mut at = at.min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + cut).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, &with);
            }
            if let Err(errors) = Pipeline::parse(&text, "p.toml") {
                proptest::prop_assert!(!errors.errors.is_empty());
                for line in errors.to_string().lines().map(str::trim_start).filter(|l| l.starts_with("p.toml:")) {
                    let position = line["p.toml:".len()..].split(':').next().unwrap_or_default();
                    proptest::prop_assert!(position.parse::<usize>().is_ok_and(|n| n >= 1), "{line}");
                }
            }
        }
    }

    #[test]
    fn the_bars_under_a_stream_are_told_as_a_model_records_them() {
        let mut p = Pipeline::parse(include_str!("../ml.toml"), "ml.toml").unwrap();
        for stream in ["bars", "indicators", "features", "predictions", "signals"] {
            assert_eq!(
                p.bar_basis(stream).as_deref(),
                Some("time bars of 30s over trades"),
                "{stream}"
            );
        }
        assert_eq!(p.bar_basis("trades"), None);
        assert_eq!(p.bar_basis("nothing"), None);
        p.mid_bars();
        assert_eq!(
            p.bar_basis("features").as_deref(),
            Some("time bars of 30s over quotes (mid prices)")
        );
        let volume = include_str!("../ml.toml")
            .replace("kind = \"time_bars\"", "kind = \"volume_bars\"")
            .replace("interval = \"30s\"", "volume = 250.5");
        let p = Pipeline::parse(&volume, "v.toml").unwrap();
        assert_eq!(
            p.bar_basis("features").as_deref(),
            Some("volume bars of 250.5 over trades")
        );
    }

    #[test]
    fn a_stream_of_the_wrong_kind_is_named_in_words() {
        let text = include_str!("../ml.toml")
            .replace("input = \"features\"", "input = \"bars\"")
            .replace("prices = \"bars\"", "prices = \"quotes\"")
            .replace("fills = \"fills\"", "fills = \"bars\"");
        let shown = Pipeline::parse(&text, "ml.toml").unwrap_err().to_string();
        for want in [
            "operator `predictions` reads rows of indicators or features but stream `bars` carries bars",
            "operator `orders` reads bars from `quotes`, which carries quotes",
            "`fills` of `orders` must be the fills of an exchange operator; `bars` carries bars",
        ] {
            assert!(shown.contains(want), "{want}: {shown}");
        }
    }

    #[test]
    fn time_bars_may_read_quotes_and_volume_bars_may_not() {
        let text = "[[source]]\nkind = \"synthetic\"\n[[operator]]\nname = \"mid\"\nkind = \"time_bars\"\ninput = \"quotes\"\ninterval = \"1m\"\n[[operator]]\nname = \"ind\"\nkind = \"indicators\"\ninput = \"mid\"\n";
        let p = Pipeline::parse(text, "m.toml").unwrap();
        assert_eq!(p.stream_type("mid"), Some(StreamType::Bars));
        let volume = text
            .replace("time_bars", "volume_bars")
            .replace("interval = \"1m\"", "volume = 100");
        let shown = Pipeline::parse(&volume, "v.toml").unwrap_err().to_string();
        assert!(
            shown.contains("v.toml:6:9: operator `mid` reads trades but stream `quotes` carries quotes (quotes record no traded volume; time_bars over quotes builds bars of mid prices)"),
            "{shown}"
        );

        // The default chain's trade bars turned into mid bars: only time bars over trades.
        let mut p = Pipeline::default_pipeline();
        assert_eq!(p.mid_bars(), ["bars"]);
        let bars = p.operators.iter().find(|o| o.name == "bars").unwrap();
        assert_eq!(bars.input, "quotes");
        let volume = p
            .operators
            .iter()
            .find(|o| o.name == "volume_bars")
            .unwrap();
        assert_eq!(volume.input, "trades");
        assert!(p.mid_bars().is_empty(), "nothing is left to change");
    }

    #[test]
    fn signal_rules_are_checked_against_the_indicator_columns() {
        let text = "[[source]]\nkind = \"synthetic\"\n[[operator]]\nname = \"bars\"\nkind = \"time_bars\"\ninput = \"trades\"\ninterval = \"1m\"\n[[operator]]\nname = \"ind\"\nkind = \"indicators\"\ninput = \"bars\"\nma = 10\n[[operator]]\nname = \"sig\"\nkind = \"signals\"\ninput = \"ind\"\nbuy = \"sma_10 > 1 and sma_20 > 2\"\nsell = \"macd <\"\n";
        let errs = Pipeline::parse(text, "s.toml").unwrap_err();
        let shown = errs.to_string();
        assert!(
            shown.contains("s.toml:17:23: rule of `sig`: unknown indicator `sma_20`"),
            "{shown}"
        );
        assert!(
            shown.contains("s.toml:18:15: rule of `sig`: expected an indicator name or a number"),
            "{shown}"
        );
        assert_eq!(errs.errors.len(), 2, "{shown}");
    }

    #[test]
    fn the_shipped_strategies_are_valid() {
        for file in [
            "trend_following.toml",
            "mean_reversion.toml",
            "daytrade.toml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            Pipeline::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let errs = Pipeline::parse("[pipeline]\nname = \n", "x.toml").unwrap_err();
        assert_eq!(errs.errors.len(), 1);
        assert_eq!(errs.errors[0].line, 2, "{errs}");
    }

    #[test]
    fn missing_sources_and_types_are_reported() {
        let errs =
            Pipeline::parse("[[sink]]\nkind = \"stdout\"\nstreams = [1]\n", "x.toml").unwrap_err();
        let text = errs.to_string();
        assert!(text.contains("no [[source]]"), "{text}");
        assert!(text.contains("must hold strings"), "{text}");
    }

    #[test]
    fn a_replay_source_takes_a_positive_quote_size_for_quotes_recorded_without_sizes() {
        let source = |extra: &str| {
            format!("[[source]]\nkind = \"replay\"\npath = \"../data/truefx\"\n{extra}")
        };
        let p = Pipeline::parse(&source("quote_size = 1_000_000\n"), "x.toml").unwrap();
        assert_eq!(
            p.sources,
            vec![SourceConfig::Replay {
                path: PathBuf::from("../data/truefx"),
                format: ReplayFormat::Auto,
                quote_size: Some(Quantity::from_int(1_000_000).unwrap()),
            }]
        );
        let none = Pipeline::parse(&source(""), "x.toml").unwrap();
        assert!(matches!(
            none.sources[0],
            SourceConfig::Replay {
                quote_size: None,
                ..
            }
        ));
        for (bad, says) in [
            (
                "quote_size = 0",
                "`quote_size` in [[source]] #1 must be positive",
            ),
            (
                "quote_size = -5",
                "`quote_size` in [[source]] #1 must not be negative",
            ),
            ("quote_size = \"lots\"", "`quote_size` in [[source]] #1"),
        ] {
            let e = Pipeline::parse(&source(bad), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
