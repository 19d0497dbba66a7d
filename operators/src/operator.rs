//! The operator model: plain Rust, no timely.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tickflow_core::{
    Bar, BookEvent, IndicatorRow, InstrumentId, MarketEvent, Prediction, Quote, Reject, Signal,
    Timestamp, Trade,
};

use crate::error::Result;

/// A record that flows between operators: it can be routed by instrument and ordered
/// deterministically within one timestamp.
pub trait Record: Clone + Send + Serialize + DeserializeOwned + 'static {
    /// Routing key: records with the same key meet at the same worker.
    fn route(&self) -> u64;
    /// Total order within a timestamp, independent of arrival order and worker count.
    fn order_key(&self) -> (i64, u32, u64);
}

/// Collects an operator's output with the event time each record is emitted at.
#[derive(Debug)]
pub struct Emitter<T> {
    time: Timestamp,
    items: Vec<(Timestamp, T)>,
}

impl<T> Default for Emitter<T> {
    fn default() -> Self {
        Self {
            time: Timestamp::MIN,
            items: Vec::new(),
        }
    }
}

impl<T> Emitter<T> {
    /// An emitter whose default emission time is `time`.
    pub fn at(time: Timestamp) -> Self {
        Self {
            time,
            items: Vec::new(),
        }
    }
    /// Sets the default emission time (the adapter does this before each call).
    pub fn set_time(&mut self, time: Timestamp) {
        self.time = time;
    }
    /// Emits at the default time: the batch's time in `on_batch`, the watermark in `on_watermark`.
    pub fn push(&mut self, item: T) {
        self.items.push((self.time, item));
    }
    /// Emits at a chosen event time, which must not be earlier than what the operator declared
    /// through [`Operator::next_emit`] (or the current batch time).
    pub fn push_at(&mut self, time: Timestamp, item: T) {
        self.items.push((time, item));
    }
    /// Takes what was emitted.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (Timestamp, T)> {
        self.items.drain(..)
    }
    /// Emitted records (for tests).
    pub fn items(&self) -> &[(Timestamp, T)] {
        &self.items
    }
    /// Emitted records without times (for tests).
    pub fn take_values(&mut self) -> Vec<T> {
        self.items.drain(..).map(|(_, v)| v).collect()
    }
}

/// A stateful stream operator.
///
/// The runtime calls `on_batch` once per event-time step with every record of that step,
/// in [`Record::order_key`] order and in increasing time order; then `on_watermark` once the
/// watermark has passed (no record at or below `watermark - 1` will come again).
pub trait Operator: 'static {
    /// Input records.
    type In: Record;
    /// Output records.
    type Out: Record;
    /// A short name for the dataflow graph and errors.
    fn name(&self) -> &'static str;
    /// Processes all records of one event-time step.
    fn on_batch(
        &mut self,
        time: Timestamp,
        input: &mut Vec<Self::In>,
        out: &mut Emitter<Self::Out>,
    );
    /// The watermark advanced to `watermark`: everything strictly before it has been seen.
    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Emitter<Self::Out>);
    /// The earliest event time at which a later `on_watermark` may emit; the runtime holds the
    /// output back to it. `None` when nothing is pending.
    fn next_emit(&self) -> Option<Timestamp>;
    /// Whether the next step must wait for the state-only input (see
    /// [`crate::adapter::apply_with_state`]) to pass it. An operator returns `false` when its
    /// state input cannot bring anything relevant (risk with no working orders expects no
    /// fills), so it does not wait a round trip of a feedback edge for nothing.
    fn waits_for_state(&self) -> bool {
        true
    }
    /// Sees a state-input record as soon as it arrives, before its step is processed, so the
    /// operator can tell when nothing more can come (risk, once the last report of every
    /// working order is in). It must not change what the operator emits: records are still
    /// processed in step order by `on_batch`.
    fn observe_state(&mut self, _record: &Self::In) {}
    /// Encodes the operator's state.
    fn snapshot(&self) -> Result<Vec<u8>>;
    /// Replaces the operator's state with a snapshot.
    fn restore(&mut self, snapshot: &[u8]) -> Result<()>;
    /// Replaces the operator's state with what belongs to this worker in the snapshots of a
    /// job that ran on another number of workers: `parts` holds one snapshot per worker of
    /// that job, in worker order, and this worker keeps the state of the records it is sent
    /// now, those whose [`Record::route`] `mine` accepts (see [`crate::adapter::owner`]). State
    /// of one route is in one part only, since a route's records met at one worker. The default
    /// refuses: an operator whose state is not kept per route cannot be spread over workers.
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let _ = mine;
        Err(crate::error::Error::Rescale {
            operator: self.name(),
            workers: parts.len(),
            reason: "its state is not kept per instrument".to_string(),
        })
    }
}

/// The entries of the per-route maps of several workers' snapshots that `mine` keeps, by key:
/// how an operator whose state is a map keyed by route takes back the snapshots of another
/// number of workers ([`Operator::restore_parts`]). A key found in two snapshots is refused
/// (one job's workers never share a route).
pub(crate) fn regroup<K: Ord + std::fmt::Debug, V, M: IntoIterator<Item = (K, V)>>(
    operator: &'static str,
    parts: Vec<M>,
    route: impl Fn(&K) -> u64,
    mine: &dyn Fn(u64) -> bool,
) -> Result<std::collections::BTreeMap<K, V>> {
    let workers = parts.len();
    let mut kept = std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeMap::new();
    for (worker, part) in parts.into_iter().enumerate() {
        for (key, value) in part {
            let r = route(&key);
            if let Some(other) = seen.insert(r, worker)
                && other != worker
            {
                return Err(crate::error::Error::Rescale {
                    operator,
                    workers,
                    reason: format!(
                        "the state of {key:?} is in the snapshots of workers {other} and {worker}"
                    ),
                });
            }
            if mine(r) {
                kept.insert(key, value);
            }
        }
    }
    Ok(kept)
}

/// Decodes each of `parts` as [`decode_state`] does.
pub(crate) fn decode_parts<S: DeserializeOwned>(
    operator: &'static str,
    parts: &[Vec<u8>],
) -> Result<Vec<S>> {
    parts.iter().map(|p| decode_state(operator, p)).collect()
}

/// Encodes operator state for [`Operator::snapshot`].
pub(crate) fn encode_state<S: Serialize>(operator: &'static str, state: &S) -> Result<Vec<u8>> {
    serde_json::to_vec(state).map_err(|source| crate::error::Error::Snapshot { operator, source })
}

/// Decodes what [`encode_state`] wrote, for [`Operator::restore`].
pub(crate) fn decode_state<S: DeserializeOwned>(
    operator: &'static str,
    snapshot: &[u8],
) -> Result<S> {
    serde_json::from_slice(snapshot)
        .map_err(|source| crate::error::Error::Restore { operator, source })
}

fn key(ts: Timestamp, instrument: InstrumentId, seq: u64) -> (i64, u32, u64) {
    (ts.nanos(), instrument.0, seq)
}

impl Record for MarketEvent {
    fn route(&self) -> u64 {
        u64::from(self.instrument().0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.ts_event(), self.instrument(), self.seq().0)
    }
}

impl Record for Trade {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.ts_event, self.instrument, self.seq.0)
    }
}

impl Record for Quote {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.ts_event, self.instrument, self.seq.0)
    }
}

impl Record for BookEvent {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.ts_event, self.instrument, self.seq.0)
    }
}

impl Record for Bar {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        // Time bars of one instrument never share an end; volume bars may, and then start orders them.
        key(self.end, self.instrument, self.start.nanos() as u64)
    }
}

impl Record for IndicatorRow {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.end, self.instrument, 0)
    }
}

impl Record for Prediction {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.ts_event, self.instrument, 0)
    }
}

impl Record for Signal {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        key(self.ts_event, self.instrument, 0)
    }
}

impl Record for Reject {
    fn route(&self) -> u64 {
        self.instrument.map_or(0, |i| u64::from(i.0))
    }
    fn order_key(&self) -> (i64, u32, u64) {
        (
            self.ts_event.map_or(i64::MIN, Timestamp::nanos),
            self.instrument.map_or(u32::MAX, |i| i.0),
            self.seq.0,
        )
    }
}

/// For tests: checks [`Operator::restore_parts`] against the plain restore.
#[cfg(test)]
pub(crate) mod rescale_check {
    use super::{Emitter, Operator, Record};
    use crate::adapter::owner;
    use tickflow_core::Timestamp;

    /// Every output as (emission time, JSON), sorted: what a run emitted, whatever the worker.
    type Emitted = Vec<(i64, String)>;

    /// Runs `steps` (in time order) on `workers` operators made by `make`, each record on the
    /// worker its route belongs to, as the adapter would: one batch per step and worker that
    /// has records, then the watermark past the step on every worker, and the watermark
    /// `Time::MAX` at the end. Before the steps, `start` (a resumed job's first watermark).
    fn run<O: Operator>(
        ops: &mut [O],
        steps: &[(Timestamp, Vec<O::In>)],
        start: Option<Timestamp>,
        end: Timestamp,
        out: &mut Emitted,
    ) {
        let workers = ops.len();
        let mut emitter = Emitter::default();
        let give = |emitter: &mut Emitter<O::Out>, out: &mut Emitted| {
            out.extend(
                emitter
                    .drain()
                    .map(|(t, x)| (t.nanos(), serde_json::to_string(&x).unwrap())),
            );
        };
        if let Some(w) = start {
            for op in ops.iter_mut() {
                emitter.set_time(w);
                op.on_watermark(w, &mut emitter);
            }
            give(&mut emitter, out);
        }
        for (t, records) in steps {
            let mut parts: Vec<Vec<O::In>> = vec![Vec::new(); workers];
            for r in records {
                parts[owner(r.route(), workers)].push(r.clone());
            }
            for (op, mut batch) in ops.iter_mut().zip(parts) {
                if !batch.is_empty() {
                    batch.sort_by_key(Record::order_key);
                    emitter.set_time(*t);
                    op.on_batch(*t, &mut batch, &mut emitter);
                }
            }
            let w = Timestamp((t.nanos() + 1).min(end.nanos()));
            for op in ops.iter_mut() {
                emitter.set_time(w);
                op.on_watermark(w, &mut emitter);
            }
            give(&mut emitter, out);
        }
        if end == Timestamp::MAX {
            for op in ops.iter_mut() {
                emitter.set_time(end);
                op.on_watermark(end, &mut emitter);
            }
            give(&mut emitter, out);
        }
    }

    /// Runs `steps` on `before` workers up to checkpoint time `at` (the watermark just below
    /// it, then a snapshot per worker), and the rest on `after` workers restored from those
    /// snapshots: with `before == after` each worker restores its own, otherwise each takes
    /// its part of them all. Returns what was emitted before and after the checkpoint.
    fn resumed<O: Operator>(
        make: &impl Fn() -> O,
        steps: &[(Timestamp, Vec<O::In>)],
        at: Timestamp,
        (before, after): (usize, usize),
    ) -> (Emitted, Emitted) {
        let split = steps.partition_point(|(t, _)| *t < at);
        let mut ops: Vec<O> = (0..before).map(|_| make()).collect();
        let mut first = Vec::new();
        run(
            &mut ops,
            &steps[..split],
            None,
            Timestamp(at.nanos() - 1),
            &mut first,
        );
        let snapshots: Vec<Vec<u8>> = ops.iter().map(|o| o.snapshot().unwrap()).collect();
        let mut resumed: Vec<O> = (0..after).map(|_| make()).collect();
        for (w, op) in resumed.iter_mut().enumerate() {
            if before == after {
                op.restore(&snapshots[w]).unwrap();
            } else {
                op.restore_parts(&snapshots, &|r| owner(r, after) == w)
                    .unwrap_or_else(|e| panic!("{before} → {after} workers: {e}"));
            }
        }
        let mut rest = Vec::new();
        run(
            &mut resumed,
            &steps[split..],
            Some(at),
            Timestamp::MAX,
            &mut rest,
        );
        first.sort();
        rest.sort();
        (first, rest)
    }

    /// Checks that a job resumed at `at` on another number of workers emits what one resumed
    /// on the same number does (one worker), for several changes of the worker count, and that
    /// the records of `steps` belong to several workers on both sides (so state moves between
    /// workers). Returns how many records were emitted after the checkpoint.
    pub(crate) fn rescaled_runs_as_one<O: Operator>(
        make: impl Fn() -> O,
        steps: &[(Timestamp, Vec<O::In>)],
        at: Timestamp,
    ) -> usize {
        let routes: std::collections::BTreeSet<u64> = steps
            .iter()
            .flat_map(|(_, v)| v.iter().map(Record::route))
            .collect();
        let (whole_before, whole_after) = resumed(&make, steps, at, (1, 1));
        assert!(
            !whole_after.is_empty(),
            "nothing emitted after the checkpoint"
        );
        for (before, after) in [(1, 3), (2, 3), (3, 2), (2, 1), (4, 2), (2, 4)] {
            if before > 1 && routes.len() > 1 {
                let used: std::collections::BTreeSet<usize> =
                    routes.iter().map(|r| owner(*r, before)).collect();
                assert!(
                    used.len() > 1,
                    "the records meet at one of {before} workers"
                );
            }
            let (first, rest) = resumed(&make, steps, at, (before, after));
            assert_eq!(
                first, whole_before,
                "{before} workers before the checkpoint"
            );
            assert!(
                rest == whole_after,
                "{before} → {after} workers: {} records after the checkpoint, one worker {}; \
                 first difference: {:?}",
                rest.len(),
                whole_after.len(),
                rest.iter().zip(&whole_after).find(|(a, b)| a != b)
            );
        }
        whole_after.len()
    }
}
