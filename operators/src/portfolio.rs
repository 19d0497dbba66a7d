//! Portfolio valuation with differential dataflow.
//!
//! Fills become a collection keyed by instrument; a `reduce` folds each instrument's fills,
//! in execution order, into its position (quantity, average-cost basis, cash, fees). The last
//! trade prices (bar closes) are a second collection in which each new price retracts the old
//! one. Their `join` is the per-instrument valuation and a second `reduce` sums it into the
//! portfolio totals. Because both are collections maintained by differential dataflow, every
//! valuation reported at an event time is exactly the one implied by the fills and prices up
//! to that time: no update is half applied.
//!
//! Money is exact: amounts are `i128` in units of 10^-18 until they are reported, rounded once,
//! as 9-decimal [`Price`]s. Realized PnL is cash plus the cost basis of what is still open, so
//! realized + unrealized − fees is always exactly the PnL recomputed from the fills and the
//! final prices.

use differential_dataflow::AsCollection;
use serde::{Deserialize, Serialize};
use tickflow_core::{
    Bar, Fill, FillStatus, InstrumentId, PortfolioValue, Position, Price, Quantity, Timestamp,
    exact_notional, money_to_exact, round_money,
};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::{Filter, Map};

use crate::adapter::{Stamped, Time, apply};
use crate::error::Result;
use crate::operator::{
    Emitter, Operator, Record, decode_parts, decode_state, encode_state, regroup,
};

impl Record for Position {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        (self.ts_event.nanos(), self.instrument.0, 0)
    }
}

impl Record for PortfolioValue {
    fn route(&self) -> u64 {
        0
    }
    fn order_key(&self) -> (i64, u32, u64) {
        (self.ts_event.nanos(), 0, 0)
    }
}

/// A change of an instrument's last trade price: `diff` is +1 for the new price and −1 for
/// the one it replaces.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct PriceChange {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time.
    pub ts: Timestamp,
    /// Price (raw).
    pub price: i64,
    /// +1 or −1.
    pub diff: i8,
}

impl Record for PriceChange {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        (self.ts.nanos(), self.instrument.0, u64::from(self.diff > 0))
    }
}

/// What [`LatestPrice`] reads: bars, and fills (to know which instruments are held).
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub enum PriceInput {
    /// A bar; its close is the last trade price at its end.
    Bar(Bar),
    /// An execution report.
    Fill(Fill),
}

impl Record for PriceInput {
    fn route(&self) -> u64 {
        match self {
            PriceInput::Bar(b) => b.route(),
            PriceInput::Fill(f) => f.route(),
        }
    }
    fn order_key(&self) -> (i64, u32, u64) {
        match self {
            PriceInput::Bar(b) => b.order_key(),
            PriceInput::Fill(f) => f.order_key(),
        }
    }
}

/// Turns bars into last-price changes (one retraction and one insertion per new close), for
/// the instruments the portfolio has traded: an instrument's price enters the valuation with
/// its first fill, so instruments never traded cost the valuation nothing.
///
/// Restored from a checkpoint, it first gives the valuation back what its prices collection
/// held at the checkpoint — the last price of every instrument traded — at the last watermark
/// before it, which the valuation's consumers have already seen (see [`portfolio`]).
#[derive(Default)]
pub struct LatestPrice {
    last: std::collections::BTreeMap<u32, i64>,
    traded: std::collections::BTreeSet<u32>,
    seed: Seed,
}

/// The last watermark an operator of the valuation saw, and whether it still owes the
/// valuation the collection it was restored with (emitted at that watermark).
#[derive(Clone, Copy, Default, Serialize, Deserialize, Debug)]
struct Seed {
    watermark: Option<i64>,
    #[serde(skip)]
    owed: bool,
}

impl Seed {
    fn watermark(&mut self, w: Timestamp) {
        self.watermark = Some(w.nanos());
    }
    /// After a restore: the state is owed at the checkpoint's last watermark.
    fn restored(&mut self) {
        self.owed = self.watermark.is_some();
    }
    /// The seed of the snapshots of several workers: the last watermark any of them saw (every
    /// worker's is the one just below the checkpoint time), owed as after a restore.
    fn merged(seeds: impl IntoIterator<Item = Seed>) -> Seed {
        let mut seed = Seed {
            watermark: seeds.into_iter().filter_map(|s| s.watermark).max(),
            owed: false,
        };
        seed.restored();
        seed
    }
    fn next_emit(&self) -> Option<Timestamp> {
        self.owed.then_some(()).and(self.watermark.map(Timestamp))
    }
    /// The time to give the restored state back at, once.
    fn take(&mut self) -> Option<Timestamp> {
        let t = self.next_emit();
        self.owed = false;
        t
    }
}

impl LatestPrice {
    /// Gives back, once after a restore, the prices the valuation held at the checkpoint.
    fn give_back(&mut self, out: &mut Emitter<PriceChange>) {
        let Some(at) = self.seed.take() else { return };
        for id in &self.traded {
            if let Some(&price) = self.last.get(id) {
                out.push_at(
                    at,
                    PriceChange {
                        instrument: InstrumentId(*id),
                        ts: at,
                        price,
                        diff: 1,
                    },
                );
            }
        }
    }
}

impl Operator for LatestPrice {
    type In = PriceInput;
    type Out = PriceChange;
    fn name(&self) -> &'static str {
        "latest_price"
    }
    fn on_batch(
        &mut self,
        _t: Timestamp,
        input: &mut Vec<PriceInput>,
        out: &mut Emitter<PriceChange>,
    ) {
        self.give_back(out);
        for item in input.drain(..) {
            let bar = match item {
                PriceInput::Fill(f) => {
                    if f.status != FillStatus::Canceled
                        && self.traded.insert(f.instrument.0)
                        && let Some(&price) = self.last.get(&f.instrument.0)
                    {
                        out.push(PriceChange {
                            instrument: f.instrument,
                            ts: f.ts_event,
                            price,
                            diff: 1,
                        });
                    }
                    continue;
                }
                PriceInput::Bar(bar) => bar,
            };
            let price = bar.close.raw();
            let old = self.last.insert(bar.instrument.0, price);
            if old == Some(price) || !self.traded.contains(&bar.instrument.0) {
                continue;
            }
            if let Some(old) = old {
                out.push(PriceChange {
                    instrument: bar.instrument,
                    ts: bar.end,
                    price: old,
                    diff: -1,
                });
            }
            out.push(PriceChange {
                instrument: bar.instrument,
                ts: bar.end,
                price,
                diff: 1,
            });
        }
    }
    fn on_watermark(&mut self, w: Timestamp, out: &mut Emitter<PriceChange>) {
        self.give_back(out);
        self.seed.watermark(w);
    }
    fn next_emit(&self) -> Option<Timestamp> {
        self.seed.next_emit()
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("latest_price", &(&self.last, &self.traded, &self.seed))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        (self.last, self.traded, self.seed) = decode_state("latest_price", snapshot)?;
        self.seed.restored();
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        type Part = (
            std::collections::BTreeMap<u32, i64>,
            std::collections::BTreeSet<u32>,
            Seed,
        );
        let parts: Vec<Part> = decode_parts("latest_price", parts)?;
        let mut lasts = Vec::with_capacity(parts.len());
        let mut traded = Vec::with_capacity(parts.len());
        let mut seeds = Vec::with_capacity(parts.len());
        for (l, t, s) in parts {
            lasts.push(l);
            traded.push(t.into_iter().map(|i| (i, ())));
            seeds.push(s);
        }
        let route = |i: &u32| u64::from(*i);
        self.last = regroup("latest_price", lasts, route, mine)?;
        self.traded = regroup("latest_price", traded, route, mine)?
            .into_keys()
            .collect();
        self.seed = Seed::merged(seeds);
        Ok(())
    }
}

/// How many executions of one instrument the position fold keeps one by one before the
/// [`FillLedger`] folds them into its opening position.
const COMPACT_AFTER: usize = 64;

/// One execution as the position fold sees it; ordered by its step, then execution time.
type FillKey = (i64, i64, u64, u32, i64, i64, i64); // step, ts, order id, exec, signed qty, price, fee

/// What the position fold of one instrument reads: an opening position that sums every
/// execution before it, then executions one by one, in this order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub enum Entry {
    /// The position after every execution folded in so far.
    Opening(Holding),
    /// One execution.
    Fill(FillKey),
}

/// A change of the fold's input: `diff` +1 adds the entry, −1 takes it out.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct EntryChange {
    /// Instrument.
    pub instrument: u32,
    /// The entry.
    pub entry: Entry,
    /// +1 or −1.
    pub diff: i8,
}

impl Record for EntryChange {
    fn route(&self) -> u64 {
        u64::from(self.instrument)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        match self.entry {
            Entry::Opening(_) => (i64::MIN, self.instrument, u64::from(self.diff > 0)),
            Entry::Fill(k) => (k.1, self.instrument, (k.2 << 16) | u64::from(k.3 & 0xffff)),
        }
    }
}

/// The position fold's input, kept small: executions pass on to the fold as they come, and once
/// an instrument has [`COMPACT_AFTER`] executions in steps the watermark has passed (no
/// execution can come before them any more), they are folded into its opening position — the
/// fold's input loses them and gains the new opening, which leaves its result unchanged. So the
/// fold reads at most that many executions per instrument however long the job runs, and a
/// checkpoint holds an opening position and at most that many executions per instrument.
/// Restored, it gives its entries back once, at the checkpoint's last watermark (see
/// [`LatestPrice`]).
#[derive(Default)]
pub struct FillLedger {
    /// Per instrument: its opening position, and the executions after it.
    book: std::collections::BTreeMap<u32, (Option<Holding>, Vec<FillKey>)>,
    seed: Seed,
}

impl EntryChange {
    /// The ledger's entry of execution `f`, in step `t`.
    fn of_fill(t: Time, f: &Fill) -> Self {
        let key: FillKey = (
            t,
            f.ts_event.nanos(),
            f.order_id,
            f.exec,
            f.signed_quantity(),
            f.price.raw(),
            f.fee.raw(),
        );
        EntryChange {
            instrument: f.instrument.0,
            entry: Entry::Fill(key),
            diff: 1,
        }
    }
}

impl FillLedger {
    fn give_back(&mut self, out: &mut Emitter<EntryChange>) {
        let Some(at) = self.seed.take() else { return };
        for (id, (opening, fills)) in &self.book {
            let entries = opening
                .map(Entry::Opening)
                .into_iter()
                .chain(fills.iter().map(|k| Entry::Fill(*k)));
            for entry in entries {
                out.push_at(
                    at,
                    EntryChange {
                        instrument: *id,
                        entry,
                        diff: 1,
                    },
                );
            }
        }
    }

    /// Folds instrument `id`'s executions before step `t` into its opening position once
    /// there are enough of them.
    fn compact(&mut self, id: u32, t: Time, out: &mut Emitter<EntryChange>) {
        let Some((opening, fills)) = self.book.get_mut(&id) else {
            return;
        };
        let done = fills.iter().filter(|k| k.0 < t).count();
        if done < COMPACT_AFTER {
            return;
        }
        fills.sort_unstable();
        let mut change = |entry, diff| {
            out.push(EntryChange {
                instrument: id,
                entry,
                diff,
            })
        };
        let mut h = opening.unwrap_or_default();
        if let Some(old) = opening.take() {
            change(Entry::Opening(old), -1);
        }
        for k in fills.drain(..done) {
            h.apply(k.4, Price::from_raw(k.5), Price::from_raw(k.6));
            change(Entry::Fill(k), -1);
        }
        change(Entry::Opening(h), 1);
        *opening = Some(h);
    }
}

impl Operator for FillLedger {
    type In = EntryChange;
    type Out = EntryChange;
    fn name(&self) -> &'static str {
        "fill_ledger"
    }
    fn on_batch(
        &mut self,
        t: Timestamp,
        input: &mut Vec<EntryChange>,
        out: &mut Emitter<EntryChange>,
    ) {
        self.give_back(out);
        let mut touched = std::collections::BTreeSet::new();
        for change in input.drain(..) {
            if let Entry::Fill(k) = change.entry {
                self.book.entry(change.instrument).or_default().1.push(k);
                touched.insert(change.instrument);
                out.push(change);
            }
        }
        for id in touched {
            self.compact(id, t.nanos(), out);
        }
    }
    fn on_watermark(&mut self, w: Timestamp, out: &mut Emitter<EntryChange>) {
        self.give_back(out);
        self.seed.watermark(w);
    }
    fn next_emit(&self) -> Option<Timestamp> {
        self.seed.next_emit()
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("fill_ledger", &(&self.book, &self.seed))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        (self.book, self.seed) = decode_state("fill_ledger", snapshot)?;
        self.seed.restored();
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        type Part = (
            std::collections::BTreeMap<u32, (Option<Holding>, Vec<FillKey>)>,
            Seed,
        );
        let parts: Vec<Part> = decode_parts("fill_ledger", parts)?;
        let (books, seeds): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        self.book = regroup("fill_ledger", books, |i| u64::from(*i), mine)?;
        self.seed = Seed::merged(seeds);
        Ok(())
    }
}

/// A position after its fills: quantity (raw), cost basis, cash, fees (exact), fill count.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug,
)]
pub struct Holding {
    /// Signed quantity, raw.
    pub quantity: i64,
    /// Signed cost of the open quantity, exact.
    pub cost: i128,
    /// Cash flow of every fill (−qty × price), exact.
    pub cash: i128,
    /// Fees, exact.
    pub fees: i128,
    /// Number of executions.
    pub fills: u64,
}

impl Holding {
    /// Applies one execution (average-cost method).
    pub fn apply(&mut self, qty: i64, price: Price, fee: Price) {
        self.cash -= exact_notional(price, Quantity::from_raw(qty));
        self.fees += money_to_exact(fee);
        self.fills += 1;
        if self.quantity == 0 || (self.quantity > 0) == (qty > 0) {
            self.cost += exact_notional(price, Quantity::from_raw(qty));
            self.quantity += qty;
            return;
        }
        let closing = qty.abs().min(self.quantity.abs());
        let removed = self.cost * i128::from(closing) / i128::from(self.quantity.abs());
        self.cost -= removed;
        self.quantity += qty.signum() * closing;
        let opening = qty.abs() - closing;
        if self.quantity == 0 {
            self.cost = 0;
        }
        if opening > 0 {
            self.quantity = qty.signum() * opening;
            self.cost = exact_notional(price, Quantity::from_raw(self.quantity));
        }
    }

    /// The valuation at `mark`.
    pub fn value(&self, instrument: InstrumentId, ts: Timestamp, mark: Price) -> Position {
        let mv = exact_notional(mark, Quantity::from_raw(self.quantity));
        let avg = if self.quantity == 0 {
            Price::ZERO
        } else {
            // cost (10^-18) / quantity (10^-9) is a price in 10^-9; round half away from zero.
            let q = i128::from(self.quantity);
            let (d, r) = (self.cost / q, self.cost % q);
            let up =
                i128::from(2 * r.abs() >= q.abs()) * if (self.cost < 0) ^ (q < 0) { -1 } else { 1 };
            Price::from_raw((d + up).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
        };
        Position {
            instrument,
            ts_event: ts,
            quantity: Quantity::from_raw(self.quantity),
            avg_price: avg,
            mark,
            market_value: round_money(mv),
            realized_pnl: round_money(self.cash + self.cost),
            unrealized_pnl: round_money(mv - self.cost),
            fees: round_money(self.fees),
            fills: self.fills,
        }
    }
}

/// Exact totals: net, gross, realized, unrealized, fees, open positions.
type Totals = (i128, i128, i128, i128, i128, u32);

/// Builds the valuation: per-instrument positions and portfolio totals, each emitted at every
/// event time where it changes. The position fold reads its executions through a
/// [`FillLedger`], which keeps them few. `resumed_at`: the checkpoint time a job resumes from;
/// the valuation's operators give back the collections they held at it, and what they emit
/// before it — what the job that took the checkpoint had already emitted — is left out.
pub fn portfolio<'s>(
    fills: StreamVec<'s, Time, Stamped<Fill>>,
    bars: StreamVec<'s, Time, Stamped<Bar>>,
    resumed_at: Option<Time>,
) -> (
    StreamVec<'s, Time, Stamped<Position>>,
    StreamVec<'s, Time, Stamped<PortfolioValue>>,
) {
    // Reports of orders canceled unfilled change no position: they stop here.
    let fills = fills.filter(|(_, f)| f.status != FillStatus::Canceled);
    let prices = apply(
        bars.map(|(t, b)| (t, PriceInput::Bar(b)))
            .concat(fills.clone().map(|(t, f)| (t, PriceInput::Fill(f)))),
        LatestPrice::default(),
    )
    .map(|(t, c)| ((c.instrument.0, c.price), t, isize::from(c.diff)))
    .as_collection();
    let entries = fills.map(|(t, f)| (t, EntryChange::of_fill(t, &f)));
    let fills = apply(entries, FillLedger::default())
        .map(|(t, c)| ((c.instrument, c.entry), t, isize::from(c.diff)))
        .as_collection();
    let holdings = fills.reduce(|_instrument, input, output| {
        let mut h = Holding::default();
        for (entry, n) in input {
            match entry {
                Entry::Opening(opening) => h = *opening,
                Entry::Fill((_, _, _, _, qty, price, fee)) => {
                    for _ in 0..*n {
                        h.apply(*qty, Price::from_raw(*price), Price::from_raw(*fee));
                    }
                }
            }
        }
        output.push((h, 1isize));
    });
    let valued = holdings.join(prices);
    let totals = valued
        .clone()
        .map(|(id, (h, mark))| ((), (id, h, mark)))
        .reduce(|_, input, output| {
            let mut t: Totals = (0, 0, 0, 0, 0, 0);
            for ((_, h, mark), n) in input {
                let n = *n as i128;
                let mv = exact_notional(Price::from_raw(*mark), Quantity::from_raw(h.quantity));
                t.0 += n * mv;
                t.1 += n * mv.abs();
                t.2 += n * (h.cash + h.cost);
                t.3 += n * (mv - h.cost);
                t.4 += n * h.fees;
                t.5 += u32::from(h.quantity != 0);
            }
            output.push((t, 1isize));
        });
    let positions = valued
        .consolidate()
        .inner
        .flat_map(|((id, (h, mark)), t, r)| {
            (r > 0).then(|| {
                (
                    t,
                    h.value(InstrumentId(id), Timestamp(t), Price::from_raw(mark)),
                )
            })
        });
    let values = totals.consolidate().inner.flat_map(|(((), t), time, r)| {
        (r > 0).then(|| {
            (
                time,
                PortfolioValue {
                    ts_event: Timestamp(time),
                    net_exposure: round_money(t.0),
                    gross_exposure: round_money(t.1),
                    realized_pnl: round_money(t.2),
                    unrealized_pnl: round_money(t.3),
                    fees: round_money(t.4),
                    total_pnl: round_money(t.2 + t.3 - t.4),
                    open_positions: t.5,
                },
            )
        })
    });
    match resumed_at {
        Some(from) => (
            positions.filter(move |(t, _)| *t >= from),
            values.filter(move |(t, _)| *t >= from),
        ),
        None => (positions, values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }
    fn q(s: &str) -> i64 {
        Quantity::parse(s).unwrap().raw()
    }

    #[test]
    fn average_cost_realizes_on_reduce_and_flip() {
        let mut h = Holding::default();
        h.apply(q("100"), p("10"), p("1"));
        h.apply(q("100"), p("12"), p("1"));
        let v = h.value(InstrumentId(0), Timestamp(0), p("11"));
        assert_eq!(v.avg_price, p("11"));
        assert_eq!(v.unrealized_pnl, p("0"));
        // Sell 150 at 13: realizes 150 × (13 − 11) = 300; 50 left at 11.
        h.apply(-q("150"), p("13"), p("1"));
        let v = h.value(InstrumentId(0), Timestamp(0), p("13"));
        assert_eq!(v.realized_pnl, p("300"));
        assert_eq!(v.unrealized_pnl, p("100"));
        assert_eq!(v.quantity, Quantity::parse("50").unwrap());
        // Sell 100 at 9: realizes 50 × (9 − 11) = −100, then short 50 at 9.
        h.apply(-q("100"), p("9"), p("1"));
        let v = h.value(InstrumentId(0), Timestamp(0), p("8"));
        assert_eq!(v.realized_pnl, p("200"));
        assert_eq!(v.quantity, Quantity::parse("-50").unwrap());
        assert_eq!(v.avg_price, p("9"));
        assert_eq!(v.unrealized_pnl, p("50"));
        assert_eq!(v.fees, p("4"));
        assert_eq!(v.market_value, p("-400"));
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use tickflow_core::{BarKind, Duration, Side};
    use timely::dataflow::operators::{Input, Inspect, Probe};

    use super::*;
    use crate::adapter::test_checkpoints::{Hook, Snapshots, Taken, xorshift};
    use crate::adapter::{Checkpoints, checkpointing};

    /// What the valuation emitted: positions and totals with their steps, sorted.
    type Valued = (Vec<Stamped<Position>>, Vec<Stamped<PortfolioValue>>);

    /// Executions and bars of three instruments, in event-time order: buys and sells that
    /// open, add to, reduce and flip positions, partial fills, canceled remainders, and bar
    /// closes moving the marks.
    fn market() -> Vec<(Time, PriceInput)> {
        let mut rand = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut t = 1_000i64;
        let mut out = Vec::new();
        for k in 0..2000u64 {
            t += rand(4) as i64;
            let instrument = InstrumentId(rand(3) as u32);
            let price = Price::from_raw((100 + rand(20) as i64) * 1_000_000_000);
            if rand(3) == 0 {
                let status = match rand(5) {
                    0 => FillStatus::Canceled,
                    1 => FillStatus::Partial,
                    _ => FillStatus::Filled,
                };
                let qty = if status == FillStatus::Canceled {
                    0
                } else {
                    1 + rand(5) as i64
                };
                out.push((
                    t,
                    PriceInput::Fill(Fill {
                        order_id: k,
                        exec: 0,
                        instrument,
                        ts_event: Timestamp(t),
                        side: if rand(2) == 0 { Side::Buy } else { Side::Sell },
                        price,
                        quantity: Quantity::from_raw(qty * 1_000_000_000),
                        fee: Price::from_raw(rand(1000) as i64),
                        leaves: Quantity::ZERO,
                        status,
                    }),
                ));
            } else {
                out.push((
                    t,
                    PriceInput::Bar(Bar {
                        instrument,
                        kind: BarKind::Time(Duration(5)),
                        start: Timestamp(t - 5),
                        end: Timestamp(t),
                        open: price,
                        high: price,
                        low: price,
                        close: price,
                        volume: Quantity::from_raw(1),
                        vwap: price,
                        trade_count: 1,
                    }),
                ));
            }
        }
        out
    }

    /// Values `records` (the watermark following each chunk's newest step less a lateness of
    /// 3), starting at `from`, with checkpoints every `interval` restored from `restore`.
    fn run(
        records: &[(Time, PriceInput)],
        from: Time,
        checkpoints: Option<(Time, BTreeMap<usize, Vec<u8>>)>,
    ) -> (Valued, Taken) {
        let records = records.to_vec();
        timely::execute_directly(move |worker| {
            let taken: Snapshots = Rc::default();
            let valued: Rc<RefCell<Valued>> = Rc::default();
            let (pos, val) = (valued.clone(), valued.clone());
            let resumed_at = checkpoints
                .as_ref()
                .and_then(|(_, restore)| (!restore.is_empty()).then_some(from));
            let guard = checkpointing(checkpoints.map(|(interval, restore)| {
                Rc::new(Hook {
                    interval,
                    restore,
                    taken: taken.clone(),
                }) as Rc<dyn Checkpoints>
            }));
            let (mut fills, mut bars, probe) = worker.dataflow::<Time, _, _>(|scope| {
                let (fills, f) = scope.new_input::<Vec<Stamped<Fill>>>();
                let (bars, b) = scope.new_input::<Vec<Stamped<Bar>>>();
                let (positions, values) = portfolio(f, b, resumed_at);
                let (probe, _) = positions
                    .inspect(move |p| pos.borrow_mut().0.push(p.clone()))
                    .probe();
                values
                    .inspect(move |v| val.borrow_mut().1.push(v.clone()))
                    .probe_with(&probe);
                (fills, bars, probe)
            });
            drop(guard);
            fills.advance_to(from);
            bars.advance_to(from);
            let mut newest = from;
            for chunk in records.chunks(5) {
                for (t, r) in chunk {
                    match r {
                        PriceInput::Fill(f) => fills.send((*t, f.clone())),
                        PriceInput::Bar(b) => bars.send((*t, *b)),
                    }
                    newest = newest.max(*t);
                }
                let wm = (newest - 3).max(*fills.time());
                fills.advance_to(wm);
                bars.advance_to(wm);
                worker.step_while(|| probe.less_than(&wm));
            }
            drop((fills, bars));
            worker.step_while(|| !probe.done());
            let (mut p, mut v) = valued.take();
            p.sort();
            v.sort();
            ((p, v), taken.take())
        })
    }

    #[test]
    fn a_valuation_resumed_from_a_checkpoint_goes_on_as_if_it_had_never_stopped() {
        let records = market();
        let (whole, none) = run(&records, 0, None);
        assert!(none.is_empty());
        assert!(
            whole.0.len() > 500 && whole.1.len() > 500,
            "{}",
            whole.0.len()
        );
        // Each instrument's last position is the plain fold of all its executions, although
        // the ledger folded most of them into opening positions on the way.
        for id in 0..3u32 {
            let mut h = Holding::default();
            let mut fills = 0;
            for (_, r) in &records {
                if let PriceInput::Fill(f) = r
                    && f.instrument.0 == id
                    && f.status != FillStatus::Canceled
                {
                    h.apply(f.signed_quantity(), f.price, f.fee);
                    fills += 1;
                }
            }
            assert!(fills > 2 * COMPACT_AFTER, "{fills} executions");
            let last = whole
                .0
                .iter()
                .filter(|(_, p)| p.instrument.0 == id)
                .max_by_key(|(t, _)| *t)
                .map(|(_, p)| p.clone())
                .unwrap();
            let plain = h.value(InstrumentId(id), last.ts_event, last.mark);
            assert_eq!(last, plain, "instrument {id}");
        }
        // Checkpoints every 40 steps change nothing.
        let (checked, snaps) = run(&records, 0, Some((40, BTreeMap::new())));
        assert_eq!(checked, whole);
        let times: Vec<Time> = snaps.keys().map(|(at, _)| *at).collect();
        assert!(times.len() > 50, "{} snapshots", times.len());
        for at in [times[3], times[times.len() / 2], times[times.len() - 5]] {
            let states: BTreeMap<usize, Vec<u8>> = snaps
                .range((at, 0)..=(at, usize::MAX))
                .map(|((_, id), s)| (*id, s.clone()))
                .collect();
            assert_eq!(states.len(), 2, "prices and fills snapshot at {at}");
            let rest: Vec<(Time, PriceInput)> =
                records.iter().filter(|(t, _)| *t >= at).cloned().collect();
            let (resumed, _) = run(&rest, at, Some((40, states.clone())));
            let expected = (
                whole
                    .0
                    .iter()
                    .filter(|(t, _)| *t >= at)
                    .cloned()
                    .collect::<Vec<_>>(),
                whole
                    .1
                    .iter()
                    .filter(|(t, _)| *t >= at)
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            assert!(!expected.0.is_empty() && !expected.1.is_empty());
            assert_eq!(resumed, expected, "resumed at {at}");
            // Without the fills the checkpoint holds, the positions go on from nothing.
            let forgetful: BTreeMap<usize, Vec<u8>> =
                states.into_iter().filter(|(id, _)| *id == 0).collect();
            let (wrong, _) = run(&rest, at, Some((40, forgetful)));
            assert_ne!(wrong, expected, "resumed at {at} without its fills");
        }
    }

    #[test]
    fn prices_and_ledgers_spread_over_another_number_of_workers_go_on_as_on_one() {
        // The bars and executions of `market`, and the ledger's entries of its executions.
        let records = market();
        let mut prices: Vec<(Timestamp, Vec<PriceInput>)> = Vec::new();
        let mut entries: Vec<(Timestamp, Vec<EntryChange>)> = Vec::new();
        for chunk in records.chunk_by(|a, b| a.0 == b.0) {
            let t = Timestamp(chunk[0].0);
            prices.push((t, chunk.iter().map(|(_, r)| r.clone()).collect()));
            let fills: Vec<EntryChange> = chunk
                .iter()
                .filter_map(|(_, r)| match r {
                    PriceInput::Fill(f) if f.status != FillStatus::Canceled => {
                        Some(EntryChange::of_fill(t.nanos(), f))
                    }
                    _ => None,
                })
                .collect();
            if !fills.is_empty() {
                entries.push((t, fills));
            }
        }
        let at = Timestamp(prices[prices.len() / 2].0.nanos() + 1);
        let n =
            crate::operator::rescale_check::rescaled_runs_as_one(LatestPrice::default, &prices, at);
        assert!(n > 500, "{n} price changes");
        let n =
            crate::operator::rescale_check::rescaled_runs_as_one(FillLedger::default, &entries, at);
        assert!(n > 200, "{n} ledger changes");
    }
}
