//! JSON Lines: `<dir>/<stream>.jsonl`, one object per record.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tickflow_core::InstrumentRegistry;

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

/// The length of `file` up to the end of its last complete line.
fn complete_lines(file: &mut File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(buf.len());
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

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

    /// Goes on after the complete lines of `<dir>/<stream>.jsonl` (a live job restarted
    /// without a checkpoint: what it wrote before stays), creating it if there is none. A last
    /// line left torn by a crash is cut away; its row was not committed and comes again.
    pub fn append(dir: &Path, stream: &str, registry: Arc<InstrumentRegistry>) -> Result<Self> {
        Self::reopened(dir, stream, registry, None)
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
        Self::reopened(dir, stream, registry, Some(length))
    }

    fn reopened(
        dir: &Path,
        stream: &str,
        registry: Arc<InstrumentRegistry>,
        length: Option<u64>,
    ) -> Result<Self> {
        let path = dir.join(format!("{stream}.jsonl"));
        let (file, bytes) = reopen(&path, length)?;
        Ok(Self {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            registry,
            written: 0,
            bytes,
            line: String::new(),
        })
    }
}

/// Opens a JSON Lines file a live job goes on writing, positioned at its end, and its length:
/// with `length` (where a checkpoint left it), cut to that length, refused when shorter; without,
/// cut after its last complete line (created when there is none).
pub fn reopen(path: &Path, length: Option<u64>) -> Result<(File, u64)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && length.is_none() => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            return Ok((File::create(path).map_err(io)?, 0));
        }
        Err(e) => return Err(io(e)),
    };
    let length = match length {
        Some(length) => {
            let have = file.metadata().map_err(io)?.len();
            if have < length {
                return Err(io(std::io::Error::other(format!(
                    "it has {have} bytes, but the checkpoint the job resumes from was taken \
                     when it had {length}: it is not the file that job wrote"
                ))));
            }
            length
        }
        None => complete_lines(&mut file).map_err(io)?,
    };
    file.set_len(length).map_err(io)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(io)?;
    Ok((file, length))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{registry, trades};
    use tickflow_core::Trade;

    #[test]
    fn appending_keeps_the_complete_lines_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, t) = (registry(), trades(3));
        // No file yet: one is made.
        let mut sink = JsonlSink::append(dir.path(), "trades", reg.clone()).unwrap();
        sink.write(&t[..2]).unwrap();
        Sink::<Trade>::finish(&mut sink).unwrap();
        let path = dir.path().join("trades.jsonl");
        let two = std::fs::read_to_string(&path).unwrap();
        assert_eq!(two.lines().count(), 2);
        // A crash tore the third line: it goes, the first two stay.
        std::fs::write(&path, format!("{two}{{\"instrument\":\"X\",\"ts_ev")).unwrap();
        let mut sink = JsonlSink::append(dir.path(), "trades", reg).unwrap();
        assert_eq!(Sink::<Trade>::position(&sink), Some(two.len() as u64));
        sink.write(&t[2..]).unwrap();
        Sink::<Trade>::finish(&mut sink).unwrap();
        let three = std::fs::read_to_string(&path).unwrap();
        assert!(three.starts_with(&two));
        assert_eq!(three.lines().count(), 3);
        assert!(three.ends_with('\n') && three.lines().all(|l| l.ends_with('}')));
    }
}
