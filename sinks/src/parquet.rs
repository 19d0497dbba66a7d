//! Parquet: `<dir>/<stream>.parquet`, Snappy-compressed, rows buffered into batches.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tickflow_core::InstrumentRegistry;

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

const BATCH_ROWS: usize = 65_536;

/// Writes one Parquet file per stream. The writer is created with the first batch, whose
/// schema it takes (indicator columns depend on the pipeline).
pub struct ParquetSink<T> {
    path: PathBuf,
    file: Option<File>,
    writer: Option<ArrowWriter<File>>,
    registry: Arc<InstrumentRegistry>,
    buffer: Vec<T>,
    written: u64,
}

impl<T: SinkRecord> ParquetSink<T> {
    /// Creates (or truncates) `<dir>/<stream>.parquet`, creating `dir` if needed.
    pub fn create(dir: &Path, stream: &str, registry: Arc<InstrumentRegistry>) -> Result<Self> {
        let (path, file) = crate::create_stream_file(dir, stream, "parquet")?;
        let writer = None;
        let file = Some(file);
        Ok(Self {
            path,
            file,
            writer,
            registry,
            buffer: Vec::with_capacity(BATCH_ROWS),
            written: 0,
        })
    }

    fn encode_err(&self, e: impl ToString) -> Error {
        Error::Encode {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The writer, created on first use with `schema`.
    fn writer(&mut self, schema: arrow_schema::SchemaRef) -> Result<&mut ArrowWriter<File>> {
        if self.writer.is_none() {
            let file = self
                .file
                .take()
                .ok_or_else(|| self.encode_err("write after finish"))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let writer =
                ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| self.encode_err(e))?;
            self.writer = Some(writer);
        }
        self.writer.as_mut().ok_or_else(|| Error::Encode {
            path: self.path.clone(),
            reason: "no writer".into(),
        })
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch =
            T::to_record_batch(&self.buffer, &self.registry).map_err(|e| self.encode_err(e))?;
        let writer = self.writer(batch.schema())?;
        let written = writer.write(&batch);
        written.map_err(|e| self.encode_err(e))?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

impl<T: SinkRecord> Sink<T> for ParquetSink<T> {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        for row in rows {
            self.buffer.push(row.clone());
            if self.buffer.len() >= BATCH_ROWS {
                self.flush_buffer()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<u64> {
        self.flush_buffer()?;
        if self.writer.is_none() && self.file.is_some() {
            // No rows at all: still a valid (empty) file with the stream's columns.
            self.writer(T::schema())?;
        }
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|e| Error::Encode {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use tickflow_core::{
        ArrowRecord, InstrumentId, InstrumentSpec, Price, Quantity, SeqNo, Side, Timestamp, Trade,
    };

    #[test]
    fn parquet_file_reads_back_to_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Arc::new(InstrumentRegistry::from_specs([InstrumentSpec {
            symbol: "X".into(),
            venue: "V".into(),
            tick_size: Price::from_raw(1),
            lot_size: Quantity::from_raw(1),
            currency: "USD".into(),
        }]));
        let trades: Vec<Trade> = (0..100_000)
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
            .collect();
        let mut sink = ParquetSink::<Trade>::create(dir.path(), "trades", reg).unwrap();
        sink.write(&trades[..70_000]).unwrap();
        sink.write(&trades[70_000..]).unwrap();
        assert_eq!(sink.finish().unwrap(), 100_000);
        let file = File::open(dir.path().join("trades.parquet")).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut back = Vec::new();
        for batch in reader {
            back.extend(Trade::from_record_batch(&batch.unwrap()).unwrap());
        }
        assert_eq!(back, trades);
    }
}
