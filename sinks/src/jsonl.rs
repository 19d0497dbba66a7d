//! JSON Lines: `<dir>/<stream>.jsonl`, one object per record.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tickflow_core::InstrumentRegistry;

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

/// Writes one JSON object per line.
pub struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
    registry: Arc<InstrumentRegistry>,
    written: u64,
    line: String,
}

impl JsonlSink {
    /// Creates (or truncates) `<dir>/<stream>.jsonl`, creating `dir` if needed.
    pub fn create(dir: &Path, stream: &str, registry: Arc<InstrumentRegistry>) -> Result<Self> {
        let (path, file) = crate::create_stream_file(dir, stream, "jsonl")?;
        Ok(Self {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            registry,
            written: 0,
            line: String::new(),
        })
    }
}

impl<T: SinkRecord> Sink<T> for JsonlSink {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        for row in rows {
            self.line.clear();
            row.write_json(&self.registry, &mut self.line);
            self.line.push('\n');
            self.out
                .write_all(self.line.as_bytes())
                .map_err(|source| Error::Io {
                    path: self.path.clone(),
                    source,
                })?;
        }
        self.written += rows.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(&mut self) -> Result<u64> {
        Sink::<T>::flush(self)?;
        Ok(self.written)
    }
}
