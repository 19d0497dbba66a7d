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
use crate::operator::{Emitter, Operator, Record, decode_state, encode_state};

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
#[derive(Default)]
pub struct LatestPrice {
    last: std::collections::BTreeMap<u32, i64>,
    traded: std::collections::BTreeSet<u32>,
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
    fn on_watermark(&mut self, _w: Timestamp, _out: &mut Emitter<PriceChange>) {}
    fn next_emit(&self) -> Option<Timestamp> {
        None
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("latest_price", &(&self.last, &self.traded))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        (self.last, self.traded) = decode_state("latest_price", snapshot)?;
        Ok(())
    }
}

/// One fill as the position fold sees it; ordered by execution time.
type FillKey = (i64, u64, u32, i64, i64, i64); // ts, order id, exec, signed qty, price, fee

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
/// event time where it changes.
pub fn portfolio<'s>(
    fills: StreamVec<'s, Time, Stamped<Fill>>,
    bars: StreamVec<'s, Time, Stamped<Bar>>,
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
    let fills = fills
        .map(|(t, f)| {
            let key: FillKey = (
                f.ts_event.nanos(),
                f.order_id,
                f.exec,
                f.signed_quantity(),
                f.price.raw(),
                f.fee.raw(),
            );
            ((f.instrument.0, key), t, 1isize)
        })
        .as_collection();
    let holdings = fills.reduce(|_instrument, input, output| {
        let mut h = Holding::default();
        for ((_, _, _, qty, price, fee), n) in input {
            for _ in 0..*n {
                h.apply(*qty, Price::from_raw(*price), Price::from_raw(*fee));
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
    (positions, values)
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
