//! Counts records and drops them (for benchmarks).

use crate::Sink;
use crate::error::Result;

/// Drops every record; reports how many it saw.
#[derive(Debug, Default)]
pub struct DiscardSink {
    seen: u64,
}

impl<T> Sink<T> for DiscardSink {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        self.seen += rows.len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> Result<u64> {
        Ok(self.seen)
    }
}
