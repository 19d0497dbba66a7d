//! Parquet: `<dir>/<stream>.parquet`, Snappy-compressed, rows buffered into batches; or, for a
//! live job, a directory `<dir>/<stream>/` of rolled parts.
//!
//! A Parquet file can be read only once it is closed (its footer is written last), so a job
//! that never ends writes parts: `part-000000.parquet`, `part-000001.parquet`, ... each closed,
//! synced and renamed into place when it has been open for the roll interval and the job flushes.
//! Until then a part is `.part-NNNNNN.parquet.inprogress`, which readers of the directory (DuckDB's
//! `read_parquet('<dir>/<stream>/*.parquet')`, pyarrow's `read_table('<dir>/<stream>')`) leave
//! out. Rows in a closed part are durable; the job commits its input only behind them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use tickflow_core::{INSTRUMENTS_KEY, Instrument, InstrumentRegistry};

use crate::Sink;
use crate::error::{Error, Result};
use crate::record::SinkRecord;

const BATCH_ROWS: usize = 65_536;

/// Writes one Parquet file per stream, or rolled parts of one. The writer is created with the
/// first batch, whose schema it takes (indicator columns depend on the pipeline).
pub struct ParquetSink<T> {
    out: ParquetOutput,
    registry: Arc<InstrumentRegistry>,
    buffer: Vec<T>,
}

/// A Parquet file of Arrow batches, or rolled parts of one: what [`ParquetSink`] writes its
/// records to, and what a query's results go to.
pub struct ParquetOutput {
    /// The file, or the parts' directory.
    path: PathBuf,
    /// The file, before the writer takes it.
    file: Option<File>,
    writer: Option<ArrowWriter<File>>,
    /// Rolled parts (a live job).
    parts: Option<Parts>,
    written: u64,
    /// Key-value metadata of every file written.
    metadata: Vec<KeyValue>,
}

/// The rolled parts of a live job's stream.
struct Parts {
    /// How long a part stays open at least.
    roll: Duration,
    /// Number of the part being written (or the next).
    next: u64,
    /// When the open part took its first row.
    opened: Option<Instant>,
    /// A second handle of the open part's file, to sync it once closed.
    sync: Option<File>,
    /// Rows in the closed parts a resumed job kept.
    kept: u64,
}

fn part_name(n: u64) -> String {
    format!("part-{n:06}.parquet")
}

fn in_progress_name(n: u64) -> String {
    format!(".part-{n:06}.parquet.inprogress")
}

/// The number of a closed part's file name.
fn part_number(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl ParquetOutput {
    /// Creates (or truncates) `<dir>/<name>.parquet`, creating `dir` if needed.
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        let (path, file) = crate::create_stream_file(dir, name, "parquet")?;
        Ok(Self {
            path,
            file: Some(file),
            writer: None,
            parts: None,
            written: 0,
            metadata: Vec::new(),
        })
    }

    /// Writes `registry`'s instruments into every file's metadata ([`INSTRUMENTS_KEY`]), so
    /// that a replay of the file knows their venues, tick and lot sizes and currencies.
    fn name_instruments(mut self, registry: &InstrumentRegistry) -> Result<Self> {
        let table: Vec<&Instrument> = registry.iter().collect();
        let json = serde_json::to_string(&table).map_err(|e| self.encode_err(e))?;
        self.metadata = vec![KeyValue::new(INSTRUMENTS_KEY.to_owned(), json)];
        Ok(self)
    }

    /// Writes `<dir>/<name>/` as rolled parts, each open for at least `roll`, after the
    /// closed parts already there (a part a previous run left open holds nothing durable and is
    /// removed). With `resume`, only the first `resume` rows of those parts are kept (a part
    /// holding more is cut to its first rows, later ones removed): what a checkpoint noted.
    pub fn rolling(dir: &Path, name: &str, roll: Duration, resume: Option<u64>) -> Result<Self> {
        let path = dir.join(name);
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(io_err(&path))? {
            let entry = entry.map_err(io_err(&path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = part_number(&name) {
                found.push((n, entry.path()));
            } else if (name.starts_with(".part-") && name.ends_with(".inprogress"))
                || (name.starts_with("part-") && name.ends_with(".parquet.cut"))
            {
                // A part that was never closed (or cut) holds nothing durable.
                std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            }
        }
        found.sort();
        let mut kept = 0u64;
        let mut next = 0u64;
        // The rows still to keep (`None`: all of them).
        let mut want = resume;
        for (n, file) in found {
            if want == Some(0) {
                std::fs::remove_file(&file).map_err(io_err(&file))?;
                continue;
            }
            if want.is_some() && n != next {
                return Err(Error::Encode {
                    path: path.clone(),
                    reason: format!("part {next} is missing; the parts cannot be continued"),
                });
            }
            let rows = Self::rows_of(&file)?;
            let taken = match want {
                Some(w) => {
                    if rows > w {
                        Self::cut(&file, w)?;
                    }
                    want = Some(w - rows.min(w));
                    rows.min(w)
                }
                None => rows,
            };
            kept += taken;
            next = n + 1;
        }
        if let Some(w) = want.filter(|w| *w > 0) {
            return Err(Error::Encode {
                path: path.clone(),
                reason: format!(
                    "the parts hold {kept} rows, fewer than the {} a checkpoint says were written",
                    kept + w
                ),
            });
        }
        sync_dir(&path)?;
        Ok(Self {
            path,
            file: None,
            writer: None,
            parts: Some(Parts {
                roll,
                next,
                opened: None,
                sync: None,
                kept,
            }),
            written: 0,
            metadata: Vec::new(),
        })
    }

    /// Rows in a closed part.
    fn rows_of(file: &Path) -> Result<u64> {
        let f = File::open(file).map_err(io_err(file))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| Error::Encode {
            path: file.to_path_buf(),
            reason: format!("not a readable Parquet file: {e}"),
        })?;
        Ok(u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0))
    }

    /// Rewrites a closed part with its first `rows` rows only (under a temporary name, synced,
    /// renamed over it).
    fn cut(file: &Path, rows: u64) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| Error::Encode {
            path: file.to_path_buf(),
            reason: e.to_string(),
        };
        let f = File::open(file).map_err(io_err(file))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(&e))?;
        let schema = builder.schema().clone();
        // The part's own metadata (its instruments) goes with it; the writer adds the schema.
        let metadata = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| {
                kv.iter()
                    .filter(|kv| kv.key != parquet::arrow::ARROW_SCHEMA_META_KEY)
                    .cloned()
                    .collect()
            });
        let reader = builder
            .with_limit(usize::try_from(rows).unwrap_or(usize::MAX))
            .build()
            .map_err(|e| bad(&e))?;
        let tmp = file.with_extension("parquet.cut");
        let out = File::create(&tmp).map_err(io_err(&tmp))?;
        let sync = out.try_clone().map_err(io_err(&tmp))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata(metadata)
            .build();
        let mut writer = ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| bad(&e))?;
        for batch in reader {
            writer
                .write(&batch.map_err(|e| bad(&e))?)
                .map_err(|e| bad(&e))?;
        }
        writer.close().map_err(|e| bad(&e))?;
        sync.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, file).map_err(io_err(file))
    }

    fn encode_err(&self, e: impl ToString) -> Error {
        Error::Encode {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The writer, created on first use with `schema` (for rolled parts, in a new part).
    fn writer(&mut self, schema: arrow_schema::SchemaRef) -> Result<&mut ArrowWriter<File>> {
        if self.writer.is_none() {
            let file = match self.parts.as_mut() {
                Some(parts) => {
                    let path = self.path.join(in_progress_name(parts.next));
                    let file = File::create(&path).map_err(io_err(&path))?;
                    parts.sync = Some(file.try_clone().map_err(io_err(&path))?);
                    file
                }
                None => self
                    .file
                    .take()
                    .ok_or_else(|| self.encode_err("write after finish"))?,
            };
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_key_value_metadata(Some(self.metadata.clone()).filter(|m| !m.is_empty()))
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

    /// Rows are on their way (a part's roll interval starts with its first row).
    pub fn rows_coming(&mut self) {
        if let Some(parts) = self.parts.as_mut()
            && parts.opened.is_none()
        {
            parts.opened = Some(Instant::now());
        }
    }

    /// Writes a batch.
    pub fn write(&mut self, batch: &arrow_array::RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows_coming();
        let writer = self.writer(batch.schema())?;
        let written = writer.write(batch);
        written.map_err(|e| self.encode_err(e))?;
        self.written += batch.num_rows() as u64;
        Ok(())
    }

    /// Whether the open part has been open for the roll interval (rolled parts only).
    pub fn due(&self) -> bool {
        self.parts
            .as_ref()
            .is_some_and(|p| p.opened.is_some_and(|t| t.elapsed() >= p.roll))
    }

    /// Closes the open part: footer written, synced, renamed to its final name.
    pub fn close_part(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        writer.close().map_err(|e| self.encode_err(e))?;
        let Some(parts) = self.parts.as_mut() else {
            return Ok(());
        };
        let from = self.path.join(in_progress_name(parts.next));
        if let Some(f) = parts.sync.take() {
            f.sync_all().map_err(io_err(&from))?;
        }
        let to = self.path.join(part_name(parts.next));
        std::fs::rename(&from, &to).map_err(io_err(&to))?;
        sync_dir(&self.path)?;
        parts.next += 1;
        parts.opened = None;
        Ok(())
    }

    /// Whether every row written so far is in a closed file.
    pub fn durable(&self) -> bool {
        self.writer.is_none() && self.file.is_none()
    }

    /// Closes the file (the open part), which then has columns `schema` when no row was
    /// written; returns the rows written.
    pub fn finish(&mut self, schema: arrow_schema::SchemaRef) -> Result<u64> {
        if self.parts.is_some() {
            self.close_part()?;
            if self.parts.as_ref().is_some_and(|p| p.next == 0) {
                // No rows at all: still one (empty) part with the stream's columns.
                self.writer(schema)?;
                self.close_part()?;
            }
            return Ok(self.written);
        }
        if self.writer.is_none() && self.file.is_some() {
            // No rows at all: still a valid (empty) file with the stream's columns.
            self.writer(schema)?;
        }
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|e| self.encode_err(e))?;
        }
        Ok(self.written)
    }

    /// Rolled parts: the rows written so far (those a resumed job keeps, and this job's).
    pub fn position(&self) -> Option<u64> {
        self.parts.as_ref().map(|p| p.kept + self.written)
    }
}

impl<T: SinkRecord> ParquetSink<T> {
    /// Creates (or truncates) `<dir>/<stream>.parquet`, creating `dir` if needed.
    pub fn create(dir: &Path, stream: &str, registry: Arc<InstrumentRegistry>) -> Result<Self> {
        Ok(Self {
            out: ParquetOutput::create(dir, stream)?.name_instruments(&registry)?,
            registry,
            buffer: Vec::with_capacity(BATCH_ROWS),
        })
    }

    /// Writes `<dir>/<stream>/` as rolled parts: see [`ParquetOutput::rolling`].
    pub fn rolling(
        dir: &Path,
        stream: &str,
        registry: Arc<InstrumentRegistry>,
        roll: Duration,
        resume: Option<u64>,
    ) -> Result<Self> {
        Ok(Self {
            out: ParquetOutput::rolling(dir, stream, roll, resume)?.name_instruments(&registry)?,
            registry,
            buffer: Vec::with_capacity(BATCH_ROWS),
        })
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch =
            T::to_record_batch(&self.buffer, &self.registry).map_err(|e| self.out.encode_err(e))?;
        self.out.write(&batch)?;
        self.buffer.clear();
        Ok(())
    }
}

impl<T: SinkRecord> Sink<T> for ParquetSink<T> {
    fn write(&mut self, rows: &[T]) -> Result<()> {
        if !rows.is_empty() {
            self.out.rows_coming();
        }
        for row in rows {
            self.buffer.push(row.clone());
            if self.buffer.len() >= BATCH_ROWS {
                self.flush_buffer()?;
            }
        }
        Ok(())
    }

    /// Closes the open part once it has been open for the roll interval (rolled parts only).
    fn flush(&mut self) -> Result<()> {
        if self.out.due() {
            self.flush_buffer()?;
            self.out.close_part()?;
        }
        Ok(())
    }

    fn durable(&self) -> bool {
        self.buffer.is_empty() && self.out.durable()
    }

    fn finish(&mut self) -> Result<u64> {
        self.flush_buffer()?;
        self.out.finish(T::schema())
    }

    /// Rolled parts: the rows written so far (those a resumed job keeps, and this job's).
    fn position(&self) -> Option<u64> {
        self.out.position().map(|p| p + self.buffer.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{registry, trades};
    use tickflow_core::{ArrowRecord, Trade};

    #[test]
    fn parquet_file_reads_back_to_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, trades) = (registry(), trades(100_000));
        let mut sink = ParquetSink::<Trade>::create(dir.path(), "trades", reg.clone()).unwrap();
        sink.write(&trades[..70_000]).unwrap();
        sink.write(&trades[70_000..]).unwrap();
        assert_eq!(sink.finish().unwrap(), 100_000);
        let file = File::open(dir.path().join("trades.parquet")).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        // The file names its instruments, as the registry has them.
        let named = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == INSTRUMENTS_KEY))
            .and_then(|kv| kv.value.clone())
            .expect("instruments in the metadata");
        let named: Vec<Instrument> = serde_json::from_str(&named).unwrap();
        assert_eq!(named, reg.iter().cloned().collect::<Vec<_>>());
        let reader = builder.build().unwrap();
        let mut back = Vec::new();
        for batch in reader {
            back.extend(Trade::from_record_batch(&batch.unwrap()).unwrap());
        }
        assert_eq!(back, trades);
    }

    /// The files of a parts directory, and the trades of its closed parts in order.
    fn read_parts(dir: &Path) -> (Vec<String>, Vec<Trade>) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut back = Vec::new();
        for name in names.iter().filter(|n| n.ends_with(".parquet")) {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join(name)).unwrap())
                    .unwrap();
            // Every part names its instruments, a part cut back on a resume too.
            let keys: Vec<&str> = builder
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .map(|kv| kv.iter().map(|kv| kv.key.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(
                keys.iter().filter(|k| **k == INSTRUMENTS_KEY).count(),
                1,
                "{name}: {keys:?}"
            );
            let reader = builder.build().unwrap();
            for batch in reader {
                back.extend(Trade::from_record_batch(&batch.unwrap()).unwrap());
            }
        }
        (names, back)
    }

    #[test]
    fn rolled_parts_are_durable_once_closed_and_a_resume_keeps_exactly_the_rows_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("trades");
        let all = trades(40);
        let mut sink =
            ParquetSink::<Trade>::rolling(dir.path(), "trades", registry(), Duration::ZERO, None)
                .unwrap();
        assert!(sink.durable());
        sink.write(&all[..10]).unwrap();
        assert!(!sink.durable(), "rows not in a closed part");
        sink.flush().unwrap();
        assert!(sink.durable());
        sink.write(&all[10..15]).unwrap();
        sink.flush().unwrap();
        sink.write(&all[15..18]).unwrap();
        assert_eq!(sink.position(), Some(18));
        // The open part is not one a reader of the directory sees. The job dies here.
        sink.flush_buffer().unwrap();
        drop(sink);
        let (names, rows) = read_parts(&parts);
        assert_eq!(
            names,
            [
                ".part-000002.parquet.inprogress",
                "part-000000.parquet",
                "part-000001.parquet"
            ]
        );
        assert_eq!(rows, all[..15]);

        // Resumed from a checkpoint taken after 12 rows: the second part is cut to its first
        // two, the unfinished one removed, and writing goes on in a third.
        let mut sink = ParquetSink::<Trade>::rolling(
            dir.path(),
            "trades",
            registry(),
            Duration::from_secs(3600),
            Some(12),
        )
        .unwrap();
        assert_eq!(sink.position(), Some(12));
        sink.write(&all[12..30]).unwrap();
        sink.flush().unwrap();
        assert!(!sink.durable(), "open for less than the roll interval");
        assert_eq!(sink.finish().unwrap(), 18);
        assert!(sink.durable());
        let (names, rows) = read_parts(&parts);
        assert_eq!(
            names,
            [
                "part-000000.parquet",
                "part-000001.parquet",
                "part-000002.parquet"
            ]
        );
        assert_eq!(rows, all[..30]);

        // A checkpoint that counted more rows than the parts hold is refused.
        let e = ParquetSink::<Trade>::rolling(
            dir.path(),
            "trades",
            registry(),
            Duration::ZERO,
            Some(31),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("hold 30 rows, fewer than the 31"), "{e}");
        // Without a checkpoint, a job goes on after the parts there: nothing durable is lost.
        let mut sink =
            ParquetSink::<Trade>::rolling(dir.path(), "trades", registry(), Duration::ZERO, None)
                .unwrap();
        assert_eq!(sink.position(), Some(30));
        sink.write(&all[30..]).unwrap();
        assert_eq!(sink.finish().unwrap(), 10);
        let (names, rows) = read_parts(&parts);
        assert_eq!(names.len(), 4);
        assert_eq!(rows, all);
        // A stream without rows still has a part with its columns.
        let empty = tempfile::tempdir().unwrap();
        let mut sink =
            ParquetSink::<Trade>::rolling(empty.path(), "trades", registry(), Duration::ZERO, None)
                .unwrap();
        assert_eq!(sink.finish().unwrap(), 0);
        let (names, rows) = read_parts(&empty.path().join("trades"));
        assert_eq!(names, ["part-000000.parquet"]);
        assert!(rows.is_empty());
    }
}
