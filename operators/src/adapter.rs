//! The one place where operators meet timely.
//!
//! [`apply`] runs an [`Operator`] as a timely operator: records are exchanged by
//! [`Record::route`], buffered per timestamp until the input frontier (the watermark) passes
//! that timestamp, sorted by [`Record::order_key`], and handed to `on_batch` in time order;
//! then `on_watermark` sees the new watermark. The adapter holds one capability, at the
//! earliest of the buffered timestamps and the operator's [`Operator::next_emit`], so output
//! emitted later at an operator-chosen event time (a bar's end) is still allowed and
//! downstream frontiers cannot run past it.
//!
//! [`ordered_sink`] is the last stage of a stream: it gathers records (on worker 0, or on every
//! worker for sinks that only count) and hands them to a writer in timestamp order, sorted by
//! key within a timestamp, so files are identical whatever the number of workers.
//!
//! Timestamps are event time in nanoseconds, rounded by the sources to the job's granularity.

use std::collections::BTreeMap;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator as TimelyOperator;
use tickflow_core::Timestamp;

use crate::operator::{Emitter, Operator, Record};

/// Timely timestamp type of every tickflow dataflow: event time in nanoseconds.
pub type Time = i64;

/// Runs `op` on `stream`, partitioned by instrument.
pub fn apply<'s, O: Operator>(stream: StreamVec<'s, Time, O::In>, mut op: O) -> StreamVec<'s, Time, O::Out> {
    let name = op.name();
    let pact = Exchange::new(|r: &O::In| r.route());
    stream.unary_frontier::<CapacityContainerBuilder<Vec<O::Out>>, _, _, _>(pact, name, move |_initial, _info| {
        let mut held: Option<Capability<Time>> = None;
        let mut pending: BTreeMap<Time, Vec<O::In>> = BTreeMap::new();
        let mut spare: Vec<Vec<O::In>> = Vec::new();
        let mut watermark = Time::MIN;
        let mut emitter: Emitter<O::Out> = Emitter::default();
        let mut dropped: u64 = 0;
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                let Some(&t) = cap.least() else { return };
                if held.as_ref().is_none_or(|h| t < *h.time()) {
                    held = cap.retain_least(output.output_index());
                }
                pending.entry(t).or_insert_with(|| spare.pop().unwrap_or_default()).append(data);
            });
            let wm = frontier.frontier().first().copied().unwrap_or(Time::MAX);
            let mut flush = |emitter: &mut Emitter<O::Out>, held: &Option<Capability<Time>>| {
                let Some(held) = held else {
                    dropped += emitter.drain().count() as u64;
                    return;
                };
                let mut items = emitter.drain().peekable();
                while let Some((t, first)) = items.next() {
                    let t = t.nanos().max(*held.time());
                    let cap = held.delayed(&t);
                    let mut session = output.session(&cap);
                    session.give(first);
                    while let Some((_, next)) = items.next_if(|(t2, _)| t2.nanos().max(*held.time()) == t) {
                        session.give(next);
                    }
                }
            };
            while let Some(entry) = pending.first_entry() {
                if *entry.key() >= wm {
                    break;
                }
                let (t, mut batch) = entry.remove_entry();
                batch.sort_unstable_by_key(Record::order_key);
                emitter.set_time(Timestamp(t));
                op.on_batch(Timestamp(t), &mut batch, &mut emitter);
                flush(&mut emitter, &held);
                batch.clear();
                spare.push(batch);
            }
            if wm > watermark {
                watermark = wm;
                emitter.set_time(Timestamp(wm));
                op.on_watermark(Timestamp(wm), &mut emitter);
                flush(&mut emitter, &held);
            }
            if dropped > 0 {
                // An operator emitted without declaring `next_emit`: a bug, reported once per batch.
                eprintln!("error: operator {name} emitted {dropped} records it had no capability for");
                dropped = 0;
            }
            let next = [pending.keys().next().copied(), op.next_emit().map(Timestamp::nanos)].into_iter().flatten().min();
            match (next, held.as_mut()) {
                (None, _) => held = None,
                (Some(t), Some(h)) if t > *h.time() => h.downgrade(&t),
                _ => {}
            }
        }
    })
}

/// Where an ordered sink gathers its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    /// Every record goes to worker 0, which writes in a deterministic order.
    Single,
    /// Each worker handles its own records (sinks that only count or discard).
    Local,
}

/// Hands `stream`'s records to `write` in timestamp order (sorted by key within a timestamp)
/// once the watermark has passed them; `finish` is called when the stream ends.
pub fn ordered_sink<'s, T, W, F>(stream: StreamVec<'s, Time, T>, name: &str, gather: Gather, mut write: W, finish: F) -> StreamVec<'s, Time, ()>
where
    T: Record,
    W: FnMut(&mut Vec<T>) + 'static,
    F: FnOnce() + 'static,
{
    let mut finish = Some(finish);
    // `Local` is an exchange to the worker itself, so both cases share one operator.
    let target = match gather {
        Gather::Single => 0,
        Gather::Local => stream.scope().index() as u64,
    };
    stream.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Exchange::new(move |_: &T| target), name, move |_initial, _info| {
        let mut pending: BTreeMap<Time, Vec<T>> = BTreeMap::new();
        move |(input, frontier), _output| {
            input.for_each(|cap, data| {
                if let Some(&t) = cap.least() {
                    pending.entry(t).or_default().append(data);
                }
            });
            let wm = frontier.frontier().first().copied().unwrap_or(Time::MAX);
            while let Some(entry) = pending.first_entry() {
                if *entry.key() >= wm {
                    break;
                }
                let mut batch = entry.remove();
                batch.sort_unstable_by_key(Record::order_key);
                write(&mut batch);
            }
            if frontier.frontier().is_empty() && pending.is_empty() {
                if let Some(f) = finish.take() {
                    f();
                }
            }
        }
    })
}
