//! The one place where operators meet timely.
//!
//! Records travel as [`Stamped`] pairs `(step, record)`: `step` is the record's event time
//! rounded to the job's granularity. A timely message's timestamp is a lower bound of the steps
//! it carries, so the input frontier is still the watermark — no record with a step below it
//! will arrive — while a whole chunk of records costs one message instead of one per step.
//!
//! [`apply`] runs an [`Operator`] as a timely operator: records are exchanged by
//! [`Record::route`], buffered by step until the frontier passes that step, sorted by
//! [`Record::order_key`], and handed to `on_batch` in step order; then `on_watermark` sees the
//! new watermark. The adapter holds one capability, at the earliest buffered step or the
//! operator's [`Operator::next_emit`], so output emitted later at an operator-chosen event time
//! (a bar's end) is still allowed and downstream frontiers cannot run past it. Everything an
//! activation emits leaves in one message, each record stamped with its own step.
//!
//! With [checkpoints](Checkpoints) set for the dataflow being built, every operator [`apply`]
//! runs takes a snapshot each time its watermark passes a multiple of the checkpoint interval
//! `B`: it first processes every step before `B` and sees `on_watermark(B - 1)`, which emits
//! what is complete before `B`, then snapshots, and only then goes on (a bar that ends at `B`
//! is emitted after the snapshot, at step `B`). So what an operator emits before its snapshot
//! is at steps before `B` and what it emits after is at `B` or later, and the snapshots of all
//! operators at one `B` are one consistent cut of the dataflow: together with the input
//! positions of the records at or after `B` they resume a job exactly.
//!
//! [`ordered_sink`] is the last stage of a stream: it gathers records (on worker 0, or on every
//! worker for sinks that only count) and hands them to a writer in step order, sorted by key
//! within a step, so files are identical whatever the number of workers.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use tickflow_core::{BookEvent, MarketEvent, Quote, Reject, Timestamp, Trade};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator as TimelyOperator, OutputBuilder};
use timely::progress::Antichain;
use timely::progress::operate::FrontierInterest;

use crate::normalize::Normalized;
use crate::operator::{Emitter, Operator, Record};

/// Timely timestamp type of every tickflow dataflow: event time in nanoseconds.
pub type Time = i64;

/// A record with its event-time step.
pub type Stamped<T> = (Time, T);

/// Records buffered by step until the watermark passes them. Records that arrive in step
/// order (the common case: one upstream, or several in step) go to a deque without any
/// allocation per step; a record older than the deque's last goes to a second lane ordered by
/// step, so interleaved inputs (a concat of streams, a feedback edge) never force a re-sort of
/// everything buffered.
struct StepBuffer<T> {
    items: VecDeque<Stamped<T>>,
    late: BTreeMap<Time, Vec<T>>,
}

impl<T> StepBuffer<T> {
    fn new() -> Self {
        Self {
            items: VecDeque::new(),
            late: BTreeMap::new(),
        }
    }

    fn extend(&mut self, data: &mut Vec<Stamped<T>>) {
        for item in data.drain(..) {
            if self.items.back().is_some_and(|(t, _)| *t > item.0) {
                self.late.entry(item.0).or_default().push(item.1);
            } else {
                self.items.push_back(item);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.late.is_empty()
    }

    fn first(&self) -> Option<Time> {
        let a = self.items.front().map(|(t, _)| *t);
        let b = self.late.keys().next().copied();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the records of the earliest step into `out` if the watermark has passed it: the
    /// step is below `watermark`, or the input has ended (`None`), which releases every step,
    /// `Time::MAX` too. Returns the step.
    fn pop_ready(&mut self, watermark: Option<Time>, out: &mut Vec<T>) -> Option<Time> {
        let step = self.first()?;
        if watermark.is_some_and(|wm| step >= wm) {
            return None;
        }
        while self.items.front().is_some_and(|(t, _)| *t == step) {
            if let Some((_, item)) = self.items.pop_front() {
                out.push(item);
            }
        }
        if self.late.keys().next() == Some(&step)
            && let Some(mut v) = self.late.remove(&step)
        {
            out.append(&mut v);
        }
        Some(step)
    }
}

/// The worker, of `workers`, that records with routing key `route` ([`Record::route`]) are
/// sent to: what timely's exchange by that key does (a mask where `workers` is a power of
/// two, which is the same as the remainder).
pub fn owner(route: u64, workers: usize) -> usize {
    let workers = workers.max(1) as u64;
    usize::try_from(route % workers).unwrap_or(0)
}

/// The state an operator resumes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Restore {
    /// Its own snapshot: the checkpoint was taken by as many workers as this job has.
    Own(Vec<u8>),
    /// The snapshots of every worker of a job with another number of workers, in worker
    /// order: each worker keeps what its records now route to
    /// ([`Operator::restore_parts`]).
    Parts(Vec<Vec<u8>>),
}

/// Where the operators of a dataflow send their checkpoint snapshots, and where they find the
/// state they resume from. One per worker; operators are told apart by the order in which the
/// worker's dataflow applies them, the same on every worker.
pub trait Checkpoints {
    /// Event time between two checkpoints, in nanoseconds (positive).
    fn interval(&self) -> Time;
    /// The checkpoint time the job's checkpoints are counted from, once known (the one it
    /// resumed from, or the one at or below the first record it read): an operator whose
    /// first step or watermark is later snapshots its state (still the one it started with)
    /// for the checkpoint times between, so that those can complete.
    fn origin(&self) -> Option<Time> {
        None
    }
    /// The state operator `id` (named `name`) resumes from, if the job resumes.
    fn restored(&self, id: usize, name: &'static str) -> Option<Restore>;
    /// Operator `id` could not take its restored state.
    fn restore_failed(&self, id: usize, name: &'static str, error: crate::Error);
    /// Operator `id`'s snapshot at checkpoint `at` (every step before `at` processed), and how
    /// long taking it took.
    fn snapshot(
        &self,
        id: usize,
        name: &'static str,
        at: Time,
        state: crate::Result<Vec<u8>>,
        took: std::time::Duration,
    );
}

thread_local! {
    /// The checkpoints of the dataflow being built on this thread, and the next operator id.
    static BUILDING: RefCell<Option<(Rc<dyn Checkpoints>, usize)>> = const { RefCell::new(None) };
}

/// Sets the checkpoints of the operators [`apply`] builds on this thread until the guard is
/// dropped (the worker's dataflow construction); `None` builds operators without.
pub fn checkpointing(checkpoints: Option<Rc<dyn Checkpoints>>) -> CheckpointingGuard {
    BUILDING.with(|b| *b.borrow_mut() = checkpoints.map(|c| (c, 0)));
    CheckpointingGuard(())
}

/// Ends what [`checkpointing`] set when dropped.
pub struct CheckpointingGuard(());

impl CheckpointingGuard {
    /// How many operators have been built with checkpoints so far.
    pub fn operators(&self) -> usize {
        BUILDING.with(|b| b.borrow().as_ref().map_or(0, |(_, n)| *n))
    }
}

impl Drop for CheckpointingGuard {
    fn drop(&mut self) {
        BUILDING.with(|b| *b.borrow_mut() = None);
    }
}

/// The checkpoints of the operator being built, with its id.
fn next_checkpointed() -> Option<(Rc<dyn Checkpoints>, usize)> {
    BUILDING.with(|b| {
        b.borrow_mut().as_mut().map(|(c, next)| {
            *next += 1;
            (c.clone(), *next - 1)
        })
    })
}

/// At most this many checkpoint times an operator passed at once (with no step between them)
/// get its snapshot: the latest ones (older ones could not complete before newer ones anyway).
const SNAPSHOTS_AT_ONCE: Time = 8;

/// The largest multiple of `interval` at or below `t` (`None` where there is none: `t` near
/// `Time::MIN`, before any watermark).
pub fn boundary(t: Time, interval: Time) -> Option<Time> {
    t.checked_sub(t.rem_euclid(interval.max(1)))
}

/// Runs `op` on `stream`, partitioned by instrument.
pub fn apply<'s, O: Operator>(
    stream: StreamVec<'s, Time, Stamped<O::In>>,
    op: O,
) -> StreamVec<'s, Time, Stamped<O::Out>> {
    apply_with_state(stream, None, op)
}

/// Like [`apply`], with a second, state-only input: its records reach the operator in the same
/// event-time order as the main input's, but they never cause output by themselves, so the
/// output's frontier does not wait for them. This is how an operator reads a feedback edge
/// (risk reading the fills its own orders caused) without tying its output to the loop: the
/// output frontier follows the main input, and a main record at step `t` is still processed
/// only after the state input has passed `t` — unless the operator says, through
/// [`Operator::waits_for_state`], that nothing relevant can come on it.
pub fn apply_with_state<'s, O: Operator>(
    stream: StreamVec<'s, Time, Stamped<O::In>>,
    state: Option<StreamVec<'s, Time, Stamped<O::In>>>,
    mut op: O,
) -> StreamVec<'s, Time, Stamped<O::Out>> {
    let name = op.name();
    // This worker, of how many: which instruments it owns when it resumes from the snapshots
    // of another number of workers.
    let (worker, workers) = {
        let scope = stream.scope();
        (scope.index(), scope.peers())
    };
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    // The output first, so each input declares its own connection to it.
    let (output, out_stream) = builder.new_output_connection::<Vec<Stamped<O::Out>>, _>([]);
    let mut output: OutputBuilder<Time, CapacityContainerBuilder<Vec<Stamped<O::Out>>>> =
        OutputBuilder::from(output);
    let pact = || Exchange::new(|r: &Stamped<O::In>| r.1.route());
    let mut main = builder.new_input_connection(stream, pact(), [(0, Antichain::from_elem(0))]);
    let mut side = state.map(|s| builder.new_input_connection(s, pact(), []));
    let checkpoints = next_checkpointed();
    let mut restored = false;
    if let Some((c, id)) = &checkpoints
        && let Some(state) = c.restored(*id, name)
    {
        let taken = match state {
            Restore::Own(state) => op.restore(&state),
            Restore::Parts(parts) => {
                op.restore_parts(&parts, &|route| owner(route, workers) == worker)
            }
        };
        match taken {
            Ok(()) => restored = true,
            Err(e) => c.restore_failed(*id, name, e),
        }
    }
    builder.build(move |mut initial| {
        // The checkpoint boundary the watermark last passed (`None` before the first watermark).
        let mut checkpointed: Option<Time> = None;
        // An operator restored from a checkpoint may owe output (a bar still open): it keeps
        // the initial capability, at that output's time.
        let mut held: Option<Capability<Time>> = initial.pop().filter(|_| restored).and_then(|mut cap| {
            let t = op.next_emit()?.nanos();
            if t > *cap.time() {
                cap.downgrade(&t);
            }
            Some(cap)
        });
        let mut pending: StepBuffer<O::In> = StepBuffer::new();
        let mut batch: Vec<O::In> = Vec::new();
        let mut watermark = Time::MIN;
        let mut emitter: Emitter<O::Out> = Emitter::default();
        // What one activation emits, handed to timely whole.
        let mut sent: Vec<Stamped<O::Out>> = Vec::new();
        move |frontiers| {
            let mut output = output.activate();
            main.for_each(|cap, data| {
                let Some(&t) = cap.least() else { return };
                if held.as_ref().is_none_or(|h| t < *h.time()) {
                    held = cap.retain_least(0);
                }
                pending.extend(data);
            });
            if let Some(side) = side.as_mut() {
                side.for_each(|_cap, data| {
                    data.iter().for_each(|(_, r)| op.observe_state(r));
                    pending.extend(data);
                });
            }
            // The main input's frontier, and with the state input's when the operator waits
            // for it (asked again after every step: a step can change the answer).
            let main_open = frontiers[0].frontier().first().copied();
            let all_open = frontiers
                .iter()
                .filter_map(|f| f.frontier().first().copied())
                .min();
            let open = |op: &O| if op.waits_for_state() { all_open } else { main_open };
            // Steps in order, as far as the watermark allows (asked again after every step: a
            // step can make the operator wait for its state input, or stop waiting). With
            // checkpoints, the next boundary stops the steps once the watermark has passed it:
            // when every step before it is processed, the operator sees the watermark just
            // below the boundary (what is complete before it goes out before the snapshot;
            // what the boundary itself completes, a bar ending at it, comes after, at its
            // step), snapshots, and goes on. Boundaries with no step between them are one
            // snapshot, at the last. They are counted from the operator's first step or the
            // first watermark it sees, whichever is earlier: an operator handed a backlog in
            // one go (a job started on a day waiting in its topic) snapshots within it.
            loop {
                let mut until = open(&op);
                if let Some((c, id)) = &checkpoints
                    && let Some(o) = until
                {
                    match checkpointed {
                        None => {
                            let first = pending.first().unwrap_or(Time::MAX);
                            checkpointed = boundary(o.min(first), c.interval())
                                .map(|b| c.origin().map_or(b, |origin| b.min(origin)));
                            if checkpointed.is_some() {
                                continue;
                            }
                        }
                        Some(last) => {
                            let next = last.saturating_add(c.interval());
                            if o >= next {
                                let first = pending.first().unwrap_or(Time::MAX);
                                if first >= next
                                    && let Some(at) = boundary(o.min(first), c.interval())
                                {
                                    // Every boundary passed since the last step (the
                                    // latest few) gets a snapshot, each after the watermark
                                    // just below it (what it completes, an open bar, goes
                                    // out first), so that each can complete.
                                    let skipped =
                                        ((at - last) / c.interval()).clamp(1, SNAPSHOTS_AT_ONCE);
                                    for k in (0..skipped).rev() {
                                        let b = at - k * c.interval();
                                        let below = b.saturating_sub(1);
                                        if below > watermark {
                                            watermark = below;
                                            emitter.set_time(Timestamp(below));
                                            op.on_watermark(Timestamp(below), &mut emitter);
                                        }
                                        let started = std::time::Instant::now();
                                        let state = op.snapshot();
                                        c.snapshot(*id, name, b, state, started.elapsed());
                                    }
                                    checkpointed = Some(at);
                                    continue;
                                }
                                until = Some(next);
                            }
                        }
                    }
                }
                let Some(t) = pending.pop_ready(until, &mut batch) else {
                    break;
                };
                batch.sort_unstable_by_key(Record::order_key);
                emitter.set_time(Timestamp(t));
                op.on_batch(Timestamp(t), &mut batch, &mut emitter);
                batch.clear();
            }
            let wm = open(&op).unwrap_or(Time::MAX);
            if wm > watermark {
                watermark = wm;
                emitter.set_time(Timestamp(wm));
                op.on_watermark(Timestamp(wm), &mut emitter);
            }
            if !emitter.items().is_empty() {
                match &held {
                    Some(cap) => {
                        // One message for the whole activation; every record keeps its own
                        // step, never below the capability's time.
                        let floor = *cap.time();
                        sent.extend(emitter.drain().map(|(t, x)| (t.nanos().max(floor), x)));
                        output.session(cap).give_container(&mut sent);
                        sent.clear();
                    }
                    None => {
                        // An operator emitted without a main-input record or `next_emit`: a bug.
                        let dropped = emitter.drain().count();
                        eprintln!(
                            "error: operator {name} emitted {dropped} records it had no capability for"
                        );
                    }
                }
            }
            let next = [pending.first(), op.next_emit().map(Timestamp::nanos)]
                .into_iter()
                .flatten()
                .min();
            match (next, held.as_mut()) {
                (None, _) => held = None,
                (Some(t), Some(h)) if t > *h.time() => h.downgrade(&t),
                _ => {}
            }
        }
    });
    out_stream
}

/// Passes `stream` through unchanged, but lets the frontier downstream of it advance at most
/// once per `every` of wall-clock time (and at once when the input ends).
///
/// Records are forwarded as soon as they arrive, each with its own step; only the watermark is
/// batched. This is for consumers off the trading path — sinks, the run report, the portfolio
/// valuation — which otherwise pay for every frontier change of the streams they read: a
/// worker step of the risk ↔ exchange loop moves the fills' frontier by one order, and every
/// operator downstream (differential's arrangements, the sinks' ordering buffers) would be
/// scheduled and tracked for it. Behind a throttle they see the same records and the same
/// watermarks, in fewer, larger moves; what a consumer emits for a step is unchanged, it is
/// released up to `every` later.
pub fn throttle<'s, T: Clone + 'static>(
    stream: StreamVec<'s, Time, Stamped<T>>,
    every: std::time::Duration,
) -> StreamVec<'s, Time, Stamped<T>> {
    if every.is_zero() {
        return stream;
    }
    let scope = stream.scope();
    let mut builder = OperatorBuilder::new("throttle".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    // The output first, and the input not connected to it: the frontier downstream is the
    // held capability alone, so the input's frontier changes stop here.
    let (output, out_stream) = builder.new_output_connection::<Vec<Stamped<T>>, _>([]);
    let mut output: OutputBuilder<Time, CapacityContainerBuilder<Vec<Stamped<T>>>> =
        OutputBuilder::from(output);
    let mut input = builder.new_input_connection(stream, Pipeline, []);
    builder.build(move |mut initial| {
        let mut held = initial.pop();
        let mut last: Option<std::time::Instant> = None;
        // When the wake-up already asked for is due.
        let mut wake: Option<std::time::Instant> = None;
        move |frontiers| {
            let mut output = output.activate();
            input.for_each(|_cap, data| {
                // A message's time is at or above the input frontier, which the held
                // capability never passes, and each record's step is at or above its
                // message's time.
                if let Some(cap) = &held {
                    output.session(cap).give_container(data);
                }
            });
            let Some(cap) = held.as_mut() else { return };
            match frontiers[0].frontier().first() {
                None => held = None,
                Some(&t) if t > *cap.time() => {
                    let now = std::time::Instant::now();
                    let due = last.map_or(now, |l| l + every);
                    if now >= due {
                        cap.downgrade(&t);
                        last = Some(now);
                    } else if wake.is_none_or(|w| w <= now) {
                        activator.activate_after(due - now);
                        wake = Some(due);
                    }
                }
                Some(_) => {}
            }
        }
    });
    out_stream
}

/// The typed streams that leave normalize.
pub struct Split<'s> {
    /// Accepted trades.
    pub trades: StreamVec<'s, Time, Stamped<Trade>>,
    /// Accepted quotes.
    pub quotes: StreamVec<'s, Time, Stamped<Quote>>,
    /// Accepted order-book events.
    pub book: StreamVec<'s, Time, Stamped<BookEvent>>,
    /// Rejects.
    pub rejects: StreamVec<'s, Time, Stamped<Reject>>,
}

/// Splits normalize's output by kind in one pass (one copy per record). `keep` says which of
/// trades, quotes and book events anything downstream reads; the others are counted and
/// dropped here. `count` receives the accepted counts of each message, by kind.
pub fn split<'s>(
    stream: StreamVec<'s, Time, Stamped<Normalized>>,
    keep: [bool; 3],
    mut count: impl FnMut([u64; 3]) + 'static,
) -> Split<'s> {
    let mut builder = OperatorBuilder::new("split".to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    let (trades_out, trades) = builder.new_output();
    let (quotes_out, quotes) = builder.new_output();
    let (book_out, book) = builder.new_output();
    let (rejects_out, rejects) = builder.new_output();
    let mut trades_out: OutputBuilder<Time, CapacityContainerBuilder<Vec<Stamped<Trade>>>> =
        OutputBuilder::from(trades_out);
    let mut quotes_out: OutputBuilder<Time, CapacityContainerBuilder<Vec<Stamped<Quote>>>> =
        OutputBuilder::from(quotes_out);
    let mut book_out: OutputBuilder<Time, CapacityContainerBuilder<Vec<Stamped<BookEvent>>>> =
        OutputBuilder::from(book_out);
    let mut rejects_out: OutputBuilder<Time, CapacityContainerBuilder<Vec<Stamped<Reject>>>> =
        OutputBuilder::from(rejects_out);
    builder.build(move |_| {
        move |_frontiers| {
            let (mut t_out, mut q_out, mut b_out, mut r_out) = (
                trades_out.activate(),
                quotes_out.activate(),
                book_out.activate(),
                rejects_out.activate(),
            );
            input.for_each_stamp(|cap, data| {
                let (mut t, mut q, mut b, mut r) = (
                    t_out.session(&cap),
                    q_out.session(&cap),
                    b_out.session(&cap),
                    r_out.session(&cap),
                );
                let mut counts = [0u64; 3];
                for (step, n) in data.flat_map(|d| d.drain(..)) {
                    match n {
                        Normalized::Accepted(MarketEvent::Trade(x)) => {
                            counts[0] += 1;
                            if keep[0] {
                                t.give((step, x));
                            }
                        }
                        Normalized::Accepted(MarketEvent::Quote(x)) => {
                            counts[1] += 1;
                            if keep[1] {
                                q.give((step, x));
                            }
                        }
                        Normalized::Accepted(MarketEvent::Book(x)) => {
                            counts[2] += 1;
                            if keep[2] {
                                b.give((step, x));
                            }
                        }
                        Normalized::Rejected(x) => r.give((step, x)),
                    }
                }
                count(counts);
            });
        }
    });
    Split {
        trades,
        quotes,
        book,
        rejects,
    }
}

/// Where an ordered sink gathers its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    /// Every record goes to worker 0, which writes in a deterministic order.
    Single,
    /// Each worker handles its own records (sinks that only count or discard).
    Local,
}

/// Hands `stream`'s records to `write` step by step, in step order (sorted by key within a step)
/// once the watermark has passed them; `progress` receives each new watermark once the records
/// before it are written — and, with `revisit`, the same watermark again at least that often
/// while the stream stands still (so a sink that flushes now and then also flushes what came
/// last); `finish` is called when the stream ends.
pub fn ordered_sink<'s, T, W, P, F>(
    stream: StreamVec<'s, Time, Stamped<T>>,
    name: &str,
    gather: Gather,
    mut write: W,
    mut progress: P,
    revisit: Option<std::time::Duration>,
    finish: F,
) -> StreamVec<'s, Time, ()>
where
    T: Record,
    W: FnMut(Time, &mut Vec<T>) + 'static,
    P: FnMut(Time) + 'static,
    F: FnOnce() + 'static,
{
    let mut finish = Some(finish);
    // `Local` is an exchange to the worker itself, so both cases share one operator.
    let target = match gather {
        Gather::Single => 0,
        Gather::Local => stream.scope().index() as u64,
    };
    let scope = stream.scope();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(move |_: &Stamped<T>| target),
        name,
        move |_initial, info| {
            let activator = revisit.map(|every| (scope.activator_for(info.address), every));
            // When the wake-up already asked for is due.
            let mut wake: Option<std::time::Instant> = None;
            let mut pending: StepBuffer<T> = StepBuffer::new();
            let mut batch: Vec<T> = Vec::new();
            let mut reported: Option<Time> = None;
            move |(input, frontier), _output| {
                input.for_each(|_cap, data| pending.extend(data));
                let open = frontier.frontier().first().copied();
                while let Some(step) = pending.pop_ready(open, &mut batch) {
                    batch.sort_unstable_by_key(Record::order_key);
                    write(step, &mut batch);
                    batch.clear();
                }
                // Everything before the first pending step (or the frontier) is written.
                let done = match (open, pending.first()) {
                    (Some(o), Some(p)) => Some(o.min(p)),
                    (o, p) => o.or(p),
                };
                let now = std::time::Instant::now();
                let revisited = wake.is_some_and(|w| now >= w);
                if let Some(d) = done
                    && (revisited || reported.is_none_or(|r| d > r))
                {
                    reported = Some(d);
                    progress(d);
                }
                if frontier.frontier().is_empty() && pending.is_empty() {
                    if let Some(f) = finish.take() {
                        f();
                    }
                } else if let Some((activator, every)) = &activator
                    && wake.is_none_or(|w| now >= w)
                {
                    activator.activate_after(*every);
                    wake = Some(now + *every);
                }
            }
        },
    )
}

#[cfg(test)]
mod step_buffer_tests {
    use super::*;

    #[test]
    fn releases_each_step_whole_and_in_order_however_messages_interleave() {
        // A small deterministic generator: messages of 0..20 records, some in step order, some
        // shuffled, some older than what is held.
        let mut rand = test_checkpoints::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut buf = StepBuffer::new();
        let mut sent: Vec<(Time, u64)> = Vec::new();
        let mut got: Vec<(Time, u64)> = Vec::new();
        let mut released = Time::MIN;
        let mut id = 0u64;
        let mut base: Time = 100;
        for round in 0..500 {
            let mut msg: Vec<Stamped<u64>> = (0..rand(20))
                .map(|_| {
                    id += 1;
                    // Never below what was released: the watermark is a promise.
                    ((base + rand(30) as Time - 10).max(released + 1), id)
                })
                .collect();
            if rand(3) > 0 {
                msg.sort_by_key(|(t, _)| *t);
            }
            sent.extend(msg.iter().copied());
            buf.extend(&mut msg);
            assert!(msg.is_empty());
            if round % 3 == 0 {
                base += rand(15) as Time;
                let wm = base - 10;
                let mut out = Vec::new();
                while let Some(step) = buf.pop_ready(Some(wm), &mut out) {
                    assert!(step > released && step < wm, "{step} after {released}");
                    released = step;
                    got.extend(out.drain(..).map(|v| (step, v)));
                }
            }
        }
        let mut out = Vec::new();
        while let Some(step) = buf.pop_ready(None, &mut out) {
            assert!(step > released);
            released = step;
            got.extend(out.drain(..).map(|v| (step, v)));
        }
        assert!(buf.is_empty());
        sent.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, sent, "every record released once, at its own step");
    }
}

#[cfg(test)]
mod throttle_tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use timely::dataflow::operators::{Input, Inspect, Probe};

    use super::*;

    /// What a throttle let through: the records seen downstream after each round, whether the
    /// downstream frontier had reached each round's input time, and every record at the end.
    type Seen = (Vec<Vec<Stamped<u32>>>, Vec<bool>, Vec<Stamped<u32>>);

    /// Runs `rounds` of (records, new input time) through a throttle of `every`, stepping a few
    /// times after each.
    fn run(every: Duration, rounds: Vec<(Vec<Stamped<u32>>, Time)>) -> Seen {
        timely::execute_directly(move |worker| {
            let got = Rc::new(RefCell::new(Vec::new()));
            let seen = got.clone();
            let (mut input, probe) = worker.dataflow::<Time, _, _>(|scope| {
                let (input, stream) = scope.new_input::<Vec<Stamped<u32>>>();
                let (probe, _) = throttle(stream, every)
                    .inspect(move |r| seen.borrow_mut().push(*r))
                    .probe();
                (input, probe)
            });
            let (mut after, mut reached) = (Vec::new(), Vec::new());
            for (records, to) in rounds {
                for r in records {
                    input.send(r);
                }
                input.advance_to(to);
                for _ in 0..5 {
                    worker.step();
                }
                after.push(got.borrow().clone());
                reached.push(!probe.less_than(&to));
            }
            drop(input);
            while !probe.done() {
                worker.step();
            }
            let all = got.borrow().clone();
            (after, reached, all)
        })
    }

    #[test]
    fn records_pass_at_once_and_the_watermark_moves_at_most_once_per_interval() {
        let rounds = vec![
            (vec![(5, 1), (7, 2)], 10),
            (vec![(12, 3)], 20),
            (vec![(25, 4), (21, 5)], 30),
        ];
        let (after, reached, all) = run(Duration::from_secs(3600), rounds.clone());
        // Every record leaves in the round it arrived, unchanged.
        assert_eq!(after[0], vec![(5, 1), (7, 2)]);
        assert_eq!(after[1], vec![(5, 1), (7, 2), (12, 3)]);
        assert_eq!(after[2].len(), 5);
        // The first move is allowed at once; the next ones wait for the interval (an hour),
        // so the frontier downstream stays where the first move put it.
        assert_eq!(reached, vec![true, false, false]);
        // When the input ends, everything is released and nothing is lost.
        assert_eq!(all, vec![(5, 1), (7, 2), (12, 3), (25, 4), (21, 5)]);

        // Without an interval, the watermark follows every move.
        let (_, reached, all) = run(Duration::ZERO, rounds);
        assert_eq!(reached, vec![true, true, true]);
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn a_held_watermark_moves_on_by_itself_once_the_interval_has_passed() {
        timely::execute_directly(|worker| {
            let (mut input, probe) = worker.dataflow::<Time, _, _>(|scope| {
                let (input, stream) = scope.new_input::<Vec<Stamped<u32>>>();
                let (probe, _) = throttle(stream, Duration::from_millis(20)).probe();
                (input, probe)
            });
            input.advance_to(10);
            worker.step_while(|| probe.less_than(&10));
            input.advance_to(20);
            for _ in 0..3 {
                worker.step();
            }
            assert!(probe.less_than(&20), "held within the interval");
            // Nothing else happens in the dataflow: the throttle's own wake-up moves it on.
            let start = std::time::Instant::now();
            while probe.less_than(&20) {
                assert!(start.elapsed() < Duration::from_secs(10), "never moved on");
                worker.step_or_park(Some(Duration::from_millis(50)));
            }
            assert!(start.elapsed() >= Duration::from_millis(5));
        });
    }
}

/// For tests: a [`Checkpoints`] that restores from a map and keeps every snapshot, and a
/// deterministic generator.
#[cfg(test)]
pub(crate) mod test_checkpoints {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::{Checkpoints, Time};

    /// A small deterministic generator: `rand(n)` is in `0..n`.
    pub(crate) fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// Snapshots by checkpoint time and operator id.
    pub(crate) type Taken = BTreeMap<(Time, usize), Vec<u8>>;
    pub(crate) type Snapshots = Rc<RefCell<Taken>>;

    pub(crate) struct Hook {
        pub(crate) interval: Time,
        pub(crate) restore: BTreeMap<usize, Vec<u8>>,
        pub(crate) taken: Snapshots,
    }

    impl Checkpoints for Hook {
        fn interval(&self) -> Time {
            self.interval
        }
        fn restored(&self, id: usize, _name: &'static str) -> Option<super::Restore> {
            self.restore.get(&id).cloned().map(super::Restore::Own)
        }
        fn restore_failed(&self, id: usize, name: &'static str, error: crate::Error) {
            panic!("operator {id} ({name}): {error}");
        }
        fn snapshot(
            &self,
            id: usize,
            _name: &'static str,
            at: Time,
            state: crate::Result<Vec<u8>>,
            _took: std::time::Duration,
        ) {
            self.taken.borrow_mut().insert((at, id), state.unwrap());
        }
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use serde::{Deserialize, Serialize};
    use timely::dataflow::operators::{Input, Inspect, Probe};

    use super::test_checkpoints::{Hook, Snapshots, Taken};
    use super::*;
    use crate::operator::{decode_state, encode_state};

    /// A value of an instrument at an event time.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct V {
        inst: u32,
        t: i64,
        v: i64,
    }

    impl Record for V {
        fn route(&self) -> u64 {
            u64::from(self.inst)
        }
        fn order_key(&self) -> (i64, u32, u64) {
            (self.t, self.inst, self.v as u64)
        }
    }

    const WINDOW: i64 = 10;

    /// Sums each instrument's values per window of `WINDOW`, emitted at the window's end when
    /// the watermark passes it (or the next window starts): output owed across a boundary.
    #[derive(Default)]
    struct Windows {
        open: BTreeMap<u32, (i64, i64)>,
    }

    impl Operator for Windows {
        type In = V;
        type Out = V;
        fn name(&self) -> &'static str {
            "windows"
        }
        fn on_batch(&mut self, _t: Timestamp, input: &mut Vec<V>, out: &mut Emitter<V>) {
            for r in input.drain(..) {
                let start = r.t.div_euclid(WINDOW) * WINDOW;
                match self.open.get_mut(&r.inst) {
                    Some((s, sum)) if *s == start => *sum += r.v,
                    _ => {
                        if let Some((s, sum)) = self.open.insert(r.inst, (start, r.v)) {
                            let end = s + WINDOW;
                            out.push_at(
                                Timestamp(end),
                                V {
                                    inst: r.inst,
                                    t: end,
                                    v: sum,
                                },
                            );
                        }
                    }
                }
            }
        }
        fn on_watermark(&mut self, w: Timestamp, out: &mut Emitter<V>) {
            let done: Vec<u32> = self
                .open
                .iter()
                .filter(|(_, (s, _))| s + WINDOW <= w.nanos())
                .map(|(i, _)| *i)
                .collect();
            for inst in done {
                if let Some((s, sum)) = self.open.remove(&inst) {
                    let end = s + WINDOW;
                    out.push_at(
                        Timestamp(end),
                        V {
                            inst,
                            t: end,
                            v: sum,
                        },
                    );
                }
            }
        }
        fn next_emit(&self) -> Option<Timestamp> {
            self.open.values().map(|(s, _)| Timestamp(s + WINDOW)).min()
        }
        fn snapshot(&self) -> crate::Result<Vec<u8>> {
            encode_state("windows", &self.open)
        }
        fn restore(&mut self, snapshot: &[u8]) -> crate::Result<()> {
            self.open = decode_state("windows", snapshot)?;
            Ok(())
        }
    }

    /// Each instrument's running total of what comes in: state that depends on all history.
    #[derive(Default)]
    struct Running {
        total: BTreeMap<u32, i64>,
    }

    impl Operator for Running {
        type In = V;
        type Out = V;
        fn name(&self) -> &'static str {
            "running"
        }
        fn on_batch(&mut self, _t: Timestamp, input: &mut Vec<V>, out: &mut Emitter<V>) {
            for r in input.drain(..) {
                let total = self.total.entry(r.inst).or_default();
                *total += r.v;
                out.push(V { v: *total, ..r });
            }
        }
        fn on_watermark(&mut self, _w: Timestamp, _out: &mut Emitter<V>) {}
        fn next_emit(&self) -> Option<Timestamp> {
            None
        }
        fn snapshot(&self) -> crate::Result<Vec<u8>> {
            encode_state("running", &self.total)
        }
        fn restore(&mut self, snapshot: &[u8]) -> crate::Result<()> {
            self.total = decode_state("running", snapshot)?;
            Ok(())
        }
    }

    /// Runs windows → running over `records` (in chunks, the watermark following each chunk's
    /// newest step less a lateness of 3), starting at `from`; returns every output record with
    /// its step, and the snapshots taken.
    fn run(
        records: &[V],
        from: Time,
        checkpoints: Option<(Time, BTreeMap<usize, Vec<u8>>)>,
    ) -> (Vec<Stamped<V>>, Taken) {
        let records = records.to_vec();
        timely::execute_directly(move |worker| {
            let taken: Snapshots = Rc::default();
            let got = Rc::new(RefCell::new(Vec::new()));
            let seen = got.clone();
            let guard = checkpointing(checkpoints.map(|(interval, restore)| {
                Rc::new(Hook {
                    interval,
                    restore,
                    taken: taken.clone(),
                }) as Rc<dyn Checkpoints>
            }));
            let (mut input, probe) = worker.dataflow::<Time, _, _>(|scope| {
                let (input, stream) = scope.new_input::<Vec<Stamped<V>>>();
                let (probe, _) = apply(apply(stream, Windows::default()), Running::default())
                    .inspect(move |r| seen.borrow_mut().push(*r))
                    .probe();
                (input, probe)
            });
            drop(guard);
            // The watermark reaches the start before any record comes (as a resumed job's
            // does), so what a restored operator owed goes out on the watermark alone.
            input.advance_to(from);
            for _ in 0..3 {
                worker.step();
            }
            let mut newest = from;
            for chunk in records.chunks(7) {
                for r in chunk {
                    input.send(((r.t).max(*input.time()), *r));
                    newest = newest.max(r.t);
                }
                let wm = (newest - 3).max(*input.time());
                input.advance_to(wm);
                worker.step_while(|| probe.less_than(&wm));
            }
            drop(input);
            worker.step_while(|| !probe.done());
            (got.take(), taken.take())
        })
    }

    #[test]
    fn a_dataflow_resumed_from_a_checkpoint_goes_on_as_if_it_had_never_stopped() {
        // Three instruments, values at times with some disorder (within the lateness).
        let mut rand = test_checkpoints::xorshift(0x2545_f491_4f6c_dd1d);
        let mut t = 1_000i64;
        let records: Vec<V> = (0..3000)
            .map(|_| {
                t += rand(3) as i64;
                V {
                    inst: rand(3) as u32,
                    t: t - rand(3) as i64,
                    v: rand(100) as i64,
                }
            })
            .collect();
        let (whole, none) = run(&records, 0, None);
        assert!(none.is_empty());
        // Checkpoints every 25 steps (boundaries that split windows of 10 as well as ones that
        // do not) change nothing in the output.
        let (checked, snaps) = run(&records, 0, Some((25, BTreeMap::new())));
        assert_eq!(checked, whole);
        let times: Vec<Time> = snaps.keys().map(|(at, _)| *at).collect();
        assert!(times.len() > 100, "{} snapshots", times.len());
        // Among them one where a window ends right at the checkpoint: output owed at its time.
        let owed = *times[times.len() / 2..]
            .iter()
            .find(|at| *at % WINDOW == 0)
            .unwrap();
        for at in [times[times.len() / 3], owed, times[2 * times.len() / 3]] {
            let states: BTreeMap<usize, Vec<u8>> = snaps
                .range((at, 0)..=(at, usize::MAX))
                .map(|((_, id), s)| (*id, s.clone()))
                .collect();
            assert_eq!(states.len(), 2, "both operators snapshot at {at}");
            // Resumed: the records at or after the checkpoint, from the checkpoint's states.
            let rest: Vec<V> = records.iter().copied().filter(|r| r.t >= at).collect();
            let (resumed, _) = run(&rest, at, Some((25, states)));
            let expected: Vec<Stamped<V>> = whole
                .iter()
                .copied()
                .filter(|(step, _)| *step >= at)
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(resumed, expected, "resumed at {at}");
        }
    }

    #[test]
    fn operators_handed_a_backlog_at_once_snapshot_within_it() {
        // A job started on a backlog: every record is in before the first watermark, which
        // then jumps past them all. The checkpoints are counted from the first step, not from
        // that watermark; and the boundaries in a gap of the data (1300 ..= 1600, no step
        // between 1250 and 1650) each get a snapshot, not only the last of them.
        let records: Vec<V> = (0..200)
            .map(|k| V {
                inst: k % 3,
                t: 1_000 + i64::from(k) * 5,
                v: 1,
            })
            .filter(|r| !(1_250..1_650).contains(&r.t))
            .collect();
        let taken = timely::execute_directly(move |worker| {
            let taken: Snapshots = Rc::default();
            let guard = checkpointing(Some(Rc::new(Hook {
                interval: 100,
                restore: BTreeMap::new(),
                taken: taken.clone(),
            }) as Rc<dyn Checkpoints>));
            let (mut input, probe) = worker.dataflow::<Time, _, _>(|scope| {
                let (input, stream) = scope.new_input::<Vec<Stamped<V>>>();
                let (probe, _) = apply(apply(stream, Windows::default()), Running::default())
                    .inspect(|_| {})
                    .probe();
                (input, probe)
            });
            drop(guard);
            input.advance_to(1_000);
            for r in &records {
                input.send((r.t, *r));
            }
            input.advance_to(5_000);
            worker.step_while(|| probe.less_than(&5_000));
            drop(input);
            worker.step_while(|| !probe.done());
            taken.take()
        });
        let times: std::collections::BTreeSet<Time> = taken.keys().map(|(at, _)| *at).collect();
        // Boundaries 1100 ..= 1900 lie among the records (1000 ..= 1995).
        for at in (1_100..=1_900).step_by(100) {
            assert!(
                taken.contains_key(&(at, 0)) && taken.contains_key(&(at, 1)),
                "no snapshot at {at}: {times:?}"
            );
        }
    }
}
