//! Counters shared by the workers while a job runs, and the summary of a finished run.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tickflow_core::{RejectReason, Timestamp};

use crate::report::TradingReport;

/// Live counters. Workers add to them once per batch; the progress reporter reads them.
#[derive(Debug)]
pub struct Stats {
    pub(crate) read: AtomicU64,
    pub(crate) accepted: [AtomicU64; 3],
    pub(crate) rejected: [AtomicU64; RejectReason::ALL.len()],
    pub(crate) streams: Vec<(String, AtomicU64)>,
    /// Event time every worker has finished (the global watermark), in ns.
    pub(crate) watermark: AtomicI64,
    pub(crate) first_event: AtomicI64,
    pub(crate) last_event: AtomicI64,
    pub(crate) sink_rows: Mutex<Vec<(String, u64)>>,
    pub(crate) errors: Mutex<Vec<String>>,
    pub(crate) trading: Mutex<Option<TradingReport>>,
    /// Set when a worker stopped reading on a stop request before its sources ended.
    pub(crate) stopped: AtomicBool,
    /// Records dropped on reading because the checkpoint the job resumed from holds them.
    pub(crate) skipped: AtomicU64,
}

impl Stats {
    pub(crate) fn new(operator_streams: &[String]) -> Self {
        Self {
            read: AtomicU64::new(0),
            accepted: Default::default(),
            rejected: Default::default(),
            streams: operator_streams
                .iter()
                .map(|s| (s.clone(), AtomicU64::new(0)))
                .collect(),
            watermark: AtomicI64::new(i64::MIN),
            first_event: AtomicI64::new(i64::MAX),
            last_event: AtomicI64::new(i64::MIN),
            sink_rows: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            trading: Mutex::new(None),
            stopped: AtomicBool::new(false),
            skipped: AtomicU64::new(0),
        }
    }

    /// Counts `read` records whose event times span `first..=last`.
    pub(crate) fn note_read(&self, read: u64, first: i64, last: i64) {
        self.read.fetch_add(read, Ordering::Relaxed);
        self.first_event.fetch_min(first, Ordering::Relaxed);
        self.last_event.fetch_max(last, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, message: String) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(message);
        }
    }

    /// A consistent-enough snapshot for progress lines.
    pub fn progress(&self) -> Progress {
        let wm = self.watermark.load(Ordering::Relaxed);
        Progress {
            read: self.read.load(Ordering::Relaxed),
            rejected: self
                .rejected
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum(),
            watermark: (wm > i64::MIN && wm < i64::MAX).then_some(Timestamp(wm)),
        }
    }
}

/// What a progress line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Records read so far (including the sources' rejects: rows that could not be parsed,
    /// gaps).
    pub read: u64,
    /// Records rejected so far.
    pub rejected: u64,
    /// Event time reached by every worker.
    pub watermark: Option<Timestamp>,
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Pipeline name.
    pub pipeline: String,
    /// Worker threads.
    pub workers: usize,
    /// Wall-clock time of the run.
    pub wall: std::time::Duration,
    /// Records read (events plus the sources' rejects: rows that could not be parsed, and
    /// gaps, where a venue's update ids show records missing).
    pub read: u64,
    /// Accepted trades, quotes and book events.
    pub accepted_trades: u64,
    /// Accepted quotes.
    pub accepted_quotes: u64,
    /// Accepted book events.
    pub accepted_book: u64,
    /// Rejected records by reason (only reasons that occurred).
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Records out of each operator stream (bars), in pipeline order.
    pub streams: Vec<(String, u64)>,
    /// Rows written by each sink (`kind:stream`).
    pub sink_rows: Vec<(String, u64)>,
    /// Earliest event time read.
    pub first_event: Option<Timestamp>,
    /// Latest event time read.
    pub last_event: Option<Timestamp>,
    /// Errors that did not stop the run (a sink that failed, a file that did not open).
    pub errors: Vec<String>,
    /// Orders, fills, positions, PnL and the backtest figures (pipelines with a portfolio).
    pub trading: Option<TradingReport>,
    /// True when the run was stopped on request (a signal) before its sources ended: the
    /// figures cover the records read until then, every one of them processed and written.
    pub stopped: bool,
    /// A job with checkpoints: what it resumed from and wrote.
    pub checkpoints: Option<CheckpointSummary>,
    /// Files under replayed directories that were not read, and why.
    pub left_out: Vec<tickflow_sources::LeftOut>,
    /// The models of the predict operators: operator name, and the model and where it ran.
    pub models: Vec<(String, String)>,
}

/// What a job with checkpoints resumed from and wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointSummary {
    /// The checkpoint directory.
    pub dir: String,
    /// The time of the checkpoint the job resumed from.
    pub resumed_from: Option<Timestamp>,
    /// How many workers took that checkpoint, when not as many as this job has (the operators'
    /// state was spread over this job's workers).
    pub taken_by: Option<usize>,
    /// Records dropped on reading because that checkpoint held them (not counted as read).
    pub skipped: u64,
    /// Checkpoints written by this run.
    pub written: u64,
    /// The newest checkpoint in the directory.
    pub newest: Option<Timestamp>,
    /// What taking and writing them cost.
    pub cost: crate::checkpoint::CheckpointCost,
}

impl Summary {
    pub(crate) fn collect(
        stats: &Stats,
        pipeline: &str,
        workers: usize,
        wall: std::time::Duration,
    ) -> Self {
        let load = |c: &AtomicU64| c.load(Ordering::SeqCst);
        let first = stats.first_event.load(Ordering::SeqCst);
        let last = stats.last_event.load(Ordering::SeqCst);
        let mut sink_rows = stats
            .sink_rows
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        sink_rows.sort();
        Self {
            pipeline: pipeline.to_owned(),
            workers,
            wall,
            read: load(&stats.read),
            accepted_trades: load(&stats.accepted[0]),
            accepted_quotes: load(&stats.accepted[1]),
            accepted_book: load(&stats.accepted[2]),
            rejected: RejectReason::ALL
                .iter()
                .zip(&stats.rejected)
                .map(|(r, c)| (*r, load(c)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            streams: stats
                .streams
                .iter()
                .map(|(n, c)| (n.clone(), load(c)))
                .collect(),
            sink_rows,
            first_event: (first != i64::MAX).then_some(Timestamp(first)),
            last_event: (last != i64::MIN).then_some(Timestamp(last)),
            errors: stats.errors.lock().map(|v| v.clone()).unwrap_or_default(),
            trading: stats.trading.lock().ok().and_then(|t| t.clone()),
            stopped: stats.stopped.load(Ordering::SeqCst),
            checkpoints: None,
            left_out: Vec::new(),
            models: Vec::new(),
        }
    }

    /// Accepted records of every kind.
    pub fn accepted(&self) -> u64 {
        self.accepted_trades + self.accepted_quotes + self.accepted_book
    }

    /// Rejected records of every reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// True when every record read was either accepted or rejected.
    pub fn accounted(&self) -> bool {
        self.accepted() + self.rejected_total() == self.read
    }

    /// Records read per second of wall-clock time.
    pub fn records_per_second(&self) -> f64 {
        self.read as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "── summary: {} ({} worker{}) ──",
            self.pipeline,
            self.workers,
            if self.workers == 1 { "" } else { "s" }
        )?;
        if self.stopped {
            writeln!(
                f,
                "stopped         on request, before the sources ended: these figures cover the records read until then"
            )?;
        }
        if let (Some(a), Some(b)) = (self.first_event, self.last_event) {
            writeln!(f, "event time      {a} .. {b}")?;
        }
        if !self.left_out.is_empty() {
            writeln!(
                f,
                "files left out  {:>14}   (under the directories replayed, not read):",
                thousands(self.left_out.len() as u64)
            )?;
            for line in tickflow_sources::describe_left_out(&self.left_out) {
                writeln!(f, "  {line}")?;
            }
        }
        for (op, model) in &self.models {
            writeln!(f, "model           {op}: {model}")?;
        }
        writeln!(f, "records read    {:>14}", thousands(self.read))?;
        writeln!(
            f,
            "accepted        {:>14}   (trades {}, quotes {}, book {})",
            thousands(self.accepted()),
            thousands(self.accepted_trades),
            thousands(self.accepted_quotes),
            thousands(self.accepted_book)
        )?;
        writeln!(
            f,
            "rejected        {:>14}",
            thousands(self.rejected_total())
        )?;
        for (reason, n) in &self.rejected {
            writeln!(f, "  {:<22}{:>10}", reason.as_str(), thousands(*n))?;
        }
        let check = if self.accounted() {
            "every record accounted for"
        } else {
            "MISMATCH: accepted + rejected != read"
        };
        writeln!(
            f,
            "check           accepted + rejected = {} = read: {check}",
            thousands(self.accepted() + self.rejected_total())
        )?;
        for (name, n) in &self.streams {
            writeln!(f, "{:<16}{:>14} out", name, thousands(*n))?;
        }
        // One column for the counts, however long the paths.
        let width = self
            .sink_rows
            .iter()
            .map(|(sink, _)| sink.chars().count())
            .max()
            .unwrap_or(0)
            .max(30);
        for (sink, n) in &self.sink_rows {
            writeln!(f, "  wrote {sink:<width$}{:>10} rows", thousands(*n))?;
        }
        if let Some(t) = &self.trading {
            write!(f, "{t}")?;
        }
        if let Some(c) = &self.checkpoints {
            if let Some(r) = c.resumed_from {
                writeln!(
                    f,
                    "resumed         from the checkpoint at {r} ({} records it held were skipped)",
                    thousands(c.skipped)
                )?;
                if let Some(w) = c.taken_by {
                    writeln!(
                        f,
                        "                taken by {w} worker{}, its operator state spread over {} by \
                         instrument",
                        if w == 1 { "" } else { "s" },
                        self.workers
                    )?;
                }
            }
            match c.newest {
                Some(n) => writeln!(
                    f,
                    "checkpoints     {} written to {}, the newest at {n}",
                    thousands(c.written),
                    c.dir
                )?,
                None => writeln!(f, "checkpoints     none written to {} yet", c.dir)?,
            }
            writeln!(
                f,
                "  cost          {:.1} ms taking snapshots, {:.1} ms writing {} bytes",
                c.cost.snapshotting.as_secs_f64() * 1e3,
                c.cost.writing.as_secs_f64() * 1e3,
                thousands(c.cost.bytes)
            )?;
        }
        writeln!(f, "wall time       {:>14.3} s", self.wall.as_secs_f64())?;
        writeln!(
            f,
            "throughput      {:>14} records/s",
            thousands(self.records_per_second() as u64)
        )?;
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary of a run that read nothing.
    fn empty() -> Summary {
        Summary {
            pipeline: "p".into(),
            workers: 1,
            wall: std::time::Duration::from_millis(5),
            read: 0,
            accepted_trades: 0,
            accepted_quotes: 0,
            accepted_book: 0,
            rejected: BTreeMap::new(),
            streams: Vec::new(),
            sink_rows: Vec::new(),
            first_event: None,
            last_event: None,
            errors: Vec::new(),
            trading: None,
            stopped: false,
            checkpoints: None,
            left_out: Vec::new(),
            models: Vec::new(),
        }
    }

    #[test]
    fn the_row_counts_of_sinks_line_up_however_long_their_paths() {
        let summary = Summary {
            sink_rows: vec![
                ("out/bars.jsonl".into(), 1),
                (
                    "/a/much/longer/output/directory/indicators.parquet".into(),
                    1_234,
                ),
            ],
            ..empty()
        };
        let text = summary.to_string();
        let ends: Vec<usize> = text
            .lines()
            .filter(|l| l.starts_with("  wrote "))
            .map(|l| l.find(" rows").unwrap())
            .collect();
        assert_eq!(ends.len(), 2, "{text}");
        assert_eq!(ends[0], ends[1], "{text}");
        assert!(!text.contains("left out"), "{text}");
    }

    #[test]
    fn files_left_out_are_counted_and_grouped_by_why() {
        let left = |path: &str, why: &str| tickflow_sources::LeftOut {
            path: path.into(),
            why: why.into(),
        };
        let summary = Summary {
            left_out: vec![
                left("d/daily/aapl.zip", "a zip that is not a Lean tick file"),
                left("d/README.md", "not a supported market-data file"),
                left("d/daily/ibm.zip", "a zip that is not a Lean tick file"),
                left("d/daily/spy.zip", "a zip that is not a Lean tick file"),
            ],
            ..empty()
        };
        let text = summary.to_string();
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("files left out"))
            .take(3)
            .collect();
        assert_eq!(
            lines,
            [
                "files left out               4   (under the directories replayed, not read):",
                "  d/daily/aapl.zip and 2 more: a zip that is not a Lean tick file",
                "  d/README.md: not a supported market-data file",
            ],
            "{text}"
        );
    }
}
