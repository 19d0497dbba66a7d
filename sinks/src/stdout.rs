//! Human-readable lines on standard output.

use std::io::Write;
use std::sync::Arc;

use tickflow_core::InstrumentRegistry;

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

/// Prints each record as a line; with a limit, prints the first `limit` and counts the rest.
pub struct StdoutSink {
    registry: Arc<InstrumentRegistry>,
    limit: Option<u64>,
    written: u64,
    line: String,
}

impl StdoutSink {
    /// A stdout sink.
    pub fn new(registry: Arc<InstrumentRegistry>, limit: Option<u64>) -> Self {
        Self {
            registry,
            limit,
            written: 0,
            line: String::new(),
        }
    }
}

impl<T: SinkRecord> Sink<T> for StdoutSink {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for row in rows {
            self.written += 1;
            if self.limit.is_some_and(|l| self.written > l) {
                continue;
            }
            self.line.clear();
            row.write_human(&self.registry, &mut self.line);
            self.line.push('\n');
            out.write_all(self.line.as_bytes())
                .map_err(|source| Error::Io {
                    path: "<stdout>".into(),
                    source,
                })?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<u64> {
        std::io::stdout().flush().map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        })?;
        Ok(self.written)
    }
}
