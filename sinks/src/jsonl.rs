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
    /// Length of the file with every row written so far.
    bytes: u64,
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
            bytes: 0,
            line: String::new(),
        })
    }

    /// Goes on with `<dir>/<stream>.jsonl` where a checkpoint left it: the file is cut to its
    /// first `length` bytes (what was written before the checkpoint; later rows will be written
    /// again) and written on from there. A file shorter than that is refused: it is not the
    /// one the checkpoint was taken with.
    pub fn resume(
        dir: &Path,
        stream: &str,
        registry: Arc<InstrumentRegistry>,
        length: u64,
    ) -> Result<Self> {
        let path = dir.join(format!("{stream}.jsonl"));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let have = file.metadata().map_err(io)?.len();
        if have < length {
            return Err(Error::Io {
                path: path.clone(),
                source: std::io::Error::other(format!(
                    "it has {have} bytes, but the checkpoint the job resumes from was taken \
                     when it had {length}: it is not the file that job wrote"
                )),
            });
        }
        file.set_len(length).map_err(io)?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(io)?;
        Ok(Self {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            registry,
            written: 0,
            bytes: length,
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
            self.bytes += self.line.len() as u64;
        }
        self.written += rows.len() as u64;
        Ok(())
    }

    fn position(&self) -> Option<u64> {
        Some(self.bytes)
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
