//! Outputs. In flow batches of records of one stream (trades, quotes, book, rejects, bars),
//! already in a deterministic order; out go files and lines.
//!
//! Every sink implements [`Sink`]: `write` a batch, `finish` at the end of the stream. Records
//! become rows through [`SinkRecord`]: an Arrow batch (Parquet), a JSON object (JSON Lines) and
//! a human-readable line (stdout). Instruments are written by symbol.
//!
//! Layout:
//! - `record`: [`SinkRecord`] for every record type.
//! - `stdout`: human-readable lines.
//! - `jsonl`: one JSON object per line, one file per stream.
//! - `parquet`: one Parquet file per stream.
//! - `discard`: counts and drops (benchmarks).
//! - `kafka`: a stream to a Kafka topic, keyed by instrument.
//! - `tap`: every stream as Arrow batches with watermarks, for SQL.
//! - `error`: the crate's [`Error`].

pub mod discard;
pub mod error;
pub mod jsonl;
pub mod kafka;
pub mod parquet;
pub mod record;
pub mod stdout;
pub mod tap;

pub use crate::discard::DiscardSink;
pub use crate::error::{Error, Result};
pub use crate::jsonl::JsonlSink;
pub use crate::kafka::KafkaSink;
pub use crate::parquet::{ParquetOutput, ParquetSink};
pub use crate::record::SinkRecord;
pub use crate::stdout::StdoutSink;
pub use crate::tap::{StreamTap, TapSink};

/// Creates (or truncates) `<dir>/<stream>.<extension>`, creating `dir` if needed.
pub(crate) fn create_stream_file(
    dir: &std::path::Path,
    stream: &str,
    extension: &str,
) -> Result<(std::path::PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(format!("{stream}.{extension}"));
    let file = std::fs::File::create(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok((path, file))
}

/// A destination for one stream.
pub trait Sink<T>: Send {
    /// Writes a batch (already ordered).
    fn write(&mut self, rows: &[T]) -> Result<()>;
    /// No later row has an event time below `watermark`; sinks that care (the SQL tap) use it.
    fn watermark(&mut self, _watermark: tickflow_core::Timestamp) {}
    /// Makes the rows written so far durable — on disk, delivered to the brokers — so that
    /// a live job may commit the input offsets behind them; [`Sink::durable`] says whether
    /// they all are now.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether every row written so far is durable after the last [`Sink::flush`]: a sink that
    /// makes rows durable in larger steps (rolled Parquet parts) says `false` until it has.
    fn durable(&self) -> bool {
        true
    }
    /// Flushes and closes at the end of the stream; returns rows written.
    fn finish(&mut self) -> Result<u64>;
    /// Sinks whose output a resumed job goes on with: how far it is with every row written so
    /// far (a JSON Lines file's length, the rows of rolled Parquet parts), for a checkpoint to
    /// note where later rows begin.
    fn position(&self) -> Option<u64> {
        None
    }
    /// A live job with checkpoints: the stream has reached checkpoint time `at`: every row
    /// before it has been written to this sink and none at or after it. Sinks that hand the
    /// stream on (the SQL tap) pass the mark along.
    fn checkpoint(&mut self, _at: i64) {}
    /// Sinks that a resumed job goes on with from more than a position (a Kafka sink: its
    /// producer's id, the rows given it, and where in the topic its later messages begin): that
    /// state, with every row written so far, for a checkpoint to keep.
    fn resume_state(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Records for the sinks' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use tickflow_core::{
        InstrumentId, InstrumentRegistry, InstrumentSpec, Price, Quantity, SeqNo, Side, Timestamp,
        Trade,
    };

    /// A registry of one instrument, `X`.
    pub(crate) fn registry() -> Arc<InstrumentRegistry> {
        Arc::new(InstrumentRegistry::from_specs([InstrumentSpec {
            symbol: "X".into(),
            venue: "V".into(),
            tick_size: Price::from_raw(1),
            lot_size: Quantity::from_raw(1),
            currency: "USD".into(),
        }]))
    }

    /// `n` trades of `X`, one per nanosecond.
    pub(crate) fn trades(n: i64) -> Vec<Trade> {
        (0..n)
            .map(|i| Trade {
                instrument: InstrumentId(0),
                ts_event: Timestamp(i),
                ts_recv: Timestamp(i),
                price: Price::from_raw(1_000 + i),
                size: Quantity::from_raw(i % 7 + 1),
                aggressor: Side::Buy,
                trade_id: Some(i as u64),
                suspicious: false,
                seq: SeqNo(i as u64),
            })
            .collect()
    }
}
