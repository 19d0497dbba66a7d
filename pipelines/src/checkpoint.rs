//! Checkpoints of a live job: operator snapshots and input positions, taken together at
//! multiples of an event-time interval, so that a restarted job goes on exactly where the
//! checkpoint left it instead of warming up again.
//!
//! Every operator snapshots as its watermark passes a checkpoint time `B` (see
//! [`tickflow_operators::adapter`]), after everything before `B` and before anything at or
//! after it; every worker's reader says where each of its partitions stood when its watermark
//! passed `B` ([`PartitionCheckpoint`]). When all of them have reported for one `B`, the
//! checkpoint is complete and is written as a directory `ckpt-<B>`: the operator states and a
//! `manifest.json` naming them, each file synced, written first under a temporary name and
//! renamed whole, so that a crash leaves either the complete checkpoint or none. Older
//! checkpoints are removed once a newer one is complete.
//!
//! A job started with a complete checkpoint in its directory resumes from the newest: each
//! operator takes its state back, the partitions are read again from their `resume` offsets,
//! and the records the checkpoint already holds are dropped as they come. The checkpoint must
//! have been taken by the same operators and settings; otherwise the job refuses to start and
//! says what differs. It may have been taken by another number of workers: operator state is
//! kept per worker, by instrument, so each worker of the new job takes from every old worker's
//! state the instruments it now owns ([`Restore::Parts`]), and partitions are found by topic
//! and number whichever worker reads them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tickflow_core::Timestamp;
use tickflow_operators::adapter::{Checkpoints, Restore, Time};
use tickflow_sinks::kafka::{Start, TopicProducer};
use tickflow_sources::kafka::PartitionCheckpoint;

use crate::config::Pipeline;

/// Version of the manifest's layout.
const VERSION: u32 = 1;
/// Incomplete checkpoints kept at most.
const MAX_PENDING: usize = 8;

/// What a checkpoint directory holds besides the states.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Manifest {
    version: u32,
    pipeline: String,
    /// Digest of the settings the operators' states depend on.
    digest: String,
    workers: usize,
    /// The checkpoint time (ns since the epoch): every record before it is in the states.
    at: i64,
    partitions: Vec<PartitionCheckpoint>,
    /// Per worker, its operators in the order the dataflow applies them: (name, state file).
    operators: Vec<Vec<(String, String)>>,
    /// The files a resumed job goes on with (JSON Lines sinks, by path), and their lengths when
    /// every row before the checkpoint time was written and none after.
    #[serde(default)]
    files: BTreeMap<String, u64>,
    /// What sinks keep besides files (the run report's tallies), by name: the state file.
    #[serde(default)]
    sinks: BTreeMap<String, String>,
}

/// A checkpoint read back, to resume from.
#[derive(Debug)]
pub struct Restored {
    /// Where it was read from.
    pub path: PathBuf,
    /// The checkpoint time.
    pub at: i64,
    /// How many workers took it: when this job has another number, each operator's state is
    /// spread over its workers by instrument ([`Operator::restore_parts`]).
    ///
    /// [`Operator::restore_parts`]: tickflow_operators::Operator::restore_parts
    pub workers: usize,
    /// Where each partition stood.
    pub partitions: Vec<PartitionCheckpoint>,
    /// Per worker, per operator: name and state.
    states: Vec<Vec<(String, Vec<u8>)>>,
    /// The files the job's sinks go on with, and their lengths at the checkpoint.
    pub files: BTreeMap<String, u64>,
    /// What sinks keep besides files, by name.
    sinks: BTreeMap<String, Vec<u8>>,
}

impl Restored {
    /// What sink `name` kept at the checkpoint; a checkpoint without it cannot be resumed
    /// from (it was taken by a job without that sink).
    pub fn sink_state(&self, name: &str) -> Result<&[u8], CheckpointError> {
        self.sinks.get(name).map(Vec::as_slice).ok_or_else(|| {
            refuse(
                &self.path,
                format!("it holds no state of `{name}`; remove the directory to start afresh"),
            )
        })
    }
}

/// The Kafka producer of a job's output `what` to `topic`, whose checkpoint state is kept under
/// `key`: going on from the checkpoint the job resumes from (`restored`), numbering its rows for
/// checkpoints when the job takes them (`checkpoints`), plain otherwise. Says how many messages
/// the job before the restart had sent after the checkpoint (they are not sent again), and, for
/// a checkpoint without the output's state (taken before it was added), that its rows after the
/// checkpoint are sent again.
pub fn kafka_producer(
    (brokers, topic, partitions): (&str, &str, i32),
    checkpoints: bool,
    restored: Option<&Restored>,
    key: &str,
    what: &str,
) -> Result<TopicProducer, tickflow_sinks::Error> {
    let start = match restored.map(|r| r.sink_state(key)) {
        Some(Ok(state)) => Start::Resume(state),
        Some(Err(_)) => {
            eprintln!(
                "tickflow: {what}: the checkpoint has no state of it; what the job before the \
                 restart sent after the checkpoint is sent again"
            );
            Start::Checkpointed
        }
        None if checkpoints => Start::Checkpointed,
        None => Start::Plain,
    };
    let producer = TopicProducer::new(brokers, topic, partitions, start)?;
    if producer.already_sent() > 0 {
        eprintln!(
            "tickflow: {what}: {} messages that the job before the restart sent after the \
             checkpoint are in the topic; they are not sent again",
            producer.already_sent()
        );
    }
    Ok(producer)
}

/// What has been reported for one checkpoint time.
struct Partial {
    /// The checkpoint time.
    at: i64,
    /// Per worker: its operators' states by id.
    states: Vec<BTreeMap<usize, (String, Vec<u8>)>>,
    /// Per worker: its partitions, once its reader has passed the checkpoint time.
    sources: Vec<Option<Vec<PartitionCheckpoint>>>,
    /// The file sinks' lengths.
    files: BTreeMap<String, u64>,
    /// The sink states.
    sinks: BTreeMap<String, Vec<u8>>,
    failed: bool,
    /// Chosen by the sinks that report later than the dataflow (the SQL queries; see
    /// [`Store::join`]): it is not dropped while they take their states.
    chosen: bool,
}

impl Partial {
    fn new(at: i64, workers: usize) -> Self {
        Self {
            at,
            states: vec![BTreeMap::new(); workers],
            sources: vec![None; workers],
            files: BTreeMap::new(),
            sinks: BTreeMap::new(),
            failed: false,
            chosen: false,
        }
    }
}

/// Gathers the reports of every worker and writes complete checkpoints.
pub struct Store {
    dir: PathBuf,
    interval: Time,
    workers: usize,
    pipeline: String,
    digest: String,
    inner: Mutex<Inner>,
    /// The checkpoint time this job's checkpoints are counted from, `i64::MAX` until known:
    /// the one it resumed from, or the boundary at or below the first record read.
    origin: std::sync::atomic::AtomicI64,
}

#[derive(Default)]
struct Inner {
    /// Per worker, once its dataflow is built: how many operators it checkpoints, and whether
    /// it reads partitions (a worker without any reports no input positions).
    operators: Vec<Option<(usize, bool)>>,
    /// The file sinks whose lengths a checkpoint needs.
    files: std::collections::BTreeSet<String>,
    /// The sink states a checkpoint needs.
    sinks: std::collections::BTreeSet<String>,
    pending: BTreeMap<i64, Partial>,
    /// Complete checkpoints waiting for the sinks to make every row before them durable.
    ready: BTreeMap<i64, Partial>,
    /// The newest complete checkpoint (written or not).
    latest: Option<i64>,
    /// The newest checkpoint on disk.
    on_disk: Option<i64>,
    /// Errors of operators that could not take their restored state.
    restore_errors: Vec<String>,
    /// When the slower sinks last chose a checkpoint time ([`Store::join`]).
    chose: Option<std::time::Instant>,
    /// The last write error, printed once per distinct message.
    last_error: Option<String>,
    /// Checkpoints written.
    written: u64,
    /// What checkpoints have cost so far.
    cost: CheckpointCost,
}

/// What a job's checkpoints cost: time spent taking snapshots (every operator, every time,
/// including checkpoints that never completed), time spent writing, and bytes written.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CheckpointCost {
    /// Serializing operator state, summed over operators and workers.
    pub snapshotting: std::time::Duration,
    /// Writing, syncing and renaming checkpoint directories.
    pub writing: std::time::Duration,
    /// Bytes of the checkpoints written.
    pub bytes: u64,
}

/// Why a checkpoint cannot be resumed from, or the checkpoint directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {reason}")]
pub struct CheckpointError {
    path: String,
    reason: String,
}

fn refuse(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The settings an operator's state depends on, as a digest: the operators with their
/// parameters, normalize, the granularity and lateness, and the checkpoint interval.
fn digest(pipeline: &Pipeline, interval: Time) -> String {
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{interval}",
        pipeline.operators, pipeline.normalize, pipeline.granularity, pipeline.allowed_lateness
    );
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Writes `bytes` to `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads state file `file` of checkpoint `path`.
fn read_state(path: &Path, file: &str) -> Result<Vec<u8>, CheckpointError> {
    if file.contains('/') || file.contains('\\') {
        return Err(refuse(
            path,
            format!("state file name `{file}` is not plain"),
        ));
    }
    std::fs::read(path.join(file)).map_err(|e| refuse(path, format!("cannot read {file}: {e}")))
}

/// Syncs a directory, so that the names in it last.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// The time of a checkpoint directory's name (`ckpt-<at>`), if it is one.
fn checkpoint_time(name: &str) -> Option<i64> {
    name.strip_prefix("ckpt-")?.parse().ok()
}

impl Store {
    /// The store of a job's checkpoints in `dir`, every `interval` of event time.
    pub fn new(
        dir: &Path,
        interval: tickflow_core::Duration,
        pipeline: &Pipeline,
        workers: usize,
    ) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| refuse(dir, format!("cannot create the directory: {e}")))?;
        let interval = interval.nanos().max(1);
        Ok(Self {
            dir: dir.to_path_buf(),
            interval,
            workers,
            pipeline: pipeline.name.clone(),
            digest: digest(pipeline, interval),
            inner: Mutex::new(Inner {
                operators: vec![None; workers],
                ..Inner::default()
            }),
            origin: std::sync::atomic::AtomicI64::new(i64::MAX),
        })
    }

    /// The event time between checkpoints (ns).
    pub fn interval(&self) -> Time {
        self.interval
    }

    /// A reader read a record at event time `t`: checkpoint times are counted from the
    /// boundary at or below the oldest such (or the checkpoint the job resumed from).
    pub fn note_origin(&self, t: i64) {
        if let Some(b) = tickflow_operators::adapter::boundary(t, self.interval) {
            self.origin
                .fetch_min(b, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// The checkpoint time this job's checkpoints are counted from, once known (see
    /// [`Checkpoints::origin`]).
    pub fn origin(&self) -> Option<Time> {
        let o = self.origin.load(std::sync::atomic::Ordering::Acquire);
        (o != i64::MAX).then_some(o)
    }

    /// The newest complete checkpoint in the directory, checked against this job; `None` when
    /// there is none. Leftovers of checkpoints that were never completed are removed.
    pub fn load(&self) -> Result<Option<Restored>, CheckpointError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| refuse(&self.dir, format!("cannot list the directory: {e}")))?;
        let mut newest: Option<(i64, PathBuf)> = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") && name.starts_with("ckpt-") {
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            if let Some(at) = checkpoint_time(&name)
                && newest.as_ref().is_none_or(|(n, _)| at > *n)
            {
                newest = Some((at, entry.path()));
            }
        }
        let Some((at, path)) = newest else {
            return Ok(None);
        };
        let text = std::fs::read(path.join("manifest.json"))
            .map_err(|e| refuse(&path, format!("cannot read manifest.json: {e}")))?;
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| refuse(&path, format!("manifest.json does not parse: {e}")))?;
        if m.version != VERSION {
            return Err(refuse(
                &path,
                format!(
                    "it has layout version {}, this build reads version {VERSION}",
                    m.version
                ),
            ));
        }
        if m.at != at {
            return Err(refuse(
                &path,
                format!("its manifest is of the checkpoint at {}", m.at),
            ));
        }
        if m.digest != self.digest {
            return Err(refuse(
                &path,
                format!(
                    "it was taken by pipeline `{}` with other operators or settings (operators, \
                     normalize, granularity, lateness or checkpoint interval differ); run the \
                     pipeline it was taken with, or remove the directory to start afresh",
                    m.pipeline
                ),
            ));
        }
        if m.workers == 0 || m.operators.len() != m.workers {
            return Err(refuse(
                &path,
                format!(
                    "its manifest names the states of {} workers of a job of {}",
                    m.operators.len(),
                    m.workers
                ),
            ));
        }
        let mut sinks = BTreeMap::new();
        for (name, file) in &m.sinks {
            sinks.insert(name.clone(), read_state(&path, file)?);
        }
        let mut states = Vec::with_capacity(m.operators.len());
        for ops in &m.operators {
            let mut worker = Vec::with_capacity(ops.len());
            for (name, file) in ops {
                worker.push((name.clone(), read_state(&path, file)?));
            }
            states.push(worker);
        }
        if let Ok(mut inner) = self.inner.lock() {
            inner.latest = Some(at);
            inner.on_disk = Some(at);
            self.note_origin(at);
        }
        Ok(Some(Restored {
            path,
            at,
            workers: m.workers,
            partitions: m.partitions,
            states,
            files: m.files,
            sinks,
        }))
    }

    /// Worker `worker`'s dataflow is built and checkpoints `operators` operators; `reads`:
    /// whether it reads any partition.
    pub fn built(&self, worker: usize, operators: usize, reads: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = inner.operators.get_mut(worker) {
            *slot = Some((operators, reads));
        }
    }

    /// What operators could not take their restored state (empty when all could).
    pub fn restore_errors(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.restore_errors.clone()
    }

    /// What checkpoints have cost so far.
    pub fn cost(&self) -> CheckpointCost {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.cost
    }

    /// A sink spent `took` taking its state for a checkpoint.
    pub fn snapshot_took(&self, took: std::time::Duration) {
        self.note_cost(|c| c.snapshotting += took);
    }

    fn note_cost(&self, f: impl FnOnce(&mut CheckpointCost)) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner.cost);
    }

    /// How many checkpoints this job has written, and the newest one on disk (written or
    /// resumed from).
    pub fn written(&self) -> (u64, Option<i64>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.written, inner.on_disk)
    }

    /// Writes the newest complete checkpoint whose time the sinks have passed — `durable(t)`:
    /// every row at a step up to `t` is durable in every sink — so that a job resumed from it
    /// never misses a row that was computed before it but not yet written. Older complete
    /// checkpoints are dropped.
    pub fn write_ready(&self, durable: impl Fn(i64) -> bool) {
        let newest = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let Some(at) = inner
                .ready
                .keys()
                .rev()
                .copied()
                .find(|at| durable(at.saturating_sub(1)))
            else {
                return;
            };
            let mut newest = None;
            while let Some((t, p)) = inner.ready.pop_first() {
                if t == at {
                    newest = Some(p);
                    break;
                }
            }
            newest
        };
        let Some(partial) = newest else { return };
        let at = partial.at;
        let started = std::time::Instant::now();
        match self.write(at, partial) {
            Ok(bytes) => {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                inner.cost.writing += started.elapsed();
                inner.cost.bytes += bytes;
                inner.written += 1;
                inner.on_disk = Some(at);
                inner.last_error = None;
            }
            Err(e) => self.note_error(format!(
                "cannot write the checkpoint at {} to {}: {e}",
                Timestamp(at),
                self.dir.display()
            )),
        }
    }

    /// The file sink `name` goes on from where a checkpoint leaves it: checkpoints need its
    /// length.
    pub fn file_sink(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.files.insert(name.to_owned());
    }

    /// File sink `name` was `length` bytes long with every row before `at` written and none
    /// after.
    pub fn file_position(&self, name: &str, at: i64, length: u64) {
        self.report(at, |p| {
            p.files.insert(name.to_owned(), length);
        });
    }

    /// Sink `name` keeps state besides files (the run report's tally of one stream), which
    /// checkpoints need.
    pub fn sink_state(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.sinks.insert(name.to_owned());
    }

    /// Sink `name`'s state with every row before `at` taken in and none after (an error: the
    /// checkpoint at `at` cannot be taken).
    pub fn sink_state_at(&self, name: &str, at: i64, state: Result<Vec<u8>, String>) {
        match state {
            Ok(state) => self.report(at, |p| {
                p.sinks.insert(name.to_owned(), state);
            }),
            Err(e) => self.failed(
                at,
                format!(
                    "cannot take the checkpoint at {}: {name}: {e}",
                    Timestamp(at)
                ),
            ),
        }
    }

    /// A sink that reports later than the dataflow (a SQL query) asks whether to take its state
    /// for checkpoint time `at`. Such sinks take the same checkpoint times, at most one new one
    /// per `gap` of wall-clock time (the job writes only the newest complete checkpoint now and
    /// then, and a sink catching up passes checkpoint times much faster): true for a time one
    /// of them has chosen, or one it chooses now; a chosen checkpoint is kept until it
    /// completes, a newer one does, or a sink gives it up ([`Store::leave`]). False for a
    /// checkpoint that can no longer complete (dropped, or older than one that completed).
    pub fn join(&self, at: i64, gap: std::time::Duration) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.latest.is_some_and(|l| at <= l) {
            return false;
        }
        let newer = inner.pending.keys().next_back().is_some_and(|n| *n > at);
        match inner.pending.get(&at) {
            Some(p) if p.chosen => return true,
            // Dropped, when newer ones are pending; else the dataflow's reports are still on
            // their way (they open it).
            None if newer => return false,
            _ => {}
        }
        if inner.chose.is_some_and(|t| t.elapsed() < gap) {
            return false;
        }
        inner.chose = Some(std::time::Instant::now());
        let workers = self.workers;
        inner
            .pending
            .entry(at)
            .or_insert_with(|| Partial::new(at, workers))
            .chosen = true;
        true
    }

    /// A sink gave up checkpoint time `at` after [`Store::join`] (a stream it reads passed that
    /// time without a mark): it cannot complete, and is no longer kept for the others.
    pub fn leave(&self, at: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = inner.pending.get_mut(&at) {
            p.chosen = false;
        }
    }

    /// Worker `worker`'s reader passed checkpoint time `at` with its partitions there.
    pub fn source(&self, worker: usize, at: i64, partitions: Vec<PartitionCheckpoint>) {
        self.report(at, |p| {
            if let Some(slot) = p.sources.get_mut(worker) {
                *slot = Some(partitions);
            }
        });
    }

    fn operator(&self, worker: usize, id: usize, name: &str, at: i64, state: Vec<u8>) {
        self.report(at, |p| {
            if let Some(slot) = p.states.get_mut(worker) {
                slot.insert(id, (name.to_owned(), state));
            }
        });
    }

    fn failed(&self, at: i64, message: String) {
        self.report(at, |p| p.failed = true);
        self.note_error(message);
    }

    fn note_error(&self, message: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.last_error.as_ref() != Some(&message) {
            eprintln!("tickflow: {message}; the job goes on, and the next checkpoint tries again");
            inner.last_error = Some(message);
        }
    }

    /// Records a report for `at`; a complete checkpoint waits for [`Store::write_ready`].
    fn report(&self, at: i64, record: impl FnOnce(&mut Partial)) {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.latest.is_some_and(|l| at <= l) {
                return;
            }
            let workers = self.workers;
            let partial = inner
                .pending
                .entry(at)
                .or_insert_with(|| Partial::new(at, workers));
            record(partial);
            // Checkpoints that cannot complete (a worker passed their time in one jump) are
            // not kept without bound: the oldest go first, but not those the slower sinks
            // chose (unless there are too many of them too).
            while inner.pending.len() > MAX_PENDING {
                let chosen = inner.pending.values().filter(|p| p.chosen).count();
                let Some(oldest) = inner
                    .pending
                    .iter()
                    .find(|(_, p)| !p.chosen || chosen > MAX_PENDING)
                    .map(|(t, _)| *t)
                else {
                    break;
                };
                inner.pending.remove(&oldest);
            }
            let Some(partial) = inner.pending.get(&at) else {
                return;
            };
            let done = !partial.failed
                && inner
                    .operators
                    .iter()
                    .zip(&partial.states)
                    .all(|(n, s)| n.is_some_and(|(ops, _)| s.len() == ops))
                && inner
                    .operators
                    .iter()
                    .zip(&partial.sources)
                    .all(|(n, s)| s.is_some() || n.is_some_and(|(_, reads)| !reads))
                && inner.files.iter().all(|f| partial.files.contains_key(f))
                && inner.sinks.iter().all(|f| partial.sinks.contains_key(f));
            if done {
                // Anything older can no longer complete usefully.
                let older: Vec<i64> = inner.pending.range(..=at).map(|(t, _)| *t).collect();
                let mut taken = None;
                for t in older {
                    let p = inner.pending.remove(&t);
                    if t == at {
                        taken = p;
                    }
                }
                inner.latest = Some(at);
                if let Some(p) = taken {
                    inner.ready.insert(at, p);
                }
            }
        }
    }

    /// Writes a complete checkpoint: states and manifest under a temporary name, synced, then
    /// renamed whole; then older checkpoints are removed.
    fn write(&self, at: i64, partial: Partial) -> std::io::Result<u64> {
        let mut bytes = 0u64;
        let name = format!("ckpt-{at}");
        let tmp = self.dir.join(format!("{name}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let mut operators = Vec::with_capacity(partial.states.len());
        for (w, states) in partial.states.into_iter().enumerate() {
            let mut ops = Vec::with_capacity(states.len());
            for (id, (op, state)) in states {
                let file = format!("w{w}-{id}-{op}.json");
                write_synced(&tmp.join(&file), &state)?;
                bytes += state.len() as u64;
                ops.push((op, file));
            }
            operators.push(ops);
        }
        let mut sinks = BTreeMap::new();
        for (k, (name, state)) in partial.sinks.into_iter().enumerate() {
            // Named by position: a stream's name need not be a plain file name.
            let file = format!("sink-{k}.state");
            write_synced(&tmp.join(&file), &state)?;
            bytes += state.len() as u64;
            sinks.insert(name, file);
        }
        let mut partitions: Vec<PartitionCheckpoint> =
            partial.sources.into_iter().flatten().flatten().collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let manifest = Manifest {
            version: VERSION,
            pipeline: self.pipeline.clone(),
            digest: self.digest.clone(),
            workers: self.workers,
            at,
            partitions,
            operators,
            files: partial.files,
            sinks,
        };
        let text = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        write_synced(&tmp.join("manifest.json"), &text)?;
        bytes += text.len() as u64;
        sync_dir(&tmp)?;
        let done = self.dir.join(&name);
        std::fs::rename(&tmp, &done)?;
        sync_dir(&self.dir)?;
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let old = entry.file_name();
            if let Some(t) = checkpoint_time(&old.to_string_lossy())
                && t < at
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(bytes)
    }
}

/// One worker's side of the [`Store`]: what its operators report and resume from.
pub struct WorkerCheckpoints {
    /// The store.
    pub store: std::sync::Arc<Store>,
    /// The worker.
    pub worker: usize,
    /// The checkpoint the job resumes from.
    pub restored: Option<std::sync::Arc<Restored>>,
}

impl Checkpoints for WorkerCheckpoints {
    fn interval(&self) -> Time {
        self.store.interval
    }

    fn origin(&self) -> Option<Time> {
        self.store.origin()
    }

    fn restored(&self, id: usize, name: &'static str) -> Option<Restore> {
        let restored = self.restored.as_ref()?;
        if restored.workers == self.store.workers {
            return self
                .state(restored, self.worker, id, name)
                .map(Restore::Own);
        }
        // Taken by another number of workers: every worker's state of this operator, which
        // the operator spreads over this job's workers by instrument.
        (0..restored.workers)
            .map(|w| self.state(restored, w, id, name))
            .collect::<Option<Vec<_>>>()
            .map(Restore::Parts)
    }

    fn restore_failed(&self, id: usize, name: &'static str, error: tickflow_operators::Error) {
        self.fail_restore(format!(
            "operator {id} (`{name}`) of worker {}: {error}",
            self.worker
        ));
    }

    fn snapshot(
        &self,
        id: usize,
        name: &'static str,
        at: Time,
        state: tickflow_operators::Result<Vec<u8>>,
        took: std::time::Duration,
    ) {
        self.store.note_cost(|c| c.snapshotting += took);
        match state {
            Ok(state) => self.store.operator(self.worker, id, name, at, state),
            Err(e) => self.store.failed(
                at,
                format!("operator `{name}` could not snapshot its state: {e}"),
            ),
        }
    }
}

impl WorkerCheckpoints {
    /// Operator `id`'s state of worker `worker` in the checkpoint.
    fn state(&self, restored: &Restored, worker: usize, id: usize, name: &str) -> Option<Vec<u8>> {
        match restored.states.get(worker).and_then(|ops| ops.get(id)) {
            Some((n, state)) if n == name => Some(state.clone()),
            Some((n, _)) => {
                self.fail_restore(format!(
                    "operator {id} of worker {worker} is `{n}` in the checkpoint and `{name}` here"
                ));
                None
            }
            None => {
                self.fail_restore(format!(
                    "the checkpoint has no state for operator {id} (`{name}`) of worker {worker}"
                ));
                None
            }
        }
    }

    fn fail_restore(&self, message: String) {
        let mut inner = self.store.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.restore_errors.push(message);
    }
}

/// The operators the checkpoint holds for each worker that took it, against those a worker's
/// dataflow built (every worker builds the same): a checkpoint of another shape is refused
/// (every operator must take a state back).
pub fn check_shape(restored: &Restored, built: usize) -> Result<(), String> {
    for (worker, states) in restored.states.iter().enumerate() {
        let had = states.len();
        if had != built {
            return Err(format!(
                "checkpoint {}: worker {worker} has {had} operator states, a dataflow of this \
                 job {built} operators",
                restored.path.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const PIPELINE: &str = r#"
[pipeline]
name = "ckpt"

[[source]]
kind = "kafka"
topic = "ticks"
follow = true
symbols = ["AIG"]

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[checkpoint]
dir = "unused"
interval = "5m"
"#;

    fn pipeline(text: &str) -> Pipeline {
        Pipeline::parse(text, "ckpt.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn store(dir: &Path, text: &str, workers: usize) -> Store {
        let p = pipeline(text);
        let interval = p.checkpoint.as_ref().unwrap().interval;
        Store::new(dir, interval, &p, workers).unwrap()
    }

    fn part(partition: i32, resume: i64, read_to: i64) -> PartitionCheckpoint {
        PartitionCheckpoint {
            topic: "ticks".into(),
            partition,
            resume,
            read_to,
            dead_letter: Vec::new(),
        }
    }

    /// Worker `w`'s hook.
    fn hook(s: &Arc<Store>, w: usize, restored: Option<Arc<Restored>>) -> WorkerCheckpoints {
        WorkerCheckpoints {
            store: s.clone(),
            worker: w,
            restored,
        }
    }

    #[test]
    fn a_checkpoint_is_written_once_every_worker_reported_and_the_sinks_passed_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(dir.path(), PIPELINE, 2));
        s.built(0, 1, true);
        s.built(1, 1, true);
        s.file_sink("out/bars.jsonl");
        s.sink_state("report/fills");
        let (w0, w1) = (hook(&s, 0, None), hook(&s, 1, None));
        w0.snapshot(
            0,
            "bars",
            600,
            Ok(b"{\"a\":0}".to_vec()),
            Default::default(),
        );
        s.source(0, 600, vec![part(0, 10, 12)]);
        w1.snapshot(
            0,
            "bars",
            600,
            Ok(b"{\"a\":1}".to_vec()),
            Default::default(),
        );
        s.write_ready(|_| true);
        assert!(
            s.load().unwrap().is_none(),
            "worker 1's reader has not reported"
        );
        s.source(1, 600, vec![part(1, 20, 20)]);
        s.write_ready(|t| t < 599);
        assert!(s.load().unwrap().is_none(), "the sinks are behind it");
        s.write_ready(|t| t < 600);
        assert!(
            s.load().unwrap().is_none(),
            "the file sink has not said where it stood"
        );
        s.file_position("out/bars.jsonl", 600, 4096);
        s.write_ready(|t| t < 600);
        assert!(
            s.load().unwrap().is_none(),
            "the report has not said what it had counted"
        );
        s.sink_state_at("report/fills", 600, Ok(b"{\"n\":3}".to_vec()));
        s.write_ready(|t| t < 600);
        assert_eq!(s.written(), (1, Some(600)));
        let r = s.load().unwrap().unwrap();
        assert_eq!(r.at, 600);
        assert_eq!(r.partitions, vec![part(0, 10, 12), part(1, 20, 20)]);
        assert_eq!(r.files.get("out/bars.jsonl"), Some(&4096));
        assert_eq!(r.sink_state("report/fills").unwrap(), b"{\"n\":3}");
        let e = r.sink_state("report/orders").unwrap_err().to_string();
        assert!(e.contains("no state of `report/orders`"), "{e}");
        let r = Arc::new(r);
        assert_eq!(
            hook(&s, 1, Some(r.clone())).restored(0, "bars"),
            Some(Restore::Own(b"{\"a\":1}".to_vec()))
        );
        // A job of another number of workers gets every worker's state, in worker order.
        let three = Arc::new(store(dir.path(), PIPELINE, 3));
        assert_eq!(
            hook(&three, 2, Some(r.clone())).restored(0, "bars"),
            Some(Restore::Parts(vec![
                b"{\"a\":0}".to_vec(),
                b"{\"a\":1}".to_vec()
            ]))
        );
        assert!(three.restore_errors().is_empty());

        // A newer one replaces it; a failed snapshot leaves its checkpoint out, not the job.
        for (w, h) in [&w0, &w1].into_iter().enumerate() {
            h.snapshot(0, "bars", 1200, Ok(vec![b'1']), Default::default());
            s.source(w, 1200, Vec::new());
        }
        s.file_position("out/bars.jsonl", 1200, 8192);
        s.sink_state_at("report/fills", 1200, Ok(b"{}".to_vec()));
        s.file_position("out/bars.jsonl", 1800, 9000);
        s.sink_state_at("report/fills", 1800, Ok(b"{}".to_vec()));
        w0.snapshot(
            0,
            "bars",
            1800,
            Err(tickflow_operators::Error::Config {
                operator: "bars",
                reason: "cannot".into(),
            }),
            Default::default(),
        );
        w1.snapshot(0, "bars", 1800, Ok(vec![b'2']), Default::default());
        s.source(0, 1800, Vec::new());
        s.source(1, 1800, Vec::new());
        s.write_ready(|_| true);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["ckpt-1200".to_string()]);
        // So does a sink state that could not be taken.
        for (w, h) in [&w0, &w1].into_iter().enumerate() {
            h.snapshot(0, "bars", 3000, Ok(vec![b'3']), Default::default());
            s.source(w, 3000, Vec::new());
        }
        s.file_position("out/bars.jsonl", 3000, 9900);
        s.sink_state_at("report/fills", 3000, Err("cannot".into()));
        s.write_ready(|_| true);
        assert_eq!(s.written(), (2, Some(1200)));
        // Leftovers of a write that never finished are removed on loading.
        std::fs::create_dir(dir.path().join("ckpt-2400.tmp")).unwrap();
        assert_eq!(s.load().unwrap().unwrap().at, 1200);
        assert!(!dir.path().join("ckpt-2400.tmp").exists());
    }

    #[test]
    fn the_slower_sinks_take_the_same_checkpoints_and_those_are_kept_until_they_have() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(dir.path(), PIPELINE, 1));
        s.built(0, 1, false);
        s.sink_state("query-a");
        s.sink_state("query-b");
        let w = hook(&s, 0, None);
        let passed = |t: i64| w.snapshot(0, "bars", t, Ok(vec![b'x']), Default::default());
        let hour = std::time::Duration::from_secs(3600);
        passed(300);
        passed(600);
        // Query a chooses 300; within the gap, 600 is not chosen, but b joins 300.
        assert!(s.join(300, hour));
        assert!(!s.join(600, hour), "too soon after the last choice");
        // The dataflow goes far ahead: 600 is dropped, 300 kept for the queries.
        for k in 3..=40 {
            passed(k * 300);
        }
        assert!(s.join(300, hour), "b joins what a chose");
        assert!(
            !s.join(600, std::time::Duration::ZERO),
            "dropped: it cannot complete"
        );
        s.sink_state_at("query-a", 300, Ok(b"a".to_vec()));
        s.write_ready(|_| true);
        assert_eq!(s.written().0, 0, "b has not reported");
        s.sink_state_at("query-b", 300, Ok(b"b".to_vec()));
        s.write_ready(|_| true);
        assert_eq!(s.written(), (1, Some(300)));
        assert_eq!(
            s.load().unwrap().unwrap().sink_state("query-b").unwrap(),
            b"b"
        );
        assert!(!s.join(300, std::time::Duration::ZERO), "written already");
        // A choice given up is dropped like any other as newer ones come.
        assert!(s.join(41 * 300, std::time::Duration::ZERO));
        s.leave(41 * 300);
        for k in 41..=50 {
            passed(k * 300);
        }
        assert!(!s.join(41 * 300, std::time::Duration::ZERO));
        assert!(
            s.join(60 * 300, std::time::Duration::ZERO),
            "not reported yet: it opens"
        );
    }

    #[test]
    fn a_checkpoint_of_other_operators_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(dir.path(), PIPELINE, 1));
        s.built(0, 1, true);
        hook(&s, 0, None).snapshot(0, "bars", 300, Ok(b"{}".to_vec()), Default::default());
        s.source(0, 300, vec![part(0, 1, 1)]);
        s.write_ready(|_| true);
        let other = store(dir.path(), &PIPELINE.replace("\"1m\"", "\"2m\""), 1);
        let e = other.load().unwrap_err().to_string();
        assert!(e.contains("other operators or settings"), "{e}");
        // Another number of workers takes it (each operator spreads its state by instrument).
        let r = store(dir.path(), PIPELINE, 2).load().unwrap().unwrap();
        assert_eq!(r.workers, 1);
        // The operators a worker builds must be the checkpoint's.
        let r = Arc::new(store(dir.path(), PIPELINE, 1).load().unwrap().unwrap());
        assert!(check_shape(&r, 1).is_ok());
        let e = check_shape(&r, 2).unwrap_err();
        assert!(
            e.contains("1 operator states, a dataflow of this job 2"),
            "{e}"
        );
        for workers in [1, 2] {
            let s2 = Arc::new(store(dir.path(), PIPELINE, workers));
            assert!(
                hook(&s2, 0, Some(r.clone()))
                    .restored(0, "indicators")
                    .is_none()
            );
            let e = s2.restore_errors();
            assert!(
                e[0].contains(
                    "operator 0 of worker 0 is `bars` in the checkpoint and `indicators` here"
                ),
                "{e:?}"
            );
        }
        // A manifest that does not parse is named.
        std::fs::write(dir.path().join("ckpt-300/manifest.json"), "{").unwrap();
        let e = store(dir.path(), PIPELINE, 1)
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ckpt-300") && e.contains("manifest.json does not parse"),
            "{e}"
        );
    }
}
