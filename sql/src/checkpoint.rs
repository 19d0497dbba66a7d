//! A continuous query's state in a live job's checkpoint, as bytes: a JSON header (the query,
//! its watermarks, counters and how its buffers are grouped) followed by the buffered rows, each
//! batch an Arrow IPC stream.
//!
//! Layout: `TFQS`, a `u32` version, a `u64` header length and the header, a `u32` count of
//! batches, then each batch as a `u64` length and its IPC stream (all integers little-endian).

use std::time::Duration;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::SqlError;

const MAGIC: &[u8; 4] = b"TFQS";
const VERSION: u32 = 1;

/// Where a continuous query of a live job reports its checkpoints and how far its results are
/// durable (implemented by the job that runs it).
pub trait QueryHooks: Send {
    /// How often the query flushes its output, to make its results durable.
    fn flush_every(&self) -> Duration;
    /// The query is about to gather checkpoint time `at` (holding back the streams that
    /// reach it first); `false` leaves it out: the job can no longer complete it, or will not
    /// write it (a query catching up passes checkpoint times faster than the job writes
    /// checkpoints, and every query of the job must take the same ones).
    fn begin(&mut self, _at: i64) -> bool {
        true
    }
    /// The query gave up checkpoint time `at` after [`QueryHooks::begin`] (a stream it reads
    /// passed that time without a mark, or ended).
    fn give_up(&mut self, _at: i64) {}
    /// The query's state at checkpoint time `at` (every input row before `at` taken in, none
    /// at or after it, every result of the rows before it written) and where its output stood
    /// then ([`crate::QueryOutput::position`], [`crate::QueryOutput::resume_state`]); or why
    /// the state could not be taken. `took`: how long taking it took.
    fn checkpoint(
        &mut self,
        at: i64,
        state: Taken,
        position: Option<u64>,
        output_state: Option<Vec<u8>>,
    );
    /// Every result of input rows before `t` is durable in the output.
    fn durable(&mut self, t: i64);
}

/// A query's state at a checkpoint time (or why it could not be taken), and how long taking it
/// took.
pub type Taken = (Result<Vec<u8>, String>, Duration);

/// A window buffer in the header; its groups name batches by index.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct SavedWindows {
    pub table: String,
    pub closed_to: i64,
    pub late_rows: u64,
    pub last_late: Option<(i64, i64)>,
    pub groups: Vec<(i64, i64, usize)>,
    /// Aggregate states of rows folded, by window end (by place for sessions).
    #[serde(default)]
    pub folded: Vec<(i64, usize)>,
    /// Aggregate states of hopping windows' panes, by pane start.
    #[serde(default)]
    pub pane_folded: Vec<(i64, usize)>,
}

/// A current-state table in the header.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct SavedLatest {
    pub table: String,
    pub latest: Option<usize>,
    pub pending: Option<usize>,
}

/// The header.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Saved {
    pub query: String,
    pub sql: String,
    pub lateness_ns: i64,
    /// Per stream read, its watermark.
    pub marks: Vec<(String, i64)>,
    pub released_to: i64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub windows: u64,
    pub late_rows: u64,
    pub steps: u64,
    #[serde(default)]
    pub folded_rows: u64,
    pub last_late: Option<(i64, i64)>,
    pub window_feeds: Vec<SavedWindows>,
    /// Streams read directly: their rows waiting for the watermark.
    pub plain: Vec<(String, Option<usize>)>,
    pub state: Vec<SavedLatest>,
}

/// Gathers the batches of a state.
#[derive(Default)]
pub(crate) struct Batches(Vec<RecordBatch>);

impl Batches {
    /// Keeps the rows of `batches` as one batch; its index, `None` when there are none.
    pub fn add_all(&mut self, batches: &[RecordBatch]) -> Result<Option<usize>, SqlError> {
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        self.0.push(arrow_select::concat::concat_batches(
            &first.schema(),
            batches,
        )?);
        Ok(Some(self.0.len() - 1))
    }

    /// The state as bytes.
    pub fn encode(self, saved: &Saved) -> Result<Vec<u8>, SqlError> {
        let header = serde_json::to_vec(saved)
            .map_err(|e| SqlError::Execution(format!("cannot encode a query's state: {e}")))?;
        let mut out = Vec::with_capacity(header.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        for batch in &self.0 {
            let mut ipc = Vec::new();
            {
                let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut ipc, &batch.schema())?;
                w.write(batch)?;
                w.finish()?;
            }
            out.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
            out.extend_from_slice(&ipc);
        }
        Ok(out)
    }
}

/// A state read back: the header and its batches.
pub(crate) struct Decoded {
    pub saved: Saved,
    batches: Vec<RecordBatch>,
}

impl Decoded {
    /// Reads a state from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, SqlError> {
        let bad = |what: &str| SqlError::Execution(format!("a query's state is damaged: {what}"));
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], SqlError> {
            let end = at.checked_add(n).filter(|&e| e <= bytes.len());
            let end = end.ok_or_else(|| bad("it ends early"))?;
            let part = &bytes[at..end];
            at = end;
            Ok(part)
        };
        if take(4)? != MAGIC {
            return Err(bad("it does not start as one"));
        }
        let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
        let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let version = u32_at(take(4)?);
        if version != VERSION {
            return Err(bad(&format!(
                "it has layout version {version}, this build reads version {VERSION}"
            )));
        }
        let n = usize::try_from(u64_at(take(8)?)).map_err(|_| bad("header length"))?;
        let saved: Saved = serde_json::from_slice(take(n)?)
            .map_err(|e| bad(&format!("its header does not parse: {e}")))?;
        let count = u32_at(take(4)?);
        let mut batches = Vec::new();
        for _ in 0..count {
            let n = usize::try_from(u64_at(take(8)?)).map_err(|_| bad("batch length"))?;
            let mut reader =
                arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(take(n)?), None)?;
            let batch = reader
                .next()
                .ok_or_else(|| bad("a batch is empty"))?
                .map_err(SqlError::from)?;
            batches.push(batch);
        }
        Ok(Self { saved, batches })
    }

    /// Batch `i`.
    pub fn batch(&self, i: usize) -> Result<RecordBatch, SqlError> {
        self.batches.get(i).cloned().ok_or_else(|| {
            SqlError::Execution(format!("a query's state is damaged: it has no batch {i}"))
        })
    }

    /// Batch `i`, if there is one.
    pub fn batches(&self, i: Option<usize>) -> Result<Vec<RecordBatch>, SqlError> {
        i.map(|i| self.batch(i)).into_iter().collect()
    }
}
