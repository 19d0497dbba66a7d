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
