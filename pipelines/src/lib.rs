//! Pipelines: definitions in, results out.
//!
//! A pipeline file (TOML) names its sources, the operators after normalize, and its sinks;
//! [`Pipeline::parse`] validates it, reporting every problem with its position. [`run`] plans
//! the sources, builds the timely dataflow on each worker thread, drives the sources with the
//! watermark held back by the allowed lateness, and returns a [`Summary`] of what happened.
//!
//! Layout:
//! - `config`: the pipeline file format and its validation.
//! - `runtime`: workers, source driving, sinks, progress.
//! - `stats`: counters shared by the workers, and the run summary.
//! - `train`: training a model on the pipeline's own features.
//! - `query_stream`: results of SQL queries fed back into the dataflow as streams.

pub mod checkpoint;
pub mod config;
pub mod query_stream;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod train;

pub use crate::config::{
    ConfigErrors, LoadError, Pipeline, QueryDef, QuerySink, SinkDef, SinkKind,
};
pub use crate::query_stream::{FeedEvent, QueryFeeds, RowColumns, row_columns};
pub use crate::runtime::{
    Durable, ProgressFn, Recovery, RunError, RunOptions, Settle, StreamSchema, check_operators,
    format_progress, run, stream_schemas,
};
pub use crate::stats::{CheckpointSummary, Progress, Summary};
